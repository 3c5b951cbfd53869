"""The map: co-reader counts, shared authors and shelves, names, regions and the layout."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graph_export import book_map, co_readers, edge_reasons, layout, names, neighbors
from tests import graph_fixtures

N = 60


def brute_force_co_readers(user, book, sources, targets):
    readers = {}
    for u, b in zip(user.tolist(), book.tolist()):
        readers.setdefault(b, set()).add(u)
    return [len(readers.get(s, set()) & readers.get(t, set()))
            for s, t in zip(sources.tolist(), targets.tolist())]


@pytest.mark.parametrize("budget", [1 << 27, 64])   # 64 bytes: one user per block
def test_co_reader_counts_equal_a_recount(budget):
    rng = np.random.default_rng(3)
    num_books, k = 50, 4
    user = rng.integers(0, 30, 400)
    book = rng.integers(0, num_books, 400)
    keep = np.unique(user * num_books + book)             # one pair per (user, book)
    user, book = keep // num_books, keep % num_books
    shuffle = rng.permutation(len(user))                   # users need not be sorted
    sources = np.arange(num_books - 5)                     # 5 books are no source
    neighbours = rng.integers(0, num_books, (len(sources), k))
    row_of_book = np.full(num_books, -1)
    row_of_book[sources] = np.arange(len(sources))
    counts = co_readers.count_co_readers(user[shuffle], book[shuffle], neighbours, row_of_book,
                                         budget_bytes=budget, min_users=1)
    want = brute_force_co_readers(user, book, np.repeat(sources, k), neighbours.ravel())
    assert counts.tolist() == want


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("map")
    graph_fixtures.make_model_output(str(root / "model"), n=N)
    graph_fixtures.make_catalog(str(root / "prep"), n=N)
    user, book = graph_fixtures.make_train_pairs(str(root / "prep"), n=N)
    args = ["--embeddings", str(root / "model"), "--catalog", str(root / "prep"),
            "--block_rows", "16", "--direct_num_workers=1"]
    summary = neighbors.run(args + ["--output", str(root / "g1")])
    neighbors.run(args + ["--output", str(root / "g2"), "--formats", "none"])
    return root, summary, user, book


def test_edges_carry_exact_co_readers_and_shared_authors_and_shelves(graph):
    root, summary, user, book = graph
    edges = pd.read_parquet(root / "g1" / "edges.parquet")
    assert summary["co_readers_counted"] and summary["train_pair_files"] == 2
    assert edges.co_readers.tolist() == brute_force_co_readers(
        user, book, edges.source.to_numpy(), edges.target.to_numpy())
    assert edges.co_readers.sum() > 0 and (edges.shared_shelves != "").any()
    catalog = pd.read_parquet(root / "prep" / "book_catalog.parquet").set_index("book_index")
    nodes = pd.read_parquet(root / "g1" / "nodes.parquet")
    carried = pd.Series([s["name"] for v in catalog.loc[nodes.book_index].shelves for s in v])
    generic = set(names.GENERIC_SHELVES) | set(   # the documented data-driven rule
        carried.value_counts()[lambda c: c > names.GENERIC_SHARE * len(nodes)].index)
    for row in edges.itertuples():
        a, b = catalog.loc[row.source], catalog.loc[row.target]
        assert row.shared_authors == len(set(a.authors) & set(b.authors))
        telling = [names.shelf_label(s["name"]) for s in a.shelves
                   if s["name"] not in generic]
        theirs = {names.shelf_label(s["name"]) for s in b.shelves}
        shared = [s for s in telling if s in theirs]
        got = row.shared_shelves.split(", ") if row.shared_shelves else []
        assert set(got) <= set(shared) and len(got) == min(3, len(shared))


def test_names_regions_and_positions_are_deterministic(graph):
    root, _, _, _ = graph
    for name in ("nodes.parquet", "communities.parquet"):
        assert pq.read_table(root / "g1" / name).equals(pq.read_table(root / "g2" / name))
    assert pq.read_table(root / "g1" / "edges.parquet").equals(
        pq.read_table(root / "g2" / "edges.parquet"))


def test_communities_file_and_node_names(graph):
    root, summary, _, _ = graph
    nodes = pd.read_parquet(root / "g1" / "nodes.parquet")
    groups = pd.read_parquet(root / "g1" / "communities.parquet")
    communities = groups[groups.level == "community"].set_index("id")
    regions = groups[groups.level == "region"].set_index("id")
    assert len(communities) == summary["num_communities"] == nodes.community.max() + 1
    assert len(regions) == summary["num_regions"] == nodes.region.max() + 1
    assert (nodes.community_name == communities.name.loc[nodes.community].to_numpy()).all()
    assert (nodes.region_name == regions.name.loc[nodes.region].to_numpy()).all()
    # each community lies in one region, its parent
    parent = communities.parent.loc[nodes.community].to_numpy()
    assert (parent == nodes.region.to_numpy()).all()
    assert communities["size"].sum() == regions["size"].sum() == len(nodes)
    assert not communities.name.str.match(r"^(community|group) \d+$").any()
    for row in communities.itertuples():
        members = nodes[nodes.community == row.Index]
        assert set(row.top_books) <= set(members.book_index)
    assert np.isfinite(nodes[["x", "y"]].to_numpy()).all()


def test_a_community_is_named_by_the_shelf_its_books_share():
    """Three planted groups; each name starts with the shelf all its books carry."""
    shelves = [[{"name": "to-read", "count": 9}, {"name": topic, "count": 5},
                {"name": f"noise-{i}", "count": 1}]
               for i, topic in enumerate(["dragons"] * 10 + ["space-opera"] * 10
                                         + ["cozy-mystery"] * 10)]
    array = pa.array(shelves, pa.list_(pa.struct([("name", pa.string()),
                                                  ("count", pa.int64())])))
    groups = np.repeat([0, 1, 2], 10)
    terms = names.book_terms(30, shelves=names.book_shelves(array, 30), authors=[["Ann Author"]] * 30,
                             titles=[f"Book {i}" for i in range(30)])
    named = names.name_groups(groups, 3, terms, popularity=np.arange(30)[::-1])
    assert [n.split(names.SEPARATOR)[0] for n in named["name"]] == \
        ["dragons", "space opera", "cozy mystery"]
    assert all("to read" not in t and "noise" not in " ".join(t) for t in named["terms"])
    assert named["top_books"][1][:2] == [10, 11]     # most popular first


def test_shared_shelves_ranks_shelves_both_books_list_first():
    shelves = pa.array([
        [{"name": "a", "count": 5}, {"name": "b", "count": 4}, {"name": "c", "count": 3},
         {"name": "d", "count": 2}, {"name": "e", "count": 1}],
        [{"name": "e", "count": 5}, {"name": "d", "count": 4}, {"name": "a", "count": 3},
         {"name": "b", "count": 2}],
        [{"name": "x", "count": 1}]],
        pa.list_(pa.struct([("name", pa.string()), ("count", pa.int64())])))
    got = edge_reasons.shared_shelves(names.book_shelves(shelves, 3), 3, np.array([0, 0, 2]),
                                      np.array([1, 2, 0]))
    # places: a 0+2, b 1+3, d 3+1, e 4+0 -> a (2), then b, d, e (4 each; ties by source order)
    assert got.to_pylist() == ["a, b, d", "", ""]
    authors = edge_reasons.author_matrix([["P", "Q"], ["Q"], ["P", "Q"]], 3)
    assert edge_reasons.shared_authors(authors, np.array([0, 1, 0]),
                                       np.array([2, 2, 1])).tolist() == [2, 1, 1]


def test_layout_keeps_planted_neighbourhoods_and_places_the_rest():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    vectors = np.repeat(centres, 40, axis=0) + 0.3 * rng.normal(size=(240, 16))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ unit.T
    np.fill_diagonal(scores, -np.inf)
    near = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    sources, targets = np.repeat(np.arange(240), 10), near.ravel()
    positions = layout.compute_positions(unit, sources, targets, seed=0)
    again = layout.compute_positions(unit, sources, targets, seed=0)
    assert np.array_equal(positions, again)
    assert layout.knn_preservation(positions, sources, targets) > 0.5
    # a cut: the first 200 laid out, the others placed from their neighbours
    cut = layout.compute_positions(unit, sources, targets, seed=0, laid_out=np.arange(200))
    planted = np.repeat(np.arange(6), 40)
    centre = np.stack([cut[planted == c].mean(axis=0) for c in range(6)])
    nearest = np.linalg.norm(cut[200:, None, :] - centre[None], axis=2).argmin(axis=1)
    assert (nearest == planted[200:]).mean() > 0.9


def test_fft_layout_gives_the_same_bytes_on_one_or_two_threads(monkeypatch):
    # From FFT_MIN_BOOKS on, openTSNE's gradient runs on the job's threads: the map must
    # not depend on how many (lowered here so that a small graph takes that path).
    monkeypatch.setattr(layout, "FFT_MIN_BOOKS", 100)
    rng = np.random.default_rng(2)
    vectors = np.repeat(rng.normal(size=(5, 8)), 60, axis=0) + 0.4 * rng.normal(size=(300, 8))
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    near = np.argsort(-(unit @ unit.T), axis=1, kind="stable")[:, 1:11]
    sources, targets = np.repeat(np.arange(300), 10), near.ravel()
    one = layout.tsne_positions(unit, sources, targets, seed=0, n_iter=50, threads=1)
    two = layout.tsne_positions(unit, sources, targets, seed=0, n_iter=50, threads=2)
    assert np.array_equal(one, two)
    assert layout.knn_preservation(one, sources, targets) > 0.3


def test_regions_are_whole_communities_that_sit_together():
    rng = np.random.default_rng(1)
    communities = np.repeat(np.arange(80), 5)
    # 80 communities in 20 far-apart spots of the map, 4 communities a spot: as many
    # spots as regions asked for (a quarter of the communities)
    spot = np.arange(80) // 4
    where = rng.permutation(20)[spot] * 100.0
    positions = np.stack([where[communities], rng.normal(size=400)], axis=1)
    region_of = layout.detect_regions(communities, positions, seed=0)
    assert layout.REGIONS_MIN <= region_of.max() + 1 <= layout.REGIONS_MAX
    for s in range(20):     # a spot is one region
        assert len(set(region_of[spot == s].tolist())) == 1
    assert region_of.max() + 1 == 20
    assert np.array_equal(region_of, layout.detect_regions(communities, positions, seed=0))


def test_communities_table_schema(graph):
    root, _, _, _ = graph
    assert pq.read_schema(root / "g1" / "communities.parquet").equals(
        book_map.COMMUNITIES_SCHEMA, check_metadata=False)
