"""Beam job: every book's k nearest books by cosine, written as a graph (parquet, GEXF, JSON).

    python -m graph_export.neighbors --embeddings MODEL --output GRAPH [--k 10] \
        [--catalog PREP] [--formats gexf,json] [any Beam option, e.g. --runner=DataflowRunner]

The all-pairs step runs in Beam: the books are cut into fixed blocks of
`--block_rows` query rows; each worker loads the embedding matrix once
(`book_embeddings.parquet`, read through FileSystems so gs:// works) and, per
block, finds the exact top-k with `graph_export.topk` -- no N x N matrix
anywhere, memory per block bounded by the block size. Each block's edges go to
their own parquet file; the launcher then concatenates the blocks in block
order into `edges.parquet` (sorted by source, rank), so the result is the same
on any runner and any number of workers.

Books whose vector is zero or non-finite have no cosine: they are listed in
`excluded.parquet`, counted in `summary.json`, and left out of the graph.
The graph-level steps (communities, layout, GEXF/JSON files) run in the launcher
after the pipeline; see `graph_export.layout` for how they scale.
"""
import argparse
import logging
import time
import uuid

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.utils import shared

from graph_export import layout, topk
from graph_export.gexf_writer import GexfWriter, token
from graph_export.json_writer import EdgeBatch, write_graphology, write_nodelink
from pipeline_common.cli import positive_int
from pipeline_common import fileio
from pipeline_common.beam_runner import make_options, make_pipeline
from pipeline_common import config

EMBEDDINGS_FILE = "book_embeddings.parquet"
CATALOG_FILE = "book_catalog.parquet"
FORMATS = ("gexf", "json")
EDGE_SCHEMA = pa.schema([("source", pa.int64()), ("target", pa.int64()),
                         ("rank", pa.int32()), ("cosine", pa.float32())])
EDGE_ROW_GROUP = 1_000_000


class InputError(ValueError):
    """An input file that is missing or does not follow docs/artifacts.md."""


# ---------------------------------------------------------------- inputs

def embeddings_path(path):
    """`path` itself if it names a parquet file, else `path/book_embeddings.parquet`."""
    return path if path.endswith(".parquet") else fileio.join(path, EMBEDDINGS_FILE)


def read_parquet(path, columns=None):
    """A parquet file (local or gs://) as a pyarrow Table, read through FileSystems."""
    if not fileio.exists(path):
        raise InputError(f"{path} does not exist")
    try:
        with fileio.open_read(path, compressed=False) as handle:
            return pq.read_table(handle, columns=columns)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{path} is not a readable parquet file: {err}") from None


def embedding_matrix(table, path="book_embeddings.parquet"):
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
        schema = _schema(path)
        missing = set(columns) - set(schema.names)
        if missing:
            raise InputError(f"{path}: missing column(s) {sorted(missing)} "
                             "(see docs/artifacts.md section 2)")
    table = read_parquet(path, columns)
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


def _schema(path):
    if not fileio.exists(path):
        raise InputError(f"{path} does not exist")
    try:
        with fileio.open_read(path, compressed=False) as handle:
            return pq.read_schema(handle)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{path} is not a readable parquet file: {err}") from None


class CandidateMatrix:
    """The unit-normalised valid rows and their book indices (a Shared object)."""

    def __init__(self, path, tile, chunk):
        table, matrix = load_embeddings(path, columns=[])
        book_index = table.column("book_index").to_numpy()
        del table
        unit, valid = topk.normalise_rows(matrix)
        del matrix
        self.book_index = book_index[valid]
        unit = unit[valid] if not valid.all() else unit
        self.index = topk.CandidateIndex(unit, tile=tile, chunk=chunk)


# ---------------------------------------------------------------- the Beam steps

class TopKBlockFn(beam.DoFn):
    """(start, stop) positions among the valid books -> that block's top-k edges.

    The matrix is loaded once per worker process and shared by its threads.
    """

    def __init__(self, path, k, tile, chunk, blas_threads=0,
                 kernel_rows=topk.DEFAULT_BLOCK_ROWS):
        self._path, self._k, self._tile, self._chunk = path, k, tile, chunk
        self._kernel_rows = kernel_rows
        self._blas_threads = blas_threads
        self._shared = shared.Shared()

    def setup(self):
        if self._blas_threads:
            topk.set_numpy_blas_threads(self._blas_threads)
        self._matrix = self._shared.acquire(
            lambda: CandidateMatrix(self._path, self._tile, self._chunk),
            tag=(self._path, self._tile, self._chunk))

    def process(self, block):
        start, stop = block
        m = self._matrix
        parts = [topk.topk_block(m.index, np.arange(lo, min(stop, lo + self._kernel_rows)),
                                 self._k)
                 for lo in range(start, stop, self._kernel_rows)]
        neighbours = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        k_eff = neighbours.shape[1]
        yield start, {
            "source": np.repeat(m.book_index[start:stop], k_eff),
            "target": m.book_index[neighbours.ravel()],
            "rank": np.tile(np.arange(1, k_eff + 1, dtype=np.int32), stop - start),
            "cosine": scores.ravel(),
        }


