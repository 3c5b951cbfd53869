"""The contract of each composite stage of `beam_jobs.preprocess`, one small pipeline each.

Each test builds the stage's input by hand (a few rows), runs the stage alone
in a TestPipeline on the local runner, and states with `assert_that` what it
must hand on: rows, counts and rejects. The end-to-end checks are in
test_preprocess.py, the array kernels in test_preprocess_kernels.py.
"""
import gzip
import json
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pytest
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import rejects, selection
from beam_jobs.blocks import KeptPartition, RatedBlock, SelectionIndex, UserPartition, ValidatedBlock
from beam_jobs.counting import SumCounts
from beam_jobs.rejects import Reject, RejectReason
from beam_jobs.stages import (
    BuildIndex, BuildVocabularies, CatalogBookIds, Deduplicate, DropBelowMinRating, DropSparseUsers,
    ReadBlocksOfFile, ReadCatalogFile, ReadIdMaps, RejectMalformed, SelectTopBooks, StopIfMostlyMalformed,
    WriteCatalog, WriteCounts, WriteExamples, WriteRejects)
from pipeline_common import artifacts, beam_runner

PREPROCESS_DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                              "preprocess.md")
USER_A = "0123456789abcdef0123456789abcdef"
USER_B = "ffffffffffffffffffffffffffffffff"


def _pipeline():
    """A TestPipeline on the same offline local runner as the job (one in-process worker)."""
    return test_pipeline.TestPipeline(runner=fn_runner.FnApiRunner(),
                        options=beam_runner.make_options(["--direct_num_workers=1"]))


def _summed(pcoll, label):
    return pcoll | label >> beam.CombineGlobally(SumCounts())


def _as(fn, expected):
    """A matcher: fn(actual elements) == expected."""
    def check(actual):
        got = fn(list(actual))
        assert got == expected, f"{got!r} != {expected!r}"
    return check


def _u128(*hex_ids):
    hi, lo, ok = selection.strings_to_u128(pa.array(list(hex_ids)))
    assert ok.all()
    return hi, lo


def _partition(part, users, gids, ratings):
    """A UserPartition from rows sorted by user: users as hex ids, one per row."""
    uniq = sorted(set(users))
    hi, lo = _u128(*uniq)
    counts = np.array([users.count(u) for u in uniq])
    return UserPartition(part, counts, np.array(gids, np.uint32), np.array(ratings, np.int8), hi, lo)


def test_read_blocks_of_file_gives_every_line_once_in_whole_lines(tmp_path):
    lines = [f"line {i:03d}" for i in range(50)]
    plain, packed = tmp_path / "plain.txt", tmp_path / "packed.txt.gz"
    plain.write_text("\n".join(lines) + "\n")
    packed.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))

    def lines_and_firsts(blocks):
        assert all(b.data.endswith(b"\n") for b in blocks if b.data)  # a range may hold no line start
        return (sorted(x for b in blocks for x in b.data.decode().splitlines()),
                sorted(b.first for b in blocks).count(True), len(blocks) > 1)

    with _pipeline() as p:
        for name, path in (("Plain", plain), ("Packed", packed)):
            blocks = p | f"Read{name}" >> ReadBlocksOfFile(str(path), block_size=64)
            assert_that(blocks, _as(lines_and_firsts, (lines, 1, True)), label=f"Check{name}")


def test_read_catalog_file_parses_tables_and_rejects_bad_lines(tmp_path):
    books = [{"book_id": "5", "work_id": "50", "title": "Five", "authors": [{"author_id": "9", "role": ""}],
              "ratings_count": "3", "average_rating": "4.1"},
             {"book_id": "2", "work_id": "20", "title": "Two", "authors": [], "ratings_count": "",
              "average_rating": "3"}]
    path = tmp_path / artifacts.BOOKS_JSON
    path.write_text("\n".join([json.dumps(books[0]), "not json", json.dumps(books[1])]) + "\n")
    with _pipeline() as p:
        result = p | ReadCatalogFile("books", str(path), block_size=1 << 20)
        assert_that(result.rows, _as(lambda ts: sorted(i for t in ts for i in t.column("book_id").to_pylist()),
                                     [2, 5]), label="Tables")
        assert_that(_summed(result.counts, "Sum"), equal_to([{"catalog/books_rows_read": 3,
                                                              "catalog/books_rejected": 1}]), label="Counts")
        assert_that(result.rejects, equal_to([Reject(RejectReason.BAD_CATALOG_ROW, path.name, "not json")]),
                    label="Rejects")
        ids = result.rows | CatalogBookIds()
        assert_that(ids, _as(lambda a: [x.tolist() for x in a], [[2, 5]]), label="Ids")


