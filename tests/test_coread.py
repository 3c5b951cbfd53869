"""coread@k: the share of (training book a, later-read book b) pairs whose b is a neighbour of a."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graph_export import coread
from pipeline_common.errors import UserError
from tests import model_fixtures


def test_coread_counts_pairs_by_hand():
    # user 0 read 0, 1 in training and 2 later; user 1 read 2 in training and 0, 3 later.
    # pairs: (0,2) (1,2) (2,0) (2,3) -> 4; neighbours 0->2, 1->3, 2->0, 2->1: (0,2), (2,0) hit.
    train_user, train_book = [0, 0, 1, 1], [0, 1, 2, 2]      # a duplicate row counts once
    eval_user, eval_book = [0, 1, 1], [2, 0, 3]
    source, target = [0, 1, 2, 2, 3], [2, 3, 0, 1, 3]        # 3->3: a self edge never counts
    result = coread.coread_at_k(train_user, train_book, eval_user, eval_book, source, target,
                                num_books=4)
    assert (result["hits"], result["pairs"]) == (2, 4)
    assert result["coread"] == 0.5
    # chunking does not change the count
    assert coread.coread_at_k(train_user, train_book, eval_user, eval_book, source, target,
                              num_books=4, chunk=1)["hits"] == 2
    # no neighbours: nothing found; no eval pairs: 0, not a division by zero
    assert coread.coread_at_k(train_user, train_book, eval_user, eval_book, [], [], 4)["hits"] == 0
    assert coread.coread_at_k(train_user, train_book, [], [], source, target, 4)["coread"] == 0.0


def test_coread_refuses_books_outside_the_catalogue():
    with pytest.raises(UserError, match="outside"):
        coread.coread_at_k([0], [0], [0], [1], [0], [7], num_books=4)


def test_random_and_embedding_neighbours():
    source, target = coread.random_neighbours(50, k=10, seed=1)
    assert len(source) == 500 and not (source == target).any()
    pairs = set(zip(source.tolist(), target.tolist()))
    assert len(pairs) == 500, "k distinct neighbours per book"
    small_source, small_target = coread.random_neighbours(5, k=10)
    assert len(small_source) == 20 and not (small_source == small_target).any()
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0]], np.float32)
    source, target = coread.embedding_neighbours(vectors, k=1)
    assert dict(zip(source.tolist(), target.tolist())) == {0: 1, 1: 0, 2: 3, 3: 2, 4: 2}


def test_classic_neighbours_find_planted_co_reading():
    # two groups of readers, each reading only its own half of the books
    users = np.repeat(np.arange(40), 5)
    books = (users % 2) * 10 + np.tile(np.arange(5), 40) + (users // 2 % 2) * 5
    split = coread.split_of(users, books, users[:1], books[:1], 40, 20)
    for source, target in (coread.ease_neighbours(split, k=3)[:2],
                           coread.item_cosine_neighbours(split, k=3)):
        assert len(source) > 0 and not (source == target).any()
        assert ((source < 10) == (target < 10)).all(), "neighbours stay in their group"


def test_cli_measures_a_graph_and_its_peers(tmp_path):
    prep = tmp_path / "prep"
    model_fixtures.write_prep(str(prep))
    manifest = json.loads((prep / "manifest.json").read_text())
    graph = tmp_path / "graph"
    graph.mkdir()
    source, target = coread.random_neighbours(manifest["num_books"], k=10, seed=5)
    pq.write_table(pa.table({"source": source, "target": target}), graph / "edges.parquet")
    (graph / "summary.json").write_text(json.dumps({"num_nodes": manifest["num_books"]}))
    result = coread.run(["--data", str(prep), "--graph", str(graph)])
    written = json.loads((graph / "coread.json").read_text())
    assert written["map"] == result["map"] and set(written["peers"]) == {
        "ease", "item_cosine", "random"}
    summary = json.loads((graph / "summary.json").read_text())
    assert summary["num_nodes"] == manifest["num_books"], "the job's own figures are kept"
    assert summary["coread"] == {"k": 10, **{
        name: round(fig["coread"], 6) for name, fig in [("map", result["map"]),
                                                         *result["peers"].items()]}}
    # planted genres: the classic neighbours beat random books; the map here is random
    assert written["peers"]["ease"]["coread"] > 1.5 * written["peers"]["random"]["coread"]
    assert written["peers"]["item_cosine"]["coread"] > 1.5 * written["map"]["coread"]
    with pytest.raises(UserError, match="edges.parquet"):
        coread.run(["--data", str(prep), "--graph", str(tmp_path / "nowhere")])
