"""The preprocess job's tf.Transform graph: weighted vocabularies and raw id -> index mapping."""
import os

import pipeline_common  # noqa: F401  (legacy Keras before TensorFlow loads)
import numpy as np
import pytest
import tensorflow as tf

from beam_jobs import vocab_transform


def test_weight_totals_sum_per_token_and_order_breaks_ties_by_token():
    tokens, totals = vocab_transform.weight_totals(
        np.array([b"b", b"a", b"c", b"b", b"d"], dtype=object), [1, 2, 3, 1, 2])
    assert tokens.tolist() == [b"a", b"b", b"c", b"d"]
    assert totals.tolist() == [2.0, 2.0, 3.0, 2.0]
    assert vocab_transform.vocabulary_order(tokens, totals).tolist() == [b"c", b"a", b"b", b"d"]


def test_sum_weights_combine_merges_partial_tables():
    fn = vocab_transform.SumWeightsPerToken(1)
    first = fn.add_input(fn.create_accumulator(), (np.array([b"x", b"y"]), np.array([5, 1])))
    second = fn.add_input(fn.create_accumulator(), (np.array([b"y", b"z"]), np.array([7, 0])))
    (tokens, totals), = fn.extract_output(fn.merge_accumulators([first, fn.create_accumulator(), second]))
    assert dict(zip(tokens.tolist(), totals.tolist())) == {b"x": 5, b"y": 8, b"z": 0}


def _analyze(rows, temp_dir, batch_size):
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(vocab_transform.ANALYSIS_FEATURE_SPEC))
    out = os.path.join(temp_dir, "transform_output")
    with beam.Pipeline(runner=fn_runner.FnApiRunner(), options=PipelineOptions([])) as p:
        with tft_beam.Context(temp_dir=os.path.join(temp_dir, "tmp"), desired_batch_size=batch_size):
            transform_fn = ((p | beam.Create(rows), metadata)
                            | tft_beam.AnalyzeDataset(vocab_transform.preprocessing_fn))
            _ = transform_fn | tft_beam.WriteTransformFn(out)
    return out


@pytest.mark.parametrize("batch_size", [2, 100])
def test_vocabularies_follow_total_weight_across_batches(tmp_path, batch_size):
    """Weights of a token spread over several batches add up; unknown ids map to -1."""
    import tensorflow_transform as tft
    rows = [  # user totals: u1 = 3, u2 = 4 + 1 = 5, u3 = 0 + 3 = 3 (tie with u1: token order)
        {"user_id": b"u1", "user_rank_weight": 3, "book_id": b"17", "book_rank_weight": 1},
        {"user_id": b"u2", "user_rank_weight": 4, "book_id": b"5", "book_rank_weight": 2},
        {"user_id": b"u3", "user_rank_weight": 0, "book_id": b"17", "book_rank_weight": 0},
        {"user_id": b"u2", "user_rank_weight": 1, "book_id": b"9", "book_rank_weight": 9},
        {"user_id": b"u3", "user_rank_weight": 3, "book_id": b"5", "book_rank_weight": 0},
    ]
    out = _analyze(rows, str(tmp_path), batch_size)
    tft_out = tft.TFTransformOutput(out)
    with open(tft_out.vocabulary_file_by_name("user_id_vocab")) as handle:
        assert handle.read().split("\n") == ["u2", "u1", "u3", ""]
    with open(tft_out.vocabulary_file_by_name("book_id_vocab")) as handle:
        assert handle.read().split("\n") == ["9", "5", "17", ""]
    mapped = tft_out.transform_raw_features(
        {"user_id": tf.constant(["u3", "u2", "nobody"]), "book_id": tf.constant(["17", "9", "404"])},
        drop_unused_features=True)
    assert mapped["user_index"].numpy().tolist() == [2, 0, -1]
    assert mapped["book_index"].numpy().tolist() == [2, 0, -1]


def test_a_token_with_a_newline_fails_the_analysis(tmp_path):
    rows = [{"user_id": b"bad\nid", "user_rank_weight": 1, "book_id": b"1", "book_rank_weight": 1}]
    with pytest.raises(Exception, match="newline"):
        _analyze(rows, str(tmp_path), 10)
