"""The served scorer: two-tower cosine + a sparse item-item head + popularity, per user group.

score(u, b) = cos(u, b) / T + head_weight[g] * sum_{i read by u} W[i, b]
              + popularity_weight[g] * log(1 + training readers of b)

where g is the user's group by number of training books (model.evaluate.GROUPS:
1-2, 3-10, 11+) and W is a sparse item-item table, each book keeping its
`neighbours` strongest neighbours: EASE's weights (Steck 2019) when the catalogue
has at most --ease_max_books books, else item-item cosine (model/baselines.py).
The two weights of each group are chosen on a holdout of the *training* data, never
on the eval split: before training, one training interaction of each of up to
`max_users` users (hash-chosen) is hidden from the model and from the head; after
training, every (head weight, popularity weight) pair of a small grid is scored on
those hidden books (hits in the top 10 plus hits in the top 100, ties shared as
model.evaluate shares them, the user's other training books excluded) and each
group keeps its best pair among those at least level with popularity on hits in the
top 10 alone (a group with fewer than `min_group_users` holdout users takes the
pair that is best over everyone), unless choosing that way does not beat the
popularity fallback (the popularity baseline's ranking: most-read first, ties to
the lower book_index) out of sample: the pair chosen on each half of the group's
holdout users (by a hash of the user) is scored on the other half, and the mean
per-user difference must exceed one standard error; else the group is served
that ranking
(`popularity_fallback` in training_log.json; passed to Reranker as weight inf).
So on sparse data, where the most-read books are hard to beat for users with one or
two books, that group leans on or falls back to popularity; on dense data the
popularity weight stays near 0.
The final head is refitted on all training interactions (an EASE head with the λ
the weights were chosen with: `choose_served_weights`).

The same arithmetic runs in numpy (the evaluation, `Reranker.score`) and in the
SavedModel's serving_default (model/export.py), in float32.
"""
import collections
import logging
import time

import numpy as np

from model import baselines
from model.evaluate import GROUPS, EvalSplit
from pipeline_common.hashing import splitmix64
from model.data import Interactions

HEAD_WEIGHTS = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
POPULARITY_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 16.0)
# The popularity fallback: the popularity baseline's own ranking (most-read first, ties to the
# lower book_index, i.e. the preprocess order), the model not used: marked by weights (0, inf).
POPULARITY_FALLBACK = (0.0, float("inf"))

Holdout = collections.namedtuple("Holdout", ["fit", "user", "book"])


def group_of(num_train_books):
    """Index into GROUPS of each count (0 training books counts in the first group)."""
    bounds = np.array([most for _, most in GROUPS[:-1]], np.float64)
    return np.searchsorted(bounds, np.asarray(num_train_books), side="left").astype(np.int32)


def make_holdout(train, num_users, seed, max_users=4000, max_share=0.05):
    """Hides one training interaction of up to `max_users` users with >= 2 training rows.

    Users are those with the smallest splitmix64 hash of (index, seed), and at most
    `max_share` of the training interactions are hidden. Returns Holdout(fit: the
    remaining Interactions, user, book: the hidden pairs, sorted by user).
    """
    size = len(train.user)
    counts = np.bincount(train.user, minlength=num_users)
    candidates = np.flatnonzero(counts >= 2)
    take = int(min(max_users, len(candidates), max_share * size))
    if take <= 0:
        empty = np.zeros(0, np.int32)
        return Holdout(train, empty, empty)
    salt = np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        user_hash = splitmix64(candidates.astype(np.uint64) ^ salt)
    chosen = np.zeros(num_users, bool)
    chosen[candidates[np.argsort(user_hash, kind="stable")[:take]]] = True
    rows = np.flatnonzero(chosen[train.user])
    # one row per chosen user: the one with the smallest hash of (user, book)
    with np.errstate(over="ignore"):
        row_hash = splitmix64(train.user[rows].astype(np.uint64) * np.uint64(1 << 32)
                               + train.book[rows].astype(np.uint64) + salt)
    order = np.lexsort((row_hash, train.user[rows]))
    rows = rows[order]
    first = np.ones(len(rows), bool)
    first[1:] = train.user[rows][1:] != train.user[rows][:-1]
    hidden = rows[first]
    keep = np.ones(size, bool)
    keep[hidden] = False
    fit = Interactions(train.user[keep], train.book[keep])
    return Holdout(fit, train.user[hidden], train.book[hidden])


