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

Rows are generated and written in chunks of users with numpy and pyarrow, so
memory does not grow with `--ratings` and 100M rows take minutes. Output is
deterministic for a given `--seed`. Every file is written through Beam's
FileSystems under a temporary name and renamed when complete.

    python -m beam_jobs.sample_data --output /tmp/goodreads --ratings 1000000
"""
import argparse
import contextlib
import io
import json
import logging
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pipeline_common import fileio

GENRES = [
    "children", "comics, graphic", "fantasy, paranormal", "fiction",
    "history, historical fiction, biography", "mystery, thriller, crime",
    "non-fiction", "poetry", "romance", "young-adult",
]

# Title vocabulary per genre: (adjectives, nouns, places). Kept small and
# readable; combinations give tens of thousands of distinct titles per genre.
_WORDS = {
    "children": (
        "Little Brave Sleepy Happy Giant Tiny Silly Curious Busy Hungry Lost Jolly",
        "Bear Duck Dragon Train Moon Bunny Tractor Kitten Owl Pirate Robot Garden",
        "the Farm|the Sea|the Woods|Town|the Zoo|the Park|Bedtime|the Pond"),
    "comics, graphic": (
        "Dark Iron Cosmic Savage Last Crimson Hidden Electric Mighty Broken Night Amazing",
        "Knight Avenger Legion Saga Crusade Sentinel Outlaws Patrol Titans Vigilante Ronin Watch",
        "Gotham Deep|the Multiverse|Sector 9|Neo City|the Badlands|the Void|Metro|the Rift"),
    "fantasy, paranormal": (
        "Shadow Silver Burning Hollow Wild Cursed Ancient Crimson Frozen Raven Storm Blood",
        "Throne Crown Blade Witch Wolf Queen Prophecy Dragon Mage Gate Oath Realm",
        "Eldermoor|the North|the Ashlands|Ravenhold|the Veil|Iron Keep|the Spires|Duskwood"),
    "fiction": (
        "Quiet Small Long Bright Distant Ordinary Paper Empty Last Hidden Secret Perfect",
        "House Summer River Daughter Marriage Lighthouse Garden Letters Island Orchard Neighbours Kitchen",
        "Brooklyn|Maine|Dublin|the Valley|Savannah|Lisbon|the Coast|Vermont"),
    "history, historical fiction, biography": (
        "Great Forgotten Lost Royal Imperial Last Secret Victorian Fallen Golden Tudor Unknown",
        "Empire Revolution Dynasty Voyage Queen War Campaign Admiral Republic Crusade Frontier Pharaoh",
        "Rome|Versailles|Normandy|Byzantium|Stalingrad|Gettysburg|the Nile|Tudor England"),
    "mystery, thriller, crime": (
        "Silent Deadly Cold Final Dark Missing Guilty Broken Midnight Fatal Hidden Perfect",
        "Witness Alibi Stranger Code Verdict Suspect Agent Cipher Motive Ransom Informant Trap",
        "Baker Street|the Docks|Oslo|the Lake|Cape Cod|the Bayou|Chinatown|the Highway"),
    "non-fiction": (
        "Essential Hidden Deep Simple New Practical Thinking Human Better Invisible Tiny Whole",
        "Habits Mind Economics Brain Money Leadership Sleep Focus Power Nutrition Wealth Science",
        "Work|the Modern World|Everyday Life|the Brain|Business|Nature|Society|the Future"),
    "poetry": (
        "Salt Blue Wild Winter Broken Tender Quiet Burning Paper Amber Hollow Open",
        "Psalms Songs Elegies Odes Hymns Sonnets Verses Ghazals Lullabies Prayers Litanies Haiku",
        "the Body|the Tide|Stone|Rain|the Orchard|Night|Grief|the Field"),
    "romance": (
        "Wicked Sweet Reckless Forbidden Stolen Tempting Secret Scandalous Unexpected Wild Fated Perfect",
        "Duke Kiss Promise Bride Heart Proposal Billionaire Summer Affair Vow Rogue Fling",
        "Paris|Montana|the Ranch|Highland|London|Texas|the Vineyard|Cornwall"),
    "young-adult": (
        "Shattered Glass Starless Wicked Hidden Rebel Chosen Electric Burning Silent Fallen Midnight",
        "Academy Games Chosen Rebellion Heir Trials Legacy Hunters Selection Circle Division Society",
        "District 7|the Wall|Sector Zero|the Academy|the Maze|Ember|the Outlands|Skyhold"),
}
_FIRST = ("Anna Ben Clara David Elena Farid Grace Hiro Ines Jonas Kira Liam Maya Noor Omar "
          "Priya Quinn Rosa Sam Tara Uma Victor Wen Ximena Yusuf Zoe Amara Bruno Chloe Dmitri "
          "Esme Felix Greta Hugo Isla Jasper Kofi Lena Mateo Nina Oscar Paloma Rafael Sofia "
          "Tomas Ulla Vera Wilhelm Yara Zain").split()
_LAST = ("Abbott Baker Carver Dalton Ellison Fischer Garcia Hale Ibsen Jensen Kowalski Lindqvist "
         "Morrow Nakamura Okafor Petrov Quiroga Rossi Sato Thorne Underwood Varga Whitaker Xu "
         "Yilmaz Zeller Ashworth Blackwood Castellanos Devereaux Eriksen Fontaine Grimaldi "
         "Halvorsen Iverson Jovanovic Kaplan Lachance Mbeki Novak Oyelaran Pellegrini Rahman "
         "Silva Takahashi Ueda Vasquez Winslow Yamamoto Zhang").split()
_SERIES_KINDS = ["Chronicles", "Cycle", "Trilogy", "Saga", "Quartet", "Sequence", "Series"]
_FORMATS = ["Paperback", "Hardcover", "Kindle Edition", "Mass Market Paperback", "ebook"]
_PUBLISHERS = ["Penguin", "Tor Books", "HarperCollins", "Vintage", "Orbit", "Scholastic",
               "Bantam", "Del Rey", "Knopf", "Simon & Schuster", "Random House", "Avon"]
# Share of rated interactions with rating 1..5 in the real data.
_RATING_SHARE = np.array([2.05, 6.19, 23.3, 37.5, 35.5]) / 104.54
TOPICS_PER_GENRE = 6
_TOPIC_RES, _GLOBAL_RES = 2**16, 2**22


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m beam_jobs.sample_data",
        description="Generate a Goodreads-like data set in the UCSD Book Graph layout.")
    parser.add_argument("--output", required=True, help="directory (local or gs://) to write")
    parser.add_argument("--ratings", type=int, default=1_000_000,
                        help="number of interaction rows (default 1,000,000)")
    parser.add_argument("--books", type=int, default=20_000, help="number of books")
    parser.add_argument("--users", type=int, default=None,
                        help="number of users (default: ratings / 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dedup_json", action="store_true",
                        help="also write goodreads_interactions_dedup.json.gz")
    parser.add_argument("--chunk_users", type=int, default=20_000,
                        help="users generated per chunk (memory knob)")
    args = parser.parse_args(argv)
    if args.users is None:
        args.users = max(1, args.ratings // 50)
    if args.ratings < 1 or args.books < 10 or args.users < 1:
        parser.error("--ratings and --users must be >= 1 and --books >= 10")
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
    unperm = np.argsort(perm)
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
        keys = _sorted_unique(draws.astype(np.int64) * nb + perm[books])
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


def _sorted_unique(values):
    """np.unique for int64 via one sort (numpy's hash-based unique is slower here)."""
    values = np.sort(values)
    if len(values) == 0:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


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
        return elapsed

    def chunks(self):
        """Yields (users, books, ratings) per chunk of users, deterministic."""
        args = self.args
        rng = np.random.default_rng([args.seed, 3])
        counts = user_activity(rng, args.users, args.ratings, max(1, args.books // 4))
        for first in range(0, args.users, args.chunk_users):
            chunk_rng = np.random.default_rng([args.seed, 4, first])
            yield generate_chunk(self.world, chunk_rng, first, counts[first:first + args.chunk_users])

    def write_interactions(self):
        args = self.args
        csv_path = fileio.join(self.out, "goodreads_interactions.csv")
        json_path = fileio.join(self.out, "goodreads_interactions_dedup.json.gz")
        written, last_log, t0 = 0, 0.0, time.time()
        with fileio.atomic_write(csv_path) as csv_out, \
                (fileio.atomic_write(json_path, compressed=True) if args.dedup_json
                 else contextlib.nullcontext()) as js:
            csv_out.write(b"user_id,book_id,is_read,rating,is_reviewed\n")
            for users, books, ratings in self.chunks():
                rng = np.random.default_rng([args.seed, 5, int(users[0])])
                is_read = np.where(ratings > 0, 1, (rng.random(len(users)) < 0.1).astype(np.int64))
                is_reviewed = ((ratings > 0) & (rng.random(len(users)) < 0.07)).astype(np.int64)
                table = pa.table({"user_id": users, "book_id": books, "is_read": is_read,
                                  "rating": ratings, "is_reviewed": is_reviewed})
                buf = io.BytesIO()
                pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
                csv_out.write(buf.getvalue())
                if js is not None:
                    js.write(self.dedup_json_lines(rng, users, books, is_read, ratings))
                rated = ratings > 0
                self.book_rated += np.bincount(books[rated], minlength=args.books)
                self.book_rating_sum += np.bincount(books[rated], ratings[rated], minlength=args.books).astype(np.int64)
                self.book_reviews += np.bincount(books, is_reviewed, minlength=args.books).astype(np.int64)
                written += len(users)
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

    def write_books_and_authors(self):
        """goodreads_books, goodreads_book_authors and genres, consistent with the ratings."""
        args, world = self.args, self.world
        rng = np.random.default_rng([args.seed, 6])
        titles, series = make_titles(rng, world.book_genre, world.book_topic)
        # Authors write in one topic; ~3 books per author on average.
        num_authors = max(len(GENRES) * TOPICS_PER_GENRE, args.books // 3)
        author_topic = np.concatenate([np.arange(world.num_topics),
                                       rng.integers(0, world.num_topics, num_authors - world.num_topics)])
        author_names = make_author_names(rng, num_authors)
        by_topic = {t: np.flatnonzero(author_topic == t) for t in range(world.num_topics)}
        author_ids = rng.choice(20_000_000, num_authors, replace=False) + 1
        book_authors = []
        for b in range(args.books):
            pool = by_topic[int(world.book_topic[b])]
            # Popular authors in a topic write more books (Zipf over the pool).
            pick = pool[min(len(pool) - 1, int(rng.zipf(1.6)) - 1)]
            names = [int(pick)]
            if rng.random() < 0.08:
                names.append(int(rng.integers(0, num_authors)))  # illustrator / co-author
            book_authors.append(names)
        author_books = np.zeros(num_authors, dtype=np.int64)
        author_ratings = np.zeros(num_authors, dtype=np.int64)
        author_sum = np.zeros(num_authors, dtype=np.int64)
        author_reviews = np.zeros(num_authors, dtype=np.int64)
        for b, names in enumerate(book_authors):
            a = names[0]
            author_books[a] += 1
            author_ratings[a] += self.book_rated[b]
            author_sum[a] += self.book_rating_sum[b]
            author_reviews[a] += self.book_reviews[b]

        books_path = fileio.join(self.out, "goodreads_books.json.gz")
        genres_path = fileio.join(self.out, "goodreads_book_genres_initial.json.gz")
        with fileio.atomic_write(books_path, compressed=True) as books_out, \
                fileio.atomic_write(genres_path, compressed=True) as genres_out:
            lines, genre_lines = [], []
            for b in range(args.books):
                record, genre_counts = self.book_record(rng, b, titles[b], series[b],
                                                        book_authors[b], author_ids)
                lines.append(json.dumps(record))
                genre_lines.append(json.dumps({"book_id": record["book_id"], "genres": genre_counts}))
                if len(lines) >= 10_000:
                    books_out.write(("\n".join(lines) + "\n").encode())
                    genres_out.write(("\n".join(genre_lines) + "\n").encode())
                    lines, genre_lines = [], []
            if lines:
                books_out.write(("\n".join(lines) + "\n").encode())
                genres_out.write(("\n".join(genre_lines) + "\n").encode())

        with fileio.atomic_write(fileio.join(self.out, "goodreads_book_authors.json.gz"),
                                 compressed=True) as out:
            lines = []
            for a in range(num_authors):
                avg = author_sum[a] / author_ratings[a] if author_ratings[a] else 0.0
                lines.append(json.dumps({
                    "average_rating": f"{avg:.2f}", "author_id": str(author_ids[a]),
                    "text_reviews_count": str(author_reviews[a]), "name": author_names[a],
                    "ratings_count": str(author_ratings[a])}))
            out.write(("\n".join(lines) + "\n").encode())

    def book_record(self, rng, b, title, series_info, authors, author_ids):
        """One goodreads_books.json record: every field of the real ones, as strings."""
        world = self.world
        genre = GENRES[int(world.book_genre[b])]
        rated = int(self.book_rated[b])
        avg = self.book_rating_sum[b] / rated if rated else 0.0
        book_id = str(self.goodreads_book_id[b])
        slug = "-".join("".join(c for c in title.lower() if c.isalnum() or c == " ").split())[:60]
        shelves_total = max(1, rated)
        genre_counts = {genre: int(shelves_total)}
        other = GENRES[int(rng.integers(0, len(GENRES)))]
        if other != genre and rng.random() < 0.5:
            genre_counts[other] = int(max(1, shelves_total // int(rng.integers(3, 20))))
        shelf_names = ["to-read", genre.split(",")[0].strip().replace(" ", "-"), "favorites",
                       "owned", "currently-reading"]
        shelves = [{"count": str(max(1, shelves_total // (i + 1))), "name": name}
                   for i, name in enumerate(shelf_names)]
        isbn = f"{int(rng.integers(0, 10**9)):09d}X"
        year = int(rng.integers(1950, 2018))
        series_ids, full_title = [], title
        if series_info is not None:
            series_id, name, number = series_info
            series_ids = [str(series_id)]
            full_title = f"{title} ({name}, #{number})"
        record = {
            "isbn": isbn, "text_reviews_count": str(int(self.book_reviews[b])),
            "series": series_ids, "country_code": "US",
            "language_code": "eng" if rng.random() < 0.7 else "",
            "popular_shelves": shelves, "asin": "",
            "is_ebook": "true" if rng.random() < 0.2 else "false",
            "average_rating": f"{avg:.2f}", "kindle_asin": "", "similar_books": [],
            "description": f"{title}: a {genre.split(',')[0]} title.",
            "format": _FORMATS[int(rng.integers(0, len(_FORMATS)))],
            "link": f"https://www.goodreads.com/book/show/{book_id}-{slug}",
            "authors": [{"author_id": str(author_ids[a]), "role": "" if i == 0 else "Illustrator"}
                        for i, a in enumerate(authors)],
            "publisher": _PUBLISHERS[int(rng.integers(0, len(_PUBLISHERS)))],
            "num_pages": str(int(rng.integers(24, 900))),
            "publication_day": str(int(rng.integers(1, 29))), "isbn13": f"978{isbn[:9]}0",
            "publication_month": str(int(rng.integers(1, 13))), "edition_information": "",
            "publication_year": str(year),
            "url": f"https://www.goodreads.com/book/show/{book_id}-{slug}",
            "image_url": f"https://images.gr-assets.com/books/0000000000m/{book_id}.jpg",
            "book_id": book_id, "ratings_count": str(rated),
            "work_id": str(self.work_id[b]), "title": full_title,
            "title_without_series": title,
        }
        return record, genre_counts


def make_titles(rng, book_genre, book_topic):
    """Readable, distinct titles per genre; ~8% of books form numbered series.

    A series shares one name ("The Raven Throne Cycle") and its volumes have
    different titles, so equal titles never happen by accident.
    """
    patterns = ["The {a} {n}", "{n} of {p}", "The {n} of {p}", "{a} {ns}", "A {a} {n} in {p}",
                "The {a} {n} of {p}", "{n} and the {a} {n2}", "The {n}'s {n2}"]
    used, titles, series = set(), [], [None] * len(book_genre)
    for b, g in enumerate(book_genre):
        adjs, nouns, places = (x.split("|") if "|" in x else x.split() for x in _WORDS[GENRES[g]])
        for attempt in range(100):
            pat = patterns[int(rng.integers(0, len(patterns)))]
            n, shift = int(rng.integers(0, len(nouns))), int(rng.integers(1, len(nouns)))
            noun = nouns[n]
            title = pat.format(a=adjs[int(rng.integers(0, len(adjs)))], n=noun,
                               ns=noun if noun.endswith("s") else noun + "s",
                               n2=nouns[(n + shift) % len(nouns)],  # never the same noun
                               p=places[int(rng.integers(0, len(places)))])
            if title.startswith("A ") and noun.endswith("s"):
                title = "The " + title[2:]  # "A Chosen Hunters" -> "The Chosen Hunters"
            elif title.startswith("A ") and title[2] in "AEIOU":
                title = "An " + title[2:]  # "A Imperial Voyage" -> "An Imperial Voyage"
            if attempt > 20:
                title = f"{title}, Book {attempt}" if attempt < 50 else f"{title} ({b})"
            if title not in used:
                break
        used.add(title)
        titles.append(title)
    # Series: consecutive books of the same topic.
    order = np.argsort(book_topic, kind="stable")
    series_id, i, series_names = 100_000, 0, set()
    while i < len(order) - 3:
        if rng.random() < 0.02:
            length = int(rng.integers(2, 6))
            members = order[i:i + length]
            if len(set(book_topic[members])) == 1:
                adjs, nouns = (x.split() for x in _WORDS[GENRES[int(book_genre[members[0]])]][:2])
                for attempt in range(30):
                    name = (f"The {adjs[int(rng.integers(0, len(adjs)))]} "
                            f"{nouns[int(rng.integers(0, len(nouns)))]} "
                            f"{_SERIES_KINDS[int(rng.integers(0, len(_SERIES_KINDS)))]}")
                    if attempt == 29:
                        name = f"{name} {series_id}"
                    if name not in series_names:
                        break
                series_names.add(name)
                for k, m in enumerate(members):
                    series[m] = (series_id, name, k + 1)
                series_id += 1
            i += length
        else:
            i += 1
    return titles, series


def make_author_names(rng, count):
    """Distinct 'First Last' names; a middle initial where combinations run out."""
    names, used = [], set()
    for _ in range(count):
        for attempt in range(1000):
            first = _FIRST[int(rng.integers(0, len(_FIRST)))]
            last = _LAST[int(rng.integers(0, len(_LAST)))]
            name = f"{first} {last}"
            if attempt > 10:
                name = f"{first} {chr(65 + int(rng.integers(0, 26)))}. {last}"
            if attempt > 100:
                name = f"{first} {chr(65 + attempt % 26)}. {chr(65 + (attempt // 26) % 26)}. {last}"
            if name not in used:
                break
        used.add(name)
        names.append(name)
    return names


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
    from pipeline_common.logs import configure_logging
    configure_logging()
    run()
