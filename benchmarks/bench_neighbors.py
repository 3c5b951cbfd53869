"""Benchmark: the neighbours CLI vs its kernel vs FAISS IndexFlatIP, plus writers.

    .venv/bin/python benchmarks/bench_neighbors.py [--books 100000] [--dim 64] [--k 10]
        [--threads 2] [--block_rows 512] [--tile 1024] [--chunk 16] [--write_books 100000]
        [--cli] [--cli_profile]

`--cli` also times the whole command a user runs, `python -m graph_export.neighbors`
(a subprocess: interpreter start, imports, reading the parquet, the Beam job,
communities, layout and every file) on the same vectors, and prints its phases
from summary.json; `--cli_profile` adds the same command with the pre-issue-11
worker set-up (`--direct_num_workers=2 --direct_running_mode=multi_processing
--threads 1 --blas_threads 0`: two worker processes, each loading the matrix,
with OpenBLAS at its default thread count) to show what that set-up cost.

Prints one table: pairwise scores per second (books^2 / seconds) for the block
kernel and for FAISS's exact inner-product search (k+1 results, the book itself
dropped) over the same random unit vectors, their ratio, agreement of the two
neighbour lists, the GEXF / JSON writing rates (edges/s) and peak memory.

`--threads T` runs T query blocks at once in Python threads (numpy releases the
GIL in BLAS, max and partition) with numpy's OpenBLAS set to 1 thread each;
`--threads 0` runs one block at a time with OpenBLAS using every core. FAISS
always uses its own OpenMP threads (all cores), with OMP_WAIT_POLICY=PASSIVE
unless the environment sets it (see FAISS_WAIT_POLICY).
"""
import argparse
import os
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from graph_export import blocks, graph_files, neighbors, topk  # noqa: E402
from pipeline_common import artifacts  # noqa: E402
from benchmarks import machine, results  # noqa: E402
from benchmarks.machine import peak_rss_mb  # noqa: E402  (VmHWM, this process only)


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


# FAISS's OpenMP (the libgomp in its wheel) at its default wait policy made one search take
# 17.2 s wall and 34 CPU s on the 2-core Zen 4 machine, against 9.5-9.8 s and 19 CPU s with
# OMP_WAIT_POLICY set (PASSIVE or ACTIVE): the baseline is FAISS at its best. libgomp reads
# the variable when it loads, so it is set before faiss is first imported.
FAISS_WAIT_POLICY = "PASSIVE"


def run_faiss(unit, k):
    os.environ.setdefault("OMP_WAIT_POLICY", FAISS_WAIT_POLICY)
    import faiss
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    start, cpu = time.perf_counter(), time.process_time()
    _, found = index.search(unit, k + 1)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    # drop the query itself (ties may put it in any position)
    rows = [[j for j in row if j != i][:k] for i, row in enumerate(found)]
    return seconds, cpu, np.array(rows), faiss.omp_get_max_threads()


def run_cli(unit, k, tmp, extra=()):
    """Wall seconds of the neighbours command on `unit` and its summary.json."""
    model = os.path.join(tmp, "model")
    if not os.path.exists(os.path.join(model, artifacts.BOOK_EMBEDDINGS)):
        os.makedirs(model, exist_ok=True)
        pq.write_table(pa.table({
            "book_index": np.arange(len(unit), dtype=np.int64),
            "book_id": pa.array([str(i) for i in range(len(unit))]),
            "title": pa.array([f"Book {i}" for i in range(len(unit))]),
            "embedding": pa.FixedSizeListArray.from_arrays(unit.ravel(), unit.shape[1])}),
            os.path.join(model, artifacts.BOOK_EMBEDDINGS))
    out = os.path.join(tmp, "graph")
    command = [sys.executable, "-m", "graph_export.neighbors", "--embeddings", model,
               "--output", out, "--k", str(k), *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    with open(os.path.join(out, "summary.json")) as handle:
        summary = json.load(handle)
    sizes = {name: os.path.getsize(os.path.join(out, name)) for name in summary["files"]}
    return seconds, cpu, summary, sizes


CLI_PROFILE_ARGS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing",
                    "--threads", "1", "--blas_threads", "0"]


def synthetic_graph(n_books, k):
    """nodes and edges tables of a random graph (n_books x k edges)."""
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
        schema=blocks.EDGE_SCHEMA)
    return nodes, edges


def write_files(tmp, nodes, edges, styles):
    text = graph_files.NodeText(nodes)
    for style in styles:
        header = "bench" if style == "gexf" else {}
        graph_files.write_graph_file(os.path.join(tmp, f"graph-{style}"), style, text,
                                     graph_files.edge_rows(edges, None, style), header)


WRITERS = {
    "graph.gexf": lambda tmp, nodes, edges: write_files(tmp, nodes, edges, ["gexf"]),
    "graph.json + graph.nodelink.json": lambda tmp, nodes, edges: write_files(
        tmp, nodes, edges, ["graphology", "nodelink"]),
}