class WriteBlockFn(beam.DoFn):
    """Writes one block's edges to `DIR/block-START.parquet` (atomically)."""

    def __init__(self, directory):
        self._directory = directory

    def process(self, element):
        start, columns = element
        table = pa.table(columns, schema=EDGE_SCHEMA)
        path = fileio.join(self._directory, f"block-{start:012d}.parquet")
        with fileio.atomic_write(path) as handle:
            pq.write_table(table, handle, compression="zstd")
        yield path


def block_ranges(n, block_rows):
    """Fixed [start, stop) blocks over n rows (independent of the worker count)."""
    return [(s, min(n, s + block_rows)) for s in range(0, n, block_rows)]


def assemble_edges(block_dir, blocks, out_path):
    """Concatenates the block files in block order into one sorted edges.parquet."""
    num_edges = 0
    with fileio.atomic_write(out_path) as handle:
        with pq.ParquetWriter(handle, EDGE_SCHEMA, compression="zstd") as writer:
            pending = []
            for start, _ in blocks:
                path = fileio.join(block_dir, f"block-{start:012d}.parquet")
                if not fileio.exists(path):
                    raise RuntimeError(f"block file {path} is missing: the pipeline "
                                       "did not finish every block")
                table = pq.read_table(pa.BufferReader(fileio.read_bytes(path)))
                pending.append(table)
                num_edges += table.num_rows
                if sum(t.num_rows for t in pending) >= EDGE_ROW_GROUP:
                    writer.write_table(pa.concat_tables(pending), EDGE_ROW_GROUP)
                    pending = []
            if pending or num_edges == 0:
                writer.write_table(pa.concat_tables(pending) if pending
                                   else EDGE_SCHEMA.empty_table(), EDGE_ROW_GROUP)
    return num_edges


# ---------------------------------------------------------------- graph files

def read_catalog(path, book_index, book_ids=None):
    """Catalogue columns for the given books (rows aligned with book_index).

    Raises InputError when the catalogue's book_id for a book_index differs
    from the embeddings' (a catalogue from another preprocess run).
    """
    if not path.endswith(".parquet"):
        path = fileio.join(path, CATALOG_FILE)
    table = read_parquet(path)
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


def build_nodes(meta, matrix, valid, edges, catalog_columns, seed, louvain_max_nodes):
    """nodes.parquet table: the valid books with catalogue columns, in-degree, layout."""
    book_index = meta.column("book_index").to_numpy()[valid]
    n = len(book_index)
    src = np.searchsorted(book_index, edges.column("source").to_numpy())
    tgt = np.searchsorted(book_index, edges.column("target").to_numpy())
    weights = edges.column("cosine").to_numpy().astype(np.float64)
    in_degree = np.bincount(tgt, minlength=n).astype(np.int64)
    communities = layout.detect_communities(n, src, tgt, weights, seed=seed,
                                            louvain_max_nodes=louvain_max_nodes)
    unit, _ = topk.normalise_rows(matrix[valid])
    positions = layout.compute_positions(unit, communities, src, tgt, weights, seed=seed)
    columns = {
        "book_index": book_index.astype(np.int64),
        "book_id": meta.column("book_id").filter(pa.array(valid)).cast(pa.string()),
        "title": (meta.column("title").filter(pa.array(valid)).cast(pa.string())
                  if "title" in meta.column_names else pa.nulls(n, pa.string())),
    }
    for name, values in catalog_columns.items():
        columns[name] = values
    columns.update(in_degree=in_degree, community=communities.astype(np.int64),
                   x=positions[:, 0], y=positions[:, 1])
    types = {"authors": pa.string(), "ratings_count": pa.int64(),
             "average_rating": pa.float64(), "genre": pa.string(),
             "num_interactions": pa.int64(), "work_id": pa.string()}
    arrays = {name: (pa.array(v, type=types[name]) if name in types else v)
              for name, v in columns.items()}
    return pa.table(arrays)


