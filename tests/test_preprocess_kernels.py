"""Unit tests of the columnar kernels behind `beam_jobs.preprocess` (no pipeline runs)."""
import zlib

import numpy as np
import pyarrow as pa
import pytest
import tensorflow as tf

from beam_jobs import parsing, partitions, selection, tfrecords
from beam_jobs.blocks import RatedBlock, row_users
from pipeline_common import artifacts

# The order of the entries inside each serialised Example (tfrecords' module docstring).
FEATURE_ORDER = ("book_id", "book_index", "user_id", "user_index", "rating")


def framed_records_coded(user_id, user_index, user_code, book_id, book_index, book_code, rating):
    """`ExampleEncoder(user_id, user_index, book_id, book_index).framed(...)` as bytes."""
    return bytes(tfrecords.ExampleEncoder(user_id, user_index, book_id, book_index).framed(user_code, book_code, rating))


def framed_records(user_id, book_id, user_index, book_index, rating):
    """Framed TFRecord bytes of rows given column by column (each row its own dictionary entry)."""
    codes = np.arange(len(user_index))
    return framed_records_coded(user_id, user_index, codes, book_id, book_index, codes, rating)


def write_rows(writer, user_id, book_id, user_index, book_index, rating):
    """Appends rows given column by column to a GzipTFRecordWriter."""
    codes = np.arange(len(user_index))
    encoder = tfrecords.ExampleEncoder(user_id, user_index, book_id, book_index)
    writer.write_coded(encoder, codes, codes, rating)


def test_hex_ids_round_trip_and_bad_ids_are_flagged():
    ids = ["0123456789abcdef0123456789abcdef", "ffffffffffffffffffffffffffffffff",
           "00000000000000000000000000000000", "not-hex", None, "0123456789ABCDEF0123456789ABCDEF"]
    hi, lo, ok = selection.strings_to_u128(pa.array(ids))
    assert list(ok) == [True, True, True, False, False, True]
    back = selection.u128_to_hex(hi[ok], lo[ok])
    assert [b.decode() for b in back] == [ids[0], ids[1], ids[2], ids[0]]


def test_factorize_is_exact_when_ids_share_their_first_64_bits():
    hi = np.array([5, 5, 3, 5, 3], np.uint64)
    lo = np.array([1, 2, 9, 1, 9], np.uint64)
    codes, uhi, ulo = selection.factorize_users(hi, lo)
    assert list(zip(uhi, ulo)) == [(3, 9), (5, 1), (5, 2)]
    assert list(codes) == [1, 2, 0, 1, 0]
    pos = selection.lookup_u128(uhi, ulo, np.array([5, 5, 4], np.uint64), np.array([2, 1, 0], np.uint64))
    assert list(pos) == [2, 1, -1]


def test_duplicates_keep_the_highest_rating():
    user = np.array([1, 0, 1, 1, 0])
    book = np.array([7, 7, 7, 3, 7])
    rating = np.array([2, 4, 5, 1, 3], np.int8)
    u, b, r, dups = selection.dedup_max_rating(user, book, rating)
    assert list(zip(u, b, r)) == [(0, 7, 4), (1, 3, 1), (1, 7, 5)]
    assert dups == 2


def test_user_runs_partition_and_dedup_do_not_depend_on_row_order():
    """Run-length coded users give the same partitions whether or not rows are grouped by user."""
    rng = np.random.default_rng(3)
    users = rng.integers(0, 2**63, (40, 2)).astype(np.uint64)
    n = 3000
    who = np.sort(rng.integers(0, 40, n))
    gid = rng.integers(1, 60, n).astype(np.uint32)
    rating = rng.integers(1, 6, n).astype(np.int8)

    def deduplicated(order):
        hi, lo = users[who[order], 0], users[who[order], 1]
        starts, lengths = selection.runs(hi, lo)
        block = RatedBlock(hi[starts], lo[starts], np.asarray(lengths, np.int32), gid[order], rating[order])
        assert block.run_length.sum() == n
        grouped = {}
        for part, sub in partitions.PartitionByUser(4).process(block):
            grouped.setdefault(part, []).append(sub)
        out = {}
        for part, subs in grouped.items():
            counts, result = list(partitions.DeduplicatePartition().process((part, subs)))
            out[part] = result, counts.value["filtered/duplicate"]
        return out

    by_user = deduplicated(np.arange(n))
    shuffled = deduplicated(rng.permutation(n))
    assert sorted(by_user) == sorted(shuffled) and len(by_user) > 1
    for part, (result, dups) in by_user.items():
        other, other_dups = shuffled[part]
        for key in ("user_counts", "gid", "rating", "uniq_hi", "uniq_lo"):
            assert np.array_equal(getattr(result, key), getattr(other, key)), key
        assert result.part == other.part == part and dups == other_dups
    assert sum(len(r.gid) + dups for r, dups in by_user.values()) == n
    for result, _ in by_user.values():  # sorted by user, then book, one row per pair
        pairs = np.c_[row_users(result.user_counts), result.gid]
        assert len(np.unique(pairs, axis=0)) == len(pairs)
        assert (np.diff(pairs[:, 0]) >= 0).all()


