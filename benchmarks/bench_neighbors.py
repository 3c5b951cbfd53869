"""Benchmark: exact all-pairs top-k (graph_export.topk) vs FAISS IndexFlatIP, plus writers.

    .venv/bin/python benchmarks/bench_neighbors.py [--books 100000] [--dim 64] [--k 10]
        [--threads 2] [--block_rows 512] [--tile 4096] [--chunk 32] [--write_books 100000]

Prints one table: pairwise scores per second (books^2 / seconds) for the block
kernel and for FAISS's exact inner-product search (k+1 results, the book itself
dropped) over the same random unit vectors, their ratio, agreement of the two
neighbour lists, the GEXF / JSON writing rates (edges/s) and peak memory.

`--threads T` runs T query blocks at once in Python threads (numpy releases the
GIL in BLAS, max and partition) with numpy's OpenBLAS set to 1 thread each;
`--threads 0` runs one block at a time with OpenBLAS using every core. FAISS
always uses its own OpenMP threads (all cores).
"""
import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from graph_export import graph_files, neighbors, topk  # noqa: E402


numpy_blas_threads = topk.set_numpy_blas_threads


def run_kernel(unit, k, block_rows, tile, chunk, threads):
    index = topk.CandidateIndex(unit, tile=tile, chunk=chunk)
    n = len(unit)
    neighbours = np.empty((n, min(k, n - 1)), np.int64)
    blocks = [(s, min(n, s + block_rows)) for s in range(0, n, block_rows)]

    def one(block):
        s, e = block
        neighbours[s:e] = topk.topk_block(index, np.arange(s, e), k)[0]

    start, cpu = time.perf_counter(), time.process_time()
    if threads:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, blocks))
    else:
        for block in blocks:
            one(block)
    return time.perf_counter() - start, time.process_time() - cpu, neighbours


def run_faiss(unit, k):
    import faiss
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    start, cpu = time.perf_counter(), time.process_time()
    _, found = index.search(unit, k + 1)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    # drop the query itself (ties may put it in any position)
    rows = [[j for j in row if j != i][:k] for i, row in enumerate(found)]
    return seconds, cpu, np.array(rows), faiss.omp_get_max_threads()


def synthetic_graph(n_books, k, tmp):
    """nodes table + edges.parquet path of a random graph (n_books x k edges)."""
    rng = np.random.default_rng(1)
    nodes = pa.table({
        "book_index": np.arange(n_books, dtype=np.int64),
        "book_id": pa.array([str(i) for i in range(n_books)]),
        "title": pa.array([f"Book & <title> {i} \U0001F4D6" for i in range(n_books)]),
        "in_degree": np.full(n_books, k, np.int64),
        "community": rng.integers(0, 50, n_books),
        "x": rng.normal(size=n_books), "y": rng.normal(size=n_books)})
    edges = pa.table({
        "source": np.repeat(np.arange(n_books, dtype=np.int64), k),
        "target": rng.integers(0, n_books, n_books * k),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n_books),
        "cosine": rng.uniform(0, 1, n_books * k).astype(np.float32)},
        schema=neighbors.EDGE_SCHEMA)
    edges_path = os.path.join(tmp, f"edges-{n_books}-{k}.parquet")
    pq.write_table(edges, edges_path, row_group_size=neighbors.EDGE_ROW_GROUP)
    return nodes, edges_path


WRITERS = {
    "graph.gexf": lambda tmp, nodes, edges: graph_files.write_gexf(
        os.path.join(tmp, "graph.gexf"), nodes, edges, "bench"),
    "graph.json + graph.nodelink.json": lambda tmp, nodes, edges: graph_files.write_json_files(
        tmp, nodes, edges, {}),
}


