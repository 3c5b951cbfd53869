"""Ranking metrics over the whole catalogue, and the evaluator every recommender shares.

One evaluator scores every recommender the same way, on the same split:

* ``hit@K`` — share of eval interactions whose book ranks in the user's top K over
  the whole catalogue, training books *not* excluded (what TFRS's FactorizedTopK
  top-K categorical accuracy measures). Ties are broken at random, in expectation:
  a book with g books scored above it and t others scored the same counts
  clip((K - g) / (t + 1), 0, 1). (FactorizedTopK counts ties in the book's favour;
  a scorer that gives many books one score -- e.g. ALS with near-zero factors for
  users with one or two books -- would collect hits it did not rank.)
* ``recall@K`` — per user, with the user's training books excluded from the
  ranking: (relevant books in the top K) / (relevant books), averaged over users,
  where a user's relevant books are their eval books that are not training books.

The same six metrics are also given per group of users by their number of
distinct training books (`GROUPS`: 1-2, 3-10, 11+; the rare eval user with no
training book counts in 1-2). Ranking is exact over the whole catalogue; what is
bounded is the number of eval users (`EvalSplit(max_eval_users=...)`).
The baselines (popularity, item_cosine, ease) live in model/baselines.py; the printed
table and metrics.png are laid out by model/report.py.
"""
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from model.baselines import BASELINES
from pipeline_common import artifacts, fileio, hashing
from pipeline_common.arrays import sorted_unique

KS = (10, 50, 100)
METRIC_NAMES = tuple(f"hit@{k}" for k in KS) + tuple(f"recall@{k}" for k in KS)
# (label, most training books) of each user group, in order.
GROUPS = (("1-2", 2), ("3-10", 10), ("11+", np.inf))


def user_hash(users, user_ids=None):
    """uint64 hash per user: of the user id when `user_ids` (indexed by user) is given, else
    of the user index. Hashing the id makes the chosen users independent of the vocabulary
    order, so two preprocess runs over the same users evaluate the same people."""
    if user_ids is None:
        return hashing.splitmix64(np.asarray(users))
    return np.array([int.from_bytes(hashlib.blake2b(
        user_ids[u] if isinstance(user_ids[u], bytes) else str(user_ids[u]).encode(),
        digest_size=8).digest(), "little") for u in users], np.uint64)


def read_user_ids(data):
    """The user id of each user_index in preprocess output `data` (bytes), None when absent."""
    path = artifacts.vocabulary_path(data, artifacts.USER_VOCAB)
    if not fileio.exists(path):
        return None
    return fileio.read_bytes(path).splitlines()


