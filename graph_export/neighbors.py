"""Beam job: every book's k nearest books by cosine, written as a graph (parquet, GEXF, JSON).

    python -m graph_export.neighbors --embeddings MODEL --output GRAPH [--k 10] \
        [--catalog PREP] [--formats gexf,json] [--max_graph_nodes 100000] \
        [--split_by community] [any Beam option, e.g. --runner=DataflowRunner]

The all-pairs step runs in Beam: the books are cut into fixed blocks of
`--block_rows` query rows; each worker process holds the embedding matrix once
(`book_embeddings.parquet`, read through FileSystems so gs:// works) and, per
block, finds the exact top-k with `graph_export.topk` on `--threads` threads
and writes the block's edges to their own parquet file in the same step -- no
N x N matrix anywhere, memory per block bounded by the block size. The
launcher then reads the blocks in block order into one table and writes
`edges.parquet` (sorted by source, rank), so the result is the same on any
runner, worker count, thread count and block size. Block files live in `OUTPUT/.blocks-KEY/`,
KEY a hash of the vectors, k and the block size: a run that was killed reuses
the blocks an earlier run on the same inputs finished (`reused_blocks` in
`summary.json`).

Locally the job runs in one process (`--direct_num_workers=1` unless given)
whose kernel threads share the matrix the launcher already read: two worker
processes with their own matrices and default BLAS threads made the top-k
phase several times slower than the kernel (see graph_export/README.md).

Books whose vector is zero or non-finite have no cosine: they are listed in
`excluded.parquet`, counted in `summary.json`, and left out of the graph.
The graph-level steps (communities, layout, GEXF/JSON files) run in the launcher
after the pipeline (`write_graph`): the single-threaded communities and layout on
one thread while a second writes edges.parquet and makes the files' edge text;
see `graph_export.layout` and `graph_export.graph_files`.
"""
import argparse
import glob as globlib
import hashlib
import logging
import os
import posixpath
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils import shared

from graph_export import graph_files, layout, topk
from pipeline_common import artifacts, cli, fileio
from pipeline_common.cli import positive_int
from pipeline_common.entrypoint import main
from pipeline_common.beam_runner import is_local, make_options, make_pipeline
from pipeline_common import config

FORMATS = ("gexf", "json")
EDGE_SCHEMA = pa.schema([("source", pa.int64()), ("target", pa.int64()),
                         ("rank", pa.int32()), ("cosine", pa.float32())])
EDGE_ROW_GROUP = 1_000_000
MAX_GRAPH_NODES = 100_000


class InputError(ValueError):
    """An input file that is missing or does not follow docs/artifacts.md."""


# ---------------------------------------------------------------- inputs

def embeddings_path(path):
    """`path` itself if it names a parquet file, else `path/book_embeddings.parquet`."""
    return path if path.endswith(".parquet") else fileio.join(path, artifacts.BOOK_EMBEDDINGS)


def embedding_matrix(table, path=artifacts.BOOK_EMBEDDINGS):
    """The `embedding` column as float `[N, dim]`; null rows become NaN (excluded)."""
    column = table.column("embedding").combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            or pa.types.is_fixed_size_list(column.type)):
        raise InputError(f"{path}: column 'embedding' must be a list of floats, "
                         f"got {column.type}")
    n = len(column)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    lengths = column.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    nonnull = lengths[column.is_valid().to_numpy(zero_copy_only=False)]
    dim = int(nonnull.max()) if len(nonnull) else 0
    if len(nonnull) and (nonnull != dim).any():
        raise InputError(f"{path}: embeddings have different lengths "
                         f"({int(nonnull.min())}..{dim})")
    matrix = np.full((n, dim), np.nan, np.float32)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    valid &= lengths == dim
    values = column.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False)
    matrix[valid] = np.asarray(values, np.float32).reshape(-1, dim)
    return matrix


