"""The map's layout against openTSNE on the same embeddings: kNN preservation, time, memory.

    python -m benchmarks.bench_layout --graph GRAPH --embeddings MODEL   # a neighbours run
    python -m benchmarks.bench_layout --books 100000                      # generated, planted
    python -m benchmarks.bench_layout --books 2360000 --placed_only      # the cut's cost

For a graph the map is the job's own output (nodes.parquet x, y); for --books the
embeddings are generated (planted clusters, dim 64), the exact top-10 found by the
job's kernel, and the map made by `layout.compute_positions` as the job calls it.
The baseline is openTSNE with the cosine metric and its default settings on the
same unit vectors (its own neighbour search, perplexity 30), with the same threads.

Measured for each: kNN preservation@10 (share of each book's 10 graph neighbours
among its 10 nearest points on the map), community purity@10 (share of each
book's 10 nearest points on the map in its own community: do communities sit in
their own areas? The same share over its 10 graph neighbours is the ceiling),
wall time, CPU time and the step's peak memory (each run in a child process forked
with the inputs in memory: its peak resident memory above what it held at the start).

With --placed_only the step is run as the job runs it on a catalogue larger than
`--layout_max_nodes`: the most-read 100k laid out by t-SNE, every other book placed
from its neighbours. Only time and memory are measured there, against the same
step on the 100k alone: the other books' edges are drawn from their planted
cluster (an exact top-10 over 2.36M books is the neighbours job's work, not this
benchmark's), so their positions say nothing about quality.
The table is written to benchmarks/RESULTS.md.
"""
import argparse
import json
import multiprocessing
import os
import resource
import time

import numpy as np
import pyarrow.parquet as pq

from benchmarks import machine, results
from graph_export import inputs, layout, topk


def community_purity(positions, communities, k=10):
    from scipy.spatial import cKDTree
    _, near = cKDTree(positions).query(positions, k=k + 1)
    return float((communities[near[:, 1:]] == communities[:, None]).mean())


def graph_purity(sources, targets, communities):
    return float((communities[sources] == communities[targets]).mean())