class EvalSplit:
    """Train and eval interactions grouped by user, ready for batched scoring.

    Metrics cover at most `max_eval_users` eval users (0: all): those with the smallest
    `user_hash`, so the choice is stable and does not depend on the data's order.
    The training rows of every user are kept (baselines fit on all of them).
    Training pairs are kept once per (user, book).
    """

    def __init__(self, train, evals, num_users, num_books, max_eval_users=0, user_ids=None):
        self.num_users, self.num_books = num_users, num_books
        pairs = sorted_unique(train.user.astype(np.int64) * num_books + train.book)
        self.train_user = (pairs // num_books).astype(np.int32)
        self.train_book = (pairs % num_books).astype(np.int32)
        self.train_ptr = np.searchsorted(self.train_user, np.arange(num_users + 1))
        order = np.lexsort((evals.book, evals.user))
        self.eval_user, self.eval_book = evals.user[order], evals.book[order]
        self.eval_ptr = np.searchsorted(self.eval_user, np.arange(num_users + 1))
        self.counts = np.bincount(train.book, minlength=num_books)
        users = sorted_unique(self.eval_user).astype(np.int32)
        self.eval_users_total = len(users)
        self.chosen_by = "all eval users"
        if 0 < max_eval_users < len(users):
            hashes = user_hash(users, user_ids)
            chosen = np.lexsort((users, hashes))[:max_eval_users]
            users = np.sort(users[chosen])
            self.chosen_by = ("smallest blake2b-64 hash of the user id" if user_ids is not None
                              else "smallest splitmix64 hash of the user index")
        self.users = users
        self.num_eval_interactions = int(
            (self.eval_ptr[users + 1] - self.eval_ptr[users]).sum())
        self.train_books_per_user = np.diff(self.train_ptr)

    def describe(self):
        """What metrics.json says about the evaluated users."""
        return {"eval_users": int(len(self.users)), "eval_users_total": self.eval_users_total,
                "eval_users_chosen_by": self.chosen_by}

    def train_items(self, user):
        return self.train_book[self.train_ptr[user]:self.train_ptr[user + 1]]

    def pairs(self, users, part):
        """(row in `users`, book) for every `part` ("train"/"eval") interaction of `users`."""
        books, ptr = ((self.train_book, self.train_ptr) if part == "train"
                      else (self.eval_book, self.eval_ptr))
        starts, lengths = ptr[users], ptr[users + 1] - ptr[users]
        rows = np.repeat(np.arange(len(users)), lengths)
        index = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(len(rows))
        return rows, books[index]


def evaluate_scores(score_fn, split, ks=KS, max_cells=2_000_000, groups=False, threads=2):
    """Computes hit@K and recall@K for `score_fn(users) -> [len(users), num_books]` scores.

    Users are scored in batches of about `max_cells` scores, so memory stays bounded
    for large catalogues. Small batches are also faster: their arrays (16 MB) are
    reused by the allocator, where 20M-cell batches were mapped afresh each time
    (popularity scored 3x faster at 100M ratings; benchmarks/bench_evaluate.py).
    With `groups`, the result also has "groups": {label: the same metrics plus
    "users" and "eval_interactions"} for each of `GROUPS`. `threads` batches are scored
    at a time (`score_fn` must be thread-safe); the result does not depend on it.
    """
    num_books, num_users = split.num_books, len(split.users)
    batch_users = max(1, min(256, max_cells // num_books))
    chunk_rows = max(1, max_cells // num_books)
    kmax = min(max(ks), num_books)
    # Per evaluated user: eval interactions, hits and recall at each K.
    hits = {k: np.zeros(num_users) for k in ks}
    recall = {k: np.zeros(num_users) for k in ks}
    has_relevant = np.zeros(num_users, bool)

    def score_batch(start):
        users = split.users[start:start + batch_users]
        scores = np.array(score_fn(users), dtype=np.float64 if _is64(score_fn) else np.float32)
        e_rows, e_books = split.pairs(users, "eval")
        t_rows, t_books = split.pairs(users, "train")
        # hit@K: rank of each eval book among all books, nothing excluded, ties shared.
        for chunk in range(0, len(e_rows), chunk_rows):
            r, b = e_rows[chunk:chunk + chunk_rows], e_books[chunk:chunk + chunk_rows]
            positive = scores[r, b]
            rows = scores[r]
            above = (rows > positive[:, None]).sum(axis=1)
            tied = np.ones(len(r))   # the book itself; others only matter near the top
            near = np.flatnonzero(above < max(ks))
            if len(near):
                tied[near] = np.maximum((rows[near] == positive[near, None]).sum(axis=1), 1)
            for k in ks:
                hits[k][start:start + len(users)] += np.bincount(
                    r, weights=np.clip((k - above) / tied, 0.0, 1.0), minlength=len(users))
        # recall@K: training books removed from the ranking and from the relevant set.
        relevant = np.zeros(scores.shape, dtype=bool)
        relevant[e_rows, e_books] = True
        relevant[t_rows, t_books] = False
        scores[t_rows, t_books] = -np.inf
        top = np.argpartition(-scores, kmax - 1, axis=1)[:, :kmax]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        found = np.take_along_axis(relevant, top, axis=1)
        num_relevant = relevant.sum(axis=1)
        has = num_relevant > 0
        has_relevant[start:start + len(users)] = has
        for k in ks:
            recall[k][start:start + len(users)][has] = (
                found[has, :k].sum(axis=1) / num_relevant[has])

    # numpy's partition, comparisons and BLAS release the GIL: two batches at a time keep
    # both cores busy (argpartition alone is single-threaded). Each batch fills its own rows.
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(score_batch, range(0, num_users, batch_users)):
            pass
    eval_counts = split.eval_ptr[split.users + 1] - split.eval_ptr[split.users]

    def summary(mask):
        total = max(int(eval_counts[mask].sum()), 1)
        result = {f"hit@{k}": float(hits[k][mask].sum()) / total for k in ks}
        users_with_relevant = max(int(has_relevant[mask].sum()), 1)
        result.update({f"recall@{k}": float(recall[k][mask].sum()) / users_with_relevant
                       for k in ks})
        return result

    result = summary(np.ones(num_users, bool))
    if groups:
        train_books = split.train_books_per_user[split.users]
        result["groups"], lower = {}, 0
        for label, most in GROUPS:
            mask = (train_books > lower) & (train_books <= most) if lower else train_books <= most
            result["groups"][label] = dict(summary(mask), users=int(mask.sum()),
                                           eval_interactions=int(eval_counts[mask].sum()))
            lower = most
    return result


def _is64(score_fn):
    return getattr(score_fn, "float64", False)


def run_baselines(split, names=("popularity", "item_cosine", "ease"), ease_max_books=20000,
                  return_fitted=False, ease_l2=None):
    """Fits and evaluates each baseline; returns ({name: metrics}, {name: fit seconds})
    (and {name: fitted recommender} with `return_fitted`).

    Metrics carry per-group figures under "groups" (metrics_json() lays them out for
    metrics.json). EASE is a dense books x books model: with more than `ease_max_books`
    books it is skipped, and its entry is {"skipped": reason} (no fit seconds).
    `ease_l2`: a λ already chosen by `Ease.choose_l2` on this split (model.train chooses
    it once for its head and the baseline); None: EASE chooses it, inside its fit time.
    """
    metrics, fit_seconds, fitted = {}, {}, {}
    for name in names:
        if name == "ease" and split.num_books > ease_max_books:
            metrics[name] = {"skipped": f"{split.num_books} books > --ease_max_books "
                                        f"{ease_max_books} (a dense {split.num_books}² model)"}
            continue
        start = time.perf_counter()
        recommender = BASELINES[name](l2=ease_l2) if name == "ease" else BASELINES[name]()
        fitted[name] = recommender.fit(split)
        fit_seconds[name] = time.perf_counter() - start
        metrics[name] = evaluate_scores(recommender, split, groups=True)
    return (metrics, fit_seconds, fitted) if return_fitted else (metrics, fit_seconds)


def scored(baselines):
    """The baselines that have metrics (skipped ones left out)."""
    return {name: values for name, values in baselines.items() if "skipped" not in values}


def metrics_json(model_metrics, baselines, split):
    """The content of metrics.json (docs/artifacts.md) from evaluate_scores(groups=True) results.

    "model" and each of "baselines" hold the six overall metrics; "groups" holds, per
    recommender, the metrics of each user group; "skipped_baselines" says why a
    baseline has no figures (only when one was skipped).
    """
    everyone = dict(scored(baselines), model=model_metrics)
    metrics = {
        "model": {m: model_metrics[m] for m in METRIC_NAMES},
        "baselines": {name: {m: values[m] for m in METRIC_NAMES}
                      for name, values in scored(baselines).items()},
        "groups": {name: values["groups"] for name, values in everyone.items()},
        "eval_interactions": split.num_eval_interactions, **split.describe()}
    skipped = {name: values["skipped"] for name, values in baselines.items()
               if "skipped" in values}
    if skipped:
        metrics["skipped_baselines"] = skipped
    return metrics
