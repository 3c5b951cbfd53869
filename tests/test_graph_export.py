"""graph_export.neighbors: exact top-k, outputs per docs/artifacts.md section 3, GEXF/JSON."""
import colorsys
import io
import json
import os

import networkx as nx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lxml import etree

from graph_export import blocks, gexf_writer, graph_files, json_writer, layout, neighbors, topk
from pipeline_common.errors import UserError
from tests import graph_fixtures
from tests.reference_formats import GEXF_RNG

N_BOOKS = 60


# ------------------------------------------------------------------ helpers

def reference_edges(vectors, k):
    """Independent brute force: float64 cosine of the finite non-zero rows."""
    vectors = np.asarray(vectors, np.float64)
    keep = np.isfinite(vectors).all(axis=1) & (np.linalg.norm(
        np.nan_to_num(vectors), axis=1) > 0)
    ids = np.flatnonzero(keep)
    unit = vectors[keep] / np.linalg.norm(vectors[keep], axis=1, keepdims=True)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    rows = []
    for i, row in enumerate(scores):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        for rank, j in enumerate(order, 1):
            rows.append((ids[i], ids[j], rank, row[j]))
    return rows


def brute_force_topk(unit, k):
    """Reference top-k: the full float64 score matrix (small N only)."""
    unit = np.asarray(unit, np.float64)
    n = len(unit)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    idx = np.broadcast_to(np.arange(n), (n, n))
    order = np.lexsort((idx, -scores), axis=-1)[:, :min(k, n - 1)]
    return order, np.take_along_axis(scores, order, axis=1).astype(np.float32)


def validate_gexf(path):
    schema = etree.RelaxNG(etree.parse(str(GEXF_RNG)))
    doc = etree.parse(str(path))
    for element in doc.iter():
        element.attrib.pop("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation", None)
    if not schema.validate(doc):
        raise AssertionError(f"{path} is not valid GEXF 1.3: {schema.error_log}")


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    """One neighbors run on the tiny fixture, with catalogue, small blocks."""
    root = tmp_path_factory.mktemp("graph")
    vectors = graph_fixtures.make_model_output(str(root / "model"), n=N_BOOKS)
    graph_fixtures.make_catalog(str(root / "prep"), n=N_BOOKS)
    graph_fixtures.make_train_pairs(str(root / "prep"), n=N_BOOKS)
    summary = neighbors.run([
        "--embeddings", str(root / "model"), "--output", str(root / "graph"),
        "--catalog", str(root / "prep"), "--block_rows", "16", "--tile", "64",
        "--chunk", "16", "--direct_num_workers=1"])
    return root / "graph", vectors, summary


# ------------------------------------------------------------------ top-k kernel

def test_a_failed_run_leaves_blocks_the_next_run_on_the_same_inputs_reuses(graph_dir, tmp_path,
                                                                          monkeypatch):
    """A run whose kernel dies on every block after the first 3: the rerun computes
    only the others (same edges as a clean run); other embeddings never reuse them."""
    out, _, _ = graph_dir
    model, graph = out.parent / "model", tmp_path / "g"
    args = ["--embeddings", str(model), "--output", str(graph), "--block_rows", "8",
            "--formats", "none", "--direct_num_workers=1"]
    real = topk.topk_block

    def dies_after_three(index, query_ids, k):
        if query_ids[0] >= 3 * 8:
            raise RuntimeError("worker lost")
        return real(index, query_ids, k)

    monkeypatch.setattr(topk, "topk_block", dies_after_three)
    with pytest.raises(Exception, match="worker lost"):
        neighbors.run(args)
    monkeypatch.setattr(topk, "topk_block", real)
    assert not (graph / "edges.parquet").exists()
    assert len(list(graph.glob(".blocks-*/block-*.parquet"))) == 3
    summary = neighbors.run(args)
    assert summary["reused_blocks"] == 3 and summary["num_blocks"] == -(-N_BOOKS // 8)
    kernel_columns = blocks.EDGE_SCHEMA.names   # graph_dir's run also has the catalogue's reasons
    assert pq.read_table(graph / "edges.parquet").equals(
        pq.read_table(out / "edges.parquet", columns=kernel_columns))
    assert not list(graph.glob(".blocks-*"))

    monkeypatch.setattr(topk, "topk_block", dies_after_three)
    with pytest.raises(Exception, match="worker lost"):
        neighbors.run(args)
    monkeypatch.setattr(topk, "topk_block", real)
    other = tmp_path / "other"
    graph_fixtures.make_model_output(str(other), n=N_BOOKS, seed=99)
    summary = neighbors.run(["--embeddings", str(other)] + args[2:])
    assert summary["reused_blocks"] == 0
    assert not list(graph.glob(".blocks-*"))


@pytest.mark.parametrize("n,dim,tile,chunk,group", [
    (1, 3, 64, 32, 16), (2, 3, 64, 32, 16), (11, 4, 64, 32, 16), (500, 3, 128, 16, 16),
    (700, 16, 256, 32, 16),
    # chunks chosen through group maxima: many groups, a last group cut short
    # (132 chunks in groups of 5), and 3 dims (many near-ties between groups)
    (2000, 8, 256, 16, 4), (1000, 6, 96, 8, 5), (1500, 3, 128, 8, 2)])
def test_topk_block_equals_brute_force_with_ties(n, dim, tile, chunk, group):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, dim))
    if n > 50:
        x[10:30] = x[3]                  # many exact ties
        x[40:50] = np.round(x[40:50]) + 0.5  # near-collinear duplicates
    if n > 1000:
        x[100::97] = x[1]                # exact ties spread over many groups
    unit, valid = topk.normalise_rows(x)
    assert valid.all()
    index = topk.CandidateIndex(unit, tile=tile, chunk=chunk, group=group)
    got_n, got_s = zip(*(topk.topk_block(index, np.arange(lo, min(n, lo + 37)), 10)
                         for lo in range(0, n, 37)))
    want_n, want_s = brute_force_topk(unit, 10)
    np.testing.assert_array_equal(np.concatenate(got_n), want_n)
    np.testing.assert_allclose(np.concatenate(got_s), want_s, atol=1e-6)


