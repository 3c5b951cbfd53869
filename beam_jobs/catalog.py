"""The book catalogue of the kept books (book_catalog.parquet): titles, author names, top genre,
the most-used shelves.

The catalogue files are parsed block by block (`validation.ParseCatalogFile`);
only the rows of kept books and their authors are collected on one worker.
"""
import io
import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from beam_jobs import selection
from pipeline_common import artifacts, fileio


def rows_of_kept_books(table, top_ids):
    """Rows of a parsed books or genres block that describe kept books."""
    mask = selection.lookup_ids(top_ids, table.column("book_id").to_numpy()) >= 0
    if mask.any():
        yield table.filter(pa.array(mask))


def needed_author_ids(tables):
    """Author ids of the kept books (to keep only their names)."""
    ids = set()
    for table in tables:
        for authors in table.column("author_ids").to_pylist():
            ids.update(a for a in (authors or []) if a)
    return np.array(sorted(ids), dtype=object)


def filter_authors(table, needed):
    """Rows of a parsed authors block for the needed author ids."""
    needed_set = set(needed.tolist())
    ids = table.column("author_id").to_pylist()
    mask = [a in needed_set for a in ids]
    if any(mask):
        yield table.filter(pa.array(mask))


def _book_order(row):
    """A book listed twice keeps its smallest (title, work id, the rest of the record)."""
    return (row["title"] or "", row["work_id"] or "", json.dumps(row, sort_keys=True, default=str))


def write_catalog(index, book_tables, author_tables, genre_tables, path):
    """Assembles and writes book_catalog.parquet (one row per kept book, by book_index).

    A book, author or genre listed twice keeps its smallest (title, work id), name or genre,
    so the result does not depend on the order blocks arrive in. Returns the counts for the
    manifest's `catalog`, among them what was resolved: kept books listed twice with other
    fields (`catalog_book_conflicts`), their authors listed twice with other names
    (`catalog_author_conflicts`) or without any author record (`catalog_authors_missing`:
    left out of `authors`), and books whose genres are listed twice with another top genre
    (`catalog_genre_conflicts`). Each kind is logged once with an example.
    """
    books, book_conflicts = {}, set()
    for table in book_tables:
        for row in table.to_pylist():
            prev = books.get(row["book_id"])
            if prev is not None and prev != row:
                book_conflicts.add(row["book_id"])
            if prev is None or _book_order(row) < _book_order(prev):
                books[row["book_id"]] = row
    names, author_conflicts = {}, set()
    for table in author_tables:
        for aid, name in zip(table.column("author_id").to_pylist(), table.column("name").to_pylist()):
            if aid in names and names[aid] != name:
                author_conflicts.add(aid)
            if aid not in names or (name or "") < (names[aid] or ""):
                names[aid] = name
    genres, genre_conflicts = {}, set()
    for table in genre_tables:
        for gid, genre in zip(table.column("book_id").to_pylist(), table.column("genre").to_pylist()):
            if genre is not None:
                if genres.get(gid, genre) != genre:
                    genre_conflicts.add(gid)
                genres[gid] = min(genre, genres.get(gid, genre))
    missing_authors = {a for row in books.values() for a in (row.get("author_ids") or [])
                       if a and a not in names}
    resolved = {"catalog_book_conflicts": book_conflicts, "catalog_author_conflicts": author_conflicts,
                "catalog_authors_missing": missing_authors, "catalog_genre_conflicts": genre_conflicts}
    for key, ids in resolved.items():
        if ids:
            logging.warning("book catalogue: %s: %d (e.g. id %s); see docs/faults.md", key, len(ids),
                            min(ids, key=str))
    rows = []
    for i, (gid, count) in enumerate(zip(index.book_ids.tolist(), index.book_count.tolist())):
        row = books.get(gid, {})
        authors = [names[a] for a in (row.get("author_ids") or []) if names.get(a)]
        rows.append({"book_index": i, "book_id": str(gid), "work_id": row.get("work_id"),
                     "title": row.get("title"), "authors": authors,
                     "ratings_count": row.get("ratings_count"),
                     "average_rating": row.get("average_rating"), "genre": genres.get(gid),
                     "num_interactions": count, "shelves": row.get("shelves") or []})
    table = pa.Table.from_pylist(rows, schema=artifacts.CATALOG_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, **artifacts.PARQUET_WRITE_OPTIONS)
    fileio.write_bytes(path, sink.getvalue())
    return {"catalog_books": table.num_rows,
            "catalog_books_without_genre": sum(r["genre"] is None for r in rows),
            **{key: len(ids) for key, ids in resolved.items()}}
