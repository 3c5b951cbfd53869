"""Ranking metrics over the whole catalogue, and the baselines the model must beat.

One evaluator scores every recommender the same way, on the same split:

* ``hit@K`` — share of eval interactions whose book ranks in the user's top K over
  the whole catalogue, training books *not* excluded (what TFRS's FactorizedTopK
  top-K categorical accuracy measures; ties count in the book's favour, as there).
* ``recall@K`` — per user, with the user's training books excluded from the
  ranking: (relevant books in the top K) / (relevant books), averaged over users,
  where a user's relevant books are their eval books that are not training books.

Baselines: ``popularity`` (most-read training books first) and ``item_cosine``
(classic item-item collaborative filtering: binary co-occurrence cosine, each book
keeping its strongest neighbours, a user's score for a book the sum of the
similarities to the user's training books). Both break ties by popularity so that
their rankings are deterministic.
"""
import time

import numpy as np

KS = (10, 50, 100)
METRIC_NAMES = tuple(f"hit@{k}" for k in KS) + tuple(f"recall@{k}" for k in KS)


class EvalSplit:
    """Train and eval interactions grouped by user, ready for batched scoring."""

    def __init__(self, train, evals, num_users, num_books):
        self.num_users, self.num_books = num_users, num_books
        order = np.lexsort((train.book, train.user))
        self.train_user, self.train_book = train.user[order], train.book[order]
        self.train_ptr = np.searchsorted(self.train_user, np.arange(num_users + 1))
        order = np.lexsort((evals.book, evals.user))
        self.eval_user, self.eval_book = evals.user[order], evals.book[order]
        self.eval_ptr = np.searchsorted(self.eval_user, np.arange(num_users + 1))
        self.users = np.unique(self.eval_user).astype(np.int32)
        self.counts = np.bincount(train.book, minlength=num_books)

    @property
    def num_eval_interactions(self):
        return int(len(self.eval_user))

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


