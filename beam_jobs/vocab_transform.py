"""The tf.Transform graph of the preprocess job: raw Goodreads ids -> dense indices.

The graph (`transform_fn`) is what lets a trained model be served on raw ids:
`tft.TFTransformOutput(PREP + "/transform_output").transform_raw_features(
{"user_id": ..., "book_id": ...})` returns `user_index` and `book_index`
(int64, -1 for an id outside the vocabulary).

The vocabularies are tf.Transform analyzer outputs: `preprocessing_fn` runs a
weighted-frequency vocabulary analyzer over its input and `tft.apply_vocabulary`
maps ids with the result. Line i of `book_id_vocab` is the book with
`book_index` i, and line i of `user_id_vocab` the user with `user_index` i,
because the input gives entry i of the index the weight n - i (see
`analysis_batches`). The weight features exist only while
analysing; serving needs just the two id features.

Why not `tft.vocabulary`: it produces the same files, but its Beam
implementation moves one element per distinct token through six steps and
hands the sorted vocabulary around as a list of Python tuples. For 300k users
that cost ~13 s of a ~47 s job (benchmarks/bench_preprocess.py). The analyzer
here (`WeightedVocabularies`, plugged in with
`tft.experimental.ptransform_analyzer`) sums weights per batch with numpy and
merges the per-batch tables in one combine, so it costs well under a second.
Ties in total weight are broken by token bytes, ascending.
"""
import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

from beam_jobs import selection
from pipeline_common import artifacts, fileio

VOCABULARIES = (artifacts.USER_VOCAB, artifacts.BOOK_VOCAB)

ANALYSIS_FEATURE_SPEC = {
    "user_id": tf.io.FixedLenFeature([], tf.string),
    "book_id": tf.io.FixedLenFeature([], tf.string),
    "user_rank_weight": tf.io.FixedLenFeature([], tf.int64),
    "book_rank_weight": tf.io.FixedLenFeature([], tf.int64),
}

def weight_totals(tokens, weights):
    """(unique tokens as 'S' bytes, summed float64 weights), sorted by token."""
    tokens = np.asarray(tokens)
    if tokens.dtype.kind != "S":
        tokens = tokens.astype("S") if len(tokens) else np.zeros(0, "S1")
    uniq, inverse = np.unique(tokens, return_inverse=True)
    return uniq, np.bincount(inverse.ravel(), weights=np.asarray(weights, np.float64).ravel(),
                             minlength=len(uniq))


def vocabulary_order(tokens, totals):
    """Tokens by total weight descending, then token bytes ascending."""
    order = np.lexsort((tokens, -totals))
    return tokens[order]


class SumWeightsPerToken(beam.CombineFn):
    """Batches (tokens_a, weights_a, tokens_b, weights_b, ...) -> per-vocabulary (tokens, totals).

    The accumulator holds one sorted (tokens, totals) table per vocabulary, so
    its size is bounded by the number of distinct tokens, never by the rows.
    """

    def __init__(self, num_vocabularies):
        self._num = num_vocabularies

    def create_accumulator(self):
        return [(np.zeros(0, "S1"), np.zeros(0)) for _ in range(self._num)]

    def add_input(self, acc, batch):
        tables = [weight_totals(batch[2 * i], batch[2 * i + 1]) for i in range(self._num)]
        return self.merge_accumulators([acc, tables])

    def merge_accumulators(self, accs):
        accs = list(accs)
        return [weight_totals(np.concatenate([a[i][0] for a in accs]),
                              np.concatenate([a[i][1] for a in accs])) for i in range(self._num)]

    def extract_output(self, acc):
        return acc


