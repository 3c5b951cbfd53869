"""Names for the map's communities and regions: what their books share, scored by c-TF-IDF.

A region called "community 3" tells a reader nothing. Each book brings terms
from data the preprocess output already holds: its Goodreads shelves (the
shelves every book carries -- to-read, owned, kindle ... -- dropped), its genre,
its authors and the longer words of its title. A group's terms are weighted as
in c-TF-IDF (the words of a class scored against the other classes): the term's
share of the group's weight times log(1 + A / f), A the mean weight of a group
and f the term's weight over all groups. A term counts only if enough of the
group's books carry it (`MIN_SHARE`), so a name says what the books *share*,
not what one book says loudly. A name is the best few terms, one per idea
("fantasy" is dropped beside "epic fantasy"), joined by " · ".

Everything is vectorised over (book, term) pairs with sparse matrices: at 2.36M
books x 32 shelves this is one dictionary encoding and a few sparse products.
"""
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

# Shelves that say how a reader owns or plans a book, not what it is about.
GENERIC_SHELVES = frozenset("""
to-read currently-reading read favorites favourites favorite-books favourite-books owned
books-i-own owned-books i-own my-books my-library own library kindle ebook ebooks e-book e-books
audiobook audiobooks audio audible to-buy wish-list wishlist default books book-club bookclub
re-read reread tbr to-be-read fiction-to-read abandoned dnf did-not-finish on-hold maybe
home-library shelfari-favorites kindle-books nook paperback hardcover ibooks physical-books
borrowed library-books have must-read must-reads series all-time-favorites faves fave
read-in-2013 read-in-2014 read-in-2015 read-in-2016 read-in-2017 novels books-read
""".split())
GENERIC_SHARE = 0.5        # a shelf on more than half the map's books says nothing either
SHELVES_PER_BOOK = 10      # first non-generic shelves of a book that count
MIN_SHARE = 0.10           # a term must be carried by this share of a group's books ...
MIN_BOOKS = 2              # ... and by at least this many (groups of one book excepted)
TERMS_PER_NAME = 3
SCORED_TERMS = 8           # terms kept per group in communities.parquet
SEPARATOR = " · "
TITLE_STOPWORDS = frozenset("""
the and for with from that this what when where your into over under about after before
book books novel volume vol edition series part story stories collection complete
""".split())
_YEARISH = re.compile(r"^(?:\d+|read[-_ ].*|\d{4}[-_ ].*|.*[-_ ]\d{4})$")
_WORD = re.compile(r"[^\W\d_]{4,}", re.UNICODE)

KIND_WEIGHTS = {"shelf": 1.0, "genre": 0.5, "author": 1.0, "title": 0.3}


def shelf_label(name):
    """A shelf slug as a reader would write it: 'epic-fantasy' -> 'epic fantasy'."""
    return re.sub(r"[-_]+", " ", name.strip().lower()).strip()


class Terms:
    """Every (book, term) pair of the map's books, with the term's text and kind."""

    def __init__(self, rows, term_ids, weights, labels, kinds, num_books):
        self.labels, self.kinds = labels, kinds
        self.matrix = sparse.csr_matrix(
            (weights, (rows, term_ids)), shape=(num_books, len(labels)), dtype=np.float64)
        self.matrix.sum_duplicates()
        self.present = self.matrix.copy()
        self.present.data[:] = 1.0


def book_shelves(shelves, num_books, per_book=SHELVES_PER_BOOK):
    """The first `per_book` telling shelves of each book, generic ones dropped.

    Args:
      shelves: pyarrow list<struct<name, count>> per book (book_catalog.parquet's `shelves`).

    Returns:
      (row, shelf id, labels): parallel int arrays, in each book's own shelf
      order, and the object array of shelf labels the ids index.
    """
    shelves = shelves.combine_chunks() if isinstance(shelves, pa.ChunkedArray) else shelves
    shelves = pc.fill_null(shelves, pa.scalar([], shelves.type))
    parent = pc.list_parent_indices(shelves).to_numpy()
    names = pc.utf8_lower(pc.utf8_trim_whitespace(pc.struct_field(shelves.flatten(), "name")))
    codes = pc.dictionary_encode(names)
    codes = codes.combine_chunks() if isinstance(codes, pa.ChunkedArray) else codes
    words = codes.dictionary.to_pylist()
    idx = codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    generic = np.array([w is None or w in GENERIC_SHELVES or bool(_YEARISH.match(w))
                        for w in words], bool)
    if num_books >= 20:
        generic |= np.bincount(idx, minlength=len(words)) > GENERIC_SHARE * num_books
    keep = ~generic[idx]
    parent, idx = parent[keep], idx[keep]
    start = np.r_[0, np.flatnonzero(np.diff(parent)) + 1] if len(parent) else np.zeros(0, np.int64)
    rank = np.arange(len(parent)) - np.repeat(start, np.diff(np.r_[start, len(parent)]))
    first = rank < per_book
    labels = np.array([shelf_label(w) if w else "" for w in words], dtype=object)
    return parent[first].astype(np.int64), idx[first], labels