def load_embeddings(path, columns=None):
    """Reads and checks book_embeddings.parquet.

    Args:
      columns: columns to read besides `book_index` and `embedding` (None: all).

    Returns:
      `(table_without_embedding, matrix)`, rows sorted by book_index.
    """
    if columns is not None:
        columns = list(dict.fromkeys(["book_index", "embedding"] + list(columns)))
        schema = artifacts.read_parquet_schema(path)
        missing = set(columns) - set(schema.names)
        if missing:
            raise InputError(f"{path}: missing column(s) {sorted(missing)} "
                             "(see docs/artifacts.md section 2)")
    table = artifacts.read_parquet(path, columns)
    missing = {"book_index", "embedding"} | ({"book_id"} if columns is None else set())
    missing -= set(table.column_names)
    if missing:
        raise InputError(f"{path}: missing column(s) {sorted(missing)} "
                         "(see docs/artifacts.md section 2)")
    index = table.column("book_index").to_numpy()
    if len(index) and (np.diff(index) <= 0).any():
        order = np.argsort(index, kind="stable")
        if (np.diff(index[order]) == 0).any():
            raise InputError(f"{path}: duplicate book_index values")
        table = table.take(pa.array(order))
    matrix = embedding_matrix(table, path)
    return table.drop_columns(["embedding"]), matrix



class CandidateMatrix:
    """The unit-normalised valid rows and their book indices (a Shared object)."""

    def __init__(self, book_index, unit, tile, chunk):
        self.book_index = book_index
        self.index = topk.CandidateIndex(unit, tile=tile, chunk=chunk)

    @classmethod
    def load(cls, path, tile, chunk):
        table, matrix = load_embeddings(path, columns=[])
        book_index = table.column("book_index").to_numpy()
        del table
        unit, valid = topk.normalise_rows(matrix)
        del matrix
        return cls(book_index[valid], unit[valid] if not valid.all() else unit, tile, chunk)


# The launcher's own CandidateMatrix, keyed by (path, tile, chunk): with the
# local runner in one process (the default here) the DoFn finds the matrix the
# launcher already read and normalised instead of reading the parquet again;
# worker processes (multi_processing, Dataflow) do not see it and load their own.
_LAUNCHER_MATRICES = {}


def default_threads(options):
    """Kernel threads per worker process: every core when the local runner runs
    in one process (the default), else 1 (Dataflow and multi_processing start a
    process per core)."""
    if is_local(options) and options.view_as(DirectOptions).direct_num_workers == 1:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    return 1


# ---------------------------------------------------------------- the Beam step

class TopKBlockFn(beam.DoFn):
    """(start, stop) positions among the valid books -> `DIR/block-START.parquet`.

    One step from block to file, so the block's edge arrays are never Beam
    elements. Inside a block the kernel blocks of `kernel_rows` books run on
    `threads` Python threads (numpy releases the GIL in BLAS, max and
    partition) with OpenBLAS at 1 thread each -- the configuration
    `benchmarks/bench_neighbors.py` times as "the kernel". The matrix is loaded
    once per worker process (`Shared`).

    The blocks of a bundle do not wait for each other: `process` queues a
    block's kernel blocks behind the previous block's, a writer thread writes
    each block's file as soon as its kernel blocks are done, and
    `finish_bundle` waits for every file (then raises the first failure, if
    any) and outputs their paths. Waiting per block left a thread idle at the
    end of every block and the file writes between blocks (~1 s of 18 at 100k
    books).
    """

    def __init__(self, path, directory, k, tile, chunk, threads=1,
                 kernel_rows=topk.DEFAULT_BLOCK_ROWS, blas_threads=1):
        self._path, self._directory = path, directory
        self._k, self._tile, self._chunk = k, tile, chunk
        self._threads, self._kernel_rows = max(1, threads), kernel_rows
        self._blas_threads = blas_threads
        self._shared = shared.Shared()
        self._kernels = self._writer = None
        self._pending = []

    def setup(self):
        if self._blas_threads:
            topk.set_numpy_blas_threads(self._blas_threads)
        key = (self._path, self._tile, self._chunk)
        self._matrix = self._shared.acquire(
            lambda: _LAUNCHER_MATRICES.get(key) or CandidateMatrix.load(*key), tag=key)
        self._kernels = ThreadPoolExecutor(self._threads)
        self._writer = ThreadPoolExecutor(1)

    def teardown(self):
        for pool in (self._kernels, self._writer):
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def start_bundle(self):
        self._pending = []

    def process(self, block):
        start, stop = block
        parts = [self._kernels.submit(topk.topk_block, self._matrix.index,
                                      np.arange(lo, min(stop, lo + self._kernel_rows)),
                                      self._k)
                 for lo in range(start, stop, self._kernel_rows)]
        self._pending.append(self._writer.submit(self._write_block, start, stop, parts))
        return []

    def finish_bundle(self):
        pending, self._pending = self._pending, []
        futures.wait(pending)
        for written in pending:
            yield GlobalWindows.windowed_value(written.result())

    def _write_block(self, start, stop, parts):
        parts = [part.result() for part in parts]
        m = self._matrix
        neighbours = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        k_eff = neighbours.shape[1]
        table = pa.table({
            "source": np.repeat(m.book_index[start:stop], k_eff),
            "target": m.book_index[neighbours.ravel()],
            "rank": np.tile(np.arange(1, k_eff + 1, dtype=np.int32), stop - start),
            "cosine": scores.ravel(),
        }, schema=EDGE_SCHEMA)
        path = block_path(self._directory, start)
        with fileio.atomic_write(path) as handle:
            pq.write_table(table, handle, compression="zstd", **artifacts.PARQUET_WRITE_OPTIONS)
        return path