GEXF_NODE_TYPES = {"book_id": "string", "authors": "string", "ratings_count": "integer",
                   "average_rating": "double", "genre": "string",
                   "num_interactions": "long", "in_degree": "integer",
                   "community": "string"}


def graph_records(nodes):
    """Per-node (key, label, attributes, colour, position, size) for the writers."""
    communities = nodes.column("community").to_numpy()
    colours = layout.community_colours(communities)
    names = [n for n in GEXF_NODE_TYPES if n in nodes.column_names]
    popularity = (nodes.column("ratings_count").to_numpy(zero_copy_only=False)
                  if "ratings_count" in nodes.column_names
                  else nodes.column("in_degree").to_numpy())
    popularity = np.array([0 if v is None else v for v in popularity], np.float64)
    sizes = layout.node_sizes(popularity)
    cols = {n: nodes.column(n).to_pylist() for n in names}
    keys = nodes.column("book_index").to_pylist()
    titles = nodes.column("title").to_pylist()
    xs, ys = nodes.column("x").to_pylist(), nodes.column("y").to_pylist()
    for i, key in enumerate(keys):
        attrs = {n: cols[n][i] for n in names}
        attrs["community"] = str(attrs["community"])
        label = token(titles[i]) if titles[i] is not None else str(key)
        yield (str(key), label, attrs,
               tuple(int(c) for c in colours[communities[i]]), (xs[i], ys[i]), sizes[i])


def _edge_batches(edges_path):
    """(sources, targets, ranks, cosines) python lists, 100k edges at a time."""
    with fileio.open_read(edges_path, compressed=False) as handle:
        parquet = pq.ParquetFile(handle)
        for batch in parquet.iter_batches(batch_size=100_000):
            cosine = np.round(batch.column("cosine").to_numpy().astype(np.float64), 6)
            yield (batch.column("source").to_pylist(), batch.column("target").to_pylist(),
                   batch.column("rank").to_pylist(), cosine.tolist())


def write_gexf(path, nodes, edges_path, description):
    """Streams graph.gexf: nodes from the table, edges batch by batch."""
    node_types = [(n, t) for n, t in GEXF_NODE_TYPES.items() if n in nodes.column_names]
    with fileio.atomic_write(path) as handle:
        writer = GexfWriter(handle, node_types, [("rank", "integer")], directed=True,
                            description=description)
        writer.start_nodes()
        for key, label, attrs, colour, position, size in graph_records(nodes):
            writer.node(key, label, attrs, colour, position, size)
        writer.start_edges()
        for sources, targets, ranks, cosines in _edge_batches(edges_path):
            writer.edge_batch(writer.edges_written, sources, targets, cosines, {"rank": ranks})
        writer.close()
    return writer.edges_written


def _json_nodes(nodes):
    for key, label, attrs, colour, position, size in graph_records(nodes):
        yield key, dict(label=label, x=position[0], y=position[1], size=size,
                        color="#%02x%02x%02x" % colour, **attrs)


def _json_edges(edges_path):
    for sources, targets, ranks, cosines in _edge_batches(edges_path):
        yield EdgeBatch(sources, targets, {"weight": cosines, "rank": ranks})


