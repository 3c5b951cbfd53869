"""Writes the trained model's outputs: book vectors (Parquet, .npy), projector files, SavedModel.

Book vectors are computed and written a batch of books at a time, so exporting a
catalogue of a million books holds one batch of rows in flight, plus the final
[num_books, dim] float32 matrix that the SavedModel's similarity search needs.
"""
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from model.evaluate import GROUPS
from pipeline_common import artifacts, fileio

PROJECTOR_CONFIG = """embeddings {
  tensor_name: "book_embeddings"
  tensor_path: "vectors.tsv"
  metadata_path: "metadata.tsv"
}
"""


def _npy_header(handle, shape):
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
              "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(handle, header)


def _tsv_cell(value):
    text = "" if value is None else str(value)
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def write_book_embeddings(output, batches, catalog, dim, projector_max_books=50000):
    """Streams (first index, vectors) batches into every embedding file under `output`.

    Writes `book_embeddings.parquet`, `book_embeddings.npy` and
    `projector/{vectors,metadata}.tsv` (the `projector_max_books` most-read books,
    which come first in book_index order) and `projector/projector_config.pbtxt`.
    Returns the [num_books, dim] matrix.
    """
    num_books = catalog.num_rows
    matrix = np.zeros((num_books, dim), np.float32)
    book_ids = catalog.column("book_id")
    titles = catalog.column("title")
    authors = catalog.column("authors")
    genres = catalog.column("genre") if "genre" in catalog.column_names else None
    projector = fileio.join(output, artifacts.PROJECTOR_DIR)
    with fileio.atomic_write(fileio.join(output, artifacts.BOOK_EMBEDDINGS)) as pq_handle, \
            fileio.atomic_write(fileio.join(output, artifacts.BOOK_EMBEDDINGS_NPY)) as npy_handle, \
            fileio.atomic_write(fileio.join(projector, "vectors.tsv")) as vec_handle, \
            fileio.atomic_write(fileio.join(projector, "metadata.tsv")) as meta_handle:
        writer = pq.ParquetWriter(pa.PythonFile(pq_handle, mode="w"), artifacts.EMBEDDING_SCHEMA,
                                  **artifacts.PARQUET_WRITE_OPTIONS)
        _npy_header(npy_handle, (num_books, dim))
        meta_handle.write(b"title\tbook_id\tauthors\tgenre\n")
        expected = 0
        for first, vectors in batches:
            if first != expected:
                raise ValueError(f"embedding batches out of order: {first} != {expected}")
            n = len(vectors)
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            matrix[first:first + n] = vectors
            offsets = pa.array(np.arange(n + 1, dtype=np.int32) * dim)
            table = pa.table({
                "book_index": pa.array(np.arange(first, first + n, dtype=np.int64)),
                "book_id": book_ids.slice(first, n).cast(pa.string()),
                "title": titles.slice(first, n).cast(pa.string()),
                "embedding": pa.ListArray.from_arrays(offsets, pa.array(vectors.ravel())),
            }, schema=artifacts.EMBEDDING_SCHEMA)
            writer.write_table(table)
            npy_handle.write(vectors.astype("<f4").tobytes())
            keep = max(0, min(n, projector_max_books - first))
            if keep:
                vec_handle.write("".join(
                    "\t".join(f"{x:.6g}" for x in row) + "\n"
                    for row in vectors[:keep]).encode("utf-8"))
                rows = zip(titles.slice(first, keep).to_pylist(),
                           book_ids.slice(first, keep).to_pylist(),
                           authors.slice(first, keep).to_pylist(),
                           genres.slice(first, keep).to_pylist() if genres is not None
                           else [None] * keep)
                meta_handle.write("".join(
                    f"{_tsv_cell(t)}\t{_tsv_cell(b)}\t{_tsv_cell(', '.join(a or []))}"
                    f"\t{_tsv_cell(g)}\n" for t, b, a, g in rows).encode("utf-8"))
            expected = first + n
        writer.close()
        if expected != num_books:
            raise ValueError(f"embedded {expected} books, catalogue has {num_books}")
    fileio.write_text(fileio.join(projector, "projector_config.pbtxt"), PROJECTOR_CONFIG)
    return matrix


def unit_rows(vectors):
    """float32 rows scaled to unit length (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def vector_batches(matrix, batch=65536):
    """(first index, rows) batches of a matrix, for write_book_embeddings."""
    for first in range(0, len(matrix), batch):
        yield first, matrix[first:first + batch]


def _analysis_inputs(transform_fn_dir):
    """(name, dtype) of the transform graph's raw inputs besides user_id and book_id (the
    vocabularies' rank weights), sorted by name."""
    signature = tf.saved_model.load(transform_fn_dir).transform_fn.structured_input_signature
    specs = signature[0][0]
    return tuple(sorted((name, spec.dtype) for name, spec in specs.items()
                        if name not in ("user_id", "book_id")))


