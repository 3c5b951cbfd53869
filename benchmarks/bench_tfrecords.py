"""Benchmark: the TFRecord writing step of `beam_jobs.preprocess` vs TensorFlow's own writer.

    python benchmarks/bench_tfrecords.py [--rows 1000000] [--users 60000] [--books 3000]

One synthetic partition like the job's (rows sorted by user then book, 32-char
hex user ids, book ids of 1..8 digits, ratings 1..5, indices up to 300k) is
written, in the same run, by:

* baseline "tf.train.Example + tf.io.TFRecordWriter": what a careful user writes
  without this module, one Example and one write call per row, GZIP by TF
  (measured on --baseline_rows rows, scaled per 1M rows);
* "encoder + zlib": `tfrecords.ExampleEncoder` (built once per partition,
  included) framing, then zlib level 1 in the same thread: shows what ISA-L adds;
* "encoder + ISA-L (job path)": `GzipTFRecordWriter.write_coded` as
  `WriteExamples` calls it, compression in a helper thread.

Figures per 1M rows: wall seconds, CPU seconds (all threads), output MB, and the
speed-up over the baseline measured in the same run. Each is the median of
--reps runs after a warm-up run; the machine is shared, so read the ratios.
"""
import argparse
import os
import sys
import time
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pipeline_common  # noqa: E402,F401  (legacy Keras before TensorFlow)
from beam_jobs import selection, tfrecords  # noqa: E402


def make_partition(rows, users, books, seed=0):
    rng = np.random.default_rng(seed)
    hex_ids = selection.u128_to_hex(rng.integers(0, 2**63, users).astype(np.uint64),
                                    rng.integers(0, 2**63, users).astype(np.uint64))
    user_index = rng.permutation(300_000)[:users]
    digits = rng.integers(1, 9, 4 * books)  # 1..8 digits, as many books of each length as exist
    gids = np.unique(10 ** (digits - 1) + (rng.random(4 * books) * 9 * 10.0 ** (digits - 1)).astype(np.int64))
    gids = rng.permutation(gids)[:books]
    book_index = rng.permutation(len(gids))
    popularity = 1.0 / np.arange(1, len(gids) + 1) ** 0.8
    user = np.sort(rng.integers(0, users, rows)).astype(np.int32)
    book = rng.choice(len(gids), rows, p=popularity / popularity.sum())
    order = np.lexsort((book, user))
    return {"hex_ids": hex_ids, "user_index": user_index, "gids": gids.astype(np.uint32),
            "book_index": book_index, "user": user[order], "book": book[order],
            "rating": rng.integers(1, 6, rows).astype(np.int8)}


class CountingSink:
    def __init__(self):
        self.size = 0

    def write(self, data):
        self.size += len(data)


def new_encoder(p):
    return tfrecords.ExampleEncoder(p["hex_ids"], p["user_index"], p["gids"].astype("S20"), p["book_index"])


def run_tensorflow(p, rows, path):
    """One tf.train.Example and one TFRecordWriter.write per row (GZIP); returns bytes written."""
    import tensorflow as tf
    feature = tf.train.Feature
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for u, b, r in zip(p["user"][:rows].tolist(), p["book"][:rows].tolist(), p["rating"][:rows].tolist()):
            example = tf.train.Example(features=tf.train.Features(feature={
                "user_id": feature(bytes_list=tf.train.BytesList(value=[p["hex_ids"][u]])),
                "book_id": feature(bytes_list=tf.train.BytesList(value=[str(p["gids"][b]).encode()])),
                "user_index": feature(int64_list=tf.train.Int64List(value=[int(p["user_index"][u])])),
                "book_index": feature(int64_list=tf.train.Int64List(value=[int(p["book_index"][b])])),
                "rating": feature(int64_list=tf.train.Int64List(value=[r]))}))
            writer.write(example.SerializeToString())
    return os.path.getsize(path)


def run_zlib(p, block_rows, level):
    encoder = new_encoder(p)
    zipper = zlib.compressobj(level, zlib.DEFLATED, 31)
    size = 0
    for s in range(0, len(p["user"]), block_rows):
        size += len(zipper.compress(encoder.framed(
            p["user"][s:s + block_rows], p["book"][s:s + block_rows], p["rating"][s:s + block_rows])))
    return size + len(zipper.flush())


def run_job_path(p, block_rows, level):
    sink = CountingSink()
    encoder = new_encoder(p)
    writer = tfrecords.GzipTFRecordWriter(sink, level, background=True)
    for s in range(0, len(p["user"]), block_rows):
        writer.write_coded(encoder, p["user"][s:s + block_rows], p["book"][s:s + block_rows],
                           p["rating"][s:s + block_rows])
    writer.close()
    return sink.size


def timed(fn, reps):
    """(median wall s, median CPU s of the process, last result) over reps runs after a warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(reps):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus)), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline_rows", type=int, default=100_000,
                        help="rows written by the (slow) TensorFlow baseline")
    parser.add_argument("--users", type=int, default=60_000)
    parser.add_argument("--books", type=int, default=3000)
    parser.add_argument("--block_rows", type=int, default=500_000, help="as WriteExamples")
    parser.add_argument("--level", type=int, default=1, help="--compression_level of the job")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--work", default="/tmp/bench_tfrecords")
    args = parser.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    p = make_partition(args.rows, args.users, args.books)
    n = len(p["user"])
    base_rows = min(args.baseline_rows, n)
    print(f"{n} rows, {args.users} users, {len(p['gids'])} books, blocks of {args.block_rows}, "
          f"level {args.level}; baseline on {base_rows} rows")
    paths = {
        "tf.train.Example + tf.io.TFRecordWriter": (
            base_rows, lambda: run_tensorflow(p, base_rows, os.path.join(args.work, "tf.tfrecord.gz"))),
        "encoder + zlib (one thread)": (n, lambda: run_zlib(p, args.block_rows, args.level)),
        "encoder + ISA-L (job path)": (n, lambda: run_job_path(p, args.block_rows, args.level)),
    }
    header = f"{'path':42s} {'wall s/1M':>10s} {'CPU s/1M':>9s} {'MB/1M':>7s} {'speed-up':>9s}"
    print(header)
    print("-" * len(header))
    baseline = None
    for name, (rows, write) in paths.items():
        wall, cpu, size = timed(write, args.reps)
        per_m = 1e6 / rows
        baseline = baseline or wall * per_m
        print(f"{name:42s} {wall * per_m:10.3f} {cpu * per_m:9.3f} {size * per_m / 1e6:7.1f} "
              f"{baseline / (wall * per_m):8.1f}x")
    t_build, _, _ = timed(lambda: new_encoder(p), args.reps)
    print(f"dictionary build (once per partition, inside the encoder rows): {t_build:.3f} s")


if __name__ == "__main__":
    from benchmarks import results
    results.main_recorded(main, "TFRecord writing")
