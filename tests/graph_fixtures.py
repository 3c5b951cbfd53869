"""Tiny MODEL and PREP outputs for graph_export tests (docs/artifacts.md sections 1-2).

`make_model_output` writes `book_embeddings.parquet` (and `.npy`) with books in a
few tight clusters, exact duplicates (cosine ties), one zero vector and one
vector with a NaN; titles include XML/JSON trouble makers. `make_catalog`
writes the matching `book_catalog.parquet`.
"""
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NASTY_TITLES = [
    'Tom & "Jerry" <3 \'quoted\' > less',
    "\U0001F409 Dragons & Dungeons \U0001F3F0",
    "\u0645\u0626\u0629 \u0639\u0627\u0645 \u0645\u0646 \u0627\u0644\u0639\u0632\u0644\u0629",
    "\u05d4\u05e0\u05e1\u05d9\u05da \u05d4\u05e7\u05d8\u05df",
    "Bell\x07 and\x00 null\x1b[0m escape\x0b\x0c",
    "Tabs\tand\nnewlines\r\nhere",
    "]]> <![CDATA[ x ]]> <!-- c -->",
    "Lone surrogate \ud800 and \ufffe nonchar",
]
PLAIN_TITLES = ["Neuromancer", "Dune", "Emma", "Persuasion", "The Hobbit", "Rebecca",
                "Foundation", "Solaris", "Kindred", "Middlemarch", "Dune"]
ZERO_BOOK = 3       # book_index with an all-zero vector
NAN_BOOK = 6        # book_index with a NaN component


def make_embeddings(n=60, dim=8, clusters=4, seed=0):
    """float32 [n, dim] unit vectors in tight clusters, with exact duplicates."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    labels = np.arange(n) % clusters
    vectors = centres[labels] + 0.15 * rng.normal(size=(n, dim))
    if n > 22:
        vectors[20] = vectors[21] = vectors[22] = vectors[9]   # four-way tie
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors.astype(np.float32)
    if n > ZERO_BOOK:
        vectors[ZERO_BOOK] = 0.0
    if n > NAN_BOOK:
        vectors[NAN_BOOK, 1] = np.nan
    return vectors


def titles_for(n):
    base = NASTY_TITLES + PLAIN_TITLES
    return [base[i] if i < len(base) else f"Book number {i}" for i in range(n)]


def book_ids_for(n):
    return [str(1000 + 7 * i) for i in range(n)]


def make_model_output(model_dir, n=60, dim=8, clusters=4, seed=0, vectors=None):
    """Writes MODEL/book_embeddings.parquet (+ .npy); returns the float32 matrix."""
    os.makedirs(model_dir, exist_ok=True)
    if vectors is None:
        vectors = make_embeddings(n, dim, clusters, seed)
    n = len(vectors)
    # pyarrow cannot store lone surrogates: keep the text, escape only those.
    titles = [t.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
              for t in titles_for(n)]
    table = pa.table({
        "book_index": pa.array(np.arange(n), pa.int64()),
        "book_id": pa.array(book_ids_for(n), pa.string()),
        "title": pa.array(titles, pa.string()),
        "embedding": pa.array(list(vectors), pa.list_(pa.float32())),
    })
    pq.write_table(table, os.path.join(model_dir, "book_embeddings.parquet"))
    np.save(os.path.join(model_dir, "book_embeddings.npy"), vectors)
    return vectors


def make_catalog(prep_dir, n=60, seed=0):
    """Writes PREP/book_catalog.parquet for books 0..n-1; returns the table."""
    os.makedirs(prep_dir, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    genres = ["fantasy, paranormal", "romance", None, "mystery, thriller, crime"]
    table = pa.table({
        "book_index": pa.array(np.arange(n), pa.int64()),
        "book_id": pa.array(book_ids_for(n), pa.string()),
        "work_id": pa.array([str(50000 + i) for i in range(n)], pa.string()),
        "title": pa.array([f"Book number {i}" for i in range(n)], pa.string()),
        "authors": pa.array([["Ann <Author> & Co", "B. \"Quote\""] if i % 5 == 0
                             else [f"Author {i % 7}"] for i in range(n)],
                            pa.list_(pa.string())),
        "ratings_count": pa.array(rng.integers(0, 100000, n), pa.int64()),
        "average_rating": pa.array(np.round(rng.uniform(2.5, 4.8, n), 2), pa.float64()),
        "genre": pa.array([genres[i % 4] for i in range(n)], pa.string()),
        "num_interactions": pa.array(np.sort(rng.integers(5, 500, n))[::-1], pa.int64()),
        "shelves": pa.array([shelves_for(i) for i in range(n)],
                            pa.list_(pa.struct([("name", pa.string()), ("count", pa.int64())]))),
    })
    pq.write_table(table, os.path.join(prep_dir, "book_catalog.parquet"))
    return table


SHELF_TOPICS = [["dragons", "epic-fantasy"], ["space-opera", "aliens"],
                ["cozy-mystery", "<b>&\"sleuths\""], ["regency", "historical-romance"],
                ["poetry", "sonnets"], ["cookbooks", "baking"]]


def shelves_for(i):
    """Generic shelves every book has, then two of its topic (i % 6), and for every
    third book one of the next topic."""
    topic, other = SHELF_TOPICS[i % 6], SHELF_TOPICS[(i + 1) % 6]
    names = ["to-read", topic[0], "favorites", topic[1], "owned"] + (
        [other[0]] if i % 3 == 0 else [])
    return [{"name": name, "count": 100 - 10 * j} for j, name in enumerate(names)]


def make_train_pairs(prep_dir, n=60, users=40, parts=2, seed=0):
    """PREP/train_pairs-*.parquet and a manifest listing them: each user reads a few
    books of one cluster (i % 4) and one other; returns the (user, book) arrays."""
    from pipeline_common import artifacts
    rng = np.random.default_rng(seed + 2)
    user, book = [], []
    for u in range(users):
        topic = u % 4
        mine = rng.choice(np.arange(topic, n, 4), size=min(6, len(range(topic, n, 4))),
                          replace=False)
        for b in sorted(set(mine.tolist()) | {int(rng.integers(0, n))}):
            user.append(u)
            book.append(b)
    user, book = np.array(user), np.array(book)
    names = [artifacts.pairs_file(p, parts) for p in range(parts)]
    for p, name in enumerate(names):
        mask = user % parts == p
        pq.write_table(pa.table({"user_index": user[mask].astype(np.int32),
                                 "book_index": book[mask].astype(np.int32)}),
                       os.path.join(prep_dir, name))
    with open(os.path.join(prep_dir, "manifest.json"), "w") as handle:
        json.dump({"files": {"train_pairs": names}}, handle)
    return user, book
