"""Faults of the place a stage writes to: a file in the way, a read-only or a full filesystem.

Each stage must stop with one line that names the path and says what to do, a
non-zero status, and leave no file under a final name that a reader could take
for a complete output (a partial run may leave complete files, never a truncated
one and never the marker that says the output is complete).
"""
import pathlib
import re

import pytest

from tests.chain import command
from tests.faults import harness

STAGES = ("sample_data", "preprocess", "train", "neighbors", "ego", "explorer")
# The file whose presence tells a reader that a stage's output is complete.
COMPLETE_MARKER = {"sample_data": "goodreads_interactions.csv", "preprocess": "manifest.json",
                   "train": "metrics.json", "neighbors": "summary.json",
                   "ego": "book.json", "explorer": "explorer.html"}
# Free space (KiB) that runs out part-way through each stage's writing.
FULL_DISK_KIB = {"sample_data": 64, "preprocess": 96, "train": 256, "neighbors": 48,
                 "ego": 4, "explorer": 16}


def _output_in(stage, folder):
    folder = pathlib.Path(folder)
    return str(folder / "book" if stage == "ego" else
               folder / "explorer.html" if stage == "explorer" else folder / "out")


@pytest.mark.parametrize("stage", STAGES)
def test_a_file_where_the_output_folder_should_be(stage, chain, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder\n")
    output = _output_in(stage, blocker)
    module, args = command(stage, chain, output=output)
    outcome = harness.cli(module, *args)
    line = harness.assert_one_line_failure(outcome, blocker)
    assert blocker.read_text() == "not a folder\n"
    harness.record(stage, "output path is under an existing file", line, tmp_path)


@pytest.mark.parametrize("stage", STAGES)
def test_read_only_output(stage, chain, tmp_path):
    with harness.small_filesystem(tmp_path / "ro", 64, read_only=True) as folder:
        module, args = command(stage, chain, output=_output_in(stage, folder))
        outcome = harness.cli(module, *args)
        line = harness.assert_one_line_failure(outcome, folder)
        harness.record(stage, "output on a read-only filesystem", line, tmp_path)


@pytest.mark.parametrize("stage", STAGES)
def test_full_disk_then_rerun_elsewhere(stage, chain, tmp_path):
    with harness.small_filesystem(tmp_path / "full", FULL_DISK_KIB[stage]) as folder:
        output = _output_in(stage, folder)
        module, args = command(stage, chain, output=output)
        outcome = harness.cli(module, *args)
        line = harness.assert_one_line_failure(outcome)
        assert "space" in line, line
        harness.assert_no_truncated_file(folder)
        left = harness.final_files(folder)
        assert COMPLETE_MARKER[stage] not in {pathlib.Path(f).name for f in left}, left
        # Where the disk fills varies from run to run (model.train: a Python write or
        # TensorFlow's SaveV2, which names its temporary file): the table keeps the advice.
        harness.record(stage, "output filesystem full part-way", re.sub(r" \(.*\)$", "", line),
                       tmp_path)