def bench_writers(n_books, k, tmp):
    """Writing rate (edges/s, untraced) and traced peak memory at k and 4k edges a node."""
    nodes, edges = synthetic_graph(n_books, k, tmp)
    small = max(1000, n_books // 10)
    peaks_nodes = synthetic_graph(small, k, tmp)[0]
    results = {}
    for name, write in WRITERS.items():
        start = time.perf_counter()
        write(tmp, nodes, edges)
        seconds = time.perf_counter() - start
        peaks = []
        for edges_per_node in (k, 4 * k):
            _, path = synthetic_graph(small, edges_per_node, tmp)
            tracemalloc.start()
            write(tmp, peaks_nodes, path)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        results[name] = (n_books * k / seconds, seconds, peaks, small)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block_rows", type=int, default=topk.DEFAULT_BLOCK_ROWS)
    parser.add_argument("--tile", type=int, default=topk.DEFAULT_TILE)
    parser.add_argument("--chunk", type=int, default=topk.DEFAULT_CHUNK)
    parser.add_argument("--write_books", type=int, default=100_000,
                        help="books in the synthetic graph for the writer rates (0: skip)")
    parser.add_argument("--skip_faiss", action="store_true")
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternate kernel and FAISS runs this many times and keep "
                             "each one's best time (the machine is shared: load varies)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    unit, _ = topk.normalise_rows(rng.normal(size=(args.books, args.dim)).astype(np.float32))
    pairs = float(args.books) ** 2
    kernel_times, faiss_times, kernel_cpu, faiss_cpu = [], [], [], []
    for _ in range(args.repeats):
        if args.threads:
            numpy_blas_threads(1)
        seconds, cpu, ours = run_kernel(unit, args.k, args.block_rows, args.tile,
                                        args.chunk, args.threads)
        kernel_times.append(seconds)
        kernel_cpu.append(cpu)
        numpy_blas_threads(os.cpu_count())
        if not args.skip_faiss:
            seconds, cpu, theirs, faiss_threads = run_faiss(unit, args.k)
            faiss_times.append(seconds)
            faiss_cpu.append(cpu)
    rows = [("block kernel (graph_export.topk)", min(kernel_times), pairs / min(kernel_times),
             pairs / min(kernel_cpu))]
    if not args.skip_faiss:
        rows.append((f"faiss IndexFlatIP ({faiss_threads} OpenMP threads)", min(faiss_times),
                     pairs / min(faiss_times), pairs / min(faiss_cpu)))
        same_sets = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ours, theirs)])
        identical = np.mean([list(a) == list(b) for a, b in zip(ours, theirs)])
    print(f"\nAll-pairs top-{args.k}: {args.books} books x dim {args.dim}, "
          f"{os.cpu_count()} cores; kernel threads={args.threads} block_rows={args.block_rows} "
          f"tile={args.tile} chunk={args.chunk}")
    print(f"{'method':44s} {'best s':>9s} {'scores/s':>12s} {'scores/cpu-s':>13s}  "
          "all runs (s)")
    for (name, seconds, rate, cpu_rate), runs in zip(rows, (kernel_times, faiss_times)):
        print(f"{name:44s} {seconds:9.2f} {rate:12.3e} {cpu_rate:13.3e}  "
              + " ".join(f"{r:.2f}" for r in runs))
    if not args.skip_faiss:
        print(f"ratio kernel / faiss: {rows[0][2] / rows[1][2]:.2f}x; neighbour sets agree: "
              f"{100 * same_sets:.3f}%, identical ordered lists: {100 * identical:.3f}% "
              "(FAISS scores in float32, the kernel ranks in float64)")
    if args.write_books:
        with tempfile.TemporaryDirectory() as tmp:
            rates = bench_writers(args.write_books, args.k, tmp)
        print(f"\nWriters: {args.write_books} nodes, {args.write_books * args.k} edges "
              "(rate untraced; peak = tracemalloc peak for the same nodes with "
              f"{args.k} vs {4 * args.k} edges a node)")
        print(f"{'files':34s} {'seconds':>8s} {'edges/s':>10s}  traced peak MB")
        for name, (rate, seconds, peaks, small) in rates.items():
            print(f"{name:34s} {seconds:8.2f} {rate:10.3e}  "
                  f"{small} nodes: {peaks[0] / 2**20:.1f} ({small * args.k} edges) -> "
                  f"{peaks[1] / 2**20:.1f} ({small * 4 * args.k} edges)")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory of the whole run: {peak_rss:.0f} MB "
          f"(matrix: {unit.nbytes / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
