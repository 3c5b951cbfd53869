"""A stage killed (SIGKILL) part-way, then the same command run again.

The rerun must give the same bytes as a run that never failed. Compared: every
file, except those that differ between two clean runs too (`harness.NOT_BYTE_STABLE`).
"""
import pathlib
import shutil

import pytest

from tests.faults import harness
from tests.faults.conftest import command

KILL_AFTER = {"sample_data": (1.5,), "preprocess": (5.0, 12.0), "train": (12.0,),
              "neighbors": (2.5,)}
CLEAN = {"sample_data": "data", "preprocess": "prep", "train": "model", "neighbors": "graph"}


@pytest.mark.parametrize("stage,seconds", [(s, t) for s, ts in KILL_AFTER.items() for t in ts])
def test_killed_then_run_again_gives_a_clean_run(stage, seconds, chain, tmp_path):
    output = tmp_path / "out"
    module, args = command(stage, chain, output=str(output))
    harness.cli_killed(module, *args, after_seconds=seconds)   # may finish first on a fast machine
    harness.assert_no_truncated_file(output)
    again = harness.cli(module, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    harness.assert_same_tree(output, chain[CLEAN[stage]], ignore=harness.NOT_BYTE_STABLE)
    if stage == "preprocess":   # same counts, whatever the output path in the options
        got = harness.load_json(output / "manifest.json")
        want = harness.load_json(pathlib.Path(chain["prep"]) / "manifest.json")
        for key in ("rows_read", "kept", "filtered", "rejected", "train_examples",
                    "eval_examples", "num_books", "num_users"):
            assert got[key] == want[key], key
    harness.record(stage, f"killed (SIGKILL) after {seconds:g} s, same command again",
                   "the same command again gives the bytes of a clean run")
    shutil.rmtree(output, ignore_errors=True)
