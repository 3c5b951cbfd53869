"""The classic recommenders the model must beat, scored by model.evaluate on the same split.

* ``popularity``: the most-read training books, the same list for everyone.
* ``item_cosine``: item-item collaborative filtering: binary co-occurrence cosine,
  each book keeping its strongest neighbours, a user's score for a book the sum of
  its similarities to the user's training books.
* ``ease``: EASE (Steck 2019), the closed-form item-item model
  B = I - P diag(1/diag(P)), P = (XᵀX + λI)⁻¹ on the binary user x book training
  matrix X; λ is chosen on a holdout carved out of the training interactions.
  A dense books x books model: fitted only up to `max_books` books.

All break ties by popularity so that their rankings are deterministic. Every
recommender is a callable `users -> [len(users), num_books]` scores; the split
(`model.evaluate.EvalSplit`) gives the distinct training pairs sorted by user, then
book (`train_user`, `train_book`, `train_ptr`).
"""
import numpy as np

import pipeline_common  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf


def popularity_rank_scores(counts):
    """Float scores ordering books by training count desc, then book_index asc."""
    order = np.lexsort((np.arange(len(counts)), -counts))
    scores = np.empty(len(counts), np.float64)
    scores[order] = np.arange(len(counts), 0, -1, dtype=np.float64)
    return scores


def cooccurrence_blocks(user_ptr, books, num_books, max_pairs=8_000_000, max_cells=30_000_000):
    """Yields (start, stop, counts): counts[i - start, j] = users who read both books i and j.

    `books` holds each user's distinct books, users one after another as `user_ptr`
    says. A block of consecutive books is expanded to the (book, other book of the
    same user) pairs of its readers, at most `max_pairs` pairs and `max_cells` dense
    counts at a time, so memory is bounded whatever the catalogue; the whole pass
    costs O(sum over users of books²) plus O(num_books²) cheap dense cells (100k books:
    10¹⁰ cells, counted with one bincount per block).
    """
    user_len = np.diff(user_ptr)
    pair_user = np.repeat(np.arange(len(user_len)), user_len)
    by_book = np.argsort(books, kind="stable")
    book_sorted, reader = books[by_book], pair_user[by_book]
    book_ptr = np.searchsorted(book_sorted, np.arange(num_books + 1))
    work = np.bincount(books, weights=user_len[pair_user], minlength=num_books)
    start = 0
    while start < num_books:
        stop, pairs_in_block = start + 1, work[start]
        while (stop < num_books and pairs_in_block + work[stop] <= max_pairs
               and (stop + 1 - start) * num_books <= max_cells):
            pairs_in_block += work[stop]
            stop += 1
        first, last = book_ptr[start], book_ptr[stop]
        row_user, row_book = reader[first:last], book_sorted[first:last] - start
        lengths = user_len[row_user]
        rows = np.repeat(row_book.astype(np.int64), lengths)
        # positions of every book of each row's user in the user-sorted pair list
        offsets = np.repeat(user_ptr[row_user] - (np.cumsum(lengths) - lengths), lengths)
        cols = books[offsets + np.arange(len(offsets))]
        counts = np.bincount(rows * num_books + cols, minlength=(stop - start) * num_books)
        yield start, stop, counts.reshape(stop - start, num_books)
        start = stop


class Popularity:
    """Recommends the most-read training books to everyone."""

    name = "popularity"
    float64 = True

    def fit(self, split):
        self.scores = popularity_rank_scores(split.counts)
        return self

    def __call__(self, users):
        return np.broadcast_to(self.scores, (len(users), len(self.scores)))


class _SumOfRows:
    """Scores a user as the sum of one row per training book, plus a popularity tie-break."""

    float64 = True

    def _tiebreak(self, split):
        self.split = split
        self.tiebreak = popularity_rank_scores(split.counts) * 1e-12