def test_ties_go_to_the_lower_index():
    unit, _ = topk.normalise_rows(np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1.0]]))
    neighbours, _ = topk.topk_block(topk.CandidateIndex(unit), np.arange(5), 2)
    assert neighbours.tolist() == [[1, 2], [0, 2], [0, 1], [0, 1], [0, 1]]


def test_normalise_rows_flags_zero_and_non_finite():
    unit, valid = topk.normalise_rows(np.array([[3, 4], [0, 0], [np.nan, 1], [np.inf, 0]]))
    assert valid.tolist() == [True, False, False, False]
    np.testing.assert_allclose(unit[0], [0.6, 0.8])


# ------------------------------------------------------------------ the job's outputs

def test_edges_equal_independent_brute_force(graph_dir):
    out, vectors, summary = graph_dir
    edges = pq.read_table(out / "edges.parquet")
    assert edges.select(blocks.EDGE_SCHEMA.names).schema.equals(blocks.EDGE_SCHEMA)
    assert edges.column_names[4:] == ["co_readers", "shared_authors", "shared_shelves"]
    got = list(zip(*(edges.column(c).to_pylist() for c in ("source", "target", "rank"))))
    want = reference_edges(vectors, 10)
    assert got == [(s, t, r) for s, t, r, _ in want]
    np.testing.assert_allclose(edges.column("cosine").to_numpy(),
                               [c for *_, c in want], atol=1e-6)
    assert summary["num_edges"] == len(want) == (N_BOOKS - 2) * 10


def test_zero_and_nan_vectors_are_reported_and_left_out(graph_dir):
    out, _, summary = graph_dir
    excluded = pq.read_table(out / "excluded.parquet").to_pylist()
    assert sorted(e["book_index"] for e in excluded) == sorted(
        [graph_fixtures.ZERO_BOOK, graph_fixtures.NAN_BOOK])
    assert {e["reason"] for e in excluded} == {"zero vector", "non-finite or missing vector"}
    assert summary["num_excluded"] == 2
    edges = pq.read_table(out / "edges.parquet")
    used = set(edges.column("source").to_pylist()) | set(edges.column("target").to_pylist())
    assert not used & {graph_fixtures.ZERO_BOOK, graph_fixtures.NAN_BOOK}
    summary_file = json.loads((out / "summary.json").read_text())
    assert summary_file["num_excluded"] == 2