def planted(n, dim=64, seed=0, with_labels=False):
    """Unit vectors around a two-level hierarchy of planted centres (sizes Zipf-like),
    and each vector's planted cluster when `with_labels`."""
    rng = np.random.default_rng(seed)
    top = rng.normal(size=(max(4, n // 5000), dim))
    fine = max(8, n // 300)
    centres = top[rng.integers(0, len(top), fine)] + 0.6 * rng.normal(size=(fine, dim))
    weights = 1.0 / np.arange(1, fine + 1) ** 0.8
    labels = rng.choice(fine, size=n, p=weights / weights.sum())
    vectors = centres[labels] + 0.9 * rng.normal(size=(n, dim))
    unit = topk.normalise_rows(vectors.astype(np.float32))[0]
    return (unit, labels) if with_labels else unit


def cluster_edges(labels, first, k=10, seed=0):
    """`k` edges from each row from `first` on to random rows of its planted cluster."""
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    start = np.searchsorted(labels[order], np.arange(labels.max() + 1))
    size = np.bincount(labels, minlength=labels.max() + 1)
    rows = np.arange(first, len(labels))
    pick = (rng.random((len(rows), k)) * size[labels[rows]][:, None]).astype(np.int64)
    return np.repeat(rows, k), order[start[labels[rows]][:, None] + pick].ravel()


def exact_knn(unit, k=10, threads=2):
    from concurrent.futures import ThreadPoolExecutor
    index = topk.CandidateIndex(unit)
    rows = [np.arange(lo, min(len(unit), lo + 512)) for lo in range(0, len(unit), 512)]
    with ThreadPoolExecutor(threads) as pool:
        near = np.concatenate([p[0] for p in pool.map(lambda r: topk.topk_block(index, r, k),
                                                      rows)])
    return np.repeat(np.arange(len(unit)), near.shape[1]), near.ravel()


def _child(queue, method, unit, sources, targets, threads, seed, laid_out=None):
    before = machine.peak_rss_mb("VmRSS")     # the inputs, inherited from the parent
    started = time.perf_counter()
    if method == "ours":
        positions = layout.compute_positions(unit, sources, targets, seed=seed, threads=threads,
                                             laid_out=laid_out)
    else:
        import openTSNE
        positions = np.asarray(openTSNE.TSNE(metric="cosine", n_jobs=threads,
                                             random_state=seed).fit(unit))
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put((positions if laid_out is None else None, seconds,
               usage.ru_utime + usage.ru_stime, machine.peak_rss_mb() - before))


def timed(method, unit, sources, targets, threads, seed, laid_out=None):
    """(positions, wall seconds, CPU seconds, MB of the child process's peak above what it
    held at the start: the inputs, shared with the parent) of one layout."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue, method, unit, sources, targets,
                                                 threads, seed, laid_out))
    child.start()
    out = queue.get()
    child.join()
    return out


def placed_only(args):
    """The layout step on `--books` books of which `--layout_max_nodes` are laid out,
    against the same step on those books alone: time and memory."""
    laid = min(args.layout_max_nodes, args.books)
    unit, labels = planted(args.books, seed=args.seed, with_labels=True)
    inner_src, inner_tgt = exact_knn(unit[:laid], threads=args.threads)
    outer_src, outer_tgt = cluster_edges(labels, laid, seed=args.seed)
    table = ["| books | laid out by t-SNE | placed from neighbours | seconds | CPU s | "
             "peak MB above the inputs |",
             "| --- | --- | --- | --- | --- | --- |"]
    measured = {}
    for total in (laid, args.books):
        if total == laid:
            src, tgt, part = inner_src, inner_tgt, unit[:laid]
        else:
            src = np.concatenate([inner_src, outer_src])
            tgt = np.concatenate([inner_tgt, outer_tgt])
            part = unit
        _, sec, cpu, mb = timed("ours", part, src, tgt, args.threads, args.seed,
                                laid_out=np.arange(laid))
        measured[total] = (sec, mb)
        line = f"| {total:,} | {laid:,} | {total - laid:,} | {sec:.1f} | {cpu:.1f} | {mb:.0f} |"
        table.append(line)
        print(line)
    note = (f"Generated planted clusters, dim 64; the placed books' edges drawn from their "
            f"cluster (time and memory only); threads {args.threads}.")
    print(note)
    results.headline(f"the layout step at {args.books:,} books ({laid:,} laid out, the others "
                     "placed from their neighbours)",
                     f"{measured[args.books][0]:.0f} s, {measured[args.books][1] / 1024:.1f} GB "
                     f"above its inputs; {laid:,} books alone: {measured[laid][0]:.0f} s, "
                     f"{measured[laid][1] / 1024:.1f} GB")
    results.record(f"Layout cut: {args.books:,} books, {laid:,} laid out", table + ["", note])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", help="a neighbours output (GRAPH)")
    parser.add_argument("--embeddings", help="the MODEL the graph was built from")
    parser.add_argument("--books", type=int, help="generated embeddings of this many books")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", help="row name in RESULTS.md (default from the input)")
    parser.add_argument("--placed_only", action="store_true",
                        help="with --books: time and memory of laying out the most-read "
                             "--layout_max_nodes and placing the others")
    parser.add_argument("--layout_max_nodes", type=int, default=layout.LAYOUT_MAX_NODES)
    args = parser.parse_args(argv)
    print(machine.describe())
    if args.placed_only:
        if not args.books:
            parser.error("--placed_only needs --books")
        return placed_only(args)
    if args.graph:
        meta, matrix = inputs.load_embeddings(inputs.embeddings_path(args.embeddings))
        unit, valid = topk.normalise_rows(matrix)
        unit = unit[valid]
        book_index = meta.column("book_index").to_numpy()[valid]
        edges = pq.read_table(os.path.join(args.graph, "edges.parquet"),
                              columns=["source", "target"])
        sources = np.searchsorted(book_index, edges.column("source").to_numpy())
        targets = np.searchsorted(book_index, edges.column("target").to_numpy())
        nodes = pq.read_table(os.path.join(args.graph, "nodes.parquet"),
                              columns=["x", "y", "community"])
        communities = nodes.column("community").to_numpy()
        ours = np.stack([nodes.column("x").to_numpy(), nodes.column("y").to_numpy()], axis=1)
        summary = json.load(open(os.path.join(args.graph, "summary.json")))
        ours_time, ours_cpu, ours_mb = summary.get("layout_seconds"), None, None
        name = args.name or f"{os.path.basename(os.path.abspath(args.graph))} ({len(unit):,} books)"
    else:
        unit = planted(args.books, seed=args.seed)
        sources, targets = exact_knn(unit, threads=args.threads)
        communities = layout.detect_communities(len(unit), sources, targets,
                                                np.ones(len(sources)), seed=args.seed)
        ours, ours_time, ours_cpu, ours_mb = timed("ours", unit, sources, targets, args.threads,
                                                   args.seed)
        name = args.name or f"generated, {args.books:,} books, dim 64"
    theirs, their_time, their_cpu, their_mb = timed("openTSNE", unit, sources, targets,
                                                    args.threads, args.seed)
    table = ["| books | layout | kNN preservation@10 | community purity@10 | seconds | CPU s | "
             "peak MB above the inputs |", "| --- | --- | --- | --- | --- | --- | --- |"]
    ours_label = "the map (nodes.parquet x, y)" if args.graph else "the map (layout.compute_positions)"
    kept = {}
    for label, pos, sec, cpu, mb in (
            (ours_label, ours, ours_time, ours_cpu, ours_mb),
            ("openTSNE 1.0.4, cosine, defaults", theirs, their_time, their_cpu, their_mb)):
        kept[label] = layout.knn_preservation(pos, sources, targets)
        line = (f"| {name} | {label} | {kept[label]:.3f} | "
                f"{community_purity(pos, communities):.3f} | "
                f"{'' if sec is None else f'{sec:.1f}'} | {'' if cpu is None else f'{cpu:.1f}'} | "
                f"{'' if mb is None else f'{mb:.0f}'} |")
        table.append(line)
        print(line)
    ceiling = f"Community purity of the graph's own top-10 (the ceiling): {graph_purity(sources, targets, communities):.3f}; threads {args.threads}."
    print(ceiling)
    seconds = (f"; {ours_time:.0f} s (openTSNE {their_time:.0f} s)" if ours_time is not None
               and args.books else "")
    results.headline(f"the map's layout, {name}: kNN preservation@10 (share of each book's 10 "
                     "graph neighbours among its 10 nearest points on the map)",
                     f"the map {kept[ours_label]:.3f}, openTSNE (cosine, defaults) "
                     f"{kept['openTSNE 1.0.4, cosine, defaults']:.3f}{seconds}")
    results.record(f"Layout: {name}", table + ["", ceiling])


if __name__ == "__main__":
    main()