def test_top_books_break_ties_by_smaller_id():
    ids, counts = np.array([30, 4, 100, 7]), np.array([5, 9, 5, 5])
    top, _ = selection.top_books(ids, counts, 3)
    assert list(top) == [4, 7, 30]


def test_split_is_a_pure_function_of_the_ids_and_seed():
    rng = np.random.default_rng(0)
    hi, lo = rng.integers(0, 2**63, 20000).astype(np.uint64), rng.integers(0, 2**63, 20000).astype(np.uint64)
    book = rng.integers(1, 10**7, 20000)
    a = selection.is_eval(hi, lo, book, 1, 0.1)
    assert np.array_equal(a[::-1], selection.is_eval(hi[::-1], lo[::-1], book[::-1], 1, 0.1))
    assert 0.08 < a.mean() < 0.12
    assert not np.array_equal(a, selection.is_eval(hi, lo, book, 2, 0.1))
    assert not selection.is_eval(hi, lo, book, 1, 0.0).any()


def _records(data):
    """Splits framed TFRecord bytes, checking both CRCs of every record with google_crc32c."""
    import struct

    import google_crc32c

    def masked(crc):
        return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

    data, records, at = bytes(data), [], 0
    while at < len(data):
        length = struct.unpack_from("<Q", data, at)[0]
        assert struct.unpack_from("<I", data, at + 8)[0] == masked(google_crc32c.value(data[at:at + 8]))
        record = data[at + 12:at + 12 + length]
        assert struct.unpack_from("<I", data, at + 12 + length)[0] == masked(google_crc32c.value(record))
        records.append(record)
        at += 16 + length
    assert at == len(data)
    return records


def _rows(records):
    """Serialised Examples -> [(user_id, book_id, user_index, book_index, rating)], strictly parsed."""
    rows = []
    for raw in records:
        example = tf.train.Example.FromString(raw)
        assert example.ByteSize() == len(raw)  # no unknown or duplicate fields
        f = example.features.feature
        assert sorted(f) == sorted(artifacts.EXAMPLE_FEATURES)
        assert all(len(v.bytes_list.value) + len(v.int64_list.value) == 1 for v in f.values())
        rows.append((f["user_id"].bytes_list.value[0], f["book_id"].bytes_list.value[0],
                     f["user_index"].int64_list.value[0], f["book_index"].int64_list.value[0],
                     f["rating"].int64_list.value[0]))
    return rows


def _expected(user, book, ui, bi, rating):
    return [(bytes(u), bytes(b), int(x), int(y), int(r)) for u, b, x, y, r in zip(user, book, ui, bi, rating)]


def test_examples_are_valid_tfrecords_of_tf_examples(tmp_path):
    user = np.array([b"0123456789abcdef0123456789abcdef"] * 3 + [b"ffffffffffffffffffffffffffffffff"])
    book = np.array([b"1", b"123456789", b"4294967295", b"42"])
    ui, bi, rating = np.array([0, 127, 128, 300000]), np.array([0, 1, 2999, 5]), np.array([1, 5, 3, 2])
    data = framed_records(user, book, ui, bi, rating)
    assert _rows(_records(data)) == _expected(user, book, ui, bi, rating)  # input order
    for record in _records(data):  # entries in the documented order
        keys = [record.index(b"\n" + bytes([len(k)]) + k.encode()) for k in FEATURE_ORDER]
        assert keys == sorted(keys)
    path = str(tmp_path / "k.tfrecord.gz")
    with open(path, "wb") as handle:
        writer = tfrecords.GzipTFRecordWriter(handle, 1)
        write_rows(writer, user, book, ui, bi, rating)
        writer.close()
    got = []
    for raw in tf.data.TFRecordDataset(path, compression_type="GZIP"):  # checks the CRCs too
        ex = tf.io.parse_single_example(raw, artifacts.example_feature_spec())
        got.append(tuple(ex[k].numpy() for k in ("user_id", "book_id", "user_index", "book_index", "rating")))
    assert got == _expected(user, book, ui, bi, rating)