class ItemCosine(_SumOfRows):
    """Item-item cosine similarity on binary co-occurrence (a classic item-kNN).

    sim(i, j) = |users of i and j| / sqrt(|users of i| |users of j|); each book keeps
    its `neighbours` most similar books (fewer when it co-occurs with fewer books; the
    rest of its row is padding of similarity 0). The co-occurrences are counted and
    the neighbours kept block by block, so the fit never holds a books x books matrix.
    """

    name = "item_cosine"

    def __init__(self, neighbours=100, max_pairs_per_block=8_000_000, max_block_cells=3_000_000):
        # Blocks of a few million cells: their float64 arrays (24 MB) are reused by the
        # allocator from block to block, where 30M-cell blocks (240 MB) were mapped afresh
        # each time, and tf.math.top_k ran ~3.5x slower per cell on them (100M bench).
        self.neighbours = neighbours
        self.max_pairs, self.max_cells = max_pairs_per_block, max_block_cells

    def fit(self, split):
        num_books = split.num_books
        books = split.train_book
        norm = np.sqrt(np.maximum(np.bincount(books, minlength=num_books), 1.0))
        k = min(self.neighbours, max(num_books - 1, 1))
        self.nbr_index = np.empty((num_books, k), np.int32)
        self.nbr_sim = np.empty((num_books, k), np.float32)
        for start, stop, counts in cooccurrence_blocks(split.train_ptr, books, num_books,
                                                       self.max_pairs, self.max_cells):
            own = np.arange(start, stop)
            counts[own - start, own] = 0
            sim = np.multiply(norm[start:stop, None], norm[None, :])
            np.divide(counts, sim, out=sim)
            # tf.math.top_k orders equal values by index: strongest first, then book_index.
            # (Sorting a block's non-zero cells with numpy took most of the fit.)
            top = tf.math.top_k(sim, k)
            values, index = top.values.numpy(), top.indices.numpy()
            # padding: a book's own index with similarity 0 adds nothing to any score
            self.nbr_index[start:stop] = np.where(values > 0, index, own[:, None])
            self.nbr_sim[start:stop] = np.maximum(values, 0)
        self._tiebreak(split)
        return self

    def __call__(self, users):
        num_books = self.split.num_books
        flat, weights = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
        for row, user in enumerate(users):
            items = self.split.train_items(user)
            flat.append((row * num_books + self.nbr_index[items]).ravel())
            weights.append(self.nbr_sim[items].ravel())
        scores = np.bincount(np.concatenate(flat), weights=np.concatenate(weights),
                             minlength=len(users) * num_books)
        return scores.reshape(len(users), num_books) + self.tiebreak[None, :]


def gram_matrix(user_ptr, books, num_books):
    """XᵀX of the binary user x book matrix, float32 [num_books, num_books]."""
    gram = np.empty((num_books, num_books), np.float32)
    for start, stop, counts in cooccurrence_blocks(user_ptr, books, num_books):
        gram[start:stop] = counts
    return gram


def invert_spd(matrix, base=128):
    """Inverts a symmetric positive definite float32 matrix in place, by block recursion.

    With M = [[A, B], [Bᵀ, D]]: A⁻¹ (recursively), S = D - Bᵀ A⁻¹ B (the Schur
    complement), S⁻¹ (recursively), then M⁻¹ = [[A⁻¹ + A⁻¹B S⁻¹ BᵀA⁻¹, -A⁻¹B S⁻¹], [.ᵀ, S⁻¹]].
    All the work is matrix products (~1.3 n³ flops), in place: the extra memory is at
    most three quarter-size blocks (1.2 GB at 20k books, where np.linalg.inv needs two
    more full copies, 3.2 GB), and it is faster too: benchmarks/bench_evaluate.py
    --inverse_books times both.
    Blocks of `base` rows or fewer are inverted by np.linalg.inv in float64.
    """
    n = len(matrix)
    if n <= base:
        matrix[...] = np.linalg.inv(matrix.astype(np.float64))
        return matrix
    h = n // 2
    a, b, d = matrix[:h, :h], matrix[:h, h:], matrix[h:, h:]
    invert_spd(a, base)
    c = a @ b
    d -= b.T @ c
    invert_spd(d, base)
    e = c @ d
    a += e @ c.T
    b[...] = -e
    matrix[h:, :h] = -e.T
    return matrix


