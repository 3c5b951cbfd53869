"""Test-wide set-up: legacy Keras before TensorFlow, quiet TF logs."""
import os

import pytest

import pipeline_common  # noqa: F401  (sets TF_USE_LEGACY_KERAS before any TF import)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: seconds to minutes each (still run by `make test`; "
                                       "-m 'not slow' leaves them out)")
    config.addinivalue_line("markers", "browser: drives Debian's Chromium (the explorer)")
    config.addinivalue_line("markers", "faults: the fault suite (tests/faults), real commands "
                                       "run the way a user breaks them")


# What takes seconds to minutes on 2 cores: the session's chain, a GCS emulator, a
# fixture that runs a whole job or trains a model, or a test whose body does. A test is
# marked `slow` when its own name or a fixture it uses (directly or through another
# fixture) is listed here, for every module or for its own; `make test-fast` leaves
# those out and runs the rest of each module. tests/test_suite_markers.py checks that
# every name listed still exists.
SLOW_EVERYWHERE = {"chain", "gcs_emulator"}
SLOW = {
    "test_dataflow.py": {"built", "test_a_dataflow_command_without_credentials_stops_at_once_in_one_line"},
    "test_graph_ego.py": {"graph"},
    "test_graph_export.py": {"test_a_failed_run_leaves_blocks_the_next_run_on_the_same_inputs_reuses",
                             "test_same_edges_for_any_worker_count_and_block_size",
                             "test_threads_and_blocks_give_the_float64_brute_force_on_a_sample"},
    "test_model.py": {"trained", "test_rerun_resumes_and_matches_an_uninterrupted_fresh_process",
                      "test_nan_loss_stops_without_export",
                      "test_eval_users_are_chosen_by_a_hash_of_the_user_id"},
    "test_preprocess.py": {"run_a", "run_b", "test_mostly_garbage_input_stops_with_one_clear_message",
                           "test_dataflow_job_builds_offline_and_stages_setup_py"},
}


def is_slow(module, name, fixtures):
    """True when the test `name` of `module` (a file name) or one of its fixtures is listed slow."""
    listed = SLOW_EVERYWHERE | SLOW.get(module, set())
    return name in listed or bool(listed.intersection(fixtures))


def pytest_collection_modifyitems(config, items):
    """Marks by where a test lives and what it uses, so `make test-fast` can leave out
    the fault suite, the browser and the slow tests (`make test` runs everything)."""
    for item in items:
        path = str(item.fspath)
        fixtures = getattr(item, "fixturenames", ())
        if f"{os.sep}faults{os.sep}" in path:
            item.add_marker(pytest.mark.faults)
        if "chromium" in fixtures:
            item.add_marker(pytest.mark.browser)
        if is_slow(os.path.basename(path), getattr(item, "originalname", item.name), fixtures):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def chain(tmp_path_factory):
    """The session's one tiny chain (tests/chain.py): data, prep, model, graph paths."""
    from tests.chain import build_chain
    return build_chain(tmp_path_factory.mktemp("chain"))