def _coded_case(rng, n, users, books):
    """Random dictionaries + sorted codes, like one partition."""
    hex_ids = selection.u128_to_hex(rng.integers(0, 2**63, users).astype(np.uint64),
                                    rng.integers(0, 2**63, users).astype(np.uint64))
    user_index = rng.permutation(max(users, 300_000))[:users]
    book_ids = (rng.integers(1, 10, books) * 10 ** rng.integers(0, 8, books)).astype("S20")
    book_index = rng.permutation(books)
    user_code = np.sort(rng.integers(0, users, n))
    book_code = rng.integers(0, books, n)
    rating = rng.integers(1, 6, n).astype(np.int8)
    return hex_ids, user_index, user_code, book_ids, book_index, book_code, rating


def test_coded_records_equal_the_rows_they_code_in_order():
    rng = np.random.default_rng(1)
    hex_ids, uidx, ucode, bids, bidx, bcode, rating = _coded_case(rng, 3000, 400, 50)
    data = framed_records_coded(hex_ids, uidx, ucode, bids, bidx, bcode, rating)
    expected = _expected(hex_ids[ucode], bids[bcode], uidx[ucode], bidx[bcode], rating)
    assert _rows(_records(data)) == expected
    # Row-wise and coded input give the same bytes; so does any split into blocks.
    assert data == framed_records(hex_ids[ucode], bids[bcode], uidx[ucode], bidx[bcode], rating)
    encoder = tfrecords.ExampleEncoder(hex_ids, uidx, bids, bidx)
    for step in (1, 7, 1000, 2999):
        assert b"".join(encoder.framed(ucode[s:s + step], bcode[s:s + step], rating[s:s + step])
                        for s in range(0, 3000, step)) == data


def test_ids_of_any_length_big_varints_and_odd_ratings():
    """Every id length 0..100, varints of 1..10 bytes (negatives too), wide rating ranges."""
    user = np.array([(b"abcdefghijklmnopqrstuvwxyz" * 4)[:k] for k in range(101)], dtype="S100")
    book = np.array([b"7" * k for k in range(100, -1, -1)], dtype="S100")
    big = np.array([0, 1, 127, 128, 16383, 16384, 2**21, 2**28, 2**35, 2**42, 2**49, 2**56, 2**63 - 1, -1, -2**63])
    ui, bi = np.resize(big, 101), np.resize(big[::-1], 101)
    for rating in (np.resize(np.array([1, 5, 0, 3]), 101),               # small range
                   np.resize(np.array([1, 2**40, -7, 300, 5]), 101)):     # distinct values, varints of 1..10
        data = framed_records(user, book, ui, bi, rating)
        assert _rows(_records(data)) == _expected(user, book, ui, bi, rating)
    too_long = np.array([b"x" * 101])
    with pytest.raises(ValueError, match="longer than 100"):
        framed_records(too_long, np.array([b"1"]), [0], [0], [1])
    with pytest.raises(ValueError, match="outside the dictionary"):
        framed_records_coded(user[:2], ui[:2], [2], book[:2], bi[:2], [0], [1])


