"""Columnar kernels of the preprocess job: ids, hashing, de-duplication, ranking.

Everything here works on whole numpy arrays (one call per block of rows, never
one Python call per rating) and is independent of Beam, so unit tests call it
directly.

Users are carried as two uint64 halves (`hi`, `lo`) of their 32-hex Goodreads id,
books as their numeric Goodreads id (int64), ratings as int8.
"""
import numpy as np
import pandas as pd

from pipeline_common import hashing


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"ABCDEF", dtype=np.uint8)] = np.arange(10, 16, dtype=np.uint8)

# Largest Goodreads book id and per-partition user count the packed sort key allows.
MAX_BOOK_ID = (1 << 32) - 1
_USER_BITS = 28


def hex_matrix_to_u128(matrix):
    """[n, 32] uint8 ASCII hex -> (hi, lo, ok): two uint64 halves and a validity mask."""
    nibbles = _HEX_VALUE[matrix]
    ok = ~(nibbles == 255).any(axis=1)
    nibbles = np.where(nibbles == 255, 0, nibbles).astype(np.uint8)
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    halves = np.ascontiguousarray(packed).view(">u8").astype(np.uint64)
    return halves[:, 0].copy(), halves[:, 1].copy(), ok


def strings_to_u128(array):
    """pyarrow string/binary array of 32-hex ids -> (hi, lo, ok). Nulls and bad ids: ok False."""
    import pyarrow as pa
    n = len(array)
    if n == 0:
        empty = np.zeros(0, np.uint64)
        return empty, empty.copy(), np.zeros(0, bool)
    array = array.cast(pa.binary()) if not pa.types.is_binary(array.type) else array
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset:array.offset + n + 1]
    data_buf = array.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    ok = lengths == 32
    if array.null_count:
        ok &= ~np.asarray(array.is_null())
    hi = np.zeros(n, np.uint64)
    lo = np.zeros(n, np.uint64)
    rows = np.flatnonzero(ok)
    if len(rows):
        # Rows of 32 bytes at their offsets, copied out of a sliding-window view of the
        # data (a [rows, 32] index matrix would cost 8x the bytes it gathers).
        matrix = np.lib.stride_tricks.sliding_window_view(data, 32)[offsets[rows]]
        h, l, good = hex_matrix_to_u128(matrix)
        hi[rows], lo[rows] = h, l
        ok[rows] = good
    return hi, lo, ok


def u128_to_hex(hi, lo):
    """(hi, lo) uint64 arrays -> numpy 'S32' array of lowercase hex ids."""
    n = len(hi)
    halves = np.empty((n, 2), dtype=">u8")
    halves[:, 0] = hi
    halves[:, 1] = lo
    raw = halves.view(np.uint8).reshape(n, 16)
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 15
    return np.ascontiguousarray(_HEX_DIGITS[nibbles]).view("S32").reshape(n)


def split_hash(hi, lo, book_id, seed):
    """Deterministic 64-bit hash of (user id, book id, seed), the basis of the split.

    hash = fmix(fmix(fmix(seed ^ 0x9E3779B97F4A7C15) ^ hi ^ fmix(lo)) ^ book_id) with
    fmix = SplitMix64's finaliser and (hi, lo) the two 64-bit halves of the hex user
    id: identical on every runner and worker count because it depends only on the ids.
    """
    seed_mix = hashing.fmix64(np.uint64((int(seed) ^ hashing.GOLDEN) & 0xFFFFFFFFFFFFFFFF))
    with np.errstate(over="ignore"):
        h = hashing.fmix64(seed_mix ^ hi.astype(np.uint64) ^ hashing.fmix64(lo.astype(np.uint64)))
        return hashing.fmix64(h ^ book_id.astype(np.uint64))


def is_eval(hi, lo, book_id, seed, eval_fraction):
    """Boolean mask: True for the eval split, i.e. (hash >> 11) < eval_fraction * 2**53."""
    threshold = np.uint64(min(int(eval_fraction * float(1 << 53)), 1 << 53))
    return (split_hash(hi, lo, book_id, seed) >> np.uint64(11)) < threshold


def user_partition(hi, lo, num_partitions):
    """Partition number of each user (all interactions of a user share one)."""
    h = hashing.fmix64(hi.astype(np.uint64) ^ hashing.fmix64(lo.astype(np.uint64) ^ np.uint64(0x5BD1E995)))
    return (h % np.uint64(num_partitions)).astype(np.int64)