def evaluate_scores(score_fn, split, ks=KS, max_cells=20_000_000):
    """Computes hit@K and recall@K for `score_fn(users) -> [len(users), num_books]` scores.

    Users are scored in batches of about `max_cells` scores, so memory stays bounded
    for large catalogues.
    """
    num_books = split.num_books
    batch_users = max(1, min(256, max_cells // num_books))
    chunk_rows = max(1, max_cells // num_books)
    kmax = min(max(ks), num_books)
    hits = {k: 0 for k in ks}
    recall_sum = {k: 0.0 for k in ks}
    recall_users = 0
    for start in range(0, len(split.users), batch_users):
        users = split.users[start:start + batch_users]
        scores = np.array(score_fn(users), dtype=np.float64 if _is64(score_fn) else np.float32)
        e_rows, e_books = split.pairs(users, "eval")
        t_rows, t_books = split.pairs(users, "train")
        # hit@K: rank of each eval book among all books, nothing excluded.
        for chunk in range(0, len(e_rows), chunk_rows):
            r, b = e_rows[chunk:chunk + chunk_rows], e_books[chunk:chunk + chunk_rows]
            positive = scores[r, b]
            rank = (scores[r] > positive[:, None]).sum(axis=1)
            for k in ks:
                hits[k] += int((rank < k).sum())
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
        recall_users += int(has.sum())
        for k in ks:
            recall_sum[k] += float((found[has, :k].sum(axis=1) / num_relevant[has]).sum())
    total = max(split.num_eval_interactions, 1)
    result = {f"hit@{k}": hits[k] / total for k in ks}
    result.update({f"recall@{k}": recall_sum[k] / max(recall_users, 1) for k in ks})
    return result


def _is64(score_fn):
    return getattr(score_fn, "float64", False)


def popularity_rank_scores(counts):
    """Float scores ordering books by training count desc, then book_index asc."""
    order = np.lexsort((np.arange(len(counts)), -counts))
    scores = np.empty(len(counts), np.float64)
    scores[order] = np.arange(len(counts), 0, -1, dtype=np.float64)
    return scores


class Popularity:
    """Recommends the most-read training books to everyone."""

    name = "popularity"
    float64 = True

    def fit(self, split):
        self.scores = popularity_rank_scores(split.counts)
        return self

    def __call__(self, users):
        return np.broadcast_to(self.scores, (len(users), len(self.scores)))


class ItemCosine:
    """Item-item cosine similarity on binary co-occurrence (a classic item-kNN).

    sim(i, j) = |users of i and j| / sqrt(|users of i| |users of j|); each book keeps
    its `neighbours` most similar books; a user's score for a book is the sum of its
    similarities to the user's training books. Co-occurrences are counted in plain
    numpy from each user's book pairs, a block of books at a time, so time is
    O(sum over users of books^2) and memory O(block rows x num_books).
    """

    name = "item_cosine"
    float64 = True

    def __init__(self, neighbours=100, max_pairs_per_block=8_000_000, max_block_cells=30_000_000):
        self.neighbours = neighbours
        self.max_pairs, self.max_cells = max_pairs_per_block, max_block_cells

    def fit(self, split):
        num_users, num_books = split.num_users, split.num_books
        pairs = np.unique(split.train_user.astype(np.int64) * num_books + split.train_book)
        users, books = pairs // num_books, pairs % num_books  # sorted by user, then book
        user_ptr = np.searchsorted(users, np.arange(num_users + 1))
        user_len = np.diff(user_ptr)
        degree = np.bincount(books, minlength=num_books).astype(np.float64)
        by_book = np.argsort(books, kind="stable")
        book_sorted, user_of = books[by_book], users[by_book]
        book_ptr = np.searchsorted(book_sorted, np.arange(num_books + 1))
        work = np.bincount(books, weights=user_len[users], minlength=num_books)
        k = min(self.neighbours, max(num_books - 1, 1))
        self.nbr_index = np.zeros((num_books, k), np.int32)
        self.nbr_sim = np.zeros((num_books, k), np.float32)
        norm = np.sqrt(np.maximum(degree, 1.0))
        start = 0
        while start < num_books:
            stop, pairs_in_block = start + 1, work[start]
            while (stop < num_books and pairs_in_block + work[stop] <= self.max_pairs
                   and (stop + 1 - start) * num_books <= self.max_cells):
                pairs_in_block += work[stop]
                stop += 1
            first, last = book_ptr[start], book_ptr[stop]
            row_user, row_book = user_of[first:last], book_sorted[first:last] - start
            lengths = user_len[row_user]
            rows = np.repeat(row_book, lengths)
            # positions of every book of each row's user in the user-sorted pair list
            offsets = np.repeat(user_ptr[row_user] - (np.cumsum(lengths) - lengths), lengths)
            cols = books[offsets + np.arange(len(offsets))]
            co = np.bincount(rows * num_books + cols, minlength=(stop - start) * num_books)
            co = co.reshape(stop - start, num_books) / norm[None, :] / norm[start:stop, None]
            co[np.arange(stop - start), np.arange(start, stop)] = 0.0
            top = np.argpartition(-co, k - 1, axis=1)[:, :k] if k < num_books else \
                np.tile(np.arange(num_books), (stop - start, 1))
            values = np.take_along_axis(co, top, axis=1)
            order = np.argsort(-values, axis=1, kind="stable")
            self.nbr_index[start:stop] = np.take_along_axis(top, order, axis=1)[:, :k]
            self.nbr_sim[start:stop] = np.take_along_axis(values, order, axis=1)[:, :k]
            start = stop
        self.split = split
        self.tiebreak = popularity_rank_scores(split.counts) * 1e-12
        return self

    def __call__(self, users):
        num_books = self.split.num_books
        flat, weights = [], []
        for row, user in enumerate(users):
            items = np.unique(self.split.train_items(user))
            flat.append((row * num_books + self.nbr_index[items]).ravel())
            weights.append(self.nbr_sim[items].ravel())
        flat = np.concatenate(flat) if flat else np.zeros(0, np.int64)
        weights = np.concatenate(weights) if weights else np.zeros(0, np.float32)
        scores = np.bincount(flat, weights=weights, minlength=len(users) * num_books)
        return scores.reshape(len(users), num_books) + self.tiebreak[None, :]


BASELINES = {"popularity": Popularity, "item_cosine": ItemCosine}


def run_baselines(split, names=("popularity", "item_cosine")):
    """Fits and evaluates each baseline; returns ({name: metrics}, {name: fit seconds})."""
    metrics, fit_seconds = {}, {}
    for name in names:
        start = time.perf_counter()
        recommender = BASELINES[name]().fit(split)
        fit_seconds[name] = time.perf_counter() - start
        metrics[name] = evaluate_scores(recommender, split)
    return metrics, fit_seconds


def format_table(metrics):
    """Text table: one row per recommender, one column per metric."""
    rows = [("model", metrics["model"])] + list(metrics["baselines"].items())
    width = max(len(name) for name, _ in rows) + 2
    lines = ["".ljust(width) + "".join(m.rjust(11) for m in METRIC_NAMES)]
    for name, values in rows:
        lines.append(name.ljust(width) + "".join(f"{values[m]:11.4f}" for m in METRIC_NAMES))
    lines.append(f"eval interactions: {metrics['eval_interactions']}, "
                 f"eval users: {metrics['eval_users']}")
    return "\n".join(lines)


def plot_history(history, baselines, path_png_writer):
    """Plots each metric per epoch, baselines as dashed reference lines; PNG bytes."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    epochs = [h["epoch"] for h in history]
    colours = {"popularity": "tab:grey", "item_cosine": "tab:orange"}
    for ax, metric in zip(axes.ravel(), METRIC_NAMES):
        ax.plot(epochs, [h[metric] for h in history], marker="o", label="model")
        for name, values in baselines.items():
            ax.axhline(values[metric], linestyle="--", color=colours.get(name),
                       label=name)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator
    for ax in axes.ravel():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Two-tower retrieval on the eval split vs baselines")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    path_png_writer(buffer.getvalue())