class RecommenderModule(tf.Module):
    """What the SavedModel serves. Only stock TensorFlow ops: TF Serving loads it as is.

    * `embed_books(book_index int64 [n])` -> `embedding` float32 [n, dim], the
      L2-normalised candidate tower output.
    * `similar_books(book_id string [n])` -> the `top_k` nearest other books by cosine of
      the map's vectors (`map_vectors`: book_embeddings.parquet, the graph's; the tower's
      when none are given): `book_ids` string [n, k], `book_index` int64 [n, k], `scores`
      (cosine) float32 [n, k], `known` bool [n] (false: the id is not in the vocabulary
      and the lists are empty strings / -1 / 0).
    * `serving_default(user_id string [n])` -> the user's `top_k` books by the
      score model.evaluate measures (model/rerank.py: cos/T + the group's head
      weight x the sum of the sparse item-item rows `head_index` / `head_weight`
      [num_books, k] of the user's training books + the group's popularity weight x
      log(1 + readers); a group on the popularity fallback gets the popularity
      ranking), same outputs, never a book the user read in training: the module
      carries every user's training books (`read_offsets` int64 [num_users+1] and
      `read_books` int32, a CSR list: 4 bytes per training interaction) and scores
      them -inf before the top k. A user who read nearly the whole catalogue gets
      fewer than `top_k` books: the rest of the list is "" / -1 / 0. Unknown users
      get the most-read books with score 0 and `known` false. Raw ids are mapped to
      indices by the preprocess job's own TF Transform graph, so the vocabularies
      cannot drift apart.
    """

    def __init__(self, query_tower, candidate_tower, book_vectors, book_ids, transform_dir,
                 top_k, read_offsets, read_books, reranker, map_vectors=None):
        super().__init__()
        import tensorflow_transform as tft
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.book_vectors = tf.Variable(book_vectors, trainable=False, name="book_vectors")
        if map_vectors is None:
            self.map_vectors = self.book_vectors
        else:
            self.map_vectors = tf.Variable(unit_rows(map_vectors), trainable=False,
                                           name="map_vectors")
        self.book_ids = tf.Variable(np.asarray(book_ids, dtype=object), trainable=False,
                                    dtype=tf.string, name="book_ids")
        transform = tft.TFTransformOutput(transform_dir)
        self.transform_layer = transform.transform_features_layer()
        self.analysis_inputs = _analysis_inputs(transform.transform_savedmodel_dir)
        self.read_offsets = tf.Variable(np.asarray(read_offsets, np.int64), trainable=False,
                                        name="read_offsets")
        self.read_books = tf.Variable(np.asarray(read_books, np.int32), trainable=False,
                                      name="read_books")
        self.inverse_temperature = tf.constant(1.0 / reranker.temperature, tf.float32)
        self.head_index = tf.Variable(np.asarray(reranker.head_index, np.int32),
                                      trainable=False, name="head_index")
        self.head_weight = tf.Variable(np.asarray(reranker.head_weight, np.float32),
                                       trainable=False, name="head_weight")
        self.log_popularity = tf.Variable(reranker.log_popularity, trainable=False,
                                          name="log_popularity")
        self.popularity_rank = tf.Variable(reranker.popularity_rank, trainable=False,
                                           name="popularity_rank")
        self.group_fallback = tf.constant(reranker.fallback, tf.bool)
        self.group_head_weights = tf.constant(reranker.head_weights, tf.float32)
        self.group_popularity_weights = tf.constant(reranker.popularity_weights, tf.float32)
        self.group_bounds = tf.constant([most for _, most in GROUPS[:-1]], tf.int64)
        self.top_k = int(min(top_k, len(book_ids)))
        self.similar_k = int(max(1, min(top_k, len(book_ids) - 1)))

    def _indices(self, user_id=None, book_id=None):
        like = user_id if user_id is not None else book_id
        empty = tf.fill(tf.shape(like), "")
        raw = {"user_id": user_id if user_id is not None else empty,
               "book_id": book_id if book_id is not None else empty}
        # Every other raw input of the transform graph is fed too (zeros: they only weight
        # the analysis), so tf.Transform synthesises none; it would add the placeholders of
        # unfed inputs in the order of a Python set, and saved_model.pb's bytes would
        # depend on PYTHONHASHSEED.
        for name, dtype in self.analysis_inputs:
            raw[name] = tf.zeros(tf.shape(like), dtype)
        out = self.transform_layer(raw)
        name = "user_index" if user_id is not None else "book_index"
        return tf.reshape(tf.cast(out[name], tf.int64), [-1])

    def _result(self, scores, indices, known):
        book_ids = tf.gather(self.book_ids, indices)
        blank = tf.logical_not(known)[:, None]
        return {"book_ids": tf.where(blank, "", book_ids),
                "book_index": tf.where(blank, tf.constant(-1, tf.int64), indices),
                "scores": tf.where(blank, 0.0, scores),
                "known": known}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="book_index")])
    def embed_books(self, book_index):
        return {"embedding": self.candidate_tower(book_index)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="book_id")])
    def similar_books(self, book_id):
        index = self._indices(book_id=book_id)
        known = index >= 0
        query = tf.gather(self.map_vectors, tf.maximum(index, 0))
        scores = tf.matmul(query, self.map_vectors, transpose_b=True)
        own = tf.one_hot(tf.maximum(index, 0), tf.shape(self.map_vectors)[0],
                         on_value=True, off_value=False)
        scores = tf.where(own, tf.constant(-np.inf, tf.float32), scores)
        top = tf.math.top_k(scores, k=self.similar_k)
        return self._result(top.values, tf.cast(top.indices, tf.int64), known)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id")])
    def serve(self, user_id):
        index = self._indices(user_id=user_id)
        known = index >= 0
        query = self.query_tower(index)
        scores = tf.matmul(query, self.book_vectors, transpose_b=True) * self.inverse_temperature
        # The books each known user read in training: (row, book) pairs.
        users = tf.maximum(index, 0)
        starts = tf.where(known, tf.gather(self.read_offsets, users), 0)
        lengths = tf.where(known, tf.gather(self.read_offsets, users + 1) - starts, 0)
        rows = tf.repeat(tf.range(tf.size(index), dtype=tf.int64), lengths)
        positions = (tf.repeat(starts - tf.cumsum(lengths, exclusive=True), lengths)
                     + tf.range(tf.reduce_sum(lengths), dtype=tf.int64))
        read = tf.cast(tf.gather(self.read_books, positions), tf.int64)
        # The re-ranking terms (model/rerank.py), weighted by the user's group.
        group = tf.searchsorted(self.group_bounds, lengths, side="left")
        head_w = tf.gather(self.group_head_weights, group)
        pop_w = tf.gather(self.group_popularity_weights, group)
        neighbours = tf.shape(self.head_index)[1]
        head_rows = tf.repeat(rows, neighbours)
        head_books = tf.cast(tf.reshape(tf.gather(self.head_index, read), [-1]), tf.int64)
        head_values = tf.reshape(tf.gather(self.head_weight, read), [-1])
        head = tf.scatter_nd(tf.stack([head_rows, head_books], axis=1), head_values,
                             tf.cast(tf.shape(scores), tf.int64))
        scores = scores + head_w[:, None] * head + pop_w[:, None] * self.log_popularity[None, :]
        # Groups served by the popularity fallback get the popularity baseline's ranking.
        fallback = tf.gather(self.group_fallback, group)
        scores = tf.where(fallback[:, None], self.popularity_rank[None, :], scores)
        # Books read in training are scored -inf.
        scores = tf.tensor_scatter_nd_update(
            scores, tf.stack([rows, read], axis=1),
            tf.fill(tf.shape(rows), tf.constant(-np.inf, tf.float32)))
        top = tf.math.top_k(scores, k=self.top_k)
        popular = tf.range(self.top_k, dtype=tf.int64)[None, :]
        indices = tf.where(known[:, None], tf.cast(top.indices, tf.int64), popular)
        result = self._result(tf.where(known[:, None], top.values, 0.0), indices,
                              tf.ones_like(known))
        read_only = tf.math.is_inf(top.values) & known[:, None]   # nothing unread left
        result["book_ids"] = tf.where(read_only, "", result["book_ids"])
        result["book_index"] = tf.where(read_only, tf.constant(-1, tf.int64), result["book_index"])
        result["scores"] = tf.where(read_only, 0.0, result["scores"])
        result["known"] = known
        return result


def save_model(path, module):
    """Saves the module with its three signatures (atomic: temp dir, then rename)."""
    tmp = path.rstrip("/") + ".tmp"
    if tf.io.gfile.exists(tmp):
        tf.io.gfile.rmtree(tmp)
    tf.saved_model.save(module, tmp, signatures={
        "serving_default": module.serve,
        "embed_books": module.embed_books,
        "similar_books": module.similar_books,
    })
    if tf.io.gfile.exists(path):
        tf.io.gfile.rmtree(path)
    tf.io.gfile.rename(tmp, path)
    logging.info("saved model to %s", path)