def test_nodes_table_follows_the_contract(graph_dir):
    out, _, _ = graph_dir
    nodes = pq.read_table(out / "nodes.parquet")
    for name in ("book_index", "book_id", "title", "authors", "ratings_count",
                 "average_rating", "genre", "in_degree", "community", "x", "y"):
        assert name in nodes.column_names, name
    assert nodes.num_rows == N_BOOKS - 2
    edges = pq.read_table(out / "edges.parquet")
    indeg = np.bincount(edges.column("target").to_numpy(), minlength=N_BOOKS)
    np.testing.assert_array_equal(nodes.column("in_degree").to_numpy(),
                                  indeg[nodes.column("book_index").to_numpy()])
    assert nodes.column("authors")[0].as_py() == 'Ann <Author> & Co, B. "Quote"'
    assert nodes.column("title")[0].as_py() == graph_fixtures.NASTY_TITLES[0]
    # four tight clusters -> four communities, far apart on the map
    assert len(set(nodes.column("community").to_pylist())) == 4
    assert np.isfinite(nodes.column("x").to_numpy()).all()


def test_same_edges_for_any_worker_count_and_block_size(graph_dir, tmp_path):
    out, _, _ = graph_dir
    model = out.parent / "model"
    neighbors.run(["--embeddings", str(model), "--output", str(tmp_path / "b"),
                   "--block_rows", "5", "--formats", "none", "--tile", "64", "--chunk", "16",
                   "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    neighbors.run(["--embeddings", str(model), "--output", str(tmp_path / "c"),
                   "--block_rows", "1000", "--kernel_rows", "3", "--formats", "none",
                   "--direct_num_workers=1"])
    first = pq.read_table(out / "edges.parquet", columns=blocks.EDGE_SCHEMA.names)
    assert pq.read_table(tmp_path / "b" / "edges.parquet").equals(first)
    assert pq.read_table(tmp_path / "c" / "edges.parquet").equals(first)


def test_gexf_is_valid_and_parses_with_networkx(graph_dir):
    out, _, _ = graph_dir
    validate_gexf(out / "graph.gexf")
    graph = nx.read_gexf(out / "graph.gexf")
    assert graph.is_directed()
    assert graph.number_of_nodes() == N_BOOKS - 2
    assert graph.number_of_edges() == (N_BOOKS - 2) * 10
    node = graph.nodes["0"]
    assert node["label"] == graphs_label(graph_fixtures.NASTY_TITLES[0])
    assert isinstance(node["ratings_count"], int)
    assert isinstance(node["average_rating"], float)
    assert isinstance(node["community"], str)
    assert set(node["viz"]) >= {"color", "position", "size"}
    weights = [d["weight"] for _, _, d in graph.edges(data=True)]
    assert all(-1 <= w <= 1 for w in weights)


def graphs_label(title):
    return gexf_writer.token(title)


def test_every_nasty_title_survives_gexf_and_json(graph_dir):
    out, _, _ = graph_dir
    graph = nx.read_gexf(out / "graph.gexf")
    data = json.loads((out / "graph.json").read_text(encoding="utf-8"))
    json_labels = {n["key"]: n["attributes"]["label"] for n in data["nodes"]}
    nodes = pq.read_table(out / "nodes.parquet")
    stored = dict(zip(nodes.column("book_index").to_pylist(), nodes.column("title").to_pylist()))
    for i in range(len(graph_fixtures.NASTY_TITLES)):
        if i in (graph_fixtures.ZERO_BOOK, graph_fixtures.NAN_BOOK):
            continue
        expected = gexf_writer.token(stored[i])
        assert graph.nodes[str(i)]["label"] == expected
        assert json_labels[str(i)] == expected
    assert "\U0001F409" in graph.nodes["1"]["label"]
    assert graph.nodes["0"]["label"] == 'Tom & "Jerry" <3 \'quoted\' > less'


def test_graph_json_is_graphology_format(graph_dir):
    out, _, _ = graph_dir
    data = json.loads((out / "graph.json").read_text(encoding="utf-8"))
    assert data["options"] == {"type": "directed", "multi": False, "allowSelfLoops": False}
    assert len(data["nodes"]) == N_BOOKS - 2 and len(data["edges"]) == (N_BOOKS - 2) * 10
    attrs = data["nodes"][0]["attributes"]
    assert {"label", "x", "y", "size", "color", "book_id", "community"} <= set(attrs)
    assert attrs["color"].startswith("#") and len(attrs["color"]) == 7
    link = json.loads((out / "graph.nodelink.json").read_text(encoding="utf-8"))
    graph = nx.node_link_graph(link, edges="links")
    assert graph.is_directed() and graph.number_of_edges() == (N_BOOKS - 2) * 10


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_and_empty_inputs(tmp_path, n):
    vectors = np.eye(max(n, 1), 3, dtype=np.float32)[:n]
    if n == 0:
        vectors = np.zeros((2, 3), np.float32)    # two books, both unusable
    graph_fixtures.make_model_output(str(tmp_path / "m"), vectors=vectors)
    summary = neighbors.run(["--embeddings", str(tmp_path / "m"), "--output",
                             str(tmp_path / "g"), "--direct_num_workers=1"])
    assert summary["num_edges"] == max(0, n * (n - 1))
    validate_gexf(tmp_path / "g" / "graph.gexf")
    assert pq.read_table(tmp_path / "g" / "edges.parquet").schema.equals(blocks.EDGE_SCHEMA)