def test_reject_malformed_sets_bad_csv_rows_aside_with_their_reason(tmp_path):
    (tmp_path / artifacts.USER_ID_MAP).write_text(f"user_id_csv,user_id\n0,{USER_A}\n1,{USER_B}\n")
    (tmp_path / artifacts.BOOK_ID_MAP).write_text("book_id_csv,book_id\n0,5\n1,6\n2,7\n")
    interactions = tmp_path / artifacts.INTERACTIONS_CSV
    interactions.write_text("user_id,book_id,is_read,rating,is_reviewed\n"
                            "0,0,1,4,0\n0,1,1,0,0\n1,0,1,5,0\n"  # valid (a rating 0 is valid)
                            "1,2\n1,x,1,3,0\n1,0,1,9,0\n7,0,1,3,0\n1,8,1,3,0\n"
                            "1,2,1,3,0\n")  # book 7 is not in the catalogue
    with _pipeline() as p:
        catalog_ids = p | "Catalog" >> beam.Create([np.array([5, 6], np.int64)])
        id_maps = p | ReadIdMaps(str(tmp_path / artifacts.USER_ID_MAP), str(tmp_path / artifacts.BOOK_ID_MAP))
        result = (p | ReadBlocksOfFile(str(interactions), block_size=1 << 20)
                  | RejectMalformed("csv", catalog_ids, id_maps))
        assert_that(result.rows, _as(lambda bs: (sum(int(b.valid.sum()) for b in bs),
                                                 sorted(r for b in bs for r in b.rating[b.valid].tolist())),
                                     (3, [0, 4, 5])), label="Valid")
        assert_that(_summed(result.counts, "Sum"), equal_to([{
            "rows_read": 9, "rejected/wrong_column_count": 1, "rejected/not_an_integer": 1,
            "rejected/rating_out_of_range": 1, "rejected/user_not_in_map": 1, "rejected/book_not_in_map": 1,
            "rejected/book_not_in_catalog": 1}]), label="Counts")
        assert_that(result.rejects, _as(lambda rs: sorted((r.reason, r.text) for r in rs), sorted([
            (RejectReason.WRONG_COLUMN_COUNT, "1,2"), (RejectReason.NOT_AN_INTEGER, "1,x,1,3,0"),
            (RejectReason.RATING_OUT_OF_RANGE, "1,0,1,9,0"), (RejectReason.USER_NOT_IN_MAP, "7,0,1,3,0"),
            (RejectReason.BOOK_NOT_IN_MAP, "1,8,1,3,0"),
            (RejectReason.BOOK_NOT_IN_CATALOG, json.dumps({"user_id": USER_B, "book_id": "7", "rating": 3}))])),
            label="Rejects")


def _reject_check(counts, samples):
    with _pipeline() as p:
        checked = ((p | "Counts" >> beam.Create(counts), p | "BookCounts" >> beam.Create([{}]),
                    p | "Rejects" >> beam.Create(samples)) | StopIfMostlyMalformed(0.1))
        assert_that(checked, equal_to([True]))


def test_stop_if_mostly_malformed_passes_a_small_share_and_stops_a_large_one_in_one_message():
    bad = Reject(RejectReason.NOT_AN_INTEGER, "f.csv", "1,x,1,3,0")
    _reject_check([{"rows_read": 10, "rejected/not_an_integer": 1}], [bad])
    with pytest.raises(Exception, match=r"2 of 10 interaction rows \(20.00%\) are malformed.*not_an_integer"):
        _reject_check([{"rows_read": 6, "rejected/not_an_integer": 1}, {"rows_read": 4,
                                                                         "rejected/not_an_integer": 1}], [bad])


