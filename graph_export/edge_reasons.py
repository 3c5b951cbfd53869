"""Why two books are neighbours, from the catalogue: shared authors and shared shelves.

Each book's authors and first telling shelves (`names.book_shelves`) become a
small padded matrix of ids; an edge compares its two rows in one broadcast
(`[edges, m, m]` booleans, in chunks), so 23.6M edges need no Python loop
per edge. Shelves both books carry are ranked by their places on the two
books' own shelf lists (both readers' first words for it first) and the best
`SHELVES_PER_EDGE` are written, joined by ", ".
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph_export import names

AUTHORS_PER_BOOK = 4
SHELVES_PER_EDGE = 3
CHUNK = 1 << 20


def _padded(rows, ids, num_books, width):
    """Per-book id lists (parallel `rows`, `ids`, rows ascending) as `[num_books, width]`, -1 pad."""
    out = np.full((num_books, width), -1, np.int64)
    if len(rows):
        start = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
        rank = np.arange(len(rows)) - np.repeat(start, np.diff(np.r_[start, len(rows)]))
        keep = rank < width
        out[rows[keep], rank[keep]] = ids[keep]
    return out


def author_matrix(authors, num_books):
    """`[num_books, AUTHORS_PER_BOOK]` author ids from lists of names (or ", "-joined strings)."""
    rows, keys = [], []
    for row, value in enumerate(authors):
        if value is None or (isinstance(value, float) and value != value):
            continue
        parts = value.split(", ") if isinstance(value, str) else list(value)
        for name in dict.fromkeys(p.strip() for p in parts if p and p.strip()):
            rows.append(row)
            keys.append(name)
    if not rows:
        return np.full((num_books, AUTHORS_PER_BOOK), -1, np.int64)
    _, ids = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    return _padded(np.asarray(rows, np.int64), ids.astype(np.int64), num_books, AUTHORS_PER_BOOK)


def shared_authors(matrix, sources, targets):
    """Authors both books of each edge have (int32 counts)."""
    out = np.zeros(len(sources), np.int32)
    for lo in range(0, len(sources), CHUNK):
        a, b = matrix[sources[lo:lo + CHUNK]], matrix[targets[lo:lo + CHUNK]]
        same = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
        out[lo:lo + CHUNK] = same.any(axis=2).sum(axis=1)
    return out


def shared_shelves(telling, num_books, sources, targets, per_book=names.SHELVES_PER_BOOK):
    """Up to SHELVES_PER_EDGE telling shelves both books of each edge carry, as strings
    ("fantasy, magic"; "" when none), best first: lowest sum of the shelf's places
    on the two books' lists, ties by the source book's order. `telling`: the books'
    `names.book_shelves`."""
    rows, ids, labels = telling
    matrix = _padded(rows, ids, num_books, per_book)
    width = matrix.shape[1]
    chosen = np.full((len(sources), SHELVES_PER_EDGE), -1, np.int64)
    place = np.arange(width)
    for lo in range(0, len(sources), CHUNK):
        a, b = matrix[sources[lo:lo + CHUNK]], matrix[targets[lo:lo + CHUNK]]
        same = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
        matched = same.any(axis=2)
        key = np.where(matched, place + same.argmax(axis=2), 4 * width) * width + place
        order = np.argsort(key, axis=1, kind="stable")[:, :SHELVES_PER_EDGE]
        pick = np.take_along_axis(a, order, axis=1)
        ok = np.take_along_axis(matched, order, axis=1)
        chosen[lo:lo + CHUNK] = np.where(ok, pick, -1)
    return join_labels(chosen, labels)


def join_labels(chosen, labels):
    """`[edges, m]` label ids (-1: none) -> pyarrow strings joined by ", "."""
    flat = chosen.ravel()
    valid = flat >= 0
    counts = valid.reshape(chosen.shape).sum(axis=1)
    offsets = np.zeros(len(chosen) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    # within a row the valid ids come first (sorted by key), so the flat order keeps rows
    values = pa.array(labels, pa.string()).take(pa.array(flat[valid])) if valid.any() \
        else pa.array([], pa.string())
    lists = pa.ListArray.from_arrays(pa.array(offsets), values)
    return pc.binary_join(lists, ", ")
