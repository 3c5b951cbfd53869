"""The artifact contract of docs/artifacts.md: every file name the stages exchange, the
parquet schemas of the catalogue, the embeddings, the edges and the nodes, the example
feature spec and where the vocabularies are. Each stage and test imports them from here
instead of re-typing them, so a writer and its readers cannot drift apart.

Also the one parquet reader (through FileSystems, so gs:// paths work).
"""
import contextlib

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline_common import fileio
from pipeline_common.entrypoint import UserError

# 0. Input, UCSD Goodreads Book Graph layout (each file plain or .gz).
INTERACTIONS_CSV = "goodreads_interactions.csv"
USER_ID_MAP = "user_id_map.csv"
BOOK_ID_MAP = "book_id_map.csv"
INTERACTIONS_DEDUP_JSON = "goodreads_interactions_dedup.json"
BOOKS_JSON = "goodreads_books.json"
AUTHORS_JSON = "goodreads_book_authors.json"
GENRES_JSON = "goodreads_book_genres_initial.json"

# 1. beam_jobs.preprocess --output PREP
# Version of the PREP contract (manifest keys, shard features, file list). Readers refuse
# another version with one line instead of failing later on a missing key or feature.
# 2: manifest["files"][split] lists every shard by name, "contract_version" present.
CONTRACT_VERSION = 2
SPLITS = ("train", "eval")
CATALOG = "book_catalog.parquet"
TRANSFORM_DIR = "transform_output"
TRANSFORM_FN = "transform_fn"  # the tf.Transform graph, in TRANSFORM_DIR
USER_VOCAB = "user_id_vocab"  # vocabulary files by name, in transform_fn/assets
BOOK_VOCAB = "book_id_vocab"
REJECTED_DIR = "rejected"
REJECTED_PREFIX = "rejected"  # rejected/rejected-SSSSS-of-NNNNN.jsonl
REJECTED_SUFFIX = ".jsonl"
MANIFEST = "manifest.json"
TRAIN_PAIRS_PREFIX = "train_pairs"   # manifest["files"]["train_pairs"] lists them
TRAIN_PAIRS_SCHEMA = pa.schema([("user_index", pa.int32()), ("book_index", pa.int32())])
# A book's shelves in the catalogue: its first popular_shelves as published, most-used first.
SHELF_TYPE = pa.list_(pa.struct([("name", pa.string()), ("count", pa.int64())]))
CATALOG_SCHEMA = pa.schema([
    ("book_index", pa.int64()), ("book_id", pa.string()), ("work_id", pa.string()),
    ("title", pa.string()), ("authors", pa.list_(pa.string())), ("ratings_count", pa.int64()),
    ("average_rating", pa.float64()), ("genre", pa.string()), ("num_interactions", pa.int64()),
    ("shelves", SHELF_TYPE)])

# 2. model.train --data PREP --output MODEL
BOOK_EMBEDDINGS = "book_embeddings.parquet"
BOOK_EMBEDDINGS_NPY = "book_embeddings.npy"
SAVED_MODEL_DIR = "saved_model"
METRICS_JSON = "metrics.json"
METRICS_PNG = "metrics.png"
PROJECTOR_DIR = "projector"
TRAINING_LOG = "training_log.json"
EMBEDDING_SCHEMA = pa.schema([("book_index", pa.int64()), ("book_id", pa.string()),
                              ("title", pa.string()), ("embedding", pa.list_(pa.float32()))])

# 3. graph_export.neighbors --output GRAPH
EDGES = "edges.parquet"
NODES = "nodes.parquet"
COMMUNITIES = "communities.parquet"
EXCLUDED = "excluded.parquet"
GRAPH_SUMMARY = "summary.json"
GRAPH_GEXF = "graph.gexf"
GRAPH_JSON = "graph.json"
GRAPH_NODELINK = "graph.nodelink.json"
# edges.parquet's columns; with --catalog, EDGE_REASONS_SCHEMA's follow.
EDGE_SCHEMA = pa.schema([("source", pa.int64()), ("target", pa.int64()),
                         ("rank", pa.int32()), ("cosine", pa.float32())])
EDGE_REASONS_SCHEMA = pa.schema([("co_readers", pa.int64()), ("shared_authors", pa.int32()),
                                 ("shared_shelves", pa.string())])
# nodes.parquet's columns, in order; the catalogue's (authors .. work_id) only with --catalog.
NODE_SCHEMA = pa.schema([
    ("book_index", pa.int64()), ("book_id", pa.string()), ("title", pa.string()),
    ("authors", pa.string()), ("ratings_count", pa.int64()), ("average_rating", pa.float64()),
    ("genre", pa.string()), ("num_interactions", pa.int64()), ("work_id", pa.string()),
    ("in_degree", pa.int64()), ("community", pa.int64()), ("community_name", pa.string()),
    ("region", pa.int64()), ("region_name", pa.string()), ("x", pa.float64()),
    ("y", pa.float64())])