def test_drop_below_min_rating_keeps_valid_rated_rows_run_length_coded_by_user():
    hi, lo = _u128(USER_A, USER_A, USER_B, USER_A)
    block = ValidatedBlock(valid=np.array([True, True, True, False]), rating=np.array([3, 0, 5, 4]),
                           hi=hi, lo=lo, gid=np.array([10, 11, 12, 13]))
    with _pipeline() as p:
        result = p | beam.Create([block]) | DropBelowMinRating(1)

        def rows(blocks):
            (b,) = blocks
            users = selection.u128_to_hex(np.repeat(b.hi, b.run_length), np.repeat(b.lo, b.run_length))
            return [(u.decode(), int(g), int(r)) for u, g, r in zip(users, b.gid, b.rating)], b.rating.dtype
        assert_that(result.rows, _as(rows, ([(USER_A, 10, 3), (USER_B, 12, 5)], np.int8)), label="Rows")
        assert_that(result.counts, equal_to([{"filtered/below_min_rating": 1}]), label="Counts")


def test_deduplicate_groups_rows_by_user_and_keeps_the_highest_rating():
    def rated(users, gids, ratings):
        hi, lo = _u128(*users)
        return RatedBlock(hi, lo, np.ones(len(users), np.int32), np.array(gids, np.uint32),
                          np.array(ratings, np.int8))

    blocks = [rated([USER_A, USER_B, USER_A], [7, 7, 3], [2, 4, 1]), rated([USER_A, USER_B], [7, 8], [5, 1])]
    with _pipeline() as p:
        check = p | "Check" >> beam.Create([True])
        result = p | beam.Create(blocks) | Deduplicate(3, check)

        def rows(partitions):
            out = []
            for part in partitions:
                users = np.repeat(selection.u128_to_hex(part.uniq_hi, part.uniq_lo), part.user_counts)
                out += [(u.decode(), int(g), int(r)) for u, g, r in zip(users, part.gid, part.rating)]
            return sorted(out)
        assert_that(result.rows, _as(rows, [(USER_A, 3, 1), (USER_A, 7, 5), (USER_B, 7, 4), (USER_B, 8, 1)]),
                    label="Rows")
        assert_that(_summed(result.counts, "Sum"), equal_to([{"filtered/duplicate": 1}]), label="Counts")


def _kept_rows(partitions, top_ids):
    out = []
    for part in partitions:
        users = np.repeat(selection.u128_to_hex(part.uniq_hi, part.uniq_lo), part.user_counts)
        out += [(u.decode(), int(top_ids[b]), int(r)) for u, b, r in zip(users, part.book, part.rating)]
    return sorted(out)


def test_select_top_books_then_drop_sparse_users():
    # Book 7: 3 users, book 3: 2, book 9: 2 (tie: the smaller id wins), book 1: 1.
    partitions = [_partition(0, [USER_A, USER_A, USER_A], [1, 3, 7], [4, 4, 4]),
                  _partition(1, ["1" * 32, "1" * 32, "2" * 32, "2" * 32, USER_B], [7, 9, 3, 9, 7], [5, 5, 2, 2, 3])]
    top_ids = np.array([3, 7])
    with _pipeline() as p:
        top, ids = p | beam.Create(partitions) | SelectTopBooks(2)
        assert_that(ids, _as(lambda a: [x.tolist() for x in a], [top_ids.tolist()]), label="TopIds")
        assert_that(top.rows, _as(lambda ps: _kept_rows(ps, top_ids), sorted([
            (USER_A, 3, 4), (USER_A, 7, 4), ("1" * 32, 7, 5), ("2" * 32, 3, 2), (USER_B, 7, 3)])), label="Top")
        assert_that(_summed(top.counts, "SumTop"), equal_to([{"filtered/not_top_book": 3}]), label="TopCounts")
        kept = top.rows | DropSparseUsers(2)
        assert_that(kept.rows, _as(lambda ps: _kept_rows(ps, top_ids), [(USER_A, 3, 4), (USER_A, 7, 4)]),
                    label="Kept")
        assert_that(_summed(kept.counts, "SumKept"), equal_to([{"filtered/user_below_min_ratings": 3}]),
                    label="KeptCounts")