def block_path(directory, start):
    return fileio.join(directory, f"block-{start:012d}.parquet")


def block_ranges(n, block_rows):
    """Fixed [start, stop) blocks over n rows (independent of the worker count)."""
    return [(s, min(n, s + block_rows)) for s in range(0, n, block_rows)]


BLOCK_FORMAT = 1   # bump when a block file's content changes for the same inputs


def blocks_key(book_index, unit, k, block_rows):
    """Content hash of what a block file depends on: the unit vectors, their book
    indices, k and the block size (the results are exact, so not the tile/chunk/threads).

    A run killed part-way leaves `.blocks-KEY/`; the next run with the same key
    reuses its finished blocks, any other key means other inputs: removed.
    """
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.asarray([BLOCK_FORMAT, k, block_rows, len(book_index)], np.int64).tobytes())
    digest.update(np.ascontiguousarray(book_index, np.int64).tobytes())
    digest.update(np.ascontiguousarray(unit, np.float32).tobytes())
    return digest.hexdigest()


def remove_other_block_dirs(out, keep):
    """Removes block folders of runs on other inputs (they can never be reused)."""
    folders = {posixpath.dirname(p) for p in fileio.glob(fileio.join(out, ".blocks-*", "*"))}
    if "://" not in out:   # empty local folders too
        folders |= set(globlib.glob(os.path.join(out, ".blocks-*")))
    norm = (lambda path: path.rstrip("/")) if "://" in out else os.path.abspath
    for folder in folders:
        if norm(folder) != norm(keep):
            fileio.remove_tree(folder)


def split_finished_blocks(block_dir, blocks, k, num_valid):
    """(blocks still to compute, blocks already on disk) for `block_dir`.

    A block file exists only complete (written under a temporary name, then
    renamed); it is reused only if its parquet footer reads and holds the
    block's row count. Anything else is computed again.
    """
    k_eff = min(k, max(num_valid - 1, 0))
    todo, done = [], []
    for start, stop in blocks:
        path = block_path(block_dir, start)
        rows = -1
        if fileio.exists(path):
            try:
                with artifacts.parquet_file(path) as parquet:
                    rows = parquet.metadata.num_rows
            except artifacts.ArtifactError:   # unreadable: computed again
                pass
        (done if rows == (stop - start) * k_eff else todo).append((start, stop))
    return todo, done


def read_blocks(block_dir, blocks):
    """The block files' edges in block order: every edge, sorted by source, rank."""
    tables = []
    for start, _ in blocks:
        path = block_path(block_dir, start)
        if not fileio.exists(path):
            raise RuntimeError(f"block file {path} is missing: the pipeline did not "
                               "finish every block")
        tables.append(pq.read_table(pa.BufferReader(fileio.read_bytes(path))))
    return pa.concat_tables(tables) if tables else EDGE_SCHEMA.empty_table()


def write_edges(path, edges):
    with fileio.atomic_write(path) as handle:
        pq.write_table(edges, handle, row_group_size=EDGE_ROW_GROUP, compression="zstd",
                       **artifacts.PARQUET_WRITE_OPTIONS)


# ---------------------------------------------------------------- graph files

