"""Exact top-k cosine neighbours by blocked matrix products, in plain numpy.

The idea: scoring every book against every other is one huge matrix product
(N x N), far too big to hold. Instead a *block* of query rows is multiplied with
one *tile* of candidate rows at a time (a few MB, it stays in cache), and of each
tile only a summary is kept: the maximum over each run ("chunk") of `chunk`
consecutive candidates. The k-th largest chunk maximum is a lower bound for the row's k-th
best score, so every true top-k neighbour lies in a chunk whose maximum reaches
that bound -- normally exactly k chunks, i.e. k * chunk candidates out of N.
Those few candidates are then rescored in float64 and ranked exactly. The k
chunks are themselves found through maxima of groups of chunks
(`_select_chunks`), so each query partitions ~N / (chunk * group) values
instead of N / chunk.

Memory per block is `block_rows x (tile + N / chunk)` floats; nothing N x N
exists. The result does not depend on how blocks are spread over workers: each
block's arithmetic depends only on its own rows and the (fixed) tiling.

Ties are broken by lower index first: for every query the neighbours are the k
candidates with the highest cosine, ordered by (cosine descending, index
ascending), and the query itself is never its own neighbour.

The tile is computed transposed (candidates x queries), so a chunk's maximum is
an elementwise maximum of `chunk` contiguous rows (SIMD-fast), and a chunk's
vectors are one contiguous slab of the matrix when they are rescored.
"""
import ctypes
import glob
import os

import numpy as np

DEFAULT_BLOCK_ROWS = 512
DEFAULT_TILE = 1024
DEFAULT_CHUNK = 16
DEFAULT_GROUP = 16
# float32 scores in the tiles differ from the float64 rescoring by a few ulps;
# chunks within this margin of the bound are kept so that rounding never drops
# a true neighbour.
_MARGIN = 1e-5


