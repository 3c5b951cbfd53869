"""A stage killed (SIGKILL) part-way, then the same command run again.

The rerun must give the same bytes as a run that never failed. Compared: every
file, except those that differ between two clean runs too (`harness.NOT_BYTE_STABLE`).
"""
import pathlib
import shutil

import pytest

from tests.chain import command
from tests.faults import harness

# Each stage is killed at a moment seen in its output, not after a fixed time (a stage
# that finished before a timer went off would pass without being killed): the first
# file it writes, or its first finished piece of work.
KILL_WHEN = {
    "sample_data": ("its first file is written", lambda out: _files(out, "*")),
    "preprocess": ("its first shard is being written", lambda out: _files(out, "*.tfrecord.gz*")),
    "preprocess-late": ("its catalogue is written", lambda out: _files(out, "book_catalog.parquet")),
    "train": ("its first checkpoint is written", lambda out: _files(out, "checkpoints/*")),
    "neighbors": ("its first block file is written", lambda out: _files(out, ".blocks-*/block-*")),
}
CLEAN = {"sample_data": "data", "preprocess": "prep", "train": "model", "neighbors": "graph"}


def _files(out, pattern):
    return any(p.is_file() for p in pathlib.Path(out).glob(pattern))


@pytest.mark.parametrize("case", list(KILL_WHEN))
def test_killed_then_run_again_gives_a_clean_run(case, chain, tmp_path):
    stage = case.split("-")[0]
    moment, seen = KILL_WHEN[case]
    output = tmp_path / "out"
    module, args = command(stage, chain, output=str(output))
    assert harness.cli_killed(module, *args, when=lambda: seen(output)), \
        f"{stage} finished before it could be killed when {moment}"
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
    harness.record(stage, f"killed (SIGKILL) when {moment}, same command again",
                   "the same command again gives the bytes of a clean run")
    shutil.rmtree(output, ignore_errors=True)
