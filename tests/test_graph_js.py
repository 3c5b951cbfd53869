"""graph.gexf and graph.json load in the JavaScript libraries web viewers use.

tests/js pins graphology and graphology-gexf (package-lock.json); `npm ci` runs
once if tests/js/node_modules is missing. Without node/npm these tests FAIL
with a message saying what to install -- they are never skipped.
"""
import json
import pathlib
import shutil
import subprocess

import networkx as nx
import pytest

from graph_export import gexf_writer, neighbors
from tests import graph_fixtures

JS_DIR = pathlib.Path(__file__).parent / "js"
N_BOOKS = 40


def find_node(which=shutil.which, run=subprocess.run):
    """Path to `node` with tests/js/node_modules installed; a clear error otherwise."""
    node, npm = which("node"), which("npm")
    if not node or not npm:
        raise RuntimeError("node and npm are needed to check the graph files with graphology "
                           "(install Node.js >= 18, e.g. `apt-get install nodejs npm`)")
    if not (JS_DIR / "node_modules" / "graphology-gexf").is_dir():
        done = run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR,
                   capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"`npm ci` in {JS_DIR} failed:\n{done.stderr[-2000:]}")
    return node


@pytest.fixture(scope="module")
def node_js():
    try:
        return find_node()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)


def test_missing_node_is_an_error_not_a_skip():
    with pytest.raises(RuntimeError, match="node and npm are needed"):
        find_node(which=lambda name: None)


def parse_with_js(node, kind, path):
    done = subprocess.run([node, str(JS_DIR / "check_graph.js"), kind, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"graphology could not load {path}: {done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("jsgraph")
    graph_fixtures.make_model_output(str(root / "model"), n=N_BOOKS)
    graph_fixtures.make_catalog(str(root / "prep"), n=N_BOOKS)
    neighbors.run(["--embeddings", str(root / "model"), "--output", str(root / "graph"),
                   "--catalog", str(root / "prep"), "--k", "5", "--direct_num_workers=1"])
    return root / "graph"


def test_graphology_gexf_parses_graph_gexf(node_js, graph_dir):
    got = parse_with_js(node_js, "gexf", graph_dir / "graph.gexf")
    assert got["type"] == "directed" and not got["multi"]
    assert got["order"] == N_BOOKS - 2 and got["size"] == (N_BOOKS - 2) * 5
    nodes = {n["key"]: n["attrs"] for n in got["nodes"]}
    reference = nx.read_gexf(graph_dir / "graph.gexf")
    for key, attrs in nodes.items():
        assert attrs["label"] == reference.nodes[key]["label"]
        assert {"x", "y", "size", "color", "book_id", "community"} <= set(attrs)
        assert attrs["color"].startswith("rgb(")
    assert nodes["0"]["label"] == gexf_writer.token(graph_fixtures.NASTY_TITLES[0])
    assert isinstance(nodes["0"]["ratings_count"], int)
    assert all(-1 <= e["attrs"]["weight"] <= 1 for e in got["edges"])


def test_graphology_imports_graph_json(node_js, graph_dir):
    got = parse_with_js(node_js, "json", graph_dir / "graph.json")
    assert got["type"] == "directed"
    assert got["order"] == N_BOOKS - 2 and got["size"] == (N_BOOKS - 2) * 5
    labels = {n["key"]: n["attrs"]["label"] for n in got["nodes"]}
    assert labels["1"] == graph_fixtures.NASTY_TITLES[1]   # emoji intact


@pytest.mark.parametrize("body", ['<node id="1" label="a & b"/>',
                                  '<node id="1" label="bell \x07"/>',
                                  '<node id="1" label="&#1;"/>'])
def test_js_checker_rejects_what_browsers_reject(node_js, tmp_path, body):
    """The checker must be as strict as a browser, or the tests above prove nothing."""
    bad = tmp_path / "bad.gexf"
    bad.write_text('<gexf xmlns="http://gexf.net/1.3" version="1.3"><graph><nodes>'
                   f'{body}</nodes><edges/></graph></gexf>', encoding="utf-8")
    done = subprocess.run([node_js, str(JS_DIR / "check_graph.js"), "gexf", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "XML" in done.stderr