def normalise_rows(matrix, rows_per_step=65536):
    """L2-normalises rows (norms in float64) and reports which rows are usable.

    Args:
      matrix: `[N, dim]` array-like of embeddings.
      rows_per_step: rows converted at a time (bounds the float64 temporaries).

    Returns:
      `(unit, valid)`: `unit` float32 `[N, dim]` (rows that are not valid are
      zero), `valid` bool `[N]`, False for rows with a non-finite value or a zero
      norm. Such rows have no meaningful cosine and are left out of the graph.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D matrix, got shape {matrix.shape}")
    unit = np.zeros(matrix.shape, np.float32)
    valid = np.zeros(len(matrix), bool)
    for lo in range(0, len(matrix), rows_per_step):
        m64 = matrix[lo:lo + rows_per_step].astype(np.float64)
        finite = np.isfinite(m64).all(axis=1)
        m64[~finite] = 0.0
        norms = np.linalg.norm(m64, axis=1)
        ok = finite & (norms > 0) & np.isfinite(norms)
        valid[lo:lo + rows_per_step] = ok
        unit[lo:lo + rows_per_step][ok] = (m64[ok] / norms[ok, None]).astype(np.float32)
    return unit, valid


class CandidateIndex:
    """The candidate matrix, padded and laid out for `topk_block`.

    Args:
      unit: float32 `[N, dim]` unit rows (from `normalise_rows`), valid rows
        only; their position in this matrix is the index reported back.
      tile: candidate rows per matrix product. Larger tiles mean fewer, larger
        BLAS calls; the tile's scores (`tile x block_rows` floats) should stay
        in cache. Must be a multiple of `chunk`.
      chunk: consecutive candidates summarised by one maximum. Smaller chunks
        mean more maxima to reduce and select from per query; larger ones mean
        more candidates to rescore (k * chunk per query).
      group: consecutive chunks whose maxima are summarised again when the
        chunks are chosen (see `_select_chunks`).
    """

    def __init__(self, unit, tile=DEFAULT_TILE, chunk=DEFAULT_CHUNK, group=DEFAULT_GROUP):
        unit = np.ascontiguousarray(unit, dtype=np.float32)
        if tile % chunk:
            raise ValueError(f"tile ({tile}) must be a multiple of chunk ({chunk})")
        self.n, self.dim = unit.shape
        # Small inputs: one tile just big enough (still a multiple of chunk).
        self.tile = min(tile, max(chunk, -(-self.n // chunk) * chunk))
        self.chunk, self.group = chunk, group
        self.num_tiles = max(1, -(-self.n // self.tile))
        padded = self.num_tiles * self.tile
        self.matrix = np.zeros((padded, self.dim), np.float32)
        self.matrix[:self.n] = unit
        self.num_chunks = padded // chunk
        self.chunks = self.matrix.reshape(self.num_chunks, chunk, self.dim)

    def chunk_members(self, chunk_ids):
        """Candidate indices `[..., chunk]` of the given chunk ids."""
        chunk_ids = np.asarray(chunk_ids, np.int64)
        return chunk_ids[..., None] * self.chunk + np.arange(self.chunk, dtype=np.int64)


def _rank_exact(query, chunk_ids, index, self_idx, k):
    """Exact ranking of every member of the given chunks, per query row.

    `chunk_ids` `[r, s]`; returns `[r, k]` candidate indices and float64 scores
    sorted by (score desc, index asc). Scores are float64 sums of float32
    products, so they do not depend on BLAS blocking.
    """
    r = len(chunk_ids)
    cand = index.chunk_members(chunk_ids).reshape(r, -1)
    vecs = index.chunks[chunk_ids].reshape(r, cand.shape[1], index.dim)
    scores = np.einsum("rmd,rd->rm", vecs, query, dtype=np.float64)
    scores[cand >= index.n] = -np.inf
    scores[cand == self_idx[:, None]] = -np.inf
    order = np.lexsort((cand, -scores), axis=-1)[:, :k]
    return (np.take_along_axis(cand, order, axis=1),
            np.take_along_axis(scores, order, axis=1))


def _rank(query, chunk_ids, index, self_idx, k):
    """Like `_rank_exact`, but cheaper: float32 scores pick the k + 1 best
    candidates, only those are rescored in float64. Rows where float32
    rounding could matter (the k-th float64 score within _MARGIN of the
    (k+1)-th float32 score) are redone by `_rank_exact`."""
    r = len(chunk_ids)
    cand = index.chunk_members(chunk_ids).reshape(r, -1)
    if cand.shape[1] <= k + 1:
        return _rank_exact(query, chunk_ids, index, self_idx, k)
    vecs = index.chunks[chunk_ids].reshape(r, cand.shape[1], index.dim)
    scores = np.matmul(vecs, query[:, :, None])[:, :, 0]
    scores[(cand >= index.n) | (cand == self_idx[:, None])] = -np.inf
    part = np.argpartition(-scores, k, axis=1)[:, :k + 1]
    floor32 = np.take_along_axis(scores, part, axis=1).min(axis=1)   # (k+1)-th float32
    top_idx = np.take_along_axis(cand, part, axis=1)
    top_vecs = np.take_along_axis(vecs, part[:, :, None], axis=1)
    top = np.einsum("rmd,rd->rm", top_vecs, query, dtype=np.float64)
    top[(top_idx >= index.n) | (top_idx == self_idx[:, None])] = -np.inf
    order = np.lexsort((top_idx, -top), axis=-1)[:, :k]
    top_idx = np.take_along_axis(top_idx, order, axis=1)
    top = np.take_along_axis(top, order, axis=1)
    unsure = ~(top[:, -1] > floor32.astype(np.float64) + _MARGIN)
    if unsure.any():
        rows = np.flatnonzero(unsure)
        top_idx[rows], top[rows] = _rank_exact(query[rows], chunk_ids[rows], index,
                                               self_idx[rows], k)
    return top_idx, top


def topk_block(index, query_ids, k):
    """Top-k neighbours of the candidate rows `query_ids` (a block of queries).

    Args:
      index: a `CandidateIndex`.
      query_ids: int `[b]` positions in the index of the queries (each query
        is itself a candidate and is excluded from its own list).
      k: neighbours per query; at most `index.n - 1` are returned.

    Returns:
      `(neighbours, scores)`: int64 `[b, k']` candidate positions and float32
      `[b, k']` cosines, `k' = min(k, index.n - 1)`, each row sorted by cosine
      descending then position ascending.
    """
    query_ids = np.asarray(query_ids, np.int64)
    b = len(query_ids)
    k_eff = min(k, index.n - 1)
    if b == 0 or k_eff <= 0:
        return np.zeros((b, 0), np.int64), np.zeros((b, 0), np.float32)
    queries = index.matrix[query_ids]
    queries_t = np.ascontiguousarray(queries.T)
    per_tile = index.tile // index.chunk
    chunk_max_t = np.empty((index.num_chunks, b), np.float32)
    scores_t = np.empty((index.tile, b), np.float32)   # candidates x queries
    tile_of = query_ids // index.tile     # the tile holding each query itself
    own = {int(t): np.flatnonzero(tile_of == t) for t in np.unique(tile_of)}
    for t in range(index.num_tiles):
        lo = t * index.tile
        np.matmul(index.matrix[lo:lo + index.tile], queries_t, out=scores_t)
        if t in own:
            scores_t[query_ids[own[t]] - lo, own[t]] = -np.inf
        if lo + index.tile > index.n:
            scores_t[max(0, index.n - lo):] = -np.inf
        np.max(scores_t.reshape(per_tile, index.chunk, b), axis=1,
               out=chunk_max_t[t * per_tile:(t + 1) * per_tile])
    selected, bound, hard = _select_chunks(chunk_max_t, k_eff, index.group)

    neighbours = np.empty((b, k_eff), np.int64)
    best = np.empty((b, k_eff), np.float64)
    easy = np.flatnonzero(~hard)
    if len(easy):   # every row may be hard: e.g. 1-dimensional embeddings, all cosines ±1
        neighbours[easy], best[easy] = _rank(queries[easy], selected[easy], index,
                                             query_ids[easy], k_eff)
    for r in np.flatnonzero(hard):
        # Many (near-)ties, e.g. duplicated vectors: rank every candidate of
        # every chunk in reach. Rare, one row at a time.
        chunks = np.flatnonzero(chunk_max_t[:, r] >= bound[r])[None, :]
        neighbours[r], best[r] = _rank_exact(queries[r:r + 1], chunks, index,
                                             query_ids[r:r + 1], k_eff)
    return neighbours, best.astype(np.float32)


def _reaching_kth(values, k):
    """Per row of `values`: the k-th largest value less _MARGIN, and which values
    reach it (at least k per row; exactly k unless there are near-ties).

    np.partition finds the k-th value ~4x faster than np.argpartition finds the
    k positions, and the positions are then the values that reach it."""
    kth = values.shape[1] - k
    bound = np.partition(values, kth, axis=1)[:, kth] - _MARGIN
    return bound, values >= bound[:, None]


def _chosen(ids, reach, k):
    """`[rows, k]` ids where `reach` holds exactly k per row (others: zeros)."""
    exact = np.count_nonzero(reach, axis=1) == k
    chosen = np.zeros((len(reach), k), np.int64)
    chosen[exact] = np.broadcast_to(ids, reach.shape)[exact][reach[exact]].reshape(-1, k)
    return chosen, ~exact


def _select_all_chunks(chunk_max, k):
    """`_select_chunks` for `chunk_max` `[queries, chunks]`, over every chunk."""
    if k >= chunk_max.shape[1]:
        selected = np.broadcast_to(np.arange(chunk_max.shape[1]), chunk_max.shape)
        return selected, np.full(len(chunk_max), -np.inf), np.zeros(len(chunk_max), bool)
    bound, reach = _reaching_kth(chunk_max, k)
    selected, hard = _chosen(np.arange(chunk_max.shape[1]), reach, k)
    return selected, bound, hard


def _select_chunks(chunk_max_t, k, group):
    """Per query, the k chunks with the largest maxima.

    Args:
      chunk_max_t: `[chunks, queries]` chunk maxima.
      k: chunks wanted per query.
      group: chunks summarised once more by one maximum.

    Returns:
      `(selected [queries, k] chunk ids, bound [queries], hard [queries])`:
      `bound` is the k-th largest maximum less _MARGIN; `hard` rows have more
      than k chunks reaching it (ties, rounding), and the caller takes every
      chunk at or above `bound` there (their `selected` is not used).

    Partitioning every query's N / chunk maxima cost as much as the rest of the
    selection together, so it is done on group maxima first: the k-th largest
    group maximum is at most the k-th largest chunk maximum (the k groups'
    maxima are maxima of k different chunks), so when exactly k groups reach
    it (less _MARGIN), those k groups hold every chunk that can reach `bound`,
    and only their k * group chunk maxima are partitioned. Other rows
    (several groups within _MARGIN) are selected over every chunk.
    """
    num_chunks, b = chunk_max_t.shape
    num_groups = -(-num_chunks // group)
    if k >= num_groups:
        return _select_all_chunks(np.ascontiguousarray(chunk_max_t.T), k)
    whole = num_chunks // group    # the last group may be short
    group_max = np.empty((num_groups, b), np.float32)
    np.max(chunk_max_t[:whole * group].reshape(whole, group, b), axis=1, out=group_max[:whole])
    if num_groups > whole:
        np.max(chunk_max_t[whole * group:], axis=0, out=group_max[whole])
    group_max = np.ascontiguousarray(group_max.T)
    groups, hard = _chosen(np.arange(num_groups), _reaching_kth(group_max, k)[1], k)
    candidates = (groups[:, :, None] * group + np.arange(group)).reshape(b, -1)
    maxima = chunk_max_t[np.minimum(candidates, num_chunks - 1), np.arange(b)[:, None]]
    maxima[candidates >= num_chunks] = -np.inf     # past the end of a short last group
    bound, reach = _reaching_kth(maxima, k)
    selected, hard_chunks = _chosen(candidates, reach, k)
    # (a place past the end, maximum -inf, is chosen only when fewer than k
    # maxima are finite; then bound is -inf, every candidate reaches it: a hard row)
    hard |= hard_chunks
    rows = np.flatnonzero(hard)
    if len(rows):
        selected[rows], bound[rows], hard[rows] = _select_all_chunks(
            np.ascontiguousarray(chunk_max_t[:, rows].T), k)
    return selected, bound, hard


def set_numpy_blas_threads(count):
    """Sets how many threads numpy's bundled OpenBLAS uses; True if it could.

    Beam runs one worker process per core (Dataflow, and the local runner in
    multi-processing mode); each should then use one BLAS thread, or every
    process spawns a thread per core and they fight over the cores.
    """
    pattern = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs",
                           "libscipy_openblas*.so")
    for path in glob.glob(pattern):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, name):
                getattr(lib, name)(ctypes.c_int(int(count)))
                return True
    return False