def ease_weights(gram, l2):
    """EASE's B = I - P diag(1/diag(P)), P = (gram + l2 I)⁻¹, computed in `gram`'s memory."""
    gram[np.diag_indices_from(gram)] += l2
    weights = invert_spd(gram)
    diagonal = weights.diagonal().copy()
    weights /= -diagonal[None, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return weights


class Ease(_SumOfRows):
    """EASE (Steck 2019) on the binary training matrix; λ chosen on a training holdout.

    λ is picked from `l2_grid` by recall@20 on a holdout of the training data: for up
    to `select_users` users, a `holdout` share of their books among the
    `select_books` most-read books is hidden, EASE is fitted on the rest of those
    books' interactions, and the hidden books are ranked. The eval split is never
    used. The full model is then fitted once with the chosen λ.
    """

    name = "ease"
    l2_grid = (8.0, 32.0, 128.0, 512.0, 2048.0)

    def __init__(self, l2=None, holdout=0.2, select_books=2000, select_users=5000, seed=0):
        self.l2, self.holdout, self.seed = l2, holdout, seed
        self.select_books, self.select_users = select_books, select_users
        self.holdout_recall = {}

    def fit(self, split):
        if self.l2 is None:
            self.l2 = self.choose_l2(split)
        self.weights = ease_weights(
            gram_matrix(split.train_ptr, split.train_book, split.num_books), self.l2)
        self._tiebreak(split)
        return self

    def choose_l2(self, split):
        """The λ of `l2_grid` with the best holdout recall@20 (ties: the smaller λ)."""
        self.holdout_recall = {}
        num_books = min(split.num_books, self.select_books)
        top = np.lexsort((np.arange(split.num_books), -split.counts))[:num_books]
        new_index = np.full(split.num_books, -1, np.int64)
        new_index[top] = np.arange(num_books)
        keep = new_index[split.train_book] >= 0
        users, books = split.train_user[keep], new_index[split.train_book[keep]]
        rng = np.random.default_rng(self.seed)
        lengths = np.bincount(users, minlength=split.num_users)
        candidates = np.flatnonzero(lengths >= 2)
        chosen = np.zeros(split.num_users, bool)
        chosen[rng.permutation(candidates)[:self.select_users]] = True
        hidden = chosen[users] & (rng.random(len(users)) < self.holdout)
        if not hidden.any():
            return self.l2_grid[len(self.l2_grid) // 2]
        fit_users, fit_books = users[~hidden], books[~hidden]
        gram = gram_matrix(np.searchsorted(fit_users, np.arange(split.num_users + 1)),
                           fit_books, num_books)
        test_users = np.intersect1d(users[hidden], fit_users)
        fit_rows = _dense_rows(fit_users, fit_books, test_users, split.num_users, num_books)
        hidden_rows = _dense_rows(users[hidden], books[hidden], test_users, split.num_users,
                                  num_books)
        k = min(20, num_books)
        for l2 in self.l2_grid:
            scores = _row_sums(ease_weights(gram.copy(), l2), fit_rows)
            scores[fit_rows > 0] = -np.inf
            top_k = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            found = np.take_along_axis(hidden_rows, top_k, axis=1).sum(axis=1)
            self.holdout_recall[l2] = float((found / hidden_rows.sum(axis=1)).mean())
        return max(self.l2_grid, key=lambda l2: (self.holdout_recall[l2], -l2))

    def __call__(self, users):
        scores = np.empty((len(users), self.split.num_books), np.float64)
        for row, user in enumerate(users):
            scores[row] = self.weights[self.split.train_items(user)].sum(axis=0)
        return scores + self.tiebreak[None, :]


def _row_sums(weights, rows, max_cells=20_000_000):
    """rows @ weights for a 0/1 `rows` matrix (every row non-empty), as sums of weight rows."""
    out = np.empty((len(rows), weights.shape[1]), np.float32)
    row, col = np.nonzero(rows)
    cuts = np.searchsorted(row, np.arange(len(rows) + 1))
    first = 0
    while first < len(rows):
        last = first + 1
        while last < len(rows) and (cuts[last + 1] - cuts[first]) * weights.shape[1] <= max_cells:
            last += 1
        out[first:last] = np.add.reduceat(weights[col[cuts[first]:cuts[last]]],
                                          cuts[first:last] - cuts[first], axis=0)
        first = last
    return out


def _dense_rows(users, books, rows_for, num_users, num_books):
    """float32 [len(rows_for), num_books] indicator of the (user, book) pairs of `rows_for` users."""
    row_of = np.full(num_users, -1, np.int64)
    row_of[rows_for] = np.arange(len(rows_for))
    rows = row_of[users]
    dense = np.zeros((len(rows_for), num_books), np.float32)
    dense[rows[rows >= 0], books[rows >= 0]] = 1.0
    return dense


BASELINES = {"popularity": Popularity, "item_cosine": ItemCosine, "ease": Ease}
