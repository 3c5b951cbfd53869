"""Beam job: every book's k nearest books by cosine, written as a map (parquet, GEXF, JSON).

    python -m graph_export.neighbors --embeddings MODEL --output GRAPH [--catalog PREP] \
        [--k 10] [--formats gexf,json] [--max_graph_nodes 100000] \
        [--split_by community] [any Beam option, e.g. --runner=DataflowRunner]

The pipeline has two named stages:
- `ExactTopK`: the books in fixed blocks, each block's exact top-k written to
  its own file (`graph_export.blocks`);
- `CountCoReaders` (with --catalog): for every edge, the training users who read
  both books, counted per preprocess partition and summed (`graph_export.co_readers`).
The launcher then puts the blocks together into `edges.parquet` (sorted by
source, rank: the same on any runner, worker count and block size), adds the
edges' reasons and the map (communities, regions, their names, t-SNE
positions: `graph_export.book_map`), and writes the graph files
(`graph_files.GraphFiles`). Books whose vector is zero or non-finite have no
cosine: they are listed in `excluded.parquet`, counted in `summary.json`, and
left out of the graph.
"""
import argparse
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from graph_export import blocks, book_map, co_readers, edge_reasons, graph_files, layout, topk
from graph_export.inputs import embeddings_path, load_embeddings, read_catalog
from pipeline_common import artifacts, beam_runner, cli, config, fileio
from pipeline_common.cli import positive_int
from pipeline_common.entrypoint import main

FORMATS = ("gexf", "json")
MAX_GRAPH_NODES = 100_000
CO_READERS_FILE = "co_readers.parquet"   # in the block folder, until edges.parquet is written


# ---------------------------------------------------------------- the Beam stages

class ExactTopK(beam.PTransform):
    """Blocks of query books -> their block files of exact top-k edges (paths out)."""

    def __init__(self, todo, topk_fn):
        super().__init__()
        self._todo, self._fn = todo, topk_fn

    def expand(self, pipeline):
        return (pipeline
                | "Blocks" >> beam.Create(self._todo)
                | "Spread" >> beam.Reshuffle()
                | "TopK" >> beam.ParDo(self._fn))


class CountCoReaders(beam.PTransform):
    """Train-pairs files -> one file of co-reader counts per edge, after the top-k.

    Each file is counted on its own worker against the whole neighbour table
    (read from the block files once the top-k step is done: its output is a
    side input), and the per-file counts are summed by a combiner."""

    def __init__(self, pair_files, load_edges, k, path):
        super().__init__()
        self._files, self._load, self._k, self._path = pair_files, load_edges, k, path

    def expand(self, topk_done):
        return (topk_done.pipeline
                | "PairFiles" >> beam.Create(self._files)
                | "SpreadPairs" >> beam.Reshuffle()
                | "Count" >> beam.ParDo(co_readers.CountCoReadersFn(self._load, self._k),
                                        beam.pvalue.AsList(topk_done))
                | "Sum" >> beam.CombineGlobally(co_readers.SumArrays())
                | "Write" >> beam.Map(functools.partial(co_readers.write_counts, self._path)))


def build_pipeline(pipeline, todo, topk_fn, pair_files, load_edges, k, counts_path):
    """The job's graph: `ExactTopK`, then `CountCoReaders` when there are train pairs."""
    done = pipeline | "ExactTopK" >> ExactTopK(todo, topk_fn)
    if pair_files:
        _ = done | "CountCoReaders" >> CountCoReaders(pair_files, load_edges, k, counts_path)
    return pipeline


def train_pair_files(prep):
    """The train-pairs files of a preprocess output, as its manifest lists them ([] if none)."""
    manifest_path = fileio.join(prep, artifacts.MANIFEST)
    if prep.endswith(".parquet") or not fileio.exists(manifest_path):
        return []
    manifest = fileio.read_json(manifest_path)
    return [fileio.join(prep, name) for name in manifest.get("files", {}).get("train_pairs", [])]


# ---------------------------------------------------------------- after the pipeline

def catalogue_nodes(meta, valid, targets, catalog_columns):
    """nodes.parquet's columns that need no map: the valid books, their catalogue
    columns and in-degree (what the cut to --max_graph_nodes ranks by);
    `targets` are the edges' target rows among the valid books."""
    n = int(valid.sum())
    columns = {
        "book_index": pa.array(meta.column("book_index").to_numpy()[valid].astype(np.int64)),
        "book_id": meta.column("book_id").filter(pa.array(valid)).cast(pa.string()),
        "title": (meta.column("title").filter(pa.array(valid)).cast(pa.string())
                  if "title" in meta.column_names else pa.nulls(n, pa.string())),
    }
    for name, values in catalog_columns.items():
        columns[name] = pa.array(values, type=artifacts.NODE_SCHEMA.field(name).type)
    columns["in_degree"] = pa.array(np.bincount(targets, minlength=n).astype(np.int64))
    return pa.table(columns)


