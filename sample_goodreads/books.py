"""The catalogue behind the book records: titles, series and authors of every book
(`Catalogue`) and the `popular_shelves` lists readers put each book on.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sample_goodreads.names import (GENERIC_SHELVES, GENRE_SHELVES, GENRES, OPTIONAL_SHELVES,
                                    TOPIC_SHELVES, Titles, concat, draw_author_names,
                                    draw_distinct, int_strings)
from sample_goodreads.readers import TOPICS_PER_GENRE

_SHELF_NAMES = (GENERIC_SHELVES + OPTIONAL_SHELVES + [w for g in GENRE_SHELVES for w in g]
                + [w for t in TOPIC_SHELVES for w in t])
_GENRE_SHELF_START = len(GENERIC_SHELVES) + len(OPTIONAL_SHELVES) + np.concatenate(
    [[0], np.cumsum([len(g) for g in GENRE_SHELVES])[:-1]])
_GENRE_SHELF_COUNT = np.array([len(g) for g in GENRE_SHELVES])
_TOPIC_SHELF_START = len(_SHELF_NAMES) - sum(len(t) for t in TOPIC_SHELVES)
_SHELVES_PER_TOPIC = 3
_TOPIC_SHELF_PRESENT = (0.9, 0.8, 0.5)  # chance a book is on each of its topic's own shelves
_MISSING_GENRE_SHELF = 0.15  # share of books not on their genre's first shelf
_STRAY_SHELF = 0.2  # share of books on a sibling topic's shelf, with an own-shelf count
assert len(TOPIC_SHELVES) == len(GENRES) * TOPICS_PER_GENRE
assert all(len(t) == _SHELVES_PER_TOPIC for t in TOPIC_SHELVES)
assert len(set(_SHELF_NAMES)) == len(_SHELF_NAMES)


def popular_shelves(rng, genre, topic, other_genre, has_other, rated):
    """`popular_shelves` JSON lists (pyarrow strings), like Goodreads': 5-25 shelves a book,
    counts decreasing. Every book is on the generic shelves (to-read largest) and some
    optional ones; usually on its genre's shelves (its words: "fantasy", "paranormal") and on
    1-3 of its planted topic's own shelves ("epic-fantasy", "dragons"), its second genre's if
    it has one. Shelves are noisy, as readers' are: some books miss their genre's shelf, some
    sit on a sibling topic's shelf as often as on their own, and up to 3 shelves of other
    topics have small counts."""
    n = len(genre)
    readers = (np.asarray(rated, np.float64) + 2) * rng.uniform(2.0, 6.0, n)
    names, counts = [], []

    def slot(name, share, present=True):
        names.append(np.broadcast_to(name, (n,)))
        counts.append(np.where(present, np.maximum(1, (readers * share).astype(np.int64)), -1))

    for k in range(len(GENERIC_SHELVES)):
        slot(k, 1.0 if k == 0 else rng.uniform(0.05, 0.3, n))
    for k in range(len(OPTIONAL_SHELVES)):
        slot(len(GENERIC_SHELVES) + k, rng.uniform(0.01, 0.08, n), rng.random(n) < 0.45)
    for j in range(_GENRE_SHELF_COUNT.max()):
        exists = j < _GENRE_SHELF_COUNT[genre]
        slot(_GENRE_SHELF_START[genre] + np.minimum(j, _GENRE_SHELF_COUNT[genre] - 1),
             rng.uniform(0.1, 0.5, n) / (j + 1),
             exists & (rng.random(n) < (1 - _MISSING_GENRE_SHELF if j == 0 else 0.85)))
    slot(_GENRE_SHELF_START[other_genre], rng.uniform(0.01, 0.05, n), has_other)
    for j, present in enumerate(_TOPIC_SHELF_PRESENT):
        slot(_TOPIC_SHELF_START + topic * _SHELVES_PER_TOPIC + j,
             rng.uniform(0.05, 0.25, n) / (1 + 0.5 * j), rng.random(n) < present)
    sibling = (topic // TOPICS_PER_GENRE) * TOPICS_PER_GENRE + (
        topic + rng.integers(1, TOPICS_PER_GENRE, n)) % TOPICS_PER_GENRE
    slot(_TOPIC_SHELF_START + sibling * _SHELVES_PER_TOPIC + rng.integers(0, _SHELVES_PER_TOPIC, n),
         rng.uniform(0.05, 0.2, n), rng.random(n) < _STRAY_SHELF)
    third = len(TOPIC_SHELVES) // 3  # noise topics: one from each third of the other topics
    for k, p in enumerate((0.6, 0.4, 0.2)):
        offset = rng.integers(max(1, k * third), (k + 1) * third, n)
        noise_topic = (topic + offset) % len(TOPIC_SHELVES)
        slot(_TOPIC_SHELF_START + noise_topic * _SHELVES_PER_TOPIC
             + rng.integers(0, _SHELVES_PER_TOPIC, n), rng.uniform(0.002, 0.02, n),
             rng.random(n) < p)
    names, counts = np.stack(names, axis=1), np.stack(counts, axis=1)
    for j in range(1, names.shape[1]):   # a shelf drawn twice (noise on noise) is listed once
        seen = ((names[:, :j] == names[:, j:j + 1]) & (counts[:, :j] > 0)).any(axis=1)
        counts[seen, j] = -1
    order = np.argsort(-counts, axis=1, kind="stable")  # ties keep slot order: to-read first
    names = np.take_along_axis(names, order, axis=1)
    counts = np.take_along_axis(counts, order, axis=1)
    vocab = pa.array(_SHELF_NAMES)
    parts = ["["]
    for j in range(names.shape[1]):
        entry = concat(", " if j else "", '{"count": "', int_strings(np.maximum(counts[:, j], 0)),
                       '", "name": "', vocab.take(pa.array(names[:, j])), '"}')
        parts.append(pc.if_else(pa.array(counts[:, j] > 0), entry, "") if j else entry)
    return concat(*parts, "]")


class Catalogue:
    """Titles, series and authors of every book, as arrays (a few bytes a book).

    Names are indices into the name spaces of `sample_goodreads.names`, decoded
    one block of books at a time, so the plan for 2.36M books takes seconds.
    """

    def __init__(self, rng, world):
        n, topics = world.num_books, world.num_topics
        self.genre = world.book_genre
        self.names = Titles()
        self.book_title = np.zeros(n, np.int64)
        for g in range(len(GENRES)):
            books = np.flatnonzero(self.genre == g)
            self.book_title[books] = draw_distinct(rng, len(books), self.names.tier_sizes(g))
        self._plan_series(rng, world)
        # Authors write in one topic; each companion group (`World.book_group`: the books
        # readers read together, like a series) has its own author while the topic's pool
        # lasts (~5 books an author).
        self.num_authors = max(topics, n // 3)
        author_topic = np.concatenate([np.arange(topics),
                                       rng.integers(0, topics, self.num_authors - topics)])
        self.author_names = draw_author_names(rng, self.num_authors)
        self.author_ids = rng.choice(20_000_000, self.num_authors, replace=False) + 1
        by_topic = np.argsort(author_topic, kind="stable")
        pool_start = np.searchsorted(author_topic[by_topic], np.arange(topics))
        pool_size = np.bincount(author_topic, minlength=topics)
        group_topic = world.book_topic[world.by_group[world.group_start]]
        # groups are in topic order: a group's rank inside its topic picks its author
        rank = np.arange(len(group_topic)) - np.searchsorted(group_topic, group_topic)
        group_author = by_topic[pool_start[group_topic] + rank % pool_size[group_topic]]
        first = group_author[world.book_group]
        # ~8% of books have a second author (illustrator / co-author), never the first.
        second = rng.integers(0, self.num_authors - 1, n)
        second += second >= first
        second[rng.random(n) >= 0.08] = -1
        self.book_authors = np.stack([first, second], axis=1)

    def _plan_series(self, rng, world):
        """~8% of books form numbered series: runs of 2-5 books of one topic."""
        n = world.num_books
        order = np.argsort(world.book_topic, kind="stable")
        topic_sorted = world.book_topic[order]
        lengths = rng.integers(2, 6, n)
        runs, next_free = [], 0
        for start in np.flatnonzero(rng.random(n) < 0.02).tolist():
            if start < next_free or start >= n - 3:
                continue
            stop = min(n, start + int(lengths[start]))
            next_free = stop
            if topic_sorted[start] == topic_sorted[stop - 1]:
                runs.append((start, stop))
        self.book_series = np.full(n, -1, np.int64)
        self.book_volume = np.zeros(n, np.int64)
        self.series_genre = np.array([self.genre[order[start]] for start, _ in runs], np.int64)
        self.series_index = np.zeros(len(runs), np.int64)
        for g in range(len(GENRES)):
            tiers = self.names.series_tier_sizes(g)
            # A genre with more series than names keeps as many as it can name.
            ids = np.flatnonzero(self.series_genre == g)[:sum(tiers)]
            self.series_index[ids] = draw_distinct(rng, len(ids), tiers)
            for s in ids.tolist():
                start, stop = runs[s]
                self.book_series[order[start:stop]] = s
                self.book_volume[order[start:stop]] = np.arange(1, stop - start + 1)

    def titles(self, books):
        """pyarrow strings: the titles of `books` (without series)."""
        return pa.array(self._by_genre(self.genre[books], self.book_title[books],
                                       self.names.titles), pa.string())

    def series_names(self, series):
        """pyarrow strings: the names of `series` ("" where -1)."""
        names = np.full(len(series), "", dtype=object)
        member = series[series >= 0]
        names[series >= 0] = self._by_genre(self.series_genre[member], self.series_index[member],
                                            self.names.series_names)
        return pa.array(names, pa.string())

    @staticmethod
    def _by_genre(genre, index, decode):
        out = np.empty(len(genre), dtype=object)
        for g in np.unique(genre).tolist():
            rows = np.flatnonzero(genre == g)
            out[rows] = decode(g, index[rows]).to_numpy(zero_copy_only=False)
        return out
