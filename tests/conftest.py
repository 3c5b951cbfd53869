"""Test-wide set-up: legacy Keras before TensorFlow, quiet TF logs."""
import os

import pipeline_common  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any TF import)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