def book_terms(num_books, shelves=None, genres=None, authors=None, titles=None):
    """Builds `Terms` from the catalogue columns of the map's books (rows aligned).

    Args:
      shelves: the books' telling shelves (`book_shelves` of book_catalog.parquet's
        `shelves`), or None.
      genres: strings like "fantasy, paranormal" (or None values).
      authors: lists of author names, or ", "-joined strings.
      titles: strings.
    """
    rows, keys, weights = [], [], []
    if shelves is not None and len(shelves[0]):
        parent, idx, labels = shelves
        rows.append(parent)
        keys.append(labels[idx])
        weights.append(np.full(len(parent), KIND_WEIGHTS["shelf"]))
    kinds = {}
    for key in (k for part in keys for k in set(part.tolist())):
        kinds[key] = "shelf"
    for column, kind, split in ((genres, "genre", _genre_parts), (authors, "author", _author_parts),
                                (titles, "title", _title_words)):
        if column is None:
            continue
        r, k = [], []
        for row, value in enumerate(column):
            for part in split(value):
                r.append(row)
                k.append(part)
                kinds.setdefault(part, kind)
        rows.append(np.asarray(r, np.int64))
        keys.append(np.asarray(k, dtype=object))
        weights.append(np.full(len(r), KIND_WEIGHTS[kind]))
    if not rows:
        return Terms(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), [], [], num_books)
    all_keys = np.concatenate(keys) if keys else np.zeros(0, dtype=object)
    labels, term_ids = np.unique(all_keys.astype(str), return_inverse=True) \
        if len(all_keys) else (np.zeros(0, str), np.zeros(0, np.int64))
    labels = labels.tolist()
    return Terms(np.concatenate(rows), term_ids, np.concatenate(weights), labels,
                 [kinds[label] for label in labels], num_books)


def _genre_parts(value):
    if not value or value != value:
        return []
    return sorted({shelf_label(part) for part in str(value).split(",") if part.strip()})


def _author_parts(value):
    if value is None or (isinstance(value, float) and value != value):
        return []
    names = value.split(", ") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(n.strip() for n in names[:2] if n and n.strip()))


def _title_words(value):
    if not value or value != value:
        return []
    words = {w.lower() for w in _WORD.findall(str(value).split("(")[0])}
    return sorted(w for w in words if w not in TITLE_STOPWORDS)


def _redundant(label, chosen):
    """True when `label` repeats a chosen term: one's words contain the other's."""
    words = set(label.lower().split())
    for other in chosen:
        theirs = set(other.lower().split())
        if words <= theirs or theirs <= words:
            return True
    return False


def name_groups(groups, num_groups, terms, popularity, titles=None,
                min_share=MIN_SHARE, min_books=MIN_BOOKS):
    """Names each group (community or region) by its c-TF-IDF terms.

    Args:
      groups: int64 `[n]` group id of each book (0..num_groups-1).
      terms: `Terms` of the same books.
      popularity: `[n]` numbers (most read first in `top_books`).
      titles: titles of the books, for groups without any shared term.

    Returns:
      dict of lists, one entry per group: name, terms, scores, size, top_books (row numbers).
    """
    n = len(groups)
    sizes = np.bincount(groups, minlength=num_groups)
    onehot = sparse.csr_matrix((np.ones(n), (groups, np.arange(n))), shape=(num_groups, n))
    weight = (onehot @ terms.matrix).tocsr()
    carriers = (onehot @ terms.present).tocsr()
    weight.sort_indices()
    carriers.sort_indices()   # the same pattern as `weight`: positive entries only
    totals = np.asarray(weight.sum(axis=1)).ravel()
    term_total = np.asarray(weight.sum(axis=0)).ravel()
    mean_total = totals.mean() if len(totals) else 0.0
    idf = np.log1p(mean_total / np.maximum(term_total, 1e-12))
    order = np.lexsort((np.arange(n), -np.asarray(popularity, np.float64), groups))
    starts = np.r_[0, np.cumsum(sizes)]
    out = {"name": [], "terms": [], "scores": [], "size": sizes.astype(np.int64).tolist(),
           "top_books": []}
    for g in range(num_groups):
        lo, hi = weight.indptr[g], weight.indptr[g + 1]
        cols, w = weight.indices[lo:hi], weight.data[lo:hi]
        count = carriers.data[lo:hi]
        enough = (count >= min_share * sizes[g]) & (count >= min(min_books, sizes[g]))
        scores = w / max(totals[g], 1e-12) * idf[cols]
        cols, scores = cols[enough], scores[enough]
        ranked = np.lexsort((np.array([terms.labels[c] for c in cols], dtype=object)
                             if len(cols) else np.zeros(0), -scores))
        chosen, chosen_scores = [], []
        for i in ranked:
            label = terms.labels[cols[i]]
            if _redundant(label, chosen):
                continue
            chosen.append(label)
            chosen_scores.append(round(float(scores[i]), 6))
            if len(chosen) == SCORED_TERMS:
                break
        top = order[starts[g]:starts[g + 1]][:5]
        if chosen:
            name = SEPARATOR.join(chosen[:TERMS_PER_NAME])
        elif titles is not None and len(top) and titles[top[0]]:
            name = f"around {titles[top[0]]}"
        else:
            name = f"group {g}"
        out["name"].append(name)
        out["terms"].append(chosen)
        out["scores"].append(chosen_scores)
        out["top_books"].append(top.tolist())
    return out
