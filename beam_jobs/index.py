"""The index of the kept users and books (`SelectionIndex`): the one order that the example
shards, the tf.Transform vocabularies and the book catalogue share."""
import zlib

import numpy as np

from beam_jobs import counting, selection
from beam_jobs.blocks import SelectionIndex
from beam_jobs.errors import PreprocessError


def kept_users(partition):
    """(hi, lo, kept count) of the users kept in one `KeptPartition`."""
    return partition.uniq_hi, partition.uniq_lo, partition.user_counts


def kept_book_counts(partition, top_ids):
    """(book ids, kept interaction counts) of the books present in one `KeptPartition`."""
    counts = np.bincount(partition.book, minlength=len(top_ids))
    present = np.flatnonzero(counts)
    return np.asarray(top_ids, np.int64)[present], counts[present].astype(np.int64)


def build_index(user_parts, book_pair, top_ids):
    """Global user and book orders -> the `SelectionIndex` every writer and tf.Transform share.

    Books: the selected top books ordered by final kept count desc, then id asc.
    Users: kept users ordered by kept count desc, then hex id asc.
    """
    his = [p[0] for p in user_parts]
    hi = np.concatenate(his) if his else np.zeros(0, np.uint64)
    lo = np.concatenate([p[1] for p in user_parts]) if his else np.zeros(0, np.uint64)
    counts = np.concatenate([p[2] for p in user_parts]) if his else np.zeros(0, np.int64)
    if len(hi) == 0:
        raise PreprocessError("the selection keeps no interaction: every user has fewer than "
                              "--min_user_ratings ratings among the top books")
    order = selection.rank_users(hi, lo, counts)
    user_hi, user_lo, user_count = hi[order], lo[order], counts[order]
    by_id = np.lexsort((user_lo, user_hi))
    kept_ids, kept_counts = book_pair
    final = np.zeros(len(top_ids), np.int64)
    pos = selection.lookup_ids(kept_ids, top_ids)
    final[pos >= 0] = kept_counts[pos[pos >= 0]]
    book_order = selection.rank_books(top_ids, final)
    book_ids, book_count = top_ids[book_order], final[book_order]
    book_by_id = np.argsort(book_ids)
    return SelectionIndex(
        user_hi=user_hi, user_lo=user_lo, user_count=user_count,
        user_sorted_hi=user_hi[by_id], user_sorted_lo=user_lo[by_id], user_sorted_index=by_id,
        book_ids=book_ids, book_count=book_count,
        book_sorted_ids=book_ids[book_by_id], book_sorted_index=book_by_id)


def user_vocab_bytes(index):
    """The exact bytes tf.Transform's user vocabulary must have: one hex id a line, index order."""
    n = len(index.user_hi)
    lines = np.full((n, 33), ord("\n"), np.uint8)
    lines[:, :32] = selection.u128_to_hex(index.user_hi, index.user_lo).view(np.uint8).reshape(n, 32)
    return lines.tobytes()


def index_counts(index):
    """Vocabulary sizes for the manifest, and a checksum the driver compares the user vocabulary to."""
    return {"num_users": len(index.user_hi), "num_books": len(index.book_ids),
            counting.USER_VOCAB_CRC: zlib.crc32(user_vocab_bytes(index))}
