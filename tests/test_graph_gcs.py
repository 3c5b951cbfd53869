"""graph_export reads and writes gs:// paths (through Beam FileSystems), on a local GCS emulator."""
import pyarrow.parquet as pq

from graph_export import ego, neighbors
from pipeline_common import fileio
from tests import graph_fixtures
from tests.gcs_emulator import gcs_emulator  # noqa: F401  (pytest fixture)


def test_neighbors_and_ego_on_gcs(gcs_emulator, tmp_path):  # noqa: F811
    graph_fixtures.make_model_output(str(tmp_path / "model"), n=40)
    graph_fixtures.make_catalog(str(tmp_path / "prep"), n=40)
    user, book = graph_fixtures.make_train_pairs(str(tmp_path / "prep"), n=40)
    bucket = gcs_emulator.url()
    gcs_emulator.upload_dir(str(tmp_path / "model"), f"{bucket}/model")
    gcs_emulator.upload_dir(str(tmp_path / "prep"), f"{bucket}/prep")
    summary = neighbors.run(["--embeddings", f"{bucket}/model", "--catalog", f"{bucket}/prep",
                             "--output", f"{bucket}/graph", "--direct_num_workers=1"])
    names = [p.rsplit("/", 1)[1] for p in gcs_emulator.list(f"{bucket}/graph")]
    assert names == ["communities.parquet", "edges.parquet", "excluded.parquet", "graph.gexf",
                     "graph.json", "graph.nodelink.json", "nodes.parquet", "summary.json"]
    assert summary["num_edges"] == 38 * 10 and summary["train_pair_files"] == 2
    with fileio.open_read(f"{bucket}/graph/edges.parquet", compressed=False) as handle:
        counted = pq.read_table(handle).column("co_readers").to_numpy()
    assert counted.sum() > 0
    neighbors.run(["--embeddings", str(tmp_path / "model"), "--output", str(tmp_path / "graph"),
                   "--formats", "none", "--direct_num_workers=1"])
    with fileio.open_read(f"{bucket}/graph/edges.parquet", compressed=False) as handle:
        assert pq.read_table(handle, columns=["source", "target", "rank", "cosine"]).equals(
            pq.read_table(tmp_path / "graph" / "edges.parquet"))
    result = ego.run(["--graph", f"{bucket}/graph", "--title", "emma", "--depth", "2",
                      "--output", f"{bucket}/ego/emma"])
    assert result["layers"][:2] == [1, 10]
    assert gcs_emulator.list(f"{bucket}/ego") == [
        f"{bucket}/ego/emma.gexf", f"{bucket}/ego/emma.json", f"{bucket}/ego/emma.png"]