def add_edge_reasons(edges, counts, catalogue, num_books, sources, targets, timings):
    """edges + co_readers (when counted), shared_authors and shared_shelves (with a catalogue)."""
    started = time.time()
    if counts is not None:
        edges = edges.append_column("co_readers", pa.array(
            counts, artifacts.EDGE_REASONS_SCHEMA.field("co_readers").type))
    if catalogue is not None:
        if catalogue.author_lists is not None:
            authors = edge_reasons.author_matrix(catalogue.author_lists, num_books)
            edges = edges.append_column(
                "shared_authors", pa.array(edge_reasons.shared_authors(authors, sources, targets)))
        if catalogue.shelves is not None:
            edges = edges.append_column("shared_shelves", edge_reasons.shared_shelves(
                catalogue.telling_shelves(), num_books, sources, targets))
    timings["edge_reasons_seconds"] = round(time.time() - started, 3)
    return edges


def write_table(path, table, **options):
    with fileio.atomic_write(path) as handle:
        pq.write_table(table, handle, compression="zstd", **options,
                       **artifacts.PARQUET_WRITE_OPTIONS)


def write_graph(out, meta, unit, valid, edges, counts, catalogue, args, timings):
    """The steps after the Beam job: edges.parquet with the reasons, nodes.parquet and
    communities.parquet with the map, and the graph files; `timings` gets each step's
    seconds. edges.parquet is written on a second thread while the map is made.
    Returns `(nodes, files, summary fields)`."""
    book_index = meta.column("book_index").to_numpy()[valid]
    sources, targets = (np.searchsorted(book_index, edges.column(end).to_numpy())
                        for end in ("source", "target"))
    nodes = catalogue_nodes(meta, valid, targets,
                            catalogue.columns if catalogue is not None else {})
    edges = add_edge_reasons(edges, counts, catalogue, nodes.num_rows, sources, targets, timings)
    graph = graph_files.GraphFiles(out, nodes, edges, args)
    with ThreadPoolExecutor(1) as pool:
        edges_file = pool.submit(write_table, fileio.join(out, artifacts.EDGES), edges,
                                 row_group_size=blocks.EDGE_ROW_GROUP)
        graph.start_edge_text(pool)
        nodes, groups = book_map.build_map(
            nodes, unit, sources, targets, edges.column("cosine").to_numpy().astype(np.float64),
            catalogue, args, timings)
        del sources, targets
        started = time.time()
        nodes_file = pool.submit(write_table, fileio.join(out, artifacts.NODES), nodes)
        write_table(fileio.join(out, artifacts.COMMUNITIES), groups)
        files, info = graph.write(nodes)
        edges_file.result()
        nodes_file.result()
    timings["graph_files_seconds"] = round(time.time() - started, 3)
    info["num_regions"] = int((groups.column("level").to_numpy(zero_copy_only=False)
                               == "region").sum())
    return nodes, files, info


# ---------------------------------------------------------------- entry point

def _formats(value):
    names = [v.strip() for v in value.split(",") if v.strip()]
    if names == ["none"]:
        return []
    bad = [v for v in names if v not in FORMATS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)} or 'none'")
    return names