def runs(*keys):
    """Runs of equal consecutive rows (all `keys` equal): (start of each run, run lengths)."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.zeros(n, bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(change)
    return starts, np.diff(np.r_[starts, n])


def factorize_users(hi, lo):
    """Dense user codes ordered by id: (codes, uniq_hi, uniq_lo); exact for 128-bit ids."""
    if len(hi) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    codes, uniq_hi = pd.factorize(hi, sort=True)
    uniq_hi = np.asarray(uniq_hi, dtype=np.uint64)
    first = np.zeros(len(uniq_hi), np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    uniq_lo = lo[first]
    if np.array_equal(uniq_lo[codes], lo):
        return codes.astype(np.int64), uniq_hi, uniq_lo
    # Two ids share their first 64 bits: fall back to an exact two-key ordering.
    order = np.lexsort((lo, hi))
    shi, slo = hi[order], lo[order]
    new = np.ones(len(order), bool)
    new[1:] = (shi[1:] != shi[:-1]) | (slo[1:] != slo[:-1])
    ranks = np.cumsum(new) - 1
    codes = np.empty(len(order), np.int64)
    codes[order] = ranks
    return codes, shi[new], slo[new]


def dedup_max_rating(user_code, book_id, rating):
    """Collapses duplicate (user, book) pairs to one row keeping the highest rating.

    Returns (user_code, book_id, rating, num_duplicates) sorted by (user_code, book_id).
    """
    if len(user_code) and (int(user_code.max()) >= (1 << _USER_BITS)
                           or int(book_id.max()) > MAX_BOOK_ID or int(book_id.min()) < 0):
        raise ValueError("user count or book id too large for the packed sort key")
    key = ((user_code.astype(np.uint64) << np.uint64(35))
           | (book_id.astype(np.uint64) << np.uint64(3)) | rating.astype(np.uint64))
    key.sort()
    pair = key >> np.uint64(3)
    last = np.ones(len(key), bool)
    last[:-1] = pair[1:] != pair[:-1]
    key = key[last]
    return ((key >> np.uint64(35)).astype(np.int64),
            ((key >> np.uint64(3)) & np.uint64(MAX_BOOK_ID)).astype(np.int64),
            (key & np.uint64(7)).astype(np.int8),
            int(len(last) - len(key)))


def count_values(values):
    """(unique values, counts) of an int64 array, sorted by value."""
    if len(values) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ordered = np.sort(values)
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, len(ordered)])
    return ordered[starts].astype(np.int64), counts.astype(np.int64)


def sum_counts(id_arrays, count_arrays):
    """Adds up (ids, counts) pairs that may repeat ids: sorted (ids, summed counts)."""
    ids = np.concatenate([np.asarray(a, np.int64) for a in id_arrays]) if id_arrays else np.zeros(0, np.int64)
    counts = (np.concatenate([np.asarray(a, np.int64) for a in count_arrays])
              if count_arrays else np.zeros(0, np.int64))
    if len(ids) == 0:
        return ids, counts
    order = np.argsort(ids, kind="stable")
    ids, counts = ids[order], counts[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return ids[starts], np.add.reduceat(counts, starts)


def rank_books(book_ids, counts):
    """Order of books: count descending, then numeric Goodreads id ascending."""
    return np.lexsort((book_ids, -np.asarray(counts, np.int64)))


def top_books(book_ids, counts, k):
    """The k books with most interactions (ties: smaller id first), in rank order."""
    order = rank_books(book_ids, counts)[:k]
    return book_ids[order], counts[order]


def rank_users(hi, lo, counts):
    """Order of users: kept count descending, then hex id ascending."""
    return np.lexsort((lo, hi, -np.asarray(counts, np.int64)))


def lookup_u128(table_hi, table_lo, query_hi, query_lo):
    """Positions of (query) ids in a table sorted by (hi, lo); -1 where absent."""
    if len(table_hi) == 0:
        return np.full(len(query_hi), -1, np.int64)
    left = np.searchsorted(table_hi, query_hi, side="left")
    right = np.searchsorted(table_hi, query_hi, side="right")
    pos = np.full(len(query_hi), -1, np.int64)
    single = (right - left) == 1
    cand = np.minimum(left, len(table_hi) - 1)
    hit = single & (table_lo[cand] == query_lo)
    pos[hit] = left[hit]
    for i in np.flatnonzero((right - left) > 1):  # shared 64-bit prefix: astronomically rare
        span = np.arange(left[i], right[i])
        match = span[table_lo[span] == query_lo[i]]
        if len(match):
            pos[i] = match[0]
    return pos


class IdLookup:
    """Positions of int64 ids in a fixed sorted unique array (-1 where absent), by hash.

    A pandas hash index answers ~3x faster than a binary search (searchsorted);
    build one per table and reuse it for every block that queries that table.
    """

    def __init__(self, sorted_ids):
        self.ids = np.asarray(sorted_ids, np.int64)
        self._index = pd.Index(self.ids)

    def __call__(self, query):
        query = np.asarray(query)
        if len(self.ids) == 0 or len(query) == 0:
            return np.full(len(query), -1, np.int64)
        return self._index.get_indexer(query.astype(np.int64, copy=False)).astype(np.int64, copy=False)


def lookup_ids(sorted_ids, query):
    """Positions of int64 `query` values in a sorted unique array; -1 where absent."""
    return IdLookup(sorted_ids)(query)