def read_catalog(path, book_index, book_ids=None):
    """Catalogue columns for the given books (rows aligned with book_index).

    Raises InputError when the catalogue's book_id for a book_index differs
    from the embeddings' (a catalogue from another preprocess run).
    """
    if not path.endswith(".parquet"):
        path = fileio.join(path, artifacts.CATALOG)
    table = artifacts.read_parquet(path)
    if "book_index" not in table.column_names:
        raise InputError(f"{path}: missing column 'book_index'")
    cat = table.to_pandas()
    cat = cat.set_index("book_index")
    columns = {}
    present = cat.reindex(book_index)
    if book_ids is not None and "book_id" in present:
        theirs = present["book_id"].astype("string").to_numpy(na_value=None)
        wrong = [(int(b), t, o) for b, t, o in zip(book_index, theirs, book_ids)
                 if t is not None and t != o]
        if wrong:
            b, t, o = wrong[0]
            raise InputError(f"{path} does not match the embeddings: {len(wrong)} books differ, "
                             f"e.g. book_index {b} is book_id {t} there but {o} in the "
                             "embeddings (use the catalogue of the same preprocess run)")
    if "authors" in present:
        columns["authors"] = [", ".join(str(a) for a in v) if isinstance(v, (list, np.ndarray))
                              else (None if v is None or v != v else str(v))
                              for v in present["authors"]]
    for name, dtype in (("ratings_count", "Int64"), ("average_rating", "Float64"),
                        ("genre", "string"), ("num_interactions", "Int64"),
                        ("work_id", "string")):
        if name in present:
            columns[name] = present[name].astype(dtype).to_numpy(na_value=None).tolist()
    return columns


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
    types = {"authors": pa.string(), "ratings_count": pa.int64(),
             "average_rating": pa.float64(), "genre": pa.string(),
             "num_interactions": pa.int64(), "work_id": pa.string()}
    for name, values in catalog_columns.items():
        columns[name] = pa.array(values, type=types[name])
    columns["in_degree"] = pa.array(np.bincount(targets, minlength=n).astype(np.int64))
    return pa.table(columns)


def add_map(nodes, unit, sources, targets, weights, seed, louvain_max_nodes, timings):
    """`nodes` plus community, x and y (see `graph_export.layout`) from the edges
    (`sources`, `targets`: rows of `nodes`; float64 `weights`); `unit` holds the
    valid books' unit vectors; `timings` gets the two steps' seconds."""
    started = time.time()
    communities = layout.detect_communities(nodes.num_rows, sources, targets, weights,
                                            seed=seed, louvain_max_nodes=louvain_max_nodes)
    timings["communities_seconds"] = round(time.time() - started, 3)
    started = time.time()
    positions = layout.compute_positions(unit, communities, sources, targets, weights,
                                         seed=seed)
    timings["layout_seconds"] = round(time.time() - started, 3)
    return (nodes.append_column("community", pa.array(communities.astype(np.int64)))
            .append_column("x", pa.array(positions[:, 0]))
            .append_column("y", pa.array(positions[:, 1])))


def graph_file_styles(formats):
    """(file name, text style) of each graph file that `formats` asks for."""
    names = {"gexf": [artifacts.GRAPH_GEXF],
             "json": [artifacts.GRAPH_JSON, artifacts.GRAPH_NODELINK]}
    return [(name, graph_files.FILE_STYLES[name]) for f in formats for name in names[f]]