def fit_head(split, neighbours, ease_max_books, ease=None, l2=None, item_cosine=None):
    """(index int32 [B, k], weight float32 [B, k], description) of the item-item head.

    EASE (a fitted `ease` is reused, else one is fitted with `l2`, or λ chosen as
    the baseline does) up to `ease_max_books` books, item cosine above (a fitted
    `item_cosine` on the same split with at least k neighbours is reused: its rows
    are strongest first). Each book keeps its `neighbours` largest weights (EASE's by
    magnitude, negative ones included; padding: the book itself, weight 0).
    """
    num_books = split.num_books
    k = min(neighbours, max(num_books - 1, 1))
    if neighbours == 0:
        return (np.zeros((num_books, 0), np.int32), np.zeros((num_books, 0), np.float32),
                {"kind": "none"})
    if num_books <= ease_max_books:
        if ease is None:
            ease = baselines.Ease(l2=l2).fit(split)
        weights = ease.weights
        index = np.empty((num_books, k), np.int32)
        values = np.empty((num_books, k), np.float32)
        for start in range(0, num_books, 1024):   # in row blocks: no books x books temporaries
            rows = weights[start:start + 1024]
            # the k largest weights by magnitude, negative ones kept: EASE's negative weights
            # (books read *instead of* the row's) are part of its ranking; keeping only the
            # positive ones cost 0.015 recall@10 on goodbooks-dense (docs/model.md)
            top = np.argpartition(-np.abs(rows), k - 1, axis=1)[:, :k]
            index[start:start + 1024] = top
            values[start:start + 1024] = np.take_along_axis(rows, top, axis=1)
        return index, values, {"kind": "ease", "l2": float(ease.l2), "neighbours": k,
                               "kept": "largest magnitude"}
    cosine = item_cosine
    if cosine is None or cosine.nbr_index.shape[1] < k:
        cosine = baselines.ItemCosine(neighbours=k).fit(split)
    return (cosine.nbr_index[:, :k].astype(np.int32), cosine.nbr_sim[:, :k].astype(np.float32),
            {"kind": "item_cosine", "neighbours": k})


def head_scores(index, weight, ptr, books, users):
    """float32 [len(users), B]: per user the sum of the head rows of their training books."""
    num_books = len(index)
    users = np.asarray(users)
    if index.shape[1] == 0 or len(users) == 0:
        return np.zeros((len(users), num_books), np.float32)
    starts, lengths = ptr[users], ptr[users + 1] - ptr[users]
    rows = np.repeat(np.arange(len(users)), lengths)
    items = books[np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
                  + np.arange(len(rows))]
    flat = (rows[:, None].astype(np.int64) * num_books + index[items]).ravel()
    out = np.bincount(flat, weights=weight[items].ravel(), minlength=len(users) * num_books)
    return out.astype(np.float32).reshape(len(users), num_books)


class Reranker:
    """The served scorer (see the module docstring): per group weights and the sparse head."""

    def __init__(self, temperature, head_index, head_weight, counts, head_weights,
                 popularity_weights, info=None):
        self.temperature = float(temperature)
        self.head_index, self.head_weight = head_index, head_weight
        self.log_popularity = np.log1p(np.asarray(counts, np.float64)).astype(np.float32)
        self.popularity_rank = popularity_rank(counts)
        self.fallback = np.isinf(np.asarray(popularity_weights, np.float64))
        self.head_weights = np.where(self.fallback, 0.0, head_weights).astype(np.float32)
        self.popularity_weights = np.where(self.fallback, 0.0,
                                           popularity_weights).astype(np.float32)
        self.info = info or {}

    def score(self, query, book_vectors, ptr, books, users):
        """float32 [len(users), B]; user u's training books are books[ptr[u]:ptr[u + 1]]."""
        group = group_of(ptr[np.asarray(users) + 1] - ptr[np.asarray(users)])
        scores = (query @ book_vectors.T) * np.float32(1.0 / self.temperature)
        scores += self.head_weights[group][:, None] * head_scores(
            self.head_index, self.head_weight, ptr, books, users)
        scores += self.popularity_weights[group][:, None] * self.log_popularity[None, :]
        fallback = self.fallback[group]
        scores[fallback] = self.popularity_rank[None, :]
        return scores

    def describe(self):
        return dict(self.info, temperature=self.temperature,
                    groups={label: {"head_weight": float(h), "popularity_weight": float(p),
                                    "popularity_fallback": bool(f)}
                            for (label, _), h, p, f in zip(GROUPS, self.head_weights,
                                                           self.popularity_weights,
                                                           self.fallback)})


def popularity_rank(counts):
    """float32 scores num_books..1: the popularity baseline's order (count desc, index asc)."""
    return baselines.popularity_rank_scores(np.asarray(counts)).astype(np.float32)