def bench_writers(n_books, k, tmp):
    """Writing rate (edges/s, untraced) and traced peak memory at k and 4k edges a node."""
    nodes, edges = synthetic_graph(n_books, k)
    small = max(1000, n_books // 10)
    peaks_nodes = synthetic_graph(small, k)[0]
    results = {}
    for name, write in WRITERS.items():
        start = time.perf_counter()
        write(tmp, nodes, edges)
        seconds = time.perf_counter() - start
        peaks = []
        for edges_per_node in (k, 4 * k):
            _, more_edges = synthetic_graph(small, edges_per_node)
            tracemalloc.start()
            write(tmp, peaks_nodes, more_edges)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        results[name] = (n_books * k / seconds, seconds, peaks, small)
    return results


PHASES = ("pipeline_seconds", "communities_seconds", "layout_seconds", "graph_files_seconds",
          "total_seconds")


def print_cli(cli_runs, kernel, faiss):
    """The whole command against the kernel and FAISS of the same run.

    `kernel`, `faiss`: (best wall seconds, best cpu seconds) or None. CPU
    seconds (all the command's processes) are the load-robust comparison on
    this shared machine; wall seconds are what a user waits.
    """
    print("\nWhole command `python -m graph_export.neighbors` (wall and CPU time of the "
          "process; phases from its summary.json, best run)")
    print(f"{'command':38s} {'wall s':>7s} {'cpu s':>7s} "
          + " ".join(f"{p[:-8][:11]:>11s}" for p in PHASES)
          + f" {'pipe/kernel':>11s} {'faiss/cmd wall':>14s} {'faiss/cmd cpu':>13s}"
          "  all runs (s)")
    for name, runs in cli_runs.items():
        seconds, cpu, summary, sizes = min(runs, key=lambda r: r[0])
        vs_faiss = (f"{faiss[0] / seconds:14.2f} {faiss[1] / cpu:13.2f}" if faiss
                    else f"{'-':>14s} {'-':>13s}")
        print(f"{name:38s} {seconds:7.1f} {cpu:7.1f} "
              + " ".join(f"{summary.get(p, 0):11.1f}" for p in PHASES)
              + f" {summary['pipeline_seconds'] / kernel[0]:11.2f} {vs_faiss}  "
              + " ".join(f"{r[0]:.1f}" for r in runs))
        per_block = summary["pipeline_seconds"] / summary["num_blocks"]
        print(f"{'':38s} top-k per block of {summary['block_rows']} books: {per_block:.2f} s "
              f"on {summary['threads']} thread(s)")
    seconds, cpu, summary, sizes = min(next(iter(cli_runs.values())), key=lambda r: r[0])
    print("files: " + ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in sizes.items())
          + f"; graph files: {summary['graph_file_cut']}")


def synthetic_knn(n_books, k, dim, seed=3):
    """Clustered unit vectors and a kNN-shaped edge table without the N^2 search:
    books in clusters of 20..5000 (log-uniform sizes), each book's k targets
    drawn inside its cluster with descending cosines. Same shape and sizes as
    the real job's output (n x k edges, sorted by source, rank)."""
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < n_books:
        sizes.append(int(np.exp(rng.uniform(np.log(20), np.log(5000)))))
    sizes[-1] -= sum(sizes) - n_books
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.r_[0, np.cumsum(sizes)][:-1]
    vectors = rng.normal(size=(len(sizes), dim)).astype(np.float32)[cluster]
    vectors += 0.5 * rng.normal(size=vectors.shape).astype(np.float32)
    size_of = np.asarray(sizes)[cluster]
    offsets = rng.integers(1, np.maximum(size_of, 2)[:, None], (n_books, k))
    own = np.arange(n_books) - starts[cluster]
    targets = starts[cluster][:, None] + (own[:, None] + offsets) % size_of[:, None]
    cosine = np.sort(rng.uniform(0.3, 0.95, (n_books, k)).astype(np.float32), axis=1)[:, ::-1]
    edges = pa.table({"source": np.repeat(np.arange(n_books, dtype=np.int64), k),
                      "target": targets.ravel().astype(np.int64),
                      "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n_books),
                      "cosine": cosine.ravel()}, schema=blocks.EDGE_SCHEMA)
    return vectors, edges