def write_json_files(out_dir, nodes, edges_path, attributes):
    with fileio.atomic_write(fileio.join(out_dir, "graph.json")) as handle:
        counts = write_graphology(handle, _json_nodes(nodes), _json_edges(edges_path),
                                  attributes)
    with fileio.atomic_write(fileio.join(out_dir, "graph.nodelink.json")) as handle:
        write_nodelink(handle, _json_nodes(nodes), _json_edges(edges_path), attributes)
    return counts


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
    parser = argparse.ArgumentParser(
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
    parser.add_argument("--block_rows", type=positive_int, default=8192,
                        help="query books per Beam work item (one edge file each)")
    parser.add_argument("--kernel_rows", type=positive_int, default=topk.DEFAULT_BLOCK_ROWS,
                        help="query books per matrix product (memory ~ kernel_rows x "
                             "(tile + N/chunk) floats)")
    parser.add_argument("--tile", type=positive_int, default=topk.DEFAULT_TILE,
                        help="candidate rows per matrix product")
    parser.add_argument("--chunk", type=positive_int, default=topk.DEFAULT_CHUNK,
                        help="candidates summarised by one maximum")
    parser.add_argument("--blas_threads", type=int, default=0,
                        help="BLAS threads per worker process (0: leave as is). Beam "
                             "runs one process per core, so 1 is best on Dataflow")
    parser.add_argument("--seed", type=int, default=0, help="community/layout seed")
    parser.add_argument("--louvain_max_nodes", type=int, default=layout.LOUVAIN_MAX_NODES,
                        help="above this many books use label propagation, not Louvain")
    return parser


def run(argv=None):
    """Runs the job; returns the summary dict (also written to summary.json)."""
    parser = build_parser()
    args, pipeline_args = config.parse_known_args(parser, argv)
    if args.tile % args.chunk:
        parser.error(f"--tile ({args.tile}) must be a multiple of --chunk ({args.chunk})")
    started = time.time()
    emb_path = embeddings_path(args.embeddings)
    try:
        meta, matrix = load_embeddings(emb_path)
        valid = topk.normalise_rows(matrix)[1]
        catalog_columns = {}
        if args.catalog:
            catalog_columns = read_catalog(
                args.catalog, meta.column("book_index").to_numpy()[valid],
                meta.column("book_id").filter(pa.array(valid)).cast(pa.string()).to_pylist())
    except InputError as err:
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
    with fileio.atomic_write(fileio.join(out, "excluded.parquet")) as handle:
        pq.write_table(excluded, handle)
    if excluded.num_rows:
        logging.warning("%d of %d books have a zero or non-finite embedding and are left "
                        "out (see %s)", excluded.num_rows, len(valid),
                        fileio.join(out, "excluded.parquet"))

    num_valid = int(valid.sum())
    blocks = block_ranges(num_valid, args.block_rows)
    block_dir = fileio.join(out, f".blocks-{uuid.uuid4().hex[:8]}")
    options = make_options(pipeline_args)
    with make_pipeline(options) as pipeline:
        _ = (pipeline
             | "Blocks" >> beam.Create(blocks)
             | "Spread" >> beam.Reshuffle()
             | "TopK" >> beam.ParDo(TopKBlockFn(emb_path, args.k, args.tile, args.chunk,
                                                   args.blas_threads, args.kernel_rows))
             | "WriteBlocks" >> beam.ParDo(WriteBlockFn(block_dir)))
    topk_seconds = time.time() - started

    edges_path = fileio.join(out, "edges.parquet")
    num_edges = assemble_edges(block_dir, blocks, edges_path)
    leftovers = fileio.glob(fileio.join(block_dir, "*"))
    if leftovers:
        FileSystems.delete(leftovers)
    if "://" not in block_dir and fileio.exists(block_dir):
        FileSystems.delete([block_dir])

    edges = read_parquet(edges_path)
    nodes = build_nodes(meta, matrix, valid, edges, catalog_columns, args.seed,
                        args.louvain_max_nodes)
    del edges
    with fileio.atomic_write(fileio.join(out, "nodes.parquet")) as handle:
        pq.write_table(nodes, handle, compression="zstd")

    description = (f"Goodreads books: each book -> its {args.k} nearest books by cosine "
                   "of the model's book embeddings")
    files = ["edges.parquet", "nodes.parquet", "excluded.parquet"]
    if "gexf" in args.formats:
        write_gexf(fileio.join(out, "graph.gexf"), nodes, edges_path, description)
        files.append("graph.gexf")
    if "json" in args.formats:
        write_json_files(out, nodes, edges_path,
                         {"name": "Goodreads book neighbours", "description": description})
        files += ["graph.json", "graph.nodelink.json"]

    summary = {
        "embeddings": emb_path, "catalog": args.catalog, "k": args.k,
        "num_books_in": int(len(valid)), "num_nodes": num_valid,
        "num_excluded": int(excluded.num_rows), "num_edges": int(num_edges),
        "dim": int(matrix.shape[1]) if matrix.ndim == 2 else 0,
        "num_blocks": len(blocks), "block_rows": args.block_rows,
        "kernel_rows": args.kernel_rows,
        "num_communities": int(nodes.column("community").to_numpy().max() + 1)
        if num_valid else 0,
        "files": files, "topk_seconds": round(topk_seconds, 3),
        "total_seconds": round(time.time() - started, 3),
    }
    fileio.write_json(fileio.join(out, "summary.json"), summary)
    logging.info("wrote %d nodes, %d edges to %s", num_valid, num_edges, out)
    return summary


if __name__ == "__main__":
    from pipeline_common.logs import configure_logging
    configure_logging()
    run()