def build_parser():
    parser = cli.ArgumentParser(
        prog="python -m graph_export.neighbors",
        description="Exact all-pairs top-k cosine neighbours of book embeddings "
                    "(Beam job) -> edges.parquet, nodes.parquet, graph.gexf, graph.json. "
                    "Unknown flags are passed to Beam (e.g. --runner=DataflowRunner).")
    parser.add_argument("--embeddings", required=True,
                        help="MODEL output directory holding book_embeddings.parquet "
                             "(or the parquet file itself); local or gs://")
    parser.add_argument("--output", required=True, help="GRAPH output directory")
    parser.add_argument("--catalog", help="PREPROCESS output directory the model was trained "
                                          "on: adds authors, ratings, genre and shelves to the "
                                          "books, names the map's regions from them and gives "
                                          "every edge its reasons (co-readers from the train "
                                          "pairs, shared authors and shelves)")
    parser.add_argument("--k", type=positive_int, default=10, help="neighbours per book (10)")
    parser.add_argument("--formats", type=_formats, default=list(FORMATS),
                        help="graph files to write: gexf,json (default both) or none")
    parser.add_argument("--max_graph_nodes", type=positive_int, default=MAX_GRAPH_NODES,
                        help="books in graph.gexf / graph.json (and in each --split_by "
                             "file): the most-read ones and the edges among them "
                             f"(default {MAX_GRAPH_NODES:,}, what Gephi and sigma.js "
                             "viewers open); edges/nodes.parquet always hold every book")
    parser.add_argument("--split_by", choices=["community"],
                        help="also write GRAPH/communities/part-NNNN.gexf: whole communities "
                             "packed into files of at most --max_graph_nodes books")
    parser.add_argument("--block_rows", type=positive_int, default=8192,
                        help="query books per Beam work item (one edge file each; 8192)")
    parser.add_argument("--kernel_rows", type=positive_int, default=topk.DEFAULT_BLOCK_ROWS,
                        help=f"query books per matrix product ({topk.DEFAULT_BLOCK_ROWS}; "
                             "memory ~ kernel_rows x (tile + N/chunk) floats per thread)")
    parser.add_argument("--tile", type=positive_int, default=topk.DEFAULT_TILE,
                        help=f"candidate rows per matrix product ({topk.DEFAULT_TILE})")
    parser.add_argument("--chunk", type=positive_int, default=topk.DEFAULT_CHUNK,
                        help=f"candidates summarised by one maximum ({topk.DEFAULT_CHUNK})")
    parser.add_argument("--threads", type=int, default=0,
                        help="kernel threads per worker process (0: every core when the "
                             "local runner runs in one process, the default; else 1)")
    parser.add_argument("--blas_threads", type=int, default=1,
                        help="OpenBLAS threads per kernel thread (1; 0: leave as is)")
    parser.add_argument("--seed", type=int, default=0, help="community/layout seed")
    parser.add_argument("--layout_max_nodes", type=positive_int, default=layout.LAYOUT_MAX_NODES,
                        help="most-read books laid out by t-SNE; the others are placed from "
                             f"their neighbours (default {layout.LAYOUT_MAX_NODES:,})")
    parser.add_argument("--louvain_max_nodes", type=int, default=layout.LOUVAIN_MAX_NODES,
                        help="above this many books use label propagation, not Louvain")
    return parser


def local_defaults(pipeline_args):
    """One local worker process unless --direct_num_workers is given: the kernel
    threads share one matrix there, while N processes each load the matrix,
    run BLAS threads that fight over the cores, and get the 13 blocks of 100k
    books unevenly (7 vs 6)."""
    if any(a.split("=", 1)[0] == "--direct_num_workers" for a in pipeline_args):
        return list(pipeline_args)
    return list(pipeline_args) + ["--direct_num_workers=1"]