def bench_graph_steps(n_books, k, dim, tmp, split):
    """The job's graph-level steps exactly as the CLI runs them after the Beam
    step: edges.parquet, communities, layout, nodes.parquet, graph files cut to
    100k books."""
    vectors, edges = synthetic_knn(n_books, k, dim)
    unit, valid = topk.normalise_rows(vectors)
    del vectors
    meta = pa.table({"book_index": np.arange(n_books, dtype=np.int64),
                     "book_id": pa.array(np.arange(n_books).astype(str)),
                     "title": pa.array(np.char.add("Book ", np.arange(n_books).astype(str)))})
    before = peak_rss_mb()
    timings = {}
    start = time.perf_counter()
    args = argparse.Namespace(k=k, max_graph_nodes=neighbors.MAX_GRAPH_NODES,
                              formats=list(neighbors.FORMATS), seed=0,
                              louvain_max_nodes=neighbors.layout.LOUVAIN_MAX_NODES,
                              layout_max_nodes=neighbors.layout.LAYOUT_MAX_NODES, threads=2,
                              split_by="community" if split else None)
    nodes, files, info = neighbors.write_graph(tmp, meta, unit, valid, edges, None, None, args,
                                               timings)
    del unit, edges
    timings["total_seconds"] = time.perf_counter() - start
    sizes = {f: os.path.getsize(os.path.join(tmp, f)) for f in files}
    return timings, int(nodes.column("community").to_numpy().max()) + 1, sizes, info, \
        before, peak_rss_mb()


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
    parser.add_argument("--cli", action="store_true",
                        help="also time `python -m graph_export.neighbors` on the same vectors")
    parser.add_argument("--cli_profile", action="store_true",
                        help="also time the command with two worker processes (the old set-up)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="alternate kernel and FAISS runs this many times and keep "
                             "each one's best time (the machine is shared: load varies)")
    parser.add_argument("--graph_books", type=int, default=0,
                        help="time the graph-level steps alone on a synthetic kNN graph of "
                             "this many books (e.g. 2360000); with --books 0 the peak "
                             "memory printed is theirs")
    parser.add_argument("--graph_split", action="store_true",
                        help="with --graph_books: also write the --split_by community files")
    args = parser.parse_args(argv)
    if args.graph_books:
        numpy_blas_threads(1)    # as the CLI's default --blas_threads 1
        with tempfile.TemporaryDirectory() as tmp:
            timings, num_c, sizes, info, before, peak = bench_graph_steps(
                args.graph_books, args.k, args.dim, tmp, args.graph_split)
        print(f"\nGraph-level steps on a synthetic kNN graph: {args.graph_books} books, "
              f"{args.graph_books * args.k} edges, {num_c} communities")
        print(" ".join(f"{p[:-8]} {timings[p]:.1f} s" for p in PHASES[1:]))
        print("files: " + ", ".join(f"{n} {b / 1e6:.1f} MB" for n, b in sizes.items()
                                    if not n.startswith("communities/"))
              + (f", {len(info['community_files'])} community files "
                 f"{sum(b for n, b in sizes.items() if n.startswith('communities/')) / 1e6:.0f}"
                 " MB" if "community_files" in info else ""))
        print(f"peak resident memory (VmHWM): {peak:.0f} MB "
              f"({before:.0f} MB after generating the input)")
    if not args.books:
        return

    rng = np.random.default_rng(0)
    unit, _ = topk.normalise_rows(rng.normal(size=(args.books, args.dim)).astype(np.float32))
    pairs = float(args.books) ** 2
    kernel_times, faiss_times, kernel_cpu, faiss_cpu = [], [], [], []
    cli_runs = {"CLI (defaults)": []}
    if args.cli_profile:
        cli_runs["CLI, 2 worker processes (old set-up)"] = []
    cli_tmp = tempfile.TemporaryDirectory()
    for _ in range(args.repeats):
        if args.cli or args.cli_profile:
            for name, runs in cli_runs.items():
                extra = CLI_PROFILE_ARGS if "old" in name else []
                runs.append(run_cli(unit, args.k, cli_tmp.name, extra))
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
        rows.append((f"faiss IndexFlatIP ({faiss_threads} OpenMP threads, "
                     f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']})", min(faiss_times),
                     pairs / min(faiss_times), pairs / min(faiss_cpu)))
        same_sets = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ours, theirs)])
        identical = np.mean([list(a) == list(b) for a, b in zip(ours, theirs)])
    print(f"\nAll-pairs top-{args.k}: {args.books} books x dim {args.dim}, "
          f"{machine.describe()}; kernel threads={args.threads} block_rows={args.block_rows} "
          f"tile={args.tile} chunk={args.chunk}")
    print(f"{'method':44s} {'best s':>9s} {'scores/s':>12s} {'scores/cpu-s':>13s}  "
          "all runs (s)")
    for (name, seconds, rate, cpu_rate), runs in zip(rows, (kernel_times, faiss_times)):
        print(f"{name:44s} {seconds:9.2f} {rate:12.3e} {cpu_rate:13.3e}  "
              + " ".join(f"{r:.2f}" for r in runs))
    if not args.skip_faiss:
        results.headline(f"exact top-{args.k} of {args.books:,} books x {args.dim} dims: our "
                         "kernel / FAISS `IndexFlatIP`",
                         f"{rows[0][1]:.1f} s / {rows[1][1]:.1f} s")
        print(f"ratio kernel / faiss: {rows[0][2] / rows[1][2]:.2f}x; neighbour sets agree: "
              f"{100 * same_sets:.3f}%, identical ordered lists: {100 * identical:.3f}% "
              "(FAISS scores in float32, the kernel ranks in float64)")
    cli_tmp.cleanup()
    if args.cli or args.cli_profile:
        print_cli(cli_runs, (min(kernel_times), min(kernel_cpu)),
                  (min(faiss_times), min(faiss_cpu)) if faiss_times else None)
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
    results.main_recorded(main, "Neighbours command and kernel against FAISS")
