"""A tiny GRAPH directory that follows docs/artifacts.md section 3, for explorer tests.

Books sit in four clusters of random unit vectors; edges are each book's exact
top-k by cosine. With `with_map` (the default) the files carry the map contract
of issue 24 too: `community_name`, `region`, `region_name` in nodes.parquet,
`co_readers`, `shared_authors`, `shared_shelves` in edges.parquet, and
communities.parquet; without it they look like the graph files before it. Titles and authors include markup, `</script>`, quotes,
emoji, right-to-left text, U+2028 and template-sentinel look-alikes, so the
explorer has to treat them as data.
"""
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

XSS_IMG = '<img src=x onerror="window.__pwned=1;alert(1)">'
XSS_SCRIPT = "</script><script>window.__pwned=2;alert(2)</script>"
NASTY_TITLES = [
    XSS_IMG,
    XSS_SCRIPT,
    "\"Quoted\" & 'apostrophes' &amp; <b>not bold</b>",
    "\U0001F409 Dragons & Dungeons \U0001F3F0",
    "\u0645\u0626\u0629 \u0639\u0627\u0645 \u0645\u0646 \u0627\u0644\u0639\u0632\u0644\u0629",
    "\u05d4\u05e0\u05e1\u05d9\u05da \u05d4\u05e7\u05d8\u05df",
    "Line\u2028separator\u2029paragraph",
    "@DATA@ /*@JS@*/ <!-- comment",
    "Les Mis\u00e9rables",
]
PLAIN_TITLES = [
    "The Hobbit", "The Fellowship of the Ring", "The Two Towers", "The Return of the King",
    "A Wizard of Earthsea", "The Name of the Wind", "Mistborn", "The Way of Kings",
    "Pride and Prejudice", "Emma", "Persuasion", "Sense and Sensibility", "Jane Eyre",
    "Wuthering Heights", "Middlemarch", "Gone Girl", "The Girl with the Dragon Tattoo",
    "The Big Sleep", "Rebecca", "In Cold Blood", "Dune", "Foundation", "Hyperion",
    "Neuromancer", "The Left Hand of Darkness", "Solaris", "Snow Crash", "Ubik",
    "The Dispossessed", "Kindred", "Harry Potter and the Prisoner of Azkaban",
]
GENRES = ["fantasy, paranormal", "romance", "mystery, thriller, crime", "fiction"]
XSS_AUTHOR = "<svg onload=\"window.__pwned=3\">Mallory</svg>"
COMMUNITY_NAMES = ["fantasy \u00b7 dragons \u00b7 Author 0", "romance \u00b7 regency",
                   "<i onmouseover=\"window.__pwned=4\">mystery</i> \u00b7 noir",
                   "fiction \u00b7 classics"]
REGION_NAMES = ["Fantasy & romance", "Crime & classics"]
SHELVES = ["fantasy, magic", "romance, historical", "mystery, crime", ""]


