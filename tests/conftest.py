"""Test-wide set-up: legacy Keras before TensorFlow, quiet TF logs."""
import os

import pipeline_common  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any TF import)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes, not seconds (still run by `make test`; "
                                       "-m 'not slow' leaves them out)")
    config.addinivalue_line("markers", "browser: drives Debian's Chromium (the explorer)")
    config.addinivalue_line("markers", "faults: the fault suite (tests/faults), real commands "
                                       "run the way a user breaks them")


# Modules whose tests (or their module fixtures) run whole jobs: minutes each on 2 cores.
SLOW_MODULES = {"test_end_to_end.py", "test_dataflow.py", "test_graph_gcs.py", "test_graph_export.py",
                "test_graph_ego.py", "test_graph_js.py", "test_map.py", "test_model.py",
                "test_preprocess.py"}


def pytest_collection_modifyitems(config, items):
    """Marks by where a test lives and what it uses, so `make test-fast` can leave out
    the fault suite, the browser and the slow modules (`make test` runs everything)."""
    for item in items:
        path = str(item.fspath)
        if f"{os.sep}faults{os.sep}" in path:
            item.add_marker(pytest.mark.faults)
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
        if os.path.basename(path) in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def chain(tmp_path_factory):
    """The session's one tiny chain (tests/chain.py): data, prep, model, graph paths."""
    from tests.chain import build_chain
    return build_chain(tmp_path_factory.mktemp("chain"))
