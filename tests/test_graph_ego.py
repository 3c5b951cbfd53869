"""graph_export.ego: breadth-first ego graphs, title lookup, GEXF/JSON/PNG outputs."""
import json

import networkx as nx
import pyarrow.parquet as pq
import pytest

from graph_export import ego, neighbors
from pipeline_common.errors import UserError
from tests import graph_fixtures
from tests.test_graph_export import reference_edges, validate_gexf

N_BOOKS = 1500


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """A 1500-book graph in one loose cluster, so depth 3 reaches a few hundred books."""
    root = tmp_path_factory.mktemp("ego")
    vectors = graph_fixtures.make_model_output(str(root / "model"), n=N_BOOKS, dim=12,
                                               clusters=1, seed=5)
    graph_fixtures.make_catalog(str(root / "prep"), n=N_BOOKS)
    neighbors.run(["--embeddings", str(root / "model"), "--output", str(root / "graph"),
                   "--catalog", str(root / "prep"), "--formats", "none",
                   "--direct_num_workers=1"])
    return root, vectors


def test_depth_3_ego_graph_holds_each_layers_exact_neighbours(graph):
    root, vectors = graph
    summary = ego.run(["--graph", str(root / "graph"), "--title", "neuromancer",
                       "--output", str(root / "neuromancer")])
    assert summary["num_nodes"] <= 1 + 10 + 100 + 1000
    assert summary["layers"][:2] == [1, 10] and summary["layers"][3] > 100
    truth = {}
    for s, t, _, _ in reference_edges(vectors, 10):
        truth.setdefault(s, []).append(t)
    g = nx.read_gexf(root / "neuromancer.gexf")
    layer = {int(n): d["layer"] for n, d in g.nodes(data=True)}
    centre = graph_fixtures.titles_for(N_BOOKS).index("Neuromancer")
    assert layer[centre] == 0
    assert sorted(layer.values()).count(3) == summary["layers"][3]
    for book, depth in layer.items():
        if depth < 3:
            for nb in truth[book]:
                assert nb in layer and layer[nb] <= depth + 1, (book, nb)
                assert g.has_edge(str(book), str(nb))
    # and nothing beyond: every book is reachable within its layer count of hops
    by_layer = {0: {centre}}
    for d in range(1, 4):
        by_layer[d] = {t for s in by_layer[d - 1] for t in truth[s]} - set().union(
            *(by_layer[i] for i in range(d)))
        assert by_layer[d] == {b for b, v in layer.items() if v == d}
    validate_gexf(root / "neuromancer.gexf")
    data = json.loads((root / "neuromancer.json").read_text(encoding="utf-8"))
    assert len(data["nodes"]) == summary["num_nodes"]
    assert all("layer" in n["attributes"] for n in data["nodes"])
    assert (root / "neuromancer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_title_lookup_ignores_case_and_punctuation(graph):
    nodes = pq.read_table(graph[0] / "graph" / "nodes.parquet")
    row = ego.find_book(nodes, title="  the   HOBBIT!! ")
    assert nodes.column("title")[row].as_py() == "The Hobbit"
    row = ego.find_book(nodes, title="tom & jerry 3 quoted less")
    assert nodes.column("book_index")[row].as_py() == 0


def test_ambiguous_and_unknown_titles_list_the_closest(graph):
    root = graph[0]
    with pytest.raises(UserError) as info:
        ego.run(["--graph", str(root / "graph"), "--title", "DUNE", "--output",
                 str(root / "x")])
    err = str(info.value)
    assert "matches 2 books" in err and "--book_id" in err and err.count("'Dune'") == 2
    with pytest.raises(UserError) as info:
        ego.run(["--graph", str(root / "graph"), "--title", "Neuromancr", "--output",
                 str(root / "x")])
    err = str(info.value)
    assert "no book titled 'Neuromancr'" in err and "'Neuromancer'" in err


def test_book_id_depth_and_k_options(graph):
    root, _ = graph
    book_id = graph_fixtures.book_ids_for(N_BOOKS)[42]
    summary = ego.run(["--graph", str(root / "graph"), "--book_id", book_id, "--depth", "2",
                       "--k", "3", "--output", str(root / "b42"), "--formats", "json"])
    assert summary["num_nodes"] <= 1 + 3 + 9 and summary["layers"][1] == 3
    assert summary["files"] == [str(root / "b42") + ".json"]


def test_ego_command_line_errors(graph, capsys):
    root = graph[0]
    usage = [   # argparse's: status 2
        (["--graph", str(root / "graph"), "--output", "x"], "one of the arguments"),
        (["--graph", str(root / "graph"), "--title", "a", "--book_id", "1", "--output", "x"],
         "not allowed with"),
        (["--graph", str(root / "graph"), "--title", "Emma", "--formats", "svg",
          "--output", "x"], "unknown svg"),
    ]
    for argv, message in usage:
        with pytest.raises(SystemExit) as info:
            ego.run(argv)
        assert info.value.code == 2
        assert message in capsys.readouterr().err, message
    named = [   # what the command line names is not there: a UserError
        (["--graph", str(root / "nowhere"), "--title", "Dune", "--output", "x"],
         "does not exist"),
        (["--graph", str(root / "graph"), "--book_id", "999999999", "--output", "x"],
         "no book with book_id"),
        (["--graph", str(root / "graph"), "--title", "Emma", "--k", "11", "--output", "x"],
         "only 10 neighbours"),
    ]
    for argv, message in named:
        with pytest.raises(UserError, match=message):
            ego.run(argv)