def make_graph(graph_dir, k=12, with_catalog=True, seed=3, with_map=True):
    """Writes nodes.parquet and edges.parquet under graph_dir; returns a summary dict.

    Book indices are 0..n-1 except that one gap is left (index 7 unused) so
    the explorer cannot assume book_index == row.
    """
    rng = np.random.default_rng(seed)
    titles = NASTY_TITLES + PLAIN_TITLES
    n = len(titles)
    centres = rng.normal(size=(4, 8))
    cluster = np.arange(n) % 4
    emb = centres[cluster] + 0.8 * rng.normal(size=(n, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    emb = emb.astype(np.float32)
    book_index = np.array([i if i < 7 else i + 1 for i in range(n)], dtype=np.int64)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    sources, targets, ranks, cosines = [], [], [], []
    for i in range(n):
        order = np.lexsort((book_index, -sims[i]))[:k]
        for rank, j in enumerate(order, start=1):
            sources.append(book_index[i])
            targets.append(book_index[j])
            ranks.append(rank)
            cosines.append(sims[i, j])
    in_degree = np.bincount(np.searchsorted(book_index, targets), minlength=n)
    columns = {
        "book_index": pa.array(book_index, pa.int64()),
        "book_id": pa.array([str(1000 + int(b)) for b in book_index], pa.string()),
        "title": pa.array(titles, pa.string()),
    }
    if with_catalog:
        authors = [f"Author {i % 9}, Co-Author {i % 5}" for i in range(n)]
        authors[0] = XSS_AUTHOR
        authors[3] = None
        genres = [GENRES[c] for c in cluster]
        genres[5] = None
        columns.update({
            "authors": pa.array(authors, pa.string()),
            "ratings_count": pa.array([int(10 ** (1 + (i * 7) % 6)) + i for i in range(n)],
                                      pa.int64()),
            "average_rating": pa.array([3.0 + (i % 20) / 10 for i in range(n)], pa.float64()),
            "genre": pa.array(genres, pa.string()),
        })
    # Each cluster its own patch of the map, as a neighbourhood-keeping layout puts them.
    spots = np.array([[-4.0, 3.0], [4.0, 3.5], [-3.5, -3.0], [4.5, -3.5]])
    xy = spots[cluster] + rng.normal(size=(n, 2))
    columns.update({
        "in_degree": pa.array(in_degree, pa.int64()),
        "community": pa.array(cluster, pa.int64()),
        "x": pa.array(xy[:, 0], pa.float64()),
        "y": pa.array(xy[:, 1], pa.float64()),
    })
    region = cluster // 2
    if with_map:
        columns.update({
            "community_name": pa.array([COMMUNITY_NAMES[c] for c in cluster], pa.string()),
            "region": pa.array(region, pa.int64()),
            "region_name": pa.array([REGION_NAMES[r] for r in region], pa.string()),
        })
    os.makedirs(graph_dir, exist_ok=True)
    pq.write_table(pa.table(columns), os.path.join(graph_dir, "nodes.parquet"))
    edge_columns = {
        "source": pa.array(sources, pa.int64()),
        "target": pa.array(targets, pa.int64()),
        "rank": pa.array(ranks, pa.int32()),
        "cosine": pa.array(cosines, pa.float32()),
    }
    row = {int(b): i for i, b in enumerate(book_index)}
    reasons = [edge_reason(row[s], row[t], cluster) for s, t in zip(sources, targets)]
    if with_map:
        edge_columns.update({
            "co_readers": pa.array([r[0] for r in reasons], pa.int64()),
            "shared_authors": pa.array([r[1] for r in reasons], pa.int32()),
            "shared_shelves": pa.array([r[2] for r in reasons], pa.string()),
        })
        communities = pa.table({
            "level": ["community"] * 4 + ["region"] * 2,
            "id": pa.array([0, 1, 2, 3, 0, 1], pa.int64()),
            "parent": pa.array([0, 0, 1, 1, -1, -1], pa.int64()),
            "name": COMMUNITY_NAMES + REGION_NAMES,
            "terms": [name.split(" \u00b7 ") for name in COMMUNITY_NAMES + REGION_NAMES],
            "scores": [[1.0] * len(name.split(" \u00b7 ")) for name in
                       COMMUNITY_NAMES + REGION_NAMES],
            "size": pa.array([int((cluster == c).sum()) for c in range(4)]
                             + [int((region == r).sum()) for r in range(2)], pa.int64()),
            "top_books": [book_index[cluster == c][:5].tolist() for c in range(4)]
            + [book_index[region == r][:5].tolist() for r in range(2)],
        })
        pq.write_table(communities, os.path.join(graph_dir, "communities.parquet"))
    pq.write_table(pa.table(edge_columns), os.path.join(graph_dir, "edges.parquet"))
    return {"graph_dir": graph_dir, "n": n, "k": k, "book_index": book_index.tolist(),
            "titles": dict(zip(book_index.tolist(), titles)), "cluster": cluster.tolist(),
            "region": region.tolist()}


def edge_reason(a, b, cluster):
    """(co_readers, shared_authors, shared_shelves) the fixture writes for rows a -> b."""
    co_readers = 37 + (a * 31 + b * 17) % 1500
    shared_authors = int(a % 9 == b % 9)
    shelves = SHELVES[cluster[a]] if cluster[a] == cluster[b] else ""
    return co_readers, shared_authors, shelves


def reason_text(co_readers, shared_authors, shelves):
    """The reason line the viewer writes for an edge (docs/explorer.md)."""
    bits = [f"{co_readers:,} readers read both"]
    if shared_authors:
        bits.append("same author" if shared_authors == 1 else f"{shared_authors} shared authors")
    if shelves:
        bits.append(shelves)
    return " \u00b7 ".join(bits)


def top_neighbours(graph_dir, book_index, count=10):
    """[(target, cosine)] of a book's first `count` edges by rank, read from edges.parquet."""
    table = pq.read_table(os.path.join(graph_dir, "edges.parquet")).to_pandas()
    rows = table[table["source"] == book_index].sort_values("rank").head(count)
    return list(zip(rows["target"].tolist(), rows["cosine"].tolist()))
