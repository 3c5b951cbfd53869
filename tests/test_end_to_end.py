"""The whole chain through the real command lines, each stage reading the last one's files.

sample_goodreads -> preprocess -> model.train -> graph_export.neighbors -> ego -> explorer,
on tiny data, as `make demo` runs it (the session's `chain`, tests/chain.py). The
stage tests check each stage in depth; this one checks that the documented
artifacts connect.
"""
import json
import subprocess
import sys

import networkx as nx
import numpy as np
import pandas as pd


def _run(*args):
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stderr[-3000:]}"
    return result


def test_every_stage_reads_the_previous_stage_output(chain):
    manifest = json.load(open(f"{chain['prep']}/manifest.json"))
    catalog = pd.read_parquet(f"{chain['prep']}/book_catalog.parquet")
    assert manifest["num_books"] == len(catalog) == 200
    embeddings = pd.read_parquet(f"{chain['model']}/book_embeddings.parquet")
    assert embeddings.book_index.tolist() == catalog.book_index.tolist()
    assert embeddings.book_id.tolist() == catalog.book_id.tolist()
    metrics = json.load(open(f"{chain['model']}/metrics.json"))
    assert set(metrics["baselines"]) == {"popularity", "item_cosine", "ease"}
    assert set(metrics["groups"]["model"]) == {"1-2", "3-10", "11+"}
    assert metrics["eval_interactions"] == manifest["eval_examples"]
    nodes = pd.read_parquet(f"{chain['graph']}/nodes.parquet")
    assert nodes.title.tolist() == catalog.title.tolist()
    assert nodes.authors.tolist() == [", ".join(a) for a in catalog.authors]


def test_graph_edges_are_the_exact_top10_of_the_exported_embeddings(chain):
    vectors = np.load(f"{chain['model']}/book_embeddings.npy").astype(np.float64)
    # cosine, computed in float64 (the float32 vectors are unit length only to ~1e-7)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    # stable sort on -score: equal scores keep the lower index first
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    edges = pd.read_parquet(f"{chain['graph']}/edges.parquet")
    got = edges.sort_values(["source", "rank"]).target.to_numpy().reshape(-1, 10)
    assert (got == expected).all()
    graph = nx.read_gexf(f"{chain['graph']}/graph.gexf")
    assert graph.is_directed() and graph.number_of_edges() == len(edges) == 2000


def test_ego_graph_and_explorer_from_the_graph(chain, tmp_path):
    nodes = pd.read_parquet(f"{chain['graph']}/nodes.parquet")
    title = nodes.title.iloc[7]
    prefix = f"{tmp_path}/book"
    _run("graph_export.ego", "--graph", chain["graph"], "--title", title.upper(),
         "--depth", "2", "--output", prefix)
    ego = json.load(open(f"{prefix}.json"))
    assert 11 <= len(ego["nodes"]) <= 111
    with open(f"{prefix}.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    html = f"{tmp_path}/explorer.html"
    _run("graph_export.explorer", "--graph", chain["graph"], "--output", html)
    text = open(html, encoding="utf-8").read()
    assert "<script" in text and "http://" not in text.split("<body", 1)[0].lower()


def test_edge_co_readers_equal_a_recount_from_the_train_tfrecords(chain):
    """co_readers on every edge = training users who read both books, recounted from
    the TFRecords (not the train_pairs files the job counts from)."""
    from model import data
    manifest = json.load(open(f"{chain['prep']}/manifest.json"))
    train = data.read_split(chain["prep"], "train", manifest)
    readers = {}
    for user, book in zip(train.user.tolist(), train.book.tolist()):
        readers.setdefault(book, set()).add(user)
    edges = pd.read_parquet(f"{chain['graph']}/edges.parquet")
    want = [len(readers.get(s, set()) & readers.get(t, set()))
            for s, t in zip(edges.source, edges.target)]
    assert edges.co_readers.tolist() == want and sum(want) > 0
    nodes = pd.read_parquet(f"{chain['graph']}/nodes.parquet")
    groups = pd.read_parquet(f"{chain['graph']}/communities.parquet")
    assert nodes.community_name.notna().all() and nodes.region_name.notna().all()
    assert set(groups.level) == {"region", "community"}