def run(argv=None):
    """Runs the job; returns the summary dict (also written to summary.json)."""
    parser = build_parser()
    args, pipeline_args = config.parse_known_args(parser, argv)
    if args.tile % args.chunk:
        parser.error(f"--tile ({args.tile}) must be a multiple of --chunk ({args.chunk})")
    started = time.time()
    if args.blas_threads:
        # also for the launcher's own map step: OpenBLAS threads spin while they
        # wait, and on a loaded machine one per core made numpy steps far slower.
        topk.set_numpy_blas_threads(args.blas_threads)
    options = beam_runner.make_options(local_defaults(pipeline_args))
    dry_run = beam_runner.is_dry_run(options)
    emb_path = embeddings_path(args.embeddings)
    meta, matrix = load_embeddings(emb_path)
    unit, valid = topk.normalise_rows(matrix)
    catalogue, pair_files = None, []
    if args.catalog:
        catalogue = read_catalog(
            args.catalog, meta.column("book_index").to_numpy()[valid],
            meta.column("book_id").filter(pa.array(valid)).cast(pa.string()).to_pylist())
        pair_files = train_pair_files(args.catalog)
        if not pair_files:
            logging.warning("%s lists no train pairs (an older preprocess output?): the "
                            "edges get no co_readers", args.catalog)
    out = args.output

    # Books without a usable vector: listed, counted, left out.
    invalid = ~valid
    excluded = meta.filter(pa.array(invalid)).select(
        [c for c in ("book_index", "book_id", "title") if c in meta.column_names])
    has_nan = ~np.isfinite(matrix).all(axis=1) if matrix.size else invalid
    reasons = np.where(has_nan[invalid], "non-finite or missing vector", "zero vector")
    excluded = excluded.append_column("reason", pa.array(reasons.tolist(), pa.string()))
    dim = int(matrix.shape[1]) if matrix.ndim == 2 else 0
    del matrix
    unit = unit[valid] if not valid.all() else unit

    num_valid = int(valid.sum())
    k_eff = min(args.k, max(num_valid - 1, 0))
    block_list = blocks.block_ranges(num_valid, args.block_rows)
    book_index = meta.column("book_index").to_numpy()[valid]
    block_dir = fileio.join(
        out, f".blocks-{blocks.blocks_key(book_index, unit, args.k, args.block_rows)}")
    if not dry_run:
        fileio.makedirs(out)
        write_table(fileio.join(out, artifacts.EXCLUDED), excluded)
        if excluded.num_rows:
            logging.warning("%d of %d books have a zero or non-finite embedding and are left "
                            "out (see %s)", excluded.num_rows, len(valid),
                            fileio.join(out, artifacts.EXCLUDED))
        blocks.remove_other_block_dirs(out, block_dir)
        todo, reused = blocks.split_finished_blocks(block_dir, block_list, args.k, num_valid)
    else:
        todo, reused = block_list, []
    if reused:
        logging.info("reusing %d of %d blocks finished by an earlier run on the same "
                     "embeddings (%s)", len(reused), len(block_list), block_dir)
    threads = args.threads or blocks.default_threads(options)
    args.threads = threads
    key = (emb_path, args.tile, args.chunk)
    blocks._LAUNCHER_MATRICES[key] = blocks.CandidateMatrix(book_index, unit, args.tile,
                                                            args.chunk)
    counts_path = fileio.join(block_dir, CO_READERS_FILE)
    pipeline_started = time.time()
    try:
        if todo or pair_files:
            pipeline = beam_runner.make_pipeline(options)
            build_pipeline(
                pipeline, todo,
                blocks.TopKBlockFn(emb_path, block_dir, args.k, args.tile, args.chunk, threads,
                                   args.kernel_rows, args.blas_threads),
                pair_files, functools.partial(blocks.read_blocks, block_dir, block_list),
                k_eff, counts_path)
            ran, _ = beam_runner.run_pipeline(pipeline)
            if not ran:
                return {"dry_run": True}
    finally:
        del blocks._LAUNCHER_MATRICES[key]
    timings = {"pipeline_seconds": round(time.time() - pipeline_started, 3)}

    edges = blocks.read_blocks(block_dir, block_list)
    num_edges = edges.num_rows
    counts = co_readers.read_counts(counts_path, num_edges) if pair_files else None
    nodes, files, graph_info = write_graph(out, meta, unit, valid, edges, counts, catalogue,
                                           args, timings)
    fileio.remove_tree(block_dir)   # only now: edges.parquet is complete
    del unit, edges
    summary = {
        "embeddings": emb_path, "catalog": args.catalog, "k": args.k,
        "num_books_in": int(len(valid)), "num_nodes": num_valid,
        "num_excluded": int(excluded.num_rows), "num_edges": int(num_edges),
        "dim": dim, "num_blocks": len(block_list), "reused_blocks": len(reused),
        "block_rows": args.block_rows,
        "kernel_rows": args.kernel_rows, "threads": threads,
        "num_communities": int(nodes.column("community").to_numpy().max() + 1)
        if num_valid else 0,
        "co_readers_counted": counts is not None, "train_pair_files": len(pair_files),
        "files": [artifacts.EDGES, artifacts.NODES, artifacts.COMMUNITIES,
                  artifacts.EXCLUDED] + files,
        **graph_info, **timings,
        "total_seconds": round(time.time() - started, 3),
    }
    fileio.write_json(fileio.join(out, artifacts.GRAPH_SUMMARY), summary)
    logging.info("wrote %d nodes, %d edges, %d communities in %d regions to %s (graph files: "
                 "%s)", num_valid, num_edges, summary["num_communities"],
                 graph_info["num_regions"], out, graph_info["graph_file_cut"])
    return summary


if __name__ == "__main__":
    # Run the imported module, not __main__: Beam pickles the DoFn, and classes
    # of __main__ are pickled by value together with the globals they use --
    # here the launcher's matrix -- into the pipeline.
    from graph_export import neighbors
    main(neighbors.run, "python -m graph_export.neighbors")