# ------------------------------------------------------------------ writers

def _writer_nodes(titles, authors, average_rating=None):
    """A nodes table as neighbors writes it, one row per title."""
    n = len(titles)
    columns = {"book_index": pa.array(range(n), pa.int64()),
               "book_id": pa.array([f"id{i}" for i in range(n)]),
               "title": pa.array(titles, pa.string()), "authors": pa.array(authors, pa.string())}
    if average_rating is not None:
        columns["average_rating"] = pa.array(average_rating, pa.float64())
    columns.update(in_degree=pa.array([1] * n, pa.int64()), community=pa.array([0] * n, pa.int64()),
                   x=pa.array([0.5 * i for i in range(n)]), y=pa.array([-1e-7] * n))
    return pa.table(columns)


# Everything XML 1.0 forbids (NUL, other C0 controls, U+FFFE) next to markup,
# tabs/newlines and non-BMP text. (A lone surrogate cannot reach the writers:
# Arrow and Parquet strings are valid UTF-8.)
NASTY = "A\x00B\x01C\x08\x0b\x0c\x1f\ufffe<&>\"' \t\n\u202eRTL\u200f \U0001F600"
NASTY_CLEANED = "ABC<&>\"' \t\n\u202eRTL\u200f \U0001F600"


def test_gexf_writer_cleans_forbidden_characters_and_validates(tmp_path):
    text = graph_files.NodeText(_writer_nodes([NASTY, None], [NASTY, None]))
    path = tmp_path / "nasty.gexf"
    with open(path, "wb") as handle:
        writer = gexf_writer.GexfWriter(handle, text.types, [("rank", "integer")],
                                        description=NASTY)
        writer.start_nodes()
        writer.node_rows(text.gexf_rows())
        writer.start_edges()
        writer.edge_batch([0], [1], [0.25], {"rank": [1]})
        writer.close()
    validate_gexf(path)
    graph = nx.read_gexf(path)
    assert graph.nodes["0"]["authors"] == NASTY_CLEANED
    assert graph.nodes["0"]["label"] == " ".join(NASTY_CLEANED.split())
    assert graph.nodes["1"]["label"] == "1" and "authors" not in graph.nodes["1"]
    assert graph.nodes["0"]["viz"]["position"] == {"x": 0.0, "y": -1e-7, "z": 0.0}
    assert graph.edges["0", "1"]["weight"] == 0.25 and graph.edges["0", "1"]["rank"] == 1
    with open(path, "wb") as handle, pytest.raises(ValueError, match="non-finite"):
        writer = gexf_writer.GexfWriter(handle)
        writer.start_nodes()
        writer.start_edges()
        writer.edge_batch([0], [1], [float("nan")])


def test_gexf_writer_memory_is_flat(tmp_path):
    class Sink(io.RawIOBase):
        def __init__(self):
            self.size, self.largest = 0, 0

        def write(self, data):
            self.size += len(data)
            self.largest = max(self.largest, len(data))
            return len(data)

    sink = Sink()
    writer = gexf_writer.GexfWriter(sink)
    writer.start_nodes()
    writer.node_rows(graph_files.NodeText(_writer_nodes([f"n{i}" for i in range(100)],
                                                        [None] * 100)).gexf_rows())
    writer.start_edges()
    for first in range(0, 20000, 1000):
        ids = np.arange(first, first + 1000)
        writer.edge_batch(ids % 100, (ids + 1) % 100, np.full(1000, 0.5))
    writer.close()
    assert writer.edges_written == 20000
    assert sink.largest < 1000 * 80 and sink.size > 20000 * 40