# The features of every example in the train/eval shards: name -> "bytes" or "int64".
EXAMPLE_FEATURES = {
    "user_id": "bytes",     # 32-hex Goodreads user id
    "book_id": "bytes",     # Goodreads book id, decimal
    "user_index": "int64",  # 0 .. num_users-1
    "book_index": "int64",  # 0 .. num_books-1
    "rating": "int64",      # 1 .. 5 (>= --min_rating)
}


def shard_file(split, shard, num_shards):
    """Name of one example shard, e.g. train-00003-of-00016.tfrecord.gz."""
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord.gz"


def shard_files(split, num_shards):
    """Every shard name of one split, in order: what manifest["files"][split] lists."""
    return [shard_file(split, shard, num_shards) for shard in range(num_shards)]


def pairs_file(shard, num_shards):
    """Name of one partition's train (user_index, book_index) pairs, e.g.
    train_pairs-00003-of-00016.parquet: the same interactions as the train shard,
    columnar, for readers that need only the pairs (the graph's co-reader counts)."""
    return f"{TRAIN_PAIRS_PREFIX}-{shard:05d}-of-{num_shards:05d}.parquet"


def shard_pattern(split, num_shards=None):
    """Glob of a split's shards (of any count when num_shards is None)."""
    return f"{split}-*-of-{'*' if num_shards is None else f'{num_shards:05d}'}.tfrecord.gz"


def vocabulary_path(prep, name):
    """Path of a vocabulary file (USER_VOCAB or BOOK_VOCAB) in preprocess output `prep`:
    line i is the id of index i."""
    return fileio.join(prep, TRANSFORM_DIR, TRANSFORM_FN, "assets", name)


def example_feature_spec(names=None):
    """EXAMPLE_FEATURES (or those in `names`) as a `tf.io.parse_example` feature spec.

    TensorFlow is imported here, not at the top, so that readers of the file
    names (the graph writers, the Beam workers' light steps) do not load it.
    """
    import tensorflow as tf
    dtypes = {"bytes": tf.string, "int64": tf.int64}
    return {name: tf.io.FixedLenFeature([], dtypes[kind]) for name, kind in EXAMPLE_FEATURES.items()
            if names is None or name in names}


# Every parquet file a stage writes carries CRC32 page checksums, and every reader verifies
# them: a flipped byte in a data page is then an error, not silently different floats.
PARQUET_WRITE_OPTIONS = {"write_page_checksum": True}


class ArtifactError(UserError):
    """A stage's input file is missing, corrupt or truncated; the message names it."""


@contextlib.contextmanager
def parquet_errors(path):
    """Turns pyarrow's and the filesystem's read errors on `path` into one ArtifactError line."""
    try:
        yield
    except FileNotFoundError:
        raise ArtifactError(f"{path} does not exist: run the stage that writes it first") from None
    except (pa.ArrowException, OSError) as err:
        first = next((line for line in str(err).splitlines() if line.strip()), "")
        raise ArtifactError(f"{path} is corrupt or truncated, not a readable parquet file "
                            f"({first[:200]}); run the stage that wrote it again") from None


@contextlib.contextmanager
def parquet_file(path):
    """A `pyarrow.parquet.ParquetFile` on `path` (local or gs://), for metadata or batches.

    Errors while it is open (also from reading batches) become an ArtifactError.
    """
    with parquet_errors(path):
        if not fileio.exists(path):
            raise FileNotFoundError(path)
        with fileio.open_read(path, compressed=False) as handle:
            yield pq.ParquetFile(pa.PythonFile(handle, mode="r"), page_checksum_verification=True)


def read_parquet(path, columns=None, filters=None):
    """A parquet file (local or gs://) as a pyarrow Table, read through FileSystems.

    `columns` and `filters` are pyarrow's: only those columns, and with filters
    only the row groups and rows that match, are read. A missing, corrupt or
    truncated file is an ArtifactError that names it.
    """
    with parquet_errors(path):
        if not fileio.exists(path):
            raise FileNotFoundError(path)
        with fileio.open_read(path, compressed=False) as handle:
            return pq.read_table(pa.PythonFile(handle, mode="r"), columns=columns,
                                 filters=filters, page_checksum_verification=True)


def read_parquet_schema(path):
    """The schema of a parquet file (local or gs://); errors as for read_parquet."""
    with parquet_file(path) as parquet:
        return parquet.schema_arrow
