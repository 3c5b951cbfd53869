"""`python -m sample_goodreads`: the command line and the writer of every file.

Rows are generated in chunks of users with numpy and pyarrow, in `--workers`
forked processes, so memory does not grow with `--ratings`; rows cost
1.3 s (quiet machine) to 3 s (busy one) of CPU per million. The catalogue (titles and names from
`sample_goodreads.names`, records built column-wise) is bounded too: 2.36M
books take ~1 minute of CPU and 1.2 GB. Output is deterministic for a given
`--seed`, whatever `--workers`. Every file is written through Beam's
FileSystems under a temporary name and renamed when complete.

    python -m sample_goodreads --output /tmp/goodreads --ratings 1000000
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

from pipeline_common import cli, fileio
from sample_goodreads.books import Catalogue, popular_shelves
from sample_goodreads.names import GENRES, concat, int_strings
from sample_goodreads.readers import World, generate_chunk, user_activity

PROG = "python -m sample_goodreads"
_FORMATS = ["Paperback", "Hardcover", "Kindle Edition", "Mass Market Paperback", "ebook"]
_PUBLISHERS = ["Penguin", "Tor Books", "HarperCollins", "Vintage", "Orbit", "Scholastic",
               "Bantam", "Del Rey", "Knopf", "Simon & Schuster", "Random House", "Avon"]
# The planted topic of every book, next to the UCSD files (see write_book_topics).
TOPICS_FILE = "book_topics.csv"
_BOOK_BLOCK = 50_000  # catalogue records built per block
_FIRST_SERIES_ID = 100_000
MAX_BOOKS = 10_000_000


def parse_args(argv):
    parser = cli.ArgumentParser(
        prog=PROG,
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