class GraphFiles:
    """graph.gexf / graph.json / graph.nodelink.json, cut to --max_graph_nodes.

    The edge text does not depend on the map, so `start_edge_text` makes it on
    a background thread while the launcher computes communities and layout
    (single-threaded), and `write` only adds the nodes: at 100k books the three
    files then take ~1 s after the layout instead of ~2.5 s. Held in memory:
    ~300 bytes per edge for the three files, so only up to
    `PRERENDER_MAX_EDGES` edges; above that the text is made while writing.
    """

    PRERENDER_MAX_EDGES = 2_000_000

    def __init__(self, out, nodes, edges, args):
        self.out, self.edges, self.args = out, edges, args
        self.rows, self.by = graph_files.most_read(nodes, args.max_graph_nodes)
        book_index = nodes.column("book_index").to_numpy()
        self.keep = (None if len(self.rows) == nodes.num_rows
                     else graph_files.membership(book_index, self.rows))
        self.styles = graph_file_styles(args.formats)
        if self.keep is None:
            self.num_edges = edges.num_rows
        else:
            self.num_edges = int(np.count_nonzero(
                self.keep[edges.column("source").to_numpy()]
                & self.keep[edges.column("target").to_numpy()]))
        self.cut = graph_files.cut_text(len(self.rows), nodes.num_rows, self.by,
                                        args.max_graph_nodes)
        self._pending = None
        self.edge_text_seconds = None

    def start_edge_text(self, pool):
        """Makes every file's edge text on `pool` (if small enough to hold)."""
        if self.styles and self.num_edges <= self.PRERENDER_MAX_EDGES:
            self._pending = pool.submit(self._edge_text)

    def _edge_text(self):
        started = time.time()
        text = {style: list(graph_files.edge_rows(self.edges, self.keep, style))
                for _, style in self.styles}
        self.edge_text_seconds = round(time.time() - started, 3)
        return text

    def write(self, nodes):
        """Writes the files (one thread each; Arrow's kernels and the writes
        release the GIL) and the community pieces. Returns `(files, summary fields)`."""
        args = self.args
        description = (f"Goodreads books: each book -> its {args.k} nearest books by cosine "
                       "of the model's book embeddings")
        info = {"graph_file_nodes": len(self.rows), "graph_file_cut": self.cut,
                "max_graph_nodes": args.max_graph_nodes}
        made = self._pending.result() if self._pending else {}
        if self.edge_text_seconds is not None:
            info["edge_text_seconds"] = self.edge_text_seconds
        files = []
        if self.styles:
            kept = nodes if len(self.rows) == nodes.num_rows else nodes.take(self.rows)
            text = graph_files.NodeText(kept)
            headers = {"gexf": f"{description}. This file: {self.cut}"}
            headers["graphology"] = headers["nodelink"] = {
                "name": "Goodreads book neighbours", "description": description,
                "cut": self.cut, "num_books": nodes.num_rows, "num_books_in_file": len(self.rows)}
            with ThreadPoolExecutor(len(self.styles)) as pool:
                written = [pool.submit(
                    graph_files.write_graph_file, fileio.join(self.out, name), style, text,
                    made[style] if style in made
                    else graph_files.edge_rows(self.edges, self.keep, style),
                    headers[style]) for name, style in self.styles]
                info["graph_file_edges"] = [w.result() for w in written][0]
            files = [name for name, _ in self.styles]
        if args.split_by == "community":
            pieces = graph_files.write_community_pieces(
                fileio.join(self.out, "communities"), nodes, self.edges,
                args.max_graph_nodes, description)
            info["community_files"] = pieces
            files += [f"communities/{p['file']}" for p in pieces]
        return files, info


def write_nodes(path, nodes):
    with fileio.atomic_write(path) as handle:
        pq.write_table(nodes, handle, compression="zstd", **artifacts.PARQUET_WRITE_OPTIONS)