def test_json_writer_handles_nan_and_bad_text():
    text = graph_files.NodeText(_writer_nodes(["x\x00y", NASTY], ["a", None],
                                              average_rating=[float("nan"), 4.5]))
    buffer = io.BytesIO()
    json_writer.write_graphology(buffer, [text.json_rows("graphology")],
                                 [json_writer.EdgeBatch([0], [1], {"weight": [1.0]}).graphology_rows()])
    data = json.loads(buffer.getvalue().decode("utf-8"))
    first, second = (node["attributes"] for node in data["nodes"])
    assert first["label"] == "xy" and first["average_rating"] is None
    assert second["label"] == " ".join(NASTY_CLEANED.split()) and second["authors"] is None
    assert second["average_rating"] == 4.5 and second["color"] == first["color"]
    assert data["edges"] == [{"source": "0", "target": "1", "attributes": {"weight": 1.0}}]
    buffer = io.BytesIO()
    json_writer.write_nodelink(buffer, [text.json_rows("nodelink")], [])
    data = json.loads(buffer.getvalue().decode("utf-8"))
    assert [node["id"] for node in data["nodes"]] == ["0", "1"] and data["links"] == []


def test_community_colours_are_tab20_then_golden_ratio_hues():
    colours = layout.community_colours(np.array([0, 3000, 7]))
    assert colours.shape == (3001, 3) and colours[:20].tolist() == [list(c) for c in layout.PALETTE]
    for c in (20, 21, 999, 3000):
        hue = (c * 0.618033988749895) % 1.0
        assert colours[c].tolist() == [round(255 * v) for v in colorsys.hsv_to_rgb(hue, 0.55, 0.85)]
    assert graph_files.hex_colours(colours[[0, 21]]).to_pylist() == [
        "#1f77b4", "#%02x%02x%02x" % tuple(colours[21])]


def test_label_propagation_finds_disconnected_cliques():
    src, tgt = [], []
    for base in (0, 5, 10):
        for a in range(base, base + 5):
            for b in range(base, base + 5):
                if a != b:
                    src.append(a)
                    tgt.append(b)
    labels = layout.detect_communities(15, np.array(src), np.array(tgt), np.ones(len(src)),
                                       louvain_max_nodes=0)
    assert labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5


# ------------------------------------------------------------------ command line