def _kept(part, users, books, ratings):
    uniq = sorted(set(users))
    hi, lo = _u128(*uniq)
    return KeptPartition(part, np.array([users.count(u) for u in uniq]), np.array(books, np.int32),
                         np.array(ratings, np.int8), hi, lo)


TOP_IDS = np.array([3, 7, 9])  # book positions 0, 1, 2
KEPT = [_kept(0, [USER_A, USER_A, USER_A], [0, 1, 2], [4, 5, 1]), _kept(1, [USER_B, USER_B], [1, 2], [3, 2]),
        _kept(2, ["1" * 32], [1], [5])]


def _index():
    """The SelectionIndex of KEPT: books 7 (3 rows), 9 (2), 3 (1); users A (3), B (2), 1..1 (1)."""
    hi, lo = _u128(USER_A, USER_B, "1" * 32)
    by_id = np.lexsort((lo, hi))
    books = np.array([7, 9, 3])
    return SelectionIndex(hi, lo, np.array([3, 2, 1]), hi[by_id], lo[by_id], by_id,
                          books, np.array([3, 2, 1]), np.sort(books), np.argsort(books))


def test_build_index_orders_users_and_books_by_kept_count():
    expected = _index()
    with _pipeline() as p:
        result = p | "Kept" >> beam.Create(KEPT) | BuildIndex(p | "Top" >> beam.Create([TOP_IDS]))

        def fields(indexes):
            (index,) = indexes
            return {k: v.tolist() for k, v in vars(index).items()}
        assert_that(result.rows, _as(fields, {k: v.tolist() for k, v in vars(expected).items()}), label="Index")
        assert_that(result.counts, _as(lambda cs: [{k: v for k, v in c.items() if not k.startswith("check/")}
                                                   for c in cs], [{"num_users": 3, "num_books": 3}]),
                    label="Counts")


def test_build_vocabularies_lists_ids_in_index_order(tmp_path):
    transform_dir = str(tmp_path / artifacts.TRANSFORM_DIR)
    with _pipeline() as p:
        written = p | beam.Create([_index()]) | BuildVocabularies(transform_dir, str(tmp_path / "tmp"))
        assert_that(written | beam.combiners.Count.Globally(), equal_to([1]))
    assets = os.path.join(transform_dir, "transform_fn", "assets")
    assert open(os.path.join(assets, artifacts.BOOK_VOCAB)).read().split() == ["7", "9", "3"]
    assert open(os.path.join(assets, artifacts.USER_VOCAB)).read().split() == [USER_A, USER_B, "1" * 32]


def test_write_examples_writes_a_train_and_an_eval_shard_per_partition(tmp_path):
    import tensorflow as tf
    out = str(tmp_path)
    with _pipeline() as p:
        index = p | "Index" >> beam.Create([_index()])
        result = p | "Kept" >> beam.Create(KEPT[:2]) | WriteExamples(out, 3, 1, 0.5, 1, index)
        assert_that(result.rows, equal_to([0, 1]), label="Parts")
        assert_that(_summed(result.counts, "Sum"), _as(lambda cs: (cs[0]["train_examples"] + cs[0]["eval_examples"],
                                                                   cs[0]["empty_shards"]), (5, 1)), label="Counts")
    rows = []
    for split in artifacts.SPLITS:
        files = sorted(tf.io.gfile.glob(os.path.join(out, artifacts.shard_pattern(split, 3))))
        assert [os.path.basename(f) for f in files] == [artifacts.shard_file(split, i, 3) for i in range(3)]
        for raw in tf.data.TFRecordDataset(files, compression_type="GZIP"):
            ex = tf.io.parse_single_example(raw, artifacts.example_feature_spec())
            rows.append((ex["user_id"].numpy().decode(), ex["book_id"].numpy().decode(),
                         int(ex["user_index"]), int(ex["book_index"]), int(ex["rating"])))
    assert sorted(rows) == sorted([(USER_A, "3", 0, 2, 4), (USER_A, "7", 0, 0, 5), (USER_A, "9", 0, 1, 1),
                                   (USER_B, "7", 1, 0, 3), (USER_B, "9", 1, 1, 2)])


