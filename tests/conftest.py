"""Test-wide set-up: legacy Keras before TensorFlow, quiet TF logs."""
import os

import pipeline_common  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any TF import)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes, not seconds (still run by `make test`; "
                                       "-m 'not slow' leaves them out)")
