"""The tf.Transform graph of the preprocess job: raw Goodreads ids -> dense indices.

The graph (`transform_fn`) is what lets a trained model be served on raw ids:
`tft.TFTransformOutput(PREP + "/transform_output").transform_raw_features(
{"user_id": ..., "book_id": ...})` returns `user_index` and `book_index`
(int64, -1 for an id outside the vocabulary).

The vocabularies are computed by tf.Transform's own analyzers. Their order is
chosen by weights (see `preprocess_steps.analysis_batches`): line i of
`book_id_vocab` is the book with `book_index` i, and line i of `user_id_vocab`
the user with `user_index` i. The weight features exist only while analysing;
serving needs just the two id features.
"""
import pyarrow as pa
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.tfxio import tensor_adapter, tensor_representation_util

USER_VOCAB = "user_id_vocab"
BOOK_VOCAB = "book_id_vocab"

ANALYSIS_FEATURE_SPEC = {
    "user_id": tf.io.FixedLenFeature([], tf.string),
    "book_id": tf.io.FixedLenFeature([], tf.string),
    "user_rank_weight": tf.io.FixedLenFeature([], tf.float32),
    "book_rank_weight": tf.io.FixedLenFeature([], tf.float32),
}

# What the written examples contain (documented in the README).
EXAMPLE_FEATURE_SPEC = {
    "user_id": tf.io.FixedLenFeature([], tf.string),
    "book_id": tf.io.FixedLenFeature([], tf.string),
    "user_index": tf.io.FixedLenFeature([], tf.int64),
    "book_index": tf.io.FixedLenFeature([], tf.int64),
    "rating": tf.io.FixedLenFeature([], tf.int64),
}


def preprocessing_fn(inputs):
    """user_id/book_id (tf.string) -> user_index/book_index (int64, -1 if unknown)."""
    return {
        "user_index": tft.compute_and_apply_vocabulary(
            inputs["user_id"], weights=inputs["user_rank_weight"], vocab_filename=USER_VOCAB,
            default_value=-1),
        "book_index": tft.compute_and_apply_vocabulary(
            inputs["book_id"], weights=inputs["book_rank_weight"], vocab_filename=BOOK_VOCAB,
            default_value=-1),
    }


def analysis_adapter_config():
    """TensorAdapterConfig for the pyarrow RecordBatches built by `analysis_batches`."""
    schema = schema_utils.schema_from_feature_spec(ANALYSIS_FEATURE_SPEC)
    arrow_schema = pa.schema([
        ("user_id", pa.list_(pa.binary())), ("book_id", pa.list_(pa.binary())),
        ("user_rank_weight", pa.list_(pa.float32())), ("book_rank_weight", pa.list_(pa.float32()))])
    return tensor_adapter.TensorAdapterConfig(
        arrow_schema, tensor_representation_util.InferTensorRepresentationsFromSchema(schema))