class WeightedVocabularies(tft_beam.experimental.PTransformAnalyzer):
    """tf.Transform analyzer: vocabulary files ordered by total weight, one per (token, weight) pair.

    Input: tf.Transform's batches of the analyzer inputs. Output: one PCollection
    per vocabulary holding the path of its file (written under tf.Transform's
    temp dir through FileSystems; tf.Transform copies it into `transform_fn`'s
    assets).
    """

    def __init__(self, names):
        super().__init__()
        self._names = tuple(names)

    def _write(self, tables):
        paths = []
        for name, (tokens, totals) in zip(self._names, tables):
            ordered = vocabulary_order(tokens, totals).tolist()
            data = b"\n".join(ordered) + b"\n" if ordered else b""
            if data.count(b"\n") != len(ordered):
                raise ValueError(f"{name}: a token contains a newline")
            path = fileio.join(self.base_temp_dir, name)
            fileio.write_bytes(path, data)
            paths.append(path)
        return paths

    def expand(self, batches):
        paths = (batches | "SumWeightsPerToken" >> beam.CombineGlobally(SumWeightsPerToken(len(self._names)))
                 | "WriteVocabularies" >> beam.Map(self._write))
        return tuple(paths | f"PathOf_{name}" >> beam.Map(lambda p, i=i: np.array(p[i].encode()))
                     for i, name in enumerate(self._names))


def preprocessing_fn(inputs):
    """user_id/book_id (tf.string) -> user_index/book_index (int64, -1 if unknown)."""
    paths = tft.experimental.ptransform_analyzer(
        inputs=[inputs["user_id"], inputs["user_rank_weight"],
                inputs["book_id"], inputs["book_rank_weight"]],
        ptransform=WeightedVocabularies(VOCABULARIES),
        output_dtypes=[tf.string, tf.string], output_shapes=[[], []],
        output_asset_default_values=[name.encode() for name in VOCABULARIES],
        name="weighted_vocabularies")
    outputs = {}
    for feature, name, path in zip(("user", "book"), VOCABULARIES, paths):
        tft.annotators.annotate_asset(name, name)  # TFTransformOutput.vocabulary_file_by_name
        outputs[f"{feature}_index"] = tft.apply_vocabulary(inputs[f"{feature}_id"], path, default_value=-1)
    return outputs


def analysis_adapter_config():
    """TensorAdapterConfig for the pyarrow RecordBatches built by `analysis_batches`."""
    schema = schema_utils.schema_from_feature_spec(ANALYSIS_FEATURE_SPEC)
    arrow_schema = pa.schema([
        ("user_id", pa.list_(pa.binary())), ("book_id", pa.list_(pa.binary())),
        ("user_rank_weight", pa.list_(pa.int64())), ("book_rank_weight", pa.list_(pa.int64()))])
    return tensor_adapter.TensorAdapterConfig(
        arrow_schema, tensor_representation_util.InferTensorRepresentationsFromSchema(schema))


def analysis_batches(index, batch_rows=100_000):
    """The `SelectionIndex` as tf.Transform input (RecordBatches of ANALYSIS_FEATURE_SPEC): one row per user/book, weight = rank from the end.

    The vocabulary analyzer orders by total weight (descending). Giving entry i
    the weight n - i makes its order exactly the index order built here; shorter
    columns are padded by repeating entries with weight 0, which changes no total.
    """
    users = selection.u128_to_hex(index.user_hi, index.user_lo)
    books = index.book_ids.astype("S20")
    n_users, n_books = len(users), len(books)
    n = max(n_users, n_books)
    one_per_row = None
    for s in range(0, n, batch_rows):
        rows = np.arange(s, min(s + batch_rows, n))
        if one_per_row is None or len(one_per_row) != len(rows) + 1:
            one_per_row = pa.array(np.arange(len(rows) + 1, dtype=np.int32))
        cols = {
            "user_id": pa.array(users[rows % n_users], type=pa.binary()),
            "book_id": pa.array(books[rows % n_books], type=pa.binary()),
            "user_rank_weight": pa.array(np.where(rows < n_users, n_users - rows, 0)),
            "book_rank_weight": pa.array(np.where(rows < n_books, n_books - rows, 0)),
        }
        yield pa.RecordBatch.from_arrays(
            [pa.ListArray.from_arrays(one_per_row, values) for values in cols.values()], names=list(cols))
