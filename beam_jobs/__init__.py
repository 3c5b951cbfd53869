"""Beam batch jobs: Goodreads sample data and the preprocess job."""
import pipeline_common  # noqa: F401  (selects legacy Keras before TensorFlow loads)
