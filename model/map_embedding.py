"""The map's book embedding: a truncated factorisation of the books' co-reading.

The map (graph_export's exact top-10 by cosine, and the SavedModel's `similar_books`)
is built on these vectors, not on the candidate tower's: on real readers the tower's
cosine neighbours trail classic item-item neighbours (docs/model.md).

With X the binary users x books training matrix, n_j the training readers of book j
and A = X diag(n^-β), the books' co-reading matrix G = AᵀA = V Λ Vᵀ. Book j's vector is

    e_j = (V_j1 Λ_1 κ, V_j2 Λ_2, ..., V_jd Λ_d)          (d = `dim`)

Cosine between rows of V Λ is cosine between rows of G: two books are close when they
are co-read with the same books (second-order item similarity, the strongest classic
neighbour signal on real data), truncated to the top d eigen-directions. The first
direction (the general reading mass) is weighted κ: it pulls each book's neighbours a
little toward the books read most with it, as EASE's neighbours are.

G is never formed. Its top eigen-directions come from a randomized subspace iteration
(Halko, Martinsson & Tropp 2011) that only multiplies A and Aᵀ by [*, d + oversample]
float32 blocks, streamed over the training interactions in bounded chunks: each of the
`iterations` + 2 passes reads every interaction twice (cost ~ 4 x interactions x
(d + oversample) flops a pass), memory is ~3 [books, d + oversample] and one
[users, d + oversample] float32 blocks plus 8 bytes an interaction for the book-sorted
order (docs/model.md gives measured times).
"""
import numpy as np

DEFAULT_DIM = 512
BETA = 0.75          # column weight n^-β of the co-reading matrix
FIRST_WEIGHT = 5.0   # κ: weight of the first direction
OVERSAMPLE = 16
ITERATIONS = 2
RANK_TOLERANCE = 1e-6   # eigenvalues below this share of the first are rank-deficiency noise
CHUNK = 1 << 17      # interactions gathered at a time (x (dim + oversample) float32)


def segment_sums(ptr, index, matrix, chunk=CHUNK):
    """out[i] = sum of matrix[index[ptr[i]:ptr[i+1]]]: float32 [len(ptr) - 1, matrix cols].

    At most `chunk` rows of `matrix` are gathered at a time (a segment longer than that
    is summed piece by piece), so memory does not grow with the interactions.
    """
    num = len(ptr) - 1
    out = np.zeros((num, matrix.shape[1]), np.float32)
    row = 0
    while row < num:
        lo = ptr[row]
        if ptr[row + 1] - lo > chunk:   # one long segment, in pieces
            for start in range(lo, ptr[row + 1], chunk):
                out[row] += matrix[index[start:min(start + chunk, ptr[row + 1])]].sum(axis=0)
            row += 1
            continue
        end = min(num, max(row + 1, int(np.searchsorted(ptr, lo + chunk, side="right")) - 1))
        hi = ptr[end]
        if hi > lo:
            starts = ptr[row:end] - lo
            nonempty = ptr[row + 1:end + 1] > ptr[row:end]
            out[row:end][nonempty] = np.add.reduceat(matrix[index[lo:hi]], starts[nonempty],
                                                     axis=0)
        row = end
    return out


class CoReading:
    """G = AᵀA, A = X diag(weight), as products with dense blocks (X in CSR both ways)."""

    def __init__(self, user_ptr, books, num_books, beta=BETA, chunk=CHUNK):
        self.user_ptr = np.asarray(user_ptr, np.int64)
        self.books = np.asarray(books)
        self.chunk = chunk
        readers = np.bincount(self.books, minlength=num_books)
        self.readers = readers
        self.weight = np.where(readers > 0, np.maximum(readers, 1) ** -float(beta),
                               0.0).astype(np.float32)
        users = np.repeat(np.arange(len(self.user_ptr) - 1, dtype=np.int32),
                          np.diff(self.user_ptr))
        order = np.argsort(self.books, kind="stable")
        self.book_users = users[order]
        del order, users
        self.book_ptr = np.concatenate([[0], np.cumsum(readers)]).astype(np.int64)

    def times(self, block):
        """G @ block for a float32 [books, r] block."""
        scaled = block * self.weight[:, None]
        per_user = segment_sums(self.user_ptr, self.books, scaled, self.chunk)
        return segment_sums(self.book_ptr, self.book_users, per_user,
                            self.chunk) * self.weight[:, None]


def top_eigen(operator, num_books, rank, oversample=OVERSAMPLE, iterations=ITERATIONS, seed=0):
    """(eigenvalues desc [rank], eigenvectors [books, rank]) of the PSD `operator`
    (a `CoReading`) by randomized subspace iteration."""
    width = min(num_books, rank + oversample)
    rng = np.random.default_rng([seed, 31])
    basis, _ = np.linalg.qr(operator.times(rng.standard_normal((num_books, width),
                                                                np.float32)))
    for _ in range(iterations):
        basis, _ = np.linalg.qr(operator.times(basis.astype(np.float32)))
    basis = basis.astype(np.float32)
    projected = basis.T.astype(np.float64) @ operator.times(basis).astype(np.float64)
    values, vectors = np.linalg.eigh((projected + projected.T) / 2)
    order = np.argsort(-values, kind="stable")[:min(rank, width)]
    return values[order], (basis @ vectors[:, order].astype(np.float32))


def map_embedding(user_ptr, books, num_books, dim=DEFAULT_DIM, beta=BETA,
                  first_weight=FIRST_WEIGHT, oversample=OVERSAMPLE, iterations=ITERATIONS,
                  seed=0, chunk=CHUNK):
    """float32 [num_books, dim']: the map's book vectors (module docstring), dim' = min(dim,
    num_books). `user_ptr`, `books`: the distinct training pairs in CSR by user (an
    EvalSplit's train_ptr and train_book). A book without training readers gets the first
    direction alone, so its neighbours are the books most central to the reading."""
    dim = int(min(dim, num_books))
    operator = CoReading(user_ptr, books, num_books, beta, chunk)
    values, vectors = top_eigen(operator, num_books, dim, oversample, iterations, seed)
    # Directions past the co-reading matrix's rank have eigenvalues of rounding noise
    # (~1e-16 of the first): their vectors would differ between two runs with other
    # BLAS thread timings, so they are zeroed, exactly.
    kept = np.where(values > RANK_TOLERANCE * max(float(values.max(initial=0.0)), 0.0),
                    values, 0.0)
    vectors *= kept.astype(np.float32)[None, :]
    if dim:
        # the sign of an eigenvector is arbitrary: make the first direction positive on average
        if vectors[:, 0].sum() < 0:
            vectors[:, 0] *= -1
        vectors[:, 0] *= first_weight
        cold = operator.readers == 0
        vectors[cold] = 0.0
        vectors[cold, 0] = 1.0
    out = np.zeros((num_books, dim), np.float32)
    out[:, :vectors.shape[1]] = vectors
    return out
