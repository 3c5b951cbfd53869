"""Writes a synthetic data set laid out exactly like the UCSD Goodreads Book Graph.

The data has the structure that makes the rest of the pipeline meaningful:

* books belong to one of 10 Goodreads genres and, inside a genre, to a finer
  *topic* (e.g. one kind of fantasy); titles and author names are readable and
  each author writes in one topic, so similar books exist to be found;
* each user likes one to three topics; three quarters of a user's books come from them,
  the rest from the global best-seller list;
* book popularity and user activity are heavy-tailed (Zipf / log-normal), so a
  few books hold most ratings, as on Goodreads;
* ratings are 0..5 with 0 = "not rated" (about half the rows, as in the real
  data); books in a user's favourite topics get higher ratings;
* (user, book) pairs are unique; rows are grouped by user like the real CSV.

Beside the UCSD files, `book_topics.csv` gives each book's planted topic: the answer
key against which benchmarks/bench_neighbour_quality.py scores the graph's neighbours.

Rows are generated in chunks of users with numpy and pyarrow, in `--workers`
forked processes, so memory does not grow with `--ratings`; rows cost
1.3 s (quiet machine) to 3 s (busy one) of CPU per million. The catalogue (titles and names from
`beam_jobs.sample_names`, records built column-wise) is bounded too: 2.36M
books take ~1 minute of CPU and 1.2 GB. Output is deterministic for a given
`--seed`, whatever `--workers`. Every file is written through Beam's
FileSystems under a temporary name and renamed when complete.

    python -m beam_jobs.sample_data --output /tmp/goodreads --ratings 1000000
"""
import collections
import contextlib
import io
import itertools
import logging
import multiprocessing
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from isal import isal_zlib

from beam_jobs.sample_names import (GENERIC_SHELVES, GENRE_SHELVES, GENRES, OPTIONAL_SHELVES,
                                    TOPIC_SHELVES, Titles, concat, draw_author_names,
                                    draw_distinct, int_strings)
from pipeline_common import cli, fileio
from pipeline_common.arrays import sorted_unique
from pipeline_common.entrypoint import main

_FORMATS = ["Paperback", "Hardcover", "Kindle Edition", "Mass Market Paperback", "ebook"]
_PUBLISHERS = ["Penguin", "Tor Books", "HarperCollins", "Vintage", "Orbit", "Scholastic",
               "Bantam", "Del Rey", "Knopf", "Simon & Schuster", "Random House", "Avon"]
# Share of rated interactions with rating 1..5 in the real data.
_RATING_SHARE = np.array([2.05, 6.19, 23.3, 37.5, 35.5]) / 104.54
TOPICS_PER_GENRE = 6
# The planted topic of every book, next to the UCSD files (see write_book_topics).
TOPICS_FILE = "book_topics.csv"
_BOOK_BLOCK = 50_000  # catalogue records built per block
_FIRST_SERIES_ID = 100_000
MAX_BOOKS = 10_000_000
_TOPIC_RES, _GLOBAL_RES = 2**16, 2**22


