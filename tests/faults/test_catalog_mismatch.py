"""Issue 29 case 5: `graph_export.neighbors --catalog` of another preprocess run than the one
the model was trained on must be refused in one line naming the catalogue, not joined.

The other run here selects the same number of books (200) from the same data with another
--min_rating, so every book_index exists in both catalogues but names other books: only a
check of the books themselves (their ids, or a fingerprint of the book index written by
preprocess and carried by the model) tells them apart.
"""
import pathlib
import shutil

import pytest

from tests.chain import PREPROCESS, command
from tests.faults import harness


@pytest.fixture(scope="module")
def other_prep(chain, tmp_path_factory):
    """A preprocess output of the chain's data with another --min_rating: 200 other books."""
    other = tmp_path_factory.mktemp("mismatch") / "other-prep"
    args = list(PREPROCESS) + ["--min_rating", "4"]
    built = harness.cli("beam_jobs.preprocess", "--input", chain["data"], "--output", other, *args)
    assert built.returncode == 0, built.stderr[-3000:]
    ours = pathlib.Path(chain["prep"]) / "book_catalog.parquet"
    assert (other / "book_catalog.parquet").read_bytes() != ours.read_bytes()
    return other


def test_neighbors_refuses_the_catalogue_of_another_preprocess_run(chain, other_prep, tmp_path):
    other = other_prep
    module, argv = command("neighbors", dict(chain, prep=str(other)), output=str(tmp_path / "out"))
    outcome = harness.cli(module, *argv)
    line = harness.assert_one_line_failure(outcome, other)
    assert "catalog" in line, line
    assert not (tmp_path / "out" / "summary.json").exists()
    harness.record("neighbors", "--catalog of another preprocess run (same number of books)",
                   line, tmp_path)


def test_train_refuses_a_catalogue_swapped_in_from_another_run(chain, other_prep, broken_copy,
                                                               tmp_path):
    prep = pathlib.Path(broken_copy("prep"))
    shutil.copyfile(other_prep / "book_catalog.parquet", prep / "book_catalog.parquet")
    module, argv = command("train", dict(chain, prep=str(prep)), output=str(tmp_path / "out"))
    outcome = harness.cli(module, *argv)
    line = harness.assert_one_line_failure(outcome, prep / "book_catalog.parquet",
                                           "book_id_vocab")
    assert not (tmp_path / "out" / "saved_model").exists()
    harness.record("train", "book_catalog.parquet of another preprocess run (same number of books)",
                   line, tmp_path)
