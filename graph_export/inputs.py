"""The neighbours job's inputs: book_embeddings.parquet (the model's) and book_catalog.parquet
(the preprocess run's), read through FileSystems and checked against docs/artifacts.md.
"""
import numpy as np
import pyarrow as pa

from graph_export import names
from pipeline_common import artifacts, fileio
from pipeline_common.errors import UserError


def embeddings_path(path):
    """`path` itself if it names a parquet file, else `path/book_embeddings.parquet`."""
    return path if path.endswith(".parquet") else fileio.join(path, artifacts.BOOK_EMBEDDINGS)


def embedding_matrix(table, path=artifacts.BOOK_EMBEDDINGS):
    """The `embedding` column as float `[N, dim]`; null rows become NaN (excluded)."""
    column = table.column("embedding").combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            or pa.types.is_fixed_size_list(column.type)):
        raise UserError(f"{path}: column 'embedding' must be a list of floats, "
                        f"got {column.type}")
    n = len(column)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    lengths = column.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    nonnull = lengths[column.is_valid().to_numpy(zero_copy_only=False)]
    dim = int(nonnull.max()) if len(nonnull) else 0
    if dim == 0:
        raise UserError(f"{path}: no book has an embedding (every one is empty or null); "
                        "export the model again (python -m model.train writes it)")
    if len(nonnull) and (nonnull != dim).any():
        raise UserError(f"{path}: embeddings have different lengths "
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
            raise UserError(f"{path}: missing column(s) {sorted(missing)} "
                            "(see docs/artifacts.md section 2)")
    table = artifacts.read_parquet(path, columns)
    missing = {"book_index", "embedding"} | ({"book_id"} if columns is None else set())
    missing -= set(table.column_names)
    if missing:
        raise UserError(f"{path}: missing column(s) {sorted(missing)} "
                        "(see docs/artifacts.md section 2)")
    index = table.column("book_index").to_numpy()
    if len(index) and (np.diff(index) <= 0).any():
        order = np.argsort(index, kind="stable")
        if (np.diff(index[order]) == 0).any():
            raise UserError(f"{path}: duplicate book_index values")
        table = table.take(pa.array(order))
    matrix = embedding_matrix(table, path)
    return table.drop_columns(["embedding"]), matrix




# nodes.parquet's column types (artifacts.NODE_SCHEMA) as pandas' nullable dtypes.
_PANDAS_TYPES = {pa.int64(): "Int64", pa.float64(): "Float64", pa.string(): "string"}


class Catalogue:
    """The catalogue rows of the graph's books: `columns` for nodes.parquet, plus
    each book's `author_lists` and `shelves` (a pyarrow list array, or None) for
    the map's names and the edges' reasons."""

    def __init__(self, columns, author_lists, shelves):
        self.columns, self.author_lists, self.shelves = columns, author_lists, shelves
        self._telling = None

    def telling_shelves(self):
        """`names.book_shelves` of these books (None without shelves), computed once:
        the map's names and the edges' shared shelves both use them."""
        if self._telling is None and self.shelves is not None:
            self._telling = names.book_shelves(self.shelves, len(self.shelves))
        return self._telling


def catalog_path(path):
    """`path` itself if it names a parquet file, else `path/book_catalog.parquet`."""
    return path if path.endswith(".parquet") else fileio.join(path, artifacts.CATALOG)


def read_catalog(path, book_index, book_ids=None):
    """The `Catalogue` of the given books (rows aligned with book_index).

    Refuses (UserError) a catalogue of another preprocess run: one that lacks
    some of the embeddings' books, or gives another book_id for a book_index.
    """
    path = catalog_path(path)
    table = artifacts.read_parquet(path)
    if "book_index" not in table.column_names:
        raise UserError(f"{path}: missing column 'book_index'")
    shelves_table = table.select(["book_index", "shelves"]) if "shelves" in table.column_names \
        else None
    cat = table.drop_columns([c for c in ("shelves",) if c in table.column_names]).to_pandas()
    cat = cat.set_index("book_index")
    columns = {}
    missing = ~np.isin(np.asarray(book_index), cat.index.to_numpy())
    if missing.any():
        raise UserError(f"{path} does not match the embeddings: {int(missing.sum())} of "
                        f"{len(missing)} books are not in it, e.g. book_index "
                        f"{int(np.asarray(book_index)[missing][0])} (use the catalogue of the "
                        "preprocess run the model was trained on)")
    present = cat.reindex(book_index)
    if book_ids is not None and "book_id" in present:
        theirs = present["book_id"].astype("string").to_numpy(na_value=None)
        wrong = [(int(b), t, o) for b, t, o in zip(book_index, theirs, book_ids)
                 if t is not None and t != o]
        if wrong:
            b, t, o = wrong[0]
            raise UserError(f"{path} does not match the embeddings: {len(wrong)} books differ, "
                            f"e.g. book_index {b} is book_id {t} there but {o} in the "
                            "embeddings (use the catalogue of the same preprocess run)")
    author_lists = [[str(a) for a in v] if isinstance(v, (list, np.ndarray)) else []
                    for v in present["authors"]] if "authors" in present else None
    if author_lists is not None:
        columns["authors"] = [", ".join(v) if v else None for v in author_lists]
    for name in ("ratings_count", "average_rating", "genre", "num_interactions", "work_id"):
        if name in present:
            dtype = _PANDAS_TYPES[artifacts.NODE_SCHEMA.field(name).type]
            columns[name] = present[name].astype(dtype).to_numpy(na_value=None).tolist()
    shelves = None
    if shelves_table is not None:
        rows = np.searchsorted(shelves_table.column("book_index").to_numpy(), book_index)
        shelves = shelves_table.column("shelves").take(pa.array(rows)).combine_chunks()
    return Catalogue(columns, author_lists, shelves)