def test_empty_input_and_one_row(tmp_path):
    one = (np.array([b"ab"]), np.array([b"7"]), np.array([3]), np.array([4]), np.array([5]))
    assert framed_records(*one)
    assert _rows(_records(framed_records(*one))) == _expected(*one)
    empty = (np.array([], dtype="S32"), np.array([], dtype="S20"), np.array([], np.int64),
             np.array([], np.int64), np.array([], np.int64))
    assert framed_records(*empty) == b""
    encoder = tfrecords.ExampleEncoder(*empty[:4])  # an empty dictionary is fine too
    assert bytes(encoder.framed(empty[2], empty[3], empty[4])) == b""
    for rows, name in ((empty, "empty"), (one, "one")):
        path = str(tmp_path / f"{name}.tfrecord.gz")
        with open(path, "wb") as handle:
            writer = tfrecords.GzipTFRecordWriter(handle, 1, background=True)
            write_rows(writer, *rows)
            writer.close()
        assert writer.count == len(rows[0])
        assert [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")] == \
            _records(framed_records(*rows))


def test_many_users_through_the_gzip_writer_read_by_tensorflow(tmp_path):
    rng = np.random.default_rng(2)
    hex_ids, uidx, ucode, bids, bidx, bcode, rating = _coded_case(rng, 200_000, 70_000, 3000)
    encoder = tfrecords.ExampleEncoder(hex_ids, uidx, bids, bidx)
    path = str(tmp_path / "many.tfrecord.gz")
    with open(path, "wb") as handle:
        writer = tfrecords.GzipTFRecordWriter(handle, 1, background=True)
        for s in range(0, len(ucode), 30_000):
            writer.write_coded(encoder, ucode[s:s + 30_000], bcode[s:s + 30_000], rating[s:s + 30_000])
        writer.close()
    spec = artifacts.example_feature_spec()
    got = {k: [] for k in spec}
    for batch in tf.data.TFRecordDataset(path, compression_type="GZIP").batch(50_000):  # checks CRCs
        parsed = tf.io.parse_example(batch, spec)
        for k in spec:
            got[k].append(parsed[k].numpy())
    got = {k: np.concatenate(v) for k, v in got.items()}
    assert np.array_equal(got["user_id"], hex_ids[ucode])
    assert np.array_equal(got["user_index"], uidx[ucode])
    assert np.array_equal(got["book_id"], bids[bcode])
    assert np.array_equal(got["book_index"], bidx[bcode])
    assert np.array_equal(got["rating"], rating)


def test_every_compression_level_writes_standard_gzip():
    import io
    rows = (np.array([b"u1", b"u22"]), np.array([b"1", b"22"]), np.array([1, 2]), np.array([3, 4]),
            np.array([5, 1]))
    raw = framed_records(*rows)
    for level in range(1, 10):
        sink = io.BytesIO()
        writer = tfrecords.GzipTFRecordWriter(sink, level)
        write_rows(writer, *rows)
        writer.close()
        assert sink.getvalue()[4:8] == b"\0\0\0\0"  # mtime 0
        assert zlib.decompress(sink.getvalue(), 31) == raw
    for level in (0, 10):
        with pytest.raises(ValueError):
            tfrecords.GzipTFRecordWriter(io.BytesIO(), level)


def test_byte_ranges_cover_every_line_once(tmp_path):
    lines = [f"{i},{i * 7},1,{i % 6},0".encode() for i in range(500)]
    path = tmp_path / "x.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    size = path.stat().st_size
    for block in (1, 13, 64, 1000, size + 5):
        got = b"".join(parsing.read_range(str(path), s, e) for s, e in parsing.split_ranges(size, block))
        assert got == path.read_bytes(), block


def test_bad_rows_in_a_large_block_are_isolated():
    good = [f"{i},{i},1,{i % 6},0" for i in range(20000)]
    rows = good[:7000] + ["7,oops,1,1,0"] + good[7000:15000] + ["1,2"] + good[15000:]
    cols, rejects, read = parsing.parse_interactions_csv(("\n".join(rows) + "\n").encode(), "f")
    assert read == len(rows)
    assert sorted(r[0] for r in rejects) == ["not_an_integer", "wrong_column_count"]
    assert list(cols["user"]) == list(range(20000))


def test_compressed_files_are_streamed_in_blocks_of_whole_lines(tmp_path):
    import gzip
    lines = [f"{i},{i},1,{i % 6},0" for i in range(3000)]
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(("\n".join([parsing.CSV_HEADER.decode()] + lines) + "\n").encode()))
    assert parsing.is_compressed(str(path))
    blocks = list(parsing.iter_blocks(str(path), 1000))
    assert len(blocks) > 10 and all(b.endswith(b"\n") for b in blocks)
    parsed = [parsing.parse_interactions_csv(b, "x", i == 0) for i, b in enumerate(blocks)]
    assert sum(p[2] for p in parsed) == len(lines)
    assert np.concatenate([p[0]["user"] for p in parsed]).tolist() == list(range(3000))