def write_graph(out, meta, unit, valid, edges, catalog_columns, args, timings):
    """The steps after the Beam job: edges.parquet, nodes.parquet with the map
    (communities, layout) and the graph files; `timings` gets each step's seconds.

    The single-threaded communities and layout run here while a second thread
    writes edges.parquet and makes the graph files' edge text (`GraphFiles`).
    Returns `(nodes, files, summary fields)`.
    """
    book_index = meta.column("book_index").to_numpy()[valid]
    sources, targets = (np.searchsorted(book_index, edges.column(end).to_numpy())
                        for end in ("source", "target"))
    nodes = catalogue_nodes(meta, valid, targets, catalog_columns)
    graph = GraphFiles(out, nodes, edges, args)
    with ThreadPoolExecutor(1) as pool:
        edges_file = pool.submit(write_edges, fileio.join(out, artifacts.EDGES), edges)
        graph.start_edge_text(pool)
        nodes = add_map(nodes, unit, sources, targets,
                        edges.column("cosine").to_numpy().astype(np.float64), args.seed,
                        args.louvain_max_nodes, timings)
        del sources, targets
        started = time.time()
        nodes_file = pool.submit(write_nodes, fileio.join(out, artifacts.NODES), nodes)
        files, info = graph.write(nodes)
        edges_file.result()
        nodes_file.result()
    timings["graph_files_seconds"] = round(time.time() - started, 3)
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
    parser.add_argument("--catalog", help="PREPROCESS output directory (book_catalog.parquet) "
                                          "to add authors, ratings and genre")
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
        # also for the launcher's own layout step: OpenBLAS threads spin while
        # they wait, and on a loaded machine its default (one per core) made
        # the per-community PCAs of 60k books 8x slower (83 s vs 11 s).
        topk.set_numpy_blas_threads(args.blas_threads)
    emb_path = embeddings_path(args.embeddings)
    try:
        meta, matrix = load_embeddings(emb_path)
        unit, valid = topk.normalise_rows(matrix)
        catalog_columns = {}
        if args.catalog:
            catalog_columns = read_catalog(
                args.catalog, meta.column("book_index").to_numpy()[valid],
                meta.column("book_id").filter(pa.array(valid)).cast(pa.string()).to_pylist())
    except (InputError, artifacts.ArtifactError) as err:
        parser.error(str(err))
    out = args.output
    fileio.makedirs(out)

    # Books without a usable vector: listed, counted, left out.
    invalid = ~valid
    excluded = meta.filter(pa.array(invalid)).select(
        [c for c in ("book_index", "book_id", "title") if c in meta.column_names])
    has_nan = ~np.isfinite(matrix).all(axis=1) if matrix.size else invalid
    reasons = np.where(has_nan[invalid], "non-finite or missing vector", "zero vector")
    excluded = excluded.append_column("reason", pa.array(reasons.tolist(), pa.string()))
    with fileio.atomic_write(fileio.join(out, artifacts.EXCLUDED)) as handle:
        pq.write_table(excluded, handle, **artifacts.PARQUET_WRITE_OPTIONS)
    if excluded.num_rows:
        logging.warning("%d of %d books have a zero or non-finite embedding and are left "
                        "out (see %s)", excluded.num_rows, len(valid),
                        fileio.join(out, artifacts.EXCLUDED))
    dim = int(matrix.shape[1]) if matrix.ndim == 2 else 0
    del matrix
    unit = unit[valid] if not valid.all() else unit

    num_valid = int(valid.sum())
    blocks = block_ranges(num_valid, args.block_rows)
    book_index = meta.column("book_index").to_numpy()[valid]
    block_dir = fileio.join(out, f".blocks-{blocks_key(book_index, unit, args.k, args.block_rows)}")
    remove_other_block_dirs(out, block_dir)
    todo, reused = split_finished_blocks(block_dir, blocks, args.k, num_valid)
    if reused:
        logging.info("reusing %d of %d blocks finished by an earlier run on the same "
                     "embeddings (%s)", len(reused), len(blocks), block_dir)
    options = make_options(local_defaults(pipeline_args))
    threads = args.threads or default_threads(options)
    key = (emb_path, args.tile, args.chunk)
    _LAUNCHER_MATRICES[key] = CandidateMatrix(book_index, unit, args.tile, args.chunk)
    pipeline_started = time.time()
    try:
        if todo:
            with make_pipeline(options) as pipeline:
                _ = (pipeline
                     | "Blocks" >> beam.Create(todo)
                     | "Spread" >> beam.Reshuffle()
                     | "TopK" >> beam.ParDo(TopKBlockFn(emb_path, block_dir, args.k, args.tile,
                                                        args.chunk, threads, args.kernel_rows,
                                                        args.blas_threads)))
    finally:
        del _LAUNCHER_MATRICES[key]
    timings = {"topk_seconds": round(time.time() - pipeline_started, 3)}

    edges = read_blocks(block_dir, blocks)
    num_edges = edges.num_rows
    nodes, files, graph_info = write_graph(out, meta, unit, valid, edges, catalog_columns,
                                           args, timings)
    fileio.remove_tree(block_dir)   # only now: edges.parquet is complete
    del unit, edges
    summary = {
        "embeddings": emb_path, "catalog": args.catalog, "k": args.k,
        "num_books_in": int(len(valid)), "num_nodes": num_valid,
        "num_excluded": int(excluded.num_rows), "num_edges": int(num_edges),
        "dim": dim, "num_blocks": len(blocks), "reused_blocks": len(reused),
        "block_rows": args.block_rows,
        "kernel_rows": args.kernel_rows, "threads": threads,
        "num_communities": int(nodes.column("community").to_numpy().max() + 1)
        if num_valid else 0,
        "files": [artifacts.EDGES, artifacts.NODES, artifacts.EXCLUDED] + files,
        **graph_info, **timings,
        "total_seconds": round(time.time() - started, 3),
    }
    fileio.write_json(fileio.join(out, artifacts.GRAPH_SUMMARY), summary)
    logging.info("wrote %d nodes, %d edges to %s (graph files: %s)", num_valid, num_edges,
                 out, graph_info["graph_file_cut"])
    return summary


if __name__ == "__main__":
    # Run the imported module, not __main__: Beam pickles the DoFn, and classes
    # of __main__ are pickled by value together with the globals they use --
    # here the launcher's matrix -- into the pipeline (measured at 100k books:
    # ~4 minutes before the first block on the loaded machine).
    from graph_export import neighbors
    main(neighbors.run, "python -m graph_export.neighbors")