def test_help_and_bad_arguments(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        neighbors.run(["--help"])
    assert info.value.code == 0
    assert "--embeddings" in capsys.readouterr().out
    cases = [
        ([], "required"),
        (["--embeddings", str(tmp_path), "--output", str(tmp_path / "o"), "--k", "0"],
         "positive integer"),
        (["--embeddings", str(tmp_path), "--output", str(tmp_path / "o"), "--formats", "xml"],
         "unknown format"),
        (["--embeddings", str(tmp_path), "--output", str(tmp_path / "o"), "--tile", "100"],
         "multiple of --chunk"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as info:
            neighbors.run(argv)
        assert info.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(UserError, match="does not exist"):   # what the command line names
        neighbors.run(["--embeddings", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")])


def test_catalogue_of_another_run_is_refused(tmp_path):
    graph_fixtures.make_model_output(str(tmp_path / "m"), n=12)
    table = graph_fixtures.make_catalog(str(tmp_path / "p"), n=12)
    ids = table.column("book_id").to_pylist()
    ids[4] = "999"
    pq.write_table(table.set_column(1, "book_id", pa.array(ids)),
                   tmp_path / "p" / "book_catalog.parquet")
    with pytest.raises(UserError, match="book_index 4 is book_id 999"):
        neighbors.run(["--embeddings", str(tmp_path / "m"), "--catalog", str(tmp_path / "p"),
                       "--output", str(tmp_path / "o")])


def test_wrong_parquet_columns_give_a_clear_error(tmp_path):
    pq.write_table(pa.table({"book_index": [0, 1], "vector": [[1.0], [2.0]]}),
                   tmp_path / "book_embeddings.parquet")
    with pytest.raises(UserError) as info:
        neighbors.run(["--embeddings", str(tmp_path), "--output", str(tmp_path / "o")])
    err = str(info.value)
    assert "missing column(s)" in err and "embedding" in err
    assert not os.path.exists(tmp_path / "o" / "summary.json")


# ------------------------------------------------------------------ files sized for viewers

def test_threads_and_blocks_give_the_float64_brute_force_on_a_sample(tmp_path):
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    vectors[100:110] = vectors[7]                        # exact ties across blocks
    graph_fixtures.make_model_output(str(tmp_path / "m"), vectors=vectors)
    runs = []
    for name, extra in (("a", ["--threads", "3", "--kernel_rows", "37", "--block_rows", "700"]),
                        ("b", ["--threads", "1", "--block_rows", "3000"])):
        neighbors.run(["--embeddings", str(tmp_path / "m"), "--output", str(tmp_path / name),
                       "--formats", "none", "--tile", "512"] + extra)
        runs.append(pq.read_table(tmp_path / name / "edges.parquet"))
    assert runs[0].equals(runs[1])
    unit = vectors.astype(np.float64) / np.linalg.norm(vectors.astype(np.float64), axis=1,
                                                        keepdims=True)
    sample = np.r_[0:12, 100:110, rng.choice(3000, 150, replace=False)]
    scores = unit[sample] @ unit.T
    scores[np.arange(len(sample)), sample] = -np.inf
    want = np.lexsort((np.broadcast_to(np.arange(3000), scores.shape), -scores), axis=1)[:, :10]
    got = runs[0].column("target").to_numpy().reshape(3000, 10)[sample]
    np.testing.assert_array_equal(got, want)
    cosine = runs[0].column("cosine").to_numpy().reshape(3000, 10)[sample]
    np.testing.assert_allclose(cosine, np.take_along_axis(scores, want, axis=1), atol=1e-6)


@pytest.fixture(scope="module")
def cut_graph(tmp_path_factory):
    """The fixture graph with graph files cut to 20 books and split by community."""
    root = tmp_path_factory.mktemp("cut")
    graph_fixtures.make_model_output(str(root / "model"), n=N_BOOKS)
    graph_fixtures.make_catalog(str(root / "prep"), n=N_BOOKS)
    summary = neighbors.run([
        "--embeddings", str(root / "model"), "--output", str(root / "graph"),
        "--catalog", str(root / "prep"), "--max_graph_nodes", "20",
        "--split_by", "community"])
    return root / "graph", summary


def test_graph_files_hold_the_most_read_books_and_state_the_cut(cut_graph):
    out, summary = cut_graph
    nodes = pq.read_table(out / "nodes.parquet")
    edges = pq.read_table(out / "edges.parquet")
    assert nodes.num_rows == N_BOOKS - 2 and edges.num_rows == (N_BOOKS - 2) * 10
    reads = dict(zip(nodes.column("book_index").to_pylist(),
                     nodes.column("num_interactions").to_pylist()))
    want = sorted(sorted(reads, key=lambda b: (-reads[b], b))[:20])
    want_edges = sum(1 for s, t in zip(edges.column("source").to_pylist(),
                                       edges.column("target").to_pylist())
                     if s in want and t in want)
    validate_gexf(out / "graph.gexf")
    graph = nx.read_gexf(out / "graph.gexf")
    assert sorted(int(n) for n in graph.nodes) == want
    assert graph.number_of_edges() == want_edges == summary["graph_file_edges"] > 0
    cut = f"the 20 most-read of {N_BOOKS - 2} books (by num_interactions"
    assert cut in etree.parse(str(out / "graph.gexf")).findtext(
        "{http://gexf.net/1.3}meta/{http://gexf.net/1.3}description")
    data = json.loads((out / "graph.json").read_text(encoding="utf-8"))
    assert cut in data["attributes"]["cut"]
    assert data["attributes"]["num_books_in_file"] == len(data["nodes"]) == 20
    assert len(data["edges"]) == want_edges
    stored = json.loads((out / "summary.json").read_text())
    assert cut in stored["graph_file_cut"] and stored["graph_file_nodes"] == 20


def test_split_by_community_gives_valid_pieces_of_whole_communities(cut_graph):
    out, summary = cut_graph
    nodes = pq.read_table(out / "nodes.parquet")
    community = dict(zip(nodes.column("book_index").to_pylist(),
                         nodes.column("community").to_pylist()))
    edges = pq.read_table(out / "edges.parquet")
    seen, edge_total = set(), 0
    for piece in summary["community_files"]:
        path = out / "communities" / piece["file"]
        validate_gexf(path)
        graph = nx.read_gexf(path)
        books = {int(n) for n in graph.nodes}
        assert len(books) == piece["num_nodes"] <= 20
        assert not books & seen
        seen |= books
        inside = sum(1 for s, t in zip(edges.column("source").to_pylist(),
                                       edges.column("target").to_pylist())
                     if s in books and t in books)
        assert graph.number_of_edges() == inside == piece["num_edges"]
        edge_total += inside
    # every community of at most 20 books is in exactly one piece, whole
    sizes = np.bincount(list(community.values()))
    small = {b for b, c in community.items() if sizes[c] <= 20}
    assert small <= seen
    for b in seen:
        assert {x for x in community if community[x] == community[b]} <= seen or \
            sizes[community[b]] > 20
