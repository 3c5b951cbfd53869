"""Who reads what: the latent world behind the interactions (books' topics and popularity,
users' tastes and activity) and the draw of each user's distinct books and ratings.

The constants below are set so that label-free statistics of the demo data (popularity
concentration, share of reads among the most-read books, strength of co-reading) come near
those of real dense Goodreads readers and the peers rank as they do there (map ahead of EASE
by ~10% on coread@10): `python -m benchmarks.bench_data_realism`, docs/input_format.md.
Users reading in only one to three clean topics would make co-reading twice as strong as
real and put 27% of reads on the top 1% of books.
"""
import numpy as np

from pipeline_common.arrays import sorted_unique
from sample_goodreads.names import GENRES

# Share of rated interactions with rating 1..5 in the real data.
_RATING_SHARE = np.array([2.05, 6.19, 23.3, 37.5, 35.5]) / 104.54
TOPICS_PER_GENRE = 6
_TOPIC_RES, _GLOBAL_RES = 2**16, 2**22
_POPULARITY_EXPONENT, _POPULARITY_OFFSET = 1.2, 0.002
_MAX_TOPICS = 10            # topics a user reads in, at most
_EXTRA_TOPICS = 5.0         # mean topics a user reads in beyond the first (Poisson)
_TOPIC_CONCENTRATION = 0.6  # Dirichlet: < 1, one topic leads and the others trail
_SIBLING_SHARE = 0.4        # a further topic is in the genre of the first
_GROUP_SIZE = 4.0           # mean books in a companion group (a series, an author's books)
_COMPANION_SHARE = 0.1      # share of draws that are a companion of another of the user's books
_TASTE_SHARE_BETA = (5.0, 2.0)  # per user, share of reads from their topics (mean 0.71)
_ACTIVITY_SIGMA = 1.1       # log-normal spread of books a user reads


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
        # Popularity over a random order of books: Zipf-Mandelbrot, a flat head of
        # best-sellers (real ones are each read by a third of active readers) and a long tail.
        popularity_rank = rng.permutation(num_books) + 1
        self.book_weight = ((popularity_rank + _POPULARITY_OFFSET * num_books)
                            ** -_POPULARITY_EXPONENT)
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
        self.topic_popularity = np.bincount(self.book_topic, self.book_weight, self.num_topics)
        global_cdf = np.cumsum(self.book_weight) / self.book_weight.sum()
        # Inverse-CDF lookup tables: one array index per draw instead of a
        # binary search (resolution 2^-16 per topic, 2^-22 globally).
        self.topic_table = self.by_topic[np.minimum(np.searchsorted(
            self.topic_cdf, np.arange(self.num_topics * _TOPIC_RES) / _TOPIC_RES, side="right"),
            num_books - 1)]
        self.global_table = np.minimum(np.searchsorted(
            global_cdf, np.arange(_GLOBAL_RES) / _GLOBAL_RES, side="right"), num_books - 1)
        # Companion groups: runs of books of one topic and near popularity, like a series or
        # one author's books: a reader of one often reads another.
        self.by_group = np.lexsort((popularity_rank, self.book_topic))
        topic_of = self.book_topic[self.by_group]
        new_group = np.concatenate(([True], topic_of[1:] != topic_of[:-1]))
        new_group |= rng.random(num_books) < 1 / _GROUP_SIZE
        self.group_start = np.flatnonzero(new_group)
        self.group_size = np.diff(np.append(self.group_start, num_books))
        self.book_group = np.empty(num_books, np.int64)
        self.book_group[self.by_group] = np.cumsum(new_group) - 1

    def user_tastes(self, rng, count):
        """Per user: `_MAX_TOPICS` topics with long-tailed weights (zero past the user's number
        of topics), and the share of the user's reads drawn from them (the rest follow
        popularity across all topics)."""
        # Topics are picked by the popularity of their books: readers crowd where the
        # best-sellers are.
        topic_cdf = np.cumsum(self.topic_popularity) / self.topic_popularity.sum()
        topics = np.minimum(np.searchsorted(topic_cdf, rng.random((count, _MAX_TOPICS))),
                            self.num_topics - 1)
        # Later topics are often in the same genre as the first.
        same_genre = rng.random((count, _MAX_TOPICS - 1)) < _SIBLING_SHARE
        sibling = (topics[:, :1] // TOPICS_PER_GENRE) * TOPICS_PER_GENRE + rng.integers(
            0, TOPICS_PER_GENRE, (count, _MAX_TOPICS - 1))
        sibling_ok = self.topic_has_books[sibling]
        topics[:, 1:] = np.where(same_genre & sibling_ok, sibling, topics[:, 1:])
        n_topics = np.minimum(1 + rng.poisson(_EXTRA_TOPICS, count), _MAX_TOPICS)
        weights = rng.dirichlet(np.full(_MAX_TOPICS, _TOPIC_CONCENTRATION), count)
        weights[np.arange(_MAX_TOPICS)[None, :] >= n_topics[:, None]] = 0.0
        weights /= weights.sum(axis=1, keepdims=True)
        taste_share = rng.beta(*_TASTE_SHARE_BETA, count)
        return topics, weights, taste_share

    def sample_books(self, rng, tastes, user_of_draw):
        """One book per draw: from one of the user's topics (by its weight) with the user's
        taste share, otherwise from all books by popularity."""
        topics, weights, taste_share = tastes
        n = len(user_of_draw)
        cum_w = np.cumsum(weights[user_of_draw], axis=1)
        which = (rng.random(n)[:, None] > cum_w).sum(axis=1).clip(0, _MAX_TOPICS - 1)
        topic = topics[user_of_draw, which]
        in_taste = rng.random(n) < taste_share[user_of_draw]
        taste_book = self.topic_table[topic * _TOPIC_RES + rng.integers(0, _TOPIC_RES, n)]
        popular_book = self.global_table[rng.integers(0, _GLOBAL_RES, n)]
        books = np.where(in_taste, taste_book, popular_book)
        # Some draws are a companion of another of the user's books (draws are grouped by user).
        first = np.searchsorted(user_of_draw, user_of_draw, side="left")
        length = np.searchsorted(user_of_draw, user_of_draw, side="right") - first
        group = self.book_group[books[first + (rng.random(n) * length).astype(np.int64)]]
        companion = self.by_group[self.group_start[group]
                                  + (rng.random(n) * self.group_size[group]).astype(np.int64)]
        return np.where(rng.random(n) < _COMPANION_SHARE, companion, books)


def user_activity(rng, num_users, total, max_per_user):
    """Interactions per user: log-normal, scaled to sum to `total`."""
    raw = rng.lognormal(0.0, _ACTIVITY_SIGMA, num_users)
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
    topics, weights = tastes[:2]
    book_topic = world.book_topic[books]
    affinity = ((topics[users] == book_topic[:, None]) * weights[users]).sum(axis=1)
    base = rng.choice(5, len(users), p=_RATING_SHARE) + 1
    boost = (rng.random(len(users)) < 0.6 * affinity).astype(np.int64)
    drop = (rng.random(len(users)) < 0.25 * (affinity == 0)).astype(np.int64)
    rating = np.clip(base + boost - drop, 1, 5)
    unrated = rng.random(len(users)) < 0.54
    return np.where(unrated, 0, rating)