def choose_weights(query, book_vectors, temperature, fit_split, holdout, head_index,
                   head_weight, min_group_users=200, max_cells=4_000_000):
    """Per group (head weight, popularity weight) from the grids, by holdout hits@10 + hits@100.

    `query` holds the holdout users' vectors (from the model trained without their
    hidden book), in the order of `holdout.user`. Returns (head weights, popularity
    weights) per group and a report of the holdout figures.
    """
    users, hidden = holdout.user, holdout.book
    grid = [(h, p) for h in (HEAD_WEIGHTS if head_index.shape[1] else (0.0,))
            for p in POPULARITY_WEIGHTS] + [POPULARITY_FALLBACK]
    fallback = len(grid) - 1
    gain = np.zeros((len(users), len(grid)))
    top10 = np.zeros((len(users), len(grid)))
    counts = fit_split.counts
    pop = np.log1p(counts).astype(np.float32)
    pop_rank = popularity_rank(counts)
    ptr, books = fit_split.train_ptr, fit_split.train_book
    batch = max(1, max_cells // fit_split.num_books)
    for start in range(0, len(users), batch):
        part = users[start:start + batch]
        rows = np.arange(len(part))
        model = (query[start:start + batch] @ book_vectors.T) / np.float32(temperature)
        head = head_scores(head_index, head_weight, ptr, books, part)
        read_rows, read_books = [], []
        for row, user in enumerate(part):
            items = books[ptr[user]:ptr[user + 1]]
            read_rows.append(np.full(len(items), row)), read_books.append(items)
        read_rows, read_books = np.concatenate(read_rows), np.concatenate(read_books)
        target = hidden[start:start + batch]
        for column, (h, p) in enumerate(grid):
            if column == fallback:
                scores = np.repeat(pop_rank[None, :], len(part), axis=0)
            else:
                scores = model + np.float32(h) * head + np.float32(p) * pop[None, :]
            scores[read_rows, read_books] = -np.inf
            hits10, hits100 = _hit_credit(scores, rows, target, (10, 100))
            gain[start:start + batch, column] = hits10 + hits100
            top10[start:start + batch, column] = hits10
    group = group_of(np.diff(ptr)[users])
    with np.errstate(over="ignore"):
        picks = (splitmix64(users.astype(np.uint64)) & np.uint64(1)) == 0
    overall = _best(gain, top10, np.ones(len(users), bool), picks, fallback)
    head_weights, popularity_weights, report = [], [], {}
    for g, (label, _) in enumerate(GROUPS):
        mask = group == g
        own = mask.sum() >= min_group_users
        best = _best(gain, top10, mask, picks, fallback) if own else overall
        head_weights.append(grid[best][0])
        popularity_weights.append(grid[best][1])
        report[label] = {"holdout_users": int(mask.sum()),
                         "chosen_by": "group" if own else "everyone",
                         "popularity_fallback": best == fallback}
        if mask.any():
            report[label].update(
                holdout_gain=float(gain[mask, best].mean()),
                gain_two_tower_alone=float(gain[mask, grid.index((0.0, 0.0))].mean()),
                gain_popularity_fallback=float(gain[mask, fallback].mean()))
    return head_weights, popularity_weights, report


def _hit_credit(scores, rows, target, ks):
    """Per row, the hit@K credit of its target book under model.evaluate's rule:
    with g books scored above it and t others tied with it, clip((K - g) / (t + 1), 0, 1)
    (ties broken at random, in expectation)."""
    own = scores[rows, target][:, None]
    above = (scores > own).sum(axis=1)
    tied = np.ones(len(rows))
    near = np.flatnonzero(above < max(ks))   # ties only matter near the top
    if len(near):
        tied[near] = (scores[near] == own[near]).sum(axis=1)
    return [np.clip((k - above) / tied, 0.0, 1.0) for k in ks]


# How many standard errors the best grid pair must beat the popularity fallback by on the
# holdout. Measured with 2.0 on the goodbooks sample: the 3-10 group fell back to popularity
# (and lost its +0.7 points hit@100) while the 1-2 group, whose holdout gain is large, did not.
FALLBACK_STANDARD_ERRORS = 1.0


def _best(gain, top10, mask, picks, fallback):
    """The grid column with the highest mean gain over `mask` among those at least level
    with the popularity fallback on hits@10 alone (so a pair that trades top-10 hits for
    top-100 ones is not taken), unless the choice does not beat the fallback out of
    sample: then the fallback.

    Out of sample is cross-fitted: the choice is made on each half of `mask` (`picks`
    and the rest), each half's pair is scored against the fallback on the other half,
    and the mean of those per-user differences must exceed FALLBACK_STANDARD_ERRORS
    standard errors. Testing the best of ~50 pairs on the users it was picked on flatters
    it (goodbooks, seed 7, users with 1-2 books: +3.8% over popularity on the holdout,
    level on the same sum on the eval split and below popularity on hit@100)."""
    best = _pick(gain, top10, mask, fallback)
    if best == fallback:
        return fallback
    differences = []
    for pick, test in ((mask & picks, mask & ~picks), (mask & ~picks, mask & picks)):
        chosen = _pick(gain, top10, pick, fallback)
        differences.append(gain[test, chosen] - gain[test, fallback])
    difference = np.concatenate(differences)
    if len(difference) < 2:
        return fallback
    error = difference.std(ddof=1) / np.sqrt(len(difference))
    return best if difference.mean() > FALLBACK_STANDARD_ERRORS * error else fallback


def _pick(gain, top10, mask, fallback):
    """The column with the highest mean gain over `mask` among those at least level with
    the fallback on hits@10 (the fallback itself when `mask` is empty)."""
    if not mask.any():
        return fallback
    mean_gain = gain[mask].mean(axis=0)
    hits10 = top10[mask].mean(axis=0)   # (hit credits: ties shared as in model.evaluate)
    mean_gain[hits10 < hits10[fallback]] = -np.inf
    return int(np.argmax(mean_gain))


def holdout_split(fit, num_users, num_books):
    """An EvalSplit over the holdout's fitting interactions (no eval part): for fitting heads."""
    empty = Interactions(np.zeros(0, np.int32), np.zeros(0, np.int32))
    return EvalSplit(fit, empty, num_users, num_books)


# ---------------------------------------------------------------- model.train's rerank phase
# The job's steps around the pieces above: the holdout hidden before training, the weights
# chosen on it after training, the served head refitted on every training interaction.
# Free of TensorFlow: the model comes in as its user vectors and book vectors.

def holdout_inputs(args, inputs):
    """(inputs with the holdout's books removed from training, the Holdout): one training
    book of up to --holdout_users users is hidden, so the weights are never chosen on the
    eval split. `inputs` is model.train's Inputs."""
    holdout = make_holdout(inputs.train, inputs.manifest["num_users"], args.seed,
                           args.holdout_users)
    return inputs._replace(train=holdout.fit), holdout


def choose_served_weights(args, inputs, holdout, split, query_vectors, book_vectors):
    """Per group weights of the served score, chosen on the training holdout.

    `query_vectors(users)` gives the user tower's vectors while the tower still holds the
    histories it was trained with (the hidden books left out); `book_vectors` are the
    candidate tower's. An EASE head uses the λ the EASE baseline chooses on the whole
    training split (`split`), for the holdout's head and the served one alike: the weights
    are only meaningful at that head's scale (a larger λ shrinks every weight), and λ chosen
    on the holdout's fit alone differed from the whole split's on 3 of 4 quality runs.
    λ is chosen here once; the EASE baseline is fitted with it
    (model.train.evaluate_model). Returns (head weights, popularity weights, report).
    """
    if len(holdout.user) == 0:
        return [0.0] * len(GROUPS), [0.0] * len(GROUPS), {"holdout_users": 0}
    start = time.perf_counter()
    manifest = inputs.manifest
    fit_split = holdout_split(holdout.fit, manifest["num_users"], manifest["num_books"])
    l2 = None
    if args.head_neighbours and manifest["num_books"] <= args.ease_max_books:
        l2 = baselines.Ease().choose_l2(split)
    index, weight, head_info = fit_head(fit_split, args.head_neighbours, args.ease_max_books,
                                        l2=l2)
    heads, pops, report = choose_weights(
        query_vectors(holdout.user), book_vectors, args.temperature, fit_split, holdout, index,
        weight)
    report = {"holdout_users": int(len(holdout.user)), "head_on_holdout": head_info,
              "groups": report, "seconds": time.perf_counter() - start}
    logging.info("rerank weights per group: head %s, popularity %s", heads, pops)
    return heads, pops, report


def build_reranker(args, split, weights, fitted=None, l2=None):
    """The served scorer: the head refitted on every training interaction of `split`.

    `weights` is choose_served_weights' result. An EASE head is refitted with the λ of the
    head its weights were chosen with (`l2`, default: the holdout report's). The baselines
    fitted on the same split (`fitted`: EASE with that λ, or item cosine) are reused.
    """
    heads, pops, report = weights
    fitted = fitted or {}
    if l2 is None:
        l2 = report.get("head_on_holdout", {}).get("l2")
    ease = fitted.get("ease")
    if ease is not None and l2 is not None and ease.l2 != l2:
        ease = None
    index, weight, head_info = fit_head(
        split, args.head_neighbours if any(h > 0 for h in heads) else 0, args.ease_max_books,
        ease=ease, l2=l2, item_cosine=fitted.get("item_cosine"))
    return Reranker(args.temperature, index, weight, split.counts, heads, pops,
                    info={"head": head_info, "holdout": report})


def reranked_scorer(reranker, query_vectors, book_vectors, split):
    """score_fn for model.evaluate: exactly what serving_default ranks by.
    `query_vectors(users)`: the user tower's vectors (with full histories)."""
    def score(users):
        return reranker.score(query_vectors(users), book_vectors, split.train_ptr,
                              split.train_book, users)
    return score