def test_write_catalog_assembles_the_kept_books_in_index_order(tmp_path):
    (tmp_path / artifacts.AUTHORS_JSON).write_text('{"author_id": "9", "name": "Nine"}\n{"author_id": "8", "name": "x"}\n')
    (tmp_path / artifacts.GENRES_JSON).write_text('{"book_id": "7", "genres": {"poetry": 3, "fiction": 1}}\n')
    books = pa.table({"book_id": pa.array([7, 9, 3, 4], pa.int64()), "work_id": ["70", "90", "30", "40"],
                      "title": ["Seven", "Nine", "Three", "Four"],
                      "author_ids": pa.array([["9"], [], None, ["8"]], pa.list_(pa.string())),
                      "ratings_count": pa.array([1, 2, 3, 4], pa.int64()),
                      "average_rating": pa.array([4.0, 3.5, None, 1.0], pa.float64())})
    out = str(tmp_path / "out")
    with _pipeline() as p:
        result = p | "Index" >> beam.Create([_index()]) | WriteCatalog(
            out, p | "Books" >> beam.Create([books]), p | "Top" >> beam.Create([TOP_IDS]),
            str(tmp_path / artifacts.AUTHORS_JSON), str(tmp_path / artifacts.GENRES_JSON), 1 << 20)
        assert_that(_summed(result.counts, "Sum"), equal_to([{
            "catalog_books": 3, "catalog_books_without_genre": 2, "catalog/authors_rows_read": 2,
            "catalog/genres_rows_read": 1, "catalog_book_conflicts": 0,
            "catalog_author_conflicts": 0, "catalog_authors_missing": 0,
            "catalog_genre_conflicts": 0}]), label="Counts")
        assert_that(result.rejects, equal_to([]), label="Rejects")
    catalog = artifacts.read_parquet(os.path.join(out, artifacts.CATALOG)).to_pylist()
    assert [(r["book_index"], r["book_id"], r["title"], r["authors"], r["genre"], r["num_interactions"])
            for r in catalog] == [(0, "7", "Seven", ["Nine"], "poetry", 3), (1, "9", "Nine", [], None, 2),
                                  (2, "3", "Three", [], None, 1)]


def test_write_rejects_and_counts_gather_every_stage(tmp_path):
    out = str(tmp_path)
    a = Reject(RejectReason.BAD_JSON, "f.json", "{")
    b = Reject(RejectReason.BOOK_NOT_IN_MAP, "f.csv", "1,8,1,3,0")
    with _pipeline() as p:
        _ = (p | "R1" >> beam.Create([a]), p | "R2" >> beam.Create([b])) | WriteRejects(out)
        written = ((p | "C1" >> beam.Create([{"rows_read": 2}]), p | "C2" >> beam.Create([{"rows_read": 3, "x": 1}]))
                   | WriteCounts(os.path.join(out, "stats.json")))
        assert_that(written, equal_to([os.path.join(out, "stats.json")]))
    lines = [json.loads(line) for name in os.listdir(os.path.join(out, artifacts.REJECTED_DIR))
             for line in open(os.path.join(out, artifacts.REJECTED_DIR, name))]
    assert sorted(lines, key=lambda r: r["reason"]) == [
        {"reason": "bad_json", "source": "f.json", "row": "{"},
        {"reason": "book_not_in_map", "source": "f.csv", "row": "1,8,1,3,0"}]
    assert json.load(open(os.path.join(out, "stats.json"))) == {"rows_read": 5, "x": 1}


def test_the_preprocess_doc_lists_every_reject_reason():
    assert rejects.markdown_table() in open(PREPROCESS_DOC).read()