def parse_args(argv):
    parser = cli.ArgumentParser(
        prog="python -m beam_jobs.sample_data",
        description="Generate a Goodreads-like data set in the UCSD Book Graph layout.")
    parser.add_argument("--output", required=True, help="directory (local or gs://) to write")
    parser.add_argument("--ratings", type=int, default=1_000_000,
                        help="number of interaction rows (default 1,000,000)")
    parser.add_argument("--books", type=int, default=20_000,
                        help=f"number of books (default 20,000; at most {MAX_BOOKS:,})")
    parser.add_argument("--users", type=int, default=None,
                        help="number of users (default: ratings / 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dedup_json", action="store_true",
                        help="also write goodreads_interactions_dedup.json.gz")
    parser.add_argument("--chunk_users", type=int, default=20_000,
                        help="users generated per chunk (memory knob)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes generating interaction chunks (default: cores, at most "
                             "4); the output does not depend on it")
    args = parser.parse_args(argv)
    if args.users is None:
        args.users = max(1, args.ratings // 50)
    if args.workers < 1 or args.chunk_users < 1:
        parser.error("--workers and --chunk_users must be >= 1")
    if args.ratings < 1 or args.books < 10 or args.users < 1:
        parser.error("--ratings and --users must be >= 1 and --books >= 10")
    if args.books > MAX_BOOKS:
        parser.error(f"--books {args.books} is more than {MAX_BOOKS:,} (distinct Goodreads ids "
                     "and author names run out)")
    if args.ratings > args.users * args.books // 2:
        parser.error(f"--ratings {args.ratings} is too many for {args.users} users x "
                     f"{args.books} books (at most half of all pairs)")
    return args


class World:
    """Books, topics, authors and users: the latent structure behind the ratings."""

    def __init__(self, num_books, num_users, seed):
        rng = np.random.default_rng([seed, 1])
        self.num_books, self.num_users = num_books, num_users
        self.num_topics = len(GENRES) * TOPICS_PER_GENRE
        # Each book gets a topic; topic sizes vary (some niches are small).
        topic_weight = rng.gamma(2.0, 1.0, self.num_topics)
        self.book_topic = rng.choice(self.num_topics, num_books, p=topic_weight / topic_weight.sum())
        self.book_genre = self.book_topic // TOPICS_PER_GENRE
        # Zipf popularity over a random order of books: a few best-sellers.
        popularity_rank = rng.permutation(num_books) + 1
        self.book_weight = popularity_rank.astype(np.float64) ** -1.5
        # Within-topic sampling table: books sorted by topic, cumulative weights
        # normalised to [t, t+1) for topic t, so one searchsorted draws a book
        # of a given topic by popularity.
        self.by_topic = np.argsort(self.book_topic, kind="stable")
        topics_sorted = self.book_topic[self.by_topic]
        weights_sorted = self.book_weight[self.by_topic]
        cum = np.cumsum(weights_sorted)
        starts = np.searchsorted(topics_sorted, np.arange(self.num_topics), side="left")
        ends = np.searchsorted(topics_sorted, np.arange(self.num_topics), side="right")
        base = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
        total = np.where(ends > starts, cum[np.maximum(ends - 1, 0)] - base, 1.0)
        self.topic_cdf = topics_sorted + (cum - base[topics_sorted]) / total[topics_sorted]
        self.topic_has_books = ends > starts
        global_cdf = np.cumsum(self.book_weight) / self.book_weight.sum()
        # Inverse-CDF lookup tables: one array index per draw instead of a
        # binary search (resolution 2^-16 per topic, 2^-22 globally).
        self.topic_table = self.by_topic[np.minimum(np.searchsorted(
            self.topic_cdf, np.arange(self.num_topics * _TOPIC_RES) / _TOPIC_RES, side="right"),
            num_books - 1)]
        self.global_table = np.minimum(np.searchsorted(
            global_cdf, np.arange(_GLOBAL_RES) / _GLOBAL_RES, side="right"), num_books - 1)

    def user_tastes(self, rng, count):
        """Per user: three topics and their weights (some weights zero)."""
        valid = np.flatnonzero(self.topic_has_books)
        topics = valid[rng.integers(0, len(valid), (count, 3))]
        # Second and third topics are often in the same genre as the first.
        same_genre = rng.random((count, 2)) < 0.5
        sibling = (topics[:, :1] // TOPICS_PER_GENRE) * TOPICS_PER_GENRE + rng.integers(
            0, TOPICS_PER_GENRE, (count, 2))
        sibling_ok = self.topic_has_books[sibling]
        topics[:, 1:] = np.where(same_genre & sibling_ok, sibling, topics[:, 1:])
        n_topics = rng.choice([1, 2, 3], count, p=[0.35, 0.4, 0.25])
        weights = rng.dirichlet([1.0, 1.0, 1.0], count)
        weights[np.arange(3)[None, :] >= n_topics[:, None]] = 0.0
        weights /= weights.sum(axis=1, keepdims=True)
        return topics, weights

    def sample_books(self, rng, tastes, user_of_draw, taste_share=0.75):
        """One book per draw: from the user's topics (75%) or the best-seller list."""
        topics, weights = tastes
        n = len(user_of_draw)
        cum_w = np.cumsum(weights[user_of_draw], axis=1)
        which = (rng.random(n)[:, None] > cum_w).sum(axis=1).clip(0, 2)
        topic = topics[user_of_draw, which]
        in_taste = rng.random(n) < taste_share
        taste_book = self.topic_table[topic * _TOPIC_RES + rng.integers(0, _TOPIC_RES, n)]
        popular_book = self.global_table[rng.integers(0, _GLOBAL_RES, n)]
        return np.where(in_taste, taste_book, popular_book)


def user_activity(rng, num_users, total, max_per_user):
    """Interactions per user: log-normal, scaled to sum to `total`."""
    raw = rng.lognormal(0.0, 1.1, num_users)
    counts = np.maximum(1, np.floor(raw / raw.sum() * total)).astype(np.int64)
    counts = np.minimum(counts, max_per_user)
    # Spread the remainder (positive or negative) over users with room.
    diff = total - counts.sum()
    order = np.argsort(-raw, kind="stable")
    while diff != 0:
        step = 1 if diff > 0 else -1
        room = (counts[order] < max_per_user) if step > 0 else (counts[order] > 1)
        candidates = order[room][: abs(diff)]
        if len(candidates) == 0:
            raise ValueError("cannot place all interactions: increase --books or --users")
        counts[candidates] += step
        diff -= step * len(candidates)
    return counts


def generate_chunk(world, rng, first_user, counts):
    """Duplicate-free interactions for users first_user..first_user+len(counts)-1.

    Returns (user, book, rating) arrays grouped by user; each user gets exactly
    counts[i] distinct books.
    """
    num, nb = len(counts), world.num_books
    tastes = world.user_tastes(rng, num)
    # Keys are user * nb + perm[book]: sorting them groups rows by user and
    # orders each user's books at random, so "first need[u] keys" is a random pick.
    perm = rng.permutation(nb)
    unperm = np.empty_like(perm)
    unperm[perm] = np.arange(nb)
    need = counts.copy()
    have_keys = np.empty(0, dtype=np.int64)
    for attempt in range(60):
        todo = np.flatnonzero(need > 0)
        if len(todo) == 0:
            break
        draws = np.repeat(todo, np.ceil(need[todo] * 1.15).astype(np.int64) + 1)
        if attempt < 4:
            books = world.sample_books(rng, tastes, draws)
        else:
            # Heavy users who exhausted their small topics: any book at random.
            books = rng.integers(0, nb, len(draws))
        keys = sorted_unique(draws.astype(np.int64) * nb + perm[books])
        if len(have_keys):
            pos = np.minimum(np.searchsorted(have_keys, keys), len(have_keys) - 1)
            keys = keys[have_keys[pos] != keys]
        u = keys // nb
        starts = np.flatnonzero(np.concatenate(([True], u[1:] != u[:-1])))
        rank = np.arange(len(u)) - np.repeat(starts, np.diff(np.append(starts, len(u))))
        keys = keys[rank < need[u]]
        need -= np.bincount(keys // nb, minlength=num)
        have_keys = np.sort(np.concatenate([have_keys, keys]))
    if need.sum() > 0:
        raise ValueError("could not draw enough distinct books; use more --books")
    users = have_keys // nb
    books = unperm[have_keys % nb]
    ratings = draw_ratings(world, rng, tastes, users, books)
    return users + first_user, books, ratings


def draw_ratings(world, rng, tastes, users, books):
    """0 (not rated) for about half the rows; otherwise 1..5, higher in-taste."""
    topics, weights = tastes
    book_topic = world.book_topic[books]
    affinity = ((topics[users] == book_topic[:, None]) * weights[users]).sum(axis=1)
    base = rng.choice(5, len(users), p=_RATING_SHARE) + 1
    boost = (rng.random(len(users)) < 0.6 * affinity).astype(np.int64)
    drop = (rng.random(len(users)) < 0.25 * (affinity == 0)).astype(np.int64)
    rating = np.clip(base + boost - drop, 1, 5)
    unrated = rng.random(len(users)) < 0.54
    return np.where(unrated, 0, rating)


def hex_ids(rng, count):
    """Distinct 32-hex strings (like Goodreads user ids)."""
    raw = rng.integers(0, 2**63, (count, 2), dtype=np.int64).view(np.uint64)
    return [f"{a:016x}{b:016x}" for a, b in raw]


_FORKED_WRITER = None  # the SampleWriter whose chunks forked workers make


def _chunk_rows_in_worker(first):
    return _FORKED_WRITER.chunk_rows(first)


class SampleWriter:
    """Writes the files of one data set; each appears only when complete."""

    def __init__(self, args):
        self.args = args
        self.out = args.output
        self.world = World(args.books, args.users, args.seed)
        rng = np.random.default_rng([args.seed, 2])
        # Goodreads ids: distinct, unordered, up to 8 digits.
        self.goodreads_book_id = rng.choice(36_000_000, args.books, replace=False) + 1
        self.work_id = rng.choice(90_000_000, args.books, replace=False) + 1
        self.user_hex = hex_ids(rng, args.users)
        self.counts = user_activity(np.random.default_rng([args.seed, 3]), args.users,
                                    args.ratings, max(1, args.books // 4))
        self.book_rated = np.zeros(args.books, dtype=np.int64)
        self.book_rating_sum = np.zeros(args.books, dtype=np.int64)
        self.book_reviews = np.zeros(args.books, dtype=np.int64)

    def write_all(self):
        start = time.time()
        self.write_interactions()
        elapsed = time.time() - start
        logging.info("interactions: %d rows in %.1fs (%.2fM rows/s)",
                     self.args.ratings, elapsed, self.args.ratings / max(elapsed, 1e-9) / 1e6)
        self.write_id_maps()
        self.write_books_and_authors()
        self.write_book_topics()
        return elapsed

    def chunk_rows(self, first):
        """CSV (and dedup JSON) bytes of users first..first+chunk_users-1, and the per-row
        book, rating and review columns the catalogue totals need. Depends only on the
        seed and `first`, so chunks can be made in any process, in any order."""
        args = self.args
        users, books, ratings = generate_chunk(
            self.world, np.random.default_rng([args.seed, 4, first]), first,
            self.counts[first:first + args.chunk_users])
        rng = np.random.default_rng([args.seed, 5, int(users[0])])
        is_read = np.where(ratings > 0, 1, (rng.random(len(users)) < 0.1).astype(np.int64))
        is_reviewed = ((ratings > 0) & (rng.random(len(users)) < 0.07)).astype(np.int64)
        table = pa.table({"user_id": users, "book_id": books, "is_read": is_read,
                          "rating": ratings, "is_reviewed": is_reviewed})
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
        dedup = (self.dedup_json_lines(rng, users, books, is_read, ratings)
                 if args.dedup_json else None)
        return (buf.getvalue(), dedup, books.astype(np.int32), ratings.astype(np.int8),
                is_reviewed.astype(np.int8))

    def chunks_in_order(self):
        """chunk_rows of every chunk, in user order; made by --workers forked processes
        (at most workers + 1 chunks in flight, so memory stays bounded)."""
        firsts = iter(range(0, self.args.users, self.args.chunk_users))
        if self.args.workers <= 1:
            yield from map(self.chunk_rows, firsts)
            return
        global _FORKED_WRITER
        _FORKED_WRITER = self
        with multiprocessing.get_context("fork").Pool(self.args.workers) as pool:
            pending = collections.deque(pool.apply_async(_chunk_rows_in_worker, (first,))
                                        for first in itertools.islice(firsts, self.args.workers + 1))
            while pending:
                result = pending.popleft().get()
                following = next(firsts, None)
                if following is not None:
                    pending.append(pool.apply_async(_chunk_rows_in_worker, (following,)))
                yield result

    def write_interactions(self):
        args = self.args
        csv_path = fileio.join(self.out, "goodreads_interactions.csv")
        json_path = fileio.join(self.out, "goodreads_interactions_dedup.json.gz")
        written, last_log, t0 = 0, 0.0, time.time()
        with fileio.atomic_write(csv_path) as csv_out, \
                (fileio.atomic_write(json_path, compressed=True) if args.dedup_json
                 else contextlib.nullcontext()) as js:
            csv_out.write(b"user_id,book_id,is_read,rating,is_reviewed\n")
            for csv_bytes, dedup, books, ratings, is_reviewed in self.chunks_in_order():
                csv_out.write(csv_bytes)
                if js is not None:
                    js.write(dedup)
                rated = ratings > 0
                self.book_rated += np.bincount(books[rated], minlength=args.books)
                self.book_rating_sum += np.bincount(books[rated], ratings[rated],
                                                    minlength=args.books).astype(np.int64)
                self.book_reviews += np.bincount(books, is_reviewed, minlength=args.books).astype(np.int64)
                written += len(books)
                if time.time() - last_log > 2 or written == args.ratings:
                    last_log = time.time()
                    rate = written / max(last_log - t0, 1e-9)
                    print(f"  {written:,}/{args.ratings:,} interactions "
                          f"({100 * written / args.ratings:.0f}%, {rate / 1e6:.2f}M rows/s)",
                          file=sys.stderr, flush=True)

    def dedup_json_lines(self, rng, users, books, is_read, ratings):
        """goodreads_interactions_dedup.json lines, built column-wise by pyarrow."""
        user_hex = pa.array(self.user_hex).take(pa.array(users))
        book_id = pc.cast(pa.array(self.goodreads_book_id[books]), pa.string())
        review = pa.array(hex_ids(rng, len(users)))
        day = rng.integers(0, 3000, len(users))
        date = pa.array([_goodreads_date(int(d)) for d in np.unique(day)])
        dates = date.take(pa.array(np.searchsorted(np.unique(day), day)))
        read = pc.if_else(pa.array(is_read.astype(bool)), "true", "false")
        parts = ['{"user_id": "', user_hex, '", "book_id": "', book_id,
                 '", "review_id": "', review, '", "is_read": ', read,
                 ', "rating": ', pc.cast(pa.array(ratings), pa.string()),
                 ', "review_text_incomplete": "", "date_added": "', dates,
                 '", "date_updated": "', dates,
                 '", "read_at": "", "started_at": ""}\n']
        line = pc.binary_join_element_wise(*parts, "")
        return "".join(line.to_pylist()).encode("utf-8")

    def write_id_maps(self):
        with fileio.atomic_write(fileio.join(self.out, "user_id_map.csv")) as out:
            out.write(b"user_id_csv,user_id\n")
            out.write("".join(f"{i},{h}\n" for i, h in enumerate(self.user_hex)).encode())
        with fileio.atomic_write(fileio.join(self.out, "book_id_map.csv")) as out:
            out.write(b"book_id_csv,book_id\n")
            out.write("".join(f"{i},{b}\n" for i, b in enumerate(self.goodreads_book_id)).encode())

    def write_book_topics(self):
        """book_topics.csv: each book's planted topic (not a UCSD file; the answer key that
        benchmarks/bench_neighbour_quality.py scores neighbours against)."""
        topic = self.world.book_topic
        with fileio.atomic_write(fileio.join(self.out, TOPICS_FILE)) as out:
            out.write(b"book_id,topic\n")
            out.write(_lines(int_strings(self.goodreads_book_id), ",", int_strings(topic)))

    def write_books_and_authors(self):
        """goodreads_books, goodreads_book_authors and genres, consistent with the ratings."""
        args = self.args
        plan = Catalogue(np.random.default_rng([args.seed, 6]), self.world)
        books_path = fileio.join(self.out, "goodreads_books.json.gz")
        genres_path = fileio.join(self.out, "goodreads_book_genres_initial.json.gz")
        with gzip_writer(books_path) as books_out, gzip_writer(genres_path) as genres_out:
            for start in range(0, args.books, _BOOK_BLOCK):
                rng = np.random.default_rng([args.seed, 7, start])
                books = np.arange(start, min(args.books, start + _BOOK_BLOCK))
                lines, genre_lines = self.book_lines(rng, plan, books)
                books_out.write(lines)
                genres_out.write(genre_lines)
        first_author = plan.book_authors[:, 0]
        totals = [np.bincount(first_author, weights, plan.num_authors).astype(np.int64)
                  for weights in (self.book_rated, self.book_rating_sum, self.book_reviews)]
        with gzip_writer(fileio.join(self.out, "goodreads_book_authors.json.gz")) as out:
            for start in range(0, plan.num_authors, _BOOK_BLOCK):
                part = slice(start, start + _BOOK_BLOCK)
                rated, rating_sum, reviews = (t[part] for t in totals)
                out.write(_lines(
                    '{"average_rating": "', _two_decimals(rating_sum, rated),
                    '", "author_id": "', int_strings(plan.author_ids[part]),
                    '", "text_reviews_count": "', int_strings(reviews),
                    '", "name": "', plan.author_names[part],
                    '", "ratings_count": "', int_strings(rated), '"}'))

    def book_lines(self, rng, plan, books):
        """goodreads_books.json and genre lines of `books`: every field of the real records,
        values as strings, in their order; built column-wise by pyarrow (a Python dict and
        json.dumps per book took ~0.5 ms a book on this machine)."""
        n = len(books)
        genre = self.world.book_genre[books]
        other_genre = rng.integers(0, len(GENRES), n)
        has_other = (other_genre != genre) & (rng.random(n) < 0.5)
        other_div = rng.integers(3, 20, n)
        isbn = pc.utf8_lpad(int_strings(rng.integers(0, 10**9, n)), 9, "0")
        year, english, ebook = rng.integers(1950, 2018, n), rng.random(n) < 0.7, rng.random(n) < 0.2
        fmt = pa.array(_FORMATS).take(pa.array(rng.integers(0, len(_FORMATS), n)))
        publisher = pa.array(_PUBLISHERS).take(pa.array(rng.integers(0, len(_PUBLISHERS), n)))
        pages, day, month = rng.integers(24, 900, n), rng.integers(1, 29, n), rng.integers(1, 13, n)

        rated = self.book_rated[books]
        total = np.maximum(1, rated)
        book_id = int_strings(self.goodreads_book_id[books])
        title = plan.titles(books)
        slug = pc.utf8_slice_codeunits(pc.replace_substring_regex(pc.utf8_trim_whitespace(
            pc.replace_substring_regex(pc.utf8_lower(title), "[^a-z0-9 ]+", "")), " +", "-"), 0, 60)
        link = concat("https://www.goodreads.com/book/show/", book_id, "-", slug)
        genre_names = pa.array(GENRES)
        genre_name = genre_names.take(pa.array(genre))
        genre_word = pa.array([g.split(",")[0] for g in GENRES]).take(pa.array(genre))
        shelves = popular_shelves(rng, genre, self.world.book_topic[books], other_genre,
                                  has_other, rated)
        series = plan.book_series[books]
        in_series = pa.array(series >= 0)
        full_title = pc.if_else(in_series, concat(
            title, " (", plan.series_names(series), ", #", int_strings(plan.book_volume[books]), ")"),
            title)
        first, second = plan.book_authors[books, 0], plan.book_authors[books, 1]
        co_author = pc.if_else(pa.array(second >= 0), concat(
            ', {"author_id": "', int_strings(plan.author_ids[np.maximum(second, 0)]),
            '", "role": "Illustrator"}'), "")
        lines = _lines(
            '{"isbn": "', isbn, 'X", "text_reviews_count": "', int_strings(self.book_reviews[books]),
            '", "series": ', pc.if_else(in_series, concat(
                '["', int_strings(series + _FIRST_SERIES_ID), '"]'), "[]"),
            ', "country_code": "US", "language_code": "', pc.if_else(pa.array(english), "eng", ""),
            '", "popular_shelves": ', shelves,
            ', "asin": "", "is_ebook": "', pc.if_else(pa.array(ebook), "true", "false"),
            '", "average_rating": "', _two_decimals(self.book_rating_sum[books], rated),
            '", "kindle_asin": "", "similar_books": [], "description": "', title, ": a ", genre_word,
            ' title.", "format": "', fmt, '", "link": "', link,
            '", "authors": [{"author_id": "', int_strings(plan.author_ids[first]), '", "role": ""}',
            co_author, '], "publisher": "', publisher, '", "num_pages": "', int_strings(pages),
            '", "publication_day": "', int_strings(day), '", "isbn13": "978', isbn,
            '0", "publication_month": "', int_strings(month),
            '", "edition_information": "", "publication_year": "', int_strings(year),
            '", "url": "', link, '", "image_url": "https://images.gr-assets.com/books/0000000000m/',
            book_id, '.jpg", "book_id": "', book_id, '", "ratings_count": "', int_strings(rated),
            '", "work_id": "', int_strings(self.work_id[books]), '", "title": "', full_title,
            '", "title_without_series": "', title, '"}')
        other = pc.if_else(pa.array(has_other), concat(
            ', "', genre_names.take(pa.array(other_genre)), '": ',
            int_strings(np.maximum(1, total // other_div))), "")
        genre_lines = _lines('{"book_id": "', book_id, '", "genres": {"', genre_name, '": ',
                             int_strings(total), other, "}}")
        return lines, genre_lines


_SHELF_NAMES = (GENERIC_SHELVES + OPTIONAL_SHELVES + [w for g in GENRE_SHELVES for w in g]
                + [w for t in TOPIC_SHELVES for w in t])
_GENRE_SHELF_START = len(GENERIC_SHELVES) + len(OPTIONAL_SHELVES) + np.concatenate(
    [[0], np.cumsum([len(g) for g in GENRE_SHELVES])[:-1]])
_GENRE_SHELF_COUNT = np.array([len(g) for g in GENRE_SHELVES])
_TOPIC_SHELF_START = len(_SHELF_NAMES) - sum(len(t) for t in TOPIC_SHELVES)
_SHELVES_PER_TOPIC = 3
assert len(TOPIC_SHELVES) == len(GENRES) * TOPICS_PER_GENRE
assert all(len(t) == _SHELVES_PER_TOPIC for t in TOPIC_SHELVES)
assert len(set(_SHELF_NAMES)) == len(_SHELF_NAMES)


def popular_shelves(rng, genre, topic, other_genre, has_other, rated):
    """`popular_shelves` JSON lists (pyarrow strings), like Goodreads': 8-24 shelves a book,
    counts decreasing. Every book is on the generic shelves (to-read largest) and some
    optional ones; on its genre's shelves (its words: "fantasy", "paranormal"), 2-3 of its
    planted topic's own shelves ("epic-fantasy", "dragons"), its second genre's if it has one;
    and, as noise, up to 3 shelves of other topics with small counts."""
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
             rng.uniform(0.1, 0.5, n) / (j + 1), exists & ((j == 0) | (rng.random(n) < 0.85)))
    slot(_GENRE_SHELF_START[other_genre], rng.uniform(0.01, 0.05, n), has_other)
    for j in range(_SHELVES_PER_TOPIC):
        slot(_TOPIC_SHELF_START + topic * _SHELVES_PER_TOPIC + j,
             rng.uniform(0.05, 0.25, n) / (1 + 0.5 * j), (j < 2) | (rng.random(n) < 0.6))
    third = len(TOPIC_SHELVES) // 3  # noise topics: one from each third of the other topics
    for k, p in enumerate((0.6, 0.4, 0.2)):
        offset = rng.integers(max(1, k * third), (k + 1) * third, n)
        noise_topic = (topic + offset) % len(TOPIC_SHELVES)
        slot(_TOPIC_SHELF_START + noise_topic * _SHELVES_PER_TOPIC
             + rng.integers(0, _SHELVES_PER_TOPIC, n), rng.uniform(0.002, 0.02, n),
             rng.random(n) < p)
    names, counts = np.stack(names, axis=1), np.stack(counts, axis=1)
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


def _lines(*parts):
    """JSON lines from column parts (the names and values need no escaping: ASCII, no quotes)."""
    lines = concat(*parts, "\n")
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset:lines.offset + len(lines) + 1]
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]


def _two_decimals(total, count):
    """total / count as "%.2f" strings ("0.00" where count is 0)."""
    cents = np.rint(np.asarray(total, np.float64) * 100 / np.maximum(count, 1)).astype(np.int64)
    return concat(int_strings(cents // 100), ".", pc.utf8_lpad(int_strings(cents % 100), 2, "0"))


@contextlib.contextmanager
def gzip_writer(path):
    """A handle whose bytes land gzipped (one ISA-L stream, ~4x faster than zlib) at `path`,
    written atomically; the bytes depend only on the data."""
    with fileio.atomic_write(path) as out:
        deflate = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)

        class Writer:
            def write(self, data):
                out.write(deflate.compress(data))

        yield Writer()
        out.write(deflate.flush())


class Catalogue:
    """Titles, series and authors of every book, as arrays (a few bytes a book).

    Names are indices into the name spaces of `beam_jobs.sample_names`, decoded
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
        # Authors write in one topic; ~3 books per author on average.
        self.num_authors = max(topics, n // 3)
        author_topic = np.concatenate([np.arange(topics),
                                       rng.integers(0, topics, self.num_authors - topics)])
        self.author_names = draw_author_names(rng, self.num_authors)
        self.author_ids = rng.choice(20_000_000, self.num_authors, replace=False) + 1
        # Popular authors in a topic write more books (Zipf over the topic's authors).
        by_topic = np.argsort(author_topic, kind="stable")
        pool_start = np.searchsorted(author_topic[by_topic], np.arange(topics))
        pool_size = np.bincount(author_topic, minlength=topics)
        topic = world.book_topic
        rank = np.minimum(rng.zipf(1.6, n) - 1, pool_size[topic] - 1)
        first = by_topic[pool_start[topic] + rank]
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


_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _goodreads_date(day_offset):
    """A date in Goodreads' format, e.g. 'Thu Aug 17 15:15:28 -0700 2017'."""
    import datetime
    d = datetime.datetime(2009, 1, 1, 12, 0, 0) + datetime.timedelta(days=day_offset)
    return f"{_DAYS[d.weekday()]} {_MONTHS[d.month - 1]} {d.day:02d} {d:%H:%M:%S} -0700 {d.year}"


def run(argv=None):
    args = parse_args(argv)
    writer = SampleWriter(args)
    elapsed = writer.write_all()
    print(f"wrote {args.ratings:,} interactions, {args.books:,} books, {args.users:,} users "
          f"to {args.output} (interactions at {args.ratings / max(elapsed, 1e-9) / 1e6:.2f}M rows/s)")
    return args.output


if __name__ == "__main__":
    main(run, "python -m beam_jobs.sample_data")
