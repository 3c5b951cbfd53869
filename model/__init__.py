"""TFRS two-tower retrieval model: training, evaluation, export."""
import pipeline_common  # noqa: F401  (selects legacy Keras before TensorFlow loads)
