"""Benchmark: would scoring each pair of books once beat the neighbours kernel?

    .venv/bin/python benchmarks/bench_pair_once.py [--parts 4] [--part_rows 25600] [--dim 64]

The cosine matrix is symmetric, so an all-pairs job could compute each product
once: cut the books into P parts; a unit (i, j), i < j, multiplies part i with
part j once and keeps chunk maxima in both directions (for j's books over
consecutive rows of i, as `graph_export.topk` does; for i's books over chunks of
j's books taken with a stride, so that this direction is an elementwise maximum
too), then selects each book's k + 1 best chunks; a unit (i, i) is the kernel
on one part. That needs (P + 1) / 2P of the products. This script times, on
one core (OpenBLAS at 1 thread), the kernel on all N = P x part_rows books
(the named baseline) against the sum of those units, leaving out the merge of
the per-unit chunk lists (so the estimate flatters scoring pairs once), and the
products alone for both. It is a measurement of the design, not a second kernel:
docs/graph.md says why it was not built.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from graph_export import topk  # noqa: E402
from benchmarks import machine  # noqa: E402

QUERIES = topk.DEFAULT_BLOCK_ROWS


def kernel_seconds(unit, k):
    """The kernel on every row of `unit`, one block at a time."""
    index = topk.CandidateIndex(unit)
    start = time.perf_counter()
    for lo in range(0, len(unit), QUERIES):
        topk.topk_block(index, np.arange(lo, min(len(unit), lo + QUERIES)), k)
    return time.perf_counter() - start


def pair_unit_seconds(rows_i, rows_j, k, products_only=False):
    """One off-diagonal unit: products once, chunk maxima both ways, k + 1 chunks each."""
    tile, chunk = topk.DEFAULT_TILE, topk.DEFAULT_CHUNK
    n = len(rows_i)
    for_j = np.empty((n // chunk, n), np.float32)   # chunks of i x books of j
    for_i = np.empty((n // chunk, n), np.float32)   # strided chunks of j x books of i
    scores = np.empty((tile, QUERIES), np.float32)
    halves = [np.empty((tile, QUERIES >> level), np.float32) for level in range(1, 5)]
    start = time.perf_counter()
    for q0 in range(0, n, QUERIES):
        queries_t = np.ascontiguousarray(rows_j[q0:q0 + QUERIES].T)
        for t0 in range(0, n, tile):
            np.matmul(rows_i[t0:t0 + tile], queries_t, out=scores)
            if products_only:
                continue
            np.max(scores.reshape(tile // chunk, chunk, QUERIES), axis=1,
                   out=for_j[t0 // chunk:(t0 + tile) // chunk, q0:q0 + QUERIES])
            source = scores
            for half in halves:    # strided chunks: column c, c + 32, c + 64, ...
                width = half.shape[1]
                np.maximum(source[:, :width], source[:, width:], out=half)
                source = half
            for_i[q0 // chunk:(q0 + QUERIES) // chunk, t0:t0 + tile] = source.T
    if not products_only:
        for maxima in (for_j, for_i):
            for q0 in range(0, n, QUERIES):
                topk._select_chunks(maxima[:, q0:q0 + QUERIES], k + 1, topk.DEFAULT_GROUP)
    return time.perf_counter() - start


def products_seconds(unit):
    """The kernel's matrix products alone, every book against every book."""
    index = topk.CandidateIndex(unit)
    scores = np.empty((index.tile, QUERIES), np.float32)
    start = time.perf_counter()
    for lo in range(0, len(unit), QUERIES):
        queries_t = np.ascontiguousarray(index.matrix[lo:lo + QUERIES].T)
        for t in range(index.num_tiles):
            np.matmul(index.matrix[t * index.tile:(t + 1) * index.tile], queries_t, out=scores)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--part_rows", type=int, default=25600,
                        help="books per part (a multiple of 1024)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    if args.part_rows % topk.DEFAULT_TILE or args.parts < 2:
        parser.error("--part_rows must be a multiple of 1024 and --parts at least 2")
    topk.set_numpy_blas_threads(1)
    rng = np.random.default_rng(0)
    parts = [topk.normalise_rows(rng.normal(size=(args.part_rows, args.dim)))[0]
             for _ in range(args.parts)]
    every = np.concatenate(parts)
    pairs = args.parts * (args.parts - 1) // 2
    diagonal = sum(kernel_seconds(part, args.k) for part in parts)
    # every off-diagonal unit costs the same: time one, on two different parts (best of 2:
    # the first run also pays for touching its chunk maxima's pages)
    off = min(pair_unit_seconds(parts[0], parts[1], args.k) for _ in range(2))
    off_products = pair_unit_seconds(parts[0], parts[1], args.k, products_only=True)
    part_products = products_seconds(parts[0])
    baseline = kernel_seconds(every, args.k)
    baseline_products = products_seconds(every)
    once = diagonal + pairs * off
    once_products = args.parts * part_products + pairs * off_products
    print(f"\nAll-pairs top-{args.k}, {len(every)} books x dim {args.dim} in {args.parts} parts "
          f"of {args.part_rows}, one core (OpenBLAS 1 thread), {machine.describe()}")
    print(f"{'':52s} {'seconds':>8s} {'products s':>11s} {'kernel / this':>14s}")
    print(f"{'kernel, every pair twice (graph_export.topk)':52s} {baseline:8.2f} "
          f"{baseline_products:11.2f} {1.0:14.2f}")
    print(f"{'each pair once: ' + str(args.parts) + ' part units + ' + str(pairs) + ' pair units':52s} "
          f"{once:8.2f} {once_products:11.2f} {baseline / once:14.2f}")
    print(f"{'  one pair unit (products, maxima both ways, select)':52s} {off:8.2f} "
          f"{off_products:11.2f}")
    print("(the pair-once figure leaves out merging each book's chunk lists across units)")


if __name__ == "__main__":
    from benchmarks import results
    results.main_recorded(main, "Each pair once")
