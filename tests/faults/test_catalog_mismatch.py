"""Issue 29 case 5: `graph_export.neighbors --catalog` of another preprocess run than the one
the model was trained on must be refused in one line naming the catalogue, not joined.

The other run here selects the same number of books (200) from the same data with another
--min_rating, so every book_index exists in both catalogues but names other books: only a
check of the books themselves (their ids, or a fingerprint of the book index written by
preprocess and carried by the model) tells them apart.
"""
import pathlib

from tests.faults import harness
from tests.faults.conftest import PREPROCESS, command


def test_neighbors_refuses_the_catalogue_of_another_preprocess_run(chain, tmp_path):
    other = tmp_path / "other-prep"
    args = list(PREPROCESS) + ["--min_rating", "4"]
    built = harness.cli("beam_jobs.preprocess", "--input", chain["data"], "--output", other, *args)
    assert built.returncode == 0, built.stderr[-3000:]
    ours = pathlib.Path(chain["prep"]) / "book_catalog.parquet"
    assert (other / "book_catalog.parquet").read_bytes() != ours.read_bytes()
    module, argv = command("neighbors", dict(chain, prep=str(other)), output=str(tmp_path / "out"))
    outcome = harness.cli(module, *argv)
    line = harness.assert_one_line_failure(outcome, other)
    assert "catalog" in line, line
    assert not (tmp_path / "out" / "summary.json").exists()
    harness.record("neighbors", "--catalog of another preprocess run (same number of books)",
                   line, tmp_path)
