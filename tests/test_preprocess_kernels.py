"""Unit tests of the columnar kernels behind `beam_jobs.preprocess` (no pipeline runs)."""
import zlib

import numpy as np
import pyarrow as pa
import tensorflow as tf

from beam_jobs import parsing, selection, tfrecords


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


def test_examples_are_valid_tfrecords_of_tf_examples(tmp_path):
    user = np.array([b"0123456789abcdef0123456789abcdef"] * 3 + [b"ffffffffffffffffffffffffffffffff"])
    book = np.array([b"1", b"123456789", b"4294967295", b"42"])
    ui, bi, rating = np.array([0, 127, 128, 300000]), np.array([0, 1, 2999, 5]), np.array([1, 5, 3, 2])
    data = tfrecords.framed_records(user, book, ui, bi, rating)
    zipper = zlib.compressobj(1, zlib.DEFLATED, 31)
    path = str(tmp_path / "k.tfrecord.gz")
    with open(path, "wb") as handle:
        handle.write(zipper.compress(data) + zipper.flush())
    got = []
    for raw in tf.data.TFRecordDataset(path, compression_type="GZIP"):  # checks the CRCs too
        ex = tf.train.Example.FromString(raw.numpy()).features.feature
        got.append((ex["user_id"].bytes_list.value[0], ex["book_id"].bytes_list.value[0],
                    ex["user_index"].int64_list.value[0], ex["book_index"].int64_list.value[0],
                    ex["rating"].int64_list.value[0]))
    assert sorted(got) == sorted(zip(user, book, ui, bi, rating))


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
            writer.write_block(user[s:s + 700], book[s:s + 700], ui[s:s + 700], bi[s:s + 700],
                               rating[s:s + 700])
        writer.close()
        assert writer.count == n
        outputs.append(sink.getvalue())
    assert outputs[0] == outputs[1]
    assert zlib.decompress(outputs[1], 31) == b"".join(
        tfrecords.framed_records(user[s:s + 700], book[s:s + 700], ui[s:s + 700], bi[s:s + 700],
                                 rating[s:s + 700]) for s in range(0, n, 700))