def test_concatenated_gzip_members_are_all_read(tmp_path):
    import gzip
    lines = [f"{i},{i},1,{i % 6},0\n".encode() for i in range(5000)]
    path = tmp_path / "x.csv.gz"
    path.write_bytes(b"".join(gzip.compress(b"".join(lines[s:s + 1234])) for s in range(0, 5000, 1234)))
    blocks = list(parsing.iter_blocks(str(path), 4000))
    assert len(blocks) > 5 and all(b.endswith(b"\n") for b in blocks)
    assert b"".join(blocks) == b"".join(lines)


def test_large_blocks_parse_on_threads_like_one_thread():
    """Blocks above the threading threshold give the same rows and bad rows, in file order."""
    good = [f"{i},{i * 3},1,{i % 6},0" for i in range(400_000)]  # ~7 MB, parsed on threads
    data = ("\n".join(good) + "\n").encode()
    assert len(data) > 2 * parsing._THREADED_CSV_BLOCK
    cols, rejects, read = parsing.parse_interactions_csv(data, "f")
    assert read == len(good) and rejects == []
    assert np.array_equal(cols["user"], np.arange(400_000))
    assert np.array_equal(cols["book"], np.arange(400_000) * 3)
    bad = good[:100_000] + ["1,2"] + good[100_000:300_000] + ["3,4,5,6,7,8"] + good[300_000:]
    cols, rejects, read = parsing.parse_interactions_csv(("\n".join(bad) + "\n").encode(), "f")
    assert read == len(bad)
    assert rejects == [("wrong_column_count", "f", "1,2"), ("wrong_column_count", "f", "3,4,5,6,7,8")]
    assert np.array_equal(cols["user"], np.arange(400_000))


def test_catalogue_blocks_parse_on_threads_and_keep_a_line_longer_than_a_parse_block():
    """JSON blocks are parsed in 4 MB pieces on threads; a longer line still parses, in order."""
    import json
    lines = [json.dumps({"book_id": str(i), "title": f"t{i}", "work_id": str(i)}).encode() + b"\n"
             for i in range(200_000)]
    huge = json.dumps({"book_id": "7", "title": "x" * (5 << 20), "work_id": "7"}).encode() + b"\n"
    data = b"".join(lines[:100_000]) + huge + b"".join(lines[100_000:])
    table, rejects, rows = parsing.parse_books(data, "goodreads_books.json")
    assert rejects == [] and rows == table.num_rows == 200_001
    assert table.column("book_id").to_pylist() == list(range(100_000)) + [7] + list(range(100_000, 200_000))
    assert len(table.column("title")[100_000].as_py()) == 5 << 20


def test_first_data_line_skips_the_header_and_many_blank_lines(tmp_path):
    import gzip
    cases = {"a.csv.gz": (gzip.compress(b"a,b\n" + b"\n" * 100_000 + b"1,2\n"), b"1,2"),
             "b.csv": (b"a,b\r\n  \n3,4", b"3,4"), "c.csv": (b"a,b\n", None),
             "d.json.gz": (gzip.compress(b"\n \n"), None), "e.json": (b"", None)}
    for name, (data, first) in cases.items():
        (tmp_path / name).write_bytes(data)
        header = b"a,b" if ".csv" in name else None
        assert parsing.first_data_line(str(tmp_path / name), header, probe=1024) == first, name


def test_background_compression_writes_the_same_bytes():
    import io
    rng = np.random.default_rng(0)
    n = 5000
    user = selection.u128_to_hex(rng.integers(0, 2**63, n).astype(np.uint64),
                                 rng.integers(0, 2**63, n).astype(np.uint64))
    book = rng.integers(1, 10**7, n).astype("S20")
    ui, bi, rating = rng.integers(0, 10**6, n), rng.integers(0, 3000, n), rng.integers(1, 6, n)
    outputs = []
    for background in (False, True):
        sink = io.BytesIO()
        writer = tfrecords.GzipTFRecordWriter(sink, 1, background=background)
        for s in range(0, n, 700):
            write_rows(writer, user[s:s + 700], book[s:s + 700], ui[s:s + 700], bi[s:s + 700],
                               rating[s:s + 700])
        writer.close()
        assert writer.count == n
        outputs.append(sink.getvalue())
    assert outputs[0] == outputs[1]
    assert zlib.decompress(outputs[1], 31) == b"".join(
        framed_records(user[s:s + 700], book[s:s + 700], ui[s:s + 700], bi[s:s + 700],
                                 rating[s:s + 700]) for s in range(0, n, 700))
