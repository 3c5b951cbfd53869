"""The typed blocks that flow between the stages of `beam_jobs.preprocess`.

Every element is a block of many rows (tens of thousands to millions) held as
numpy arrays, never a single rating. Each stage's input and output type is one
of these classes, in pipeline order:

    LineBlock -> ValidatedBlock -> RatedBlock -> (shuffle by user) -> UserPartition
    -> KeptPartition (top books, then users with enough ratings) -> SelectionIndex

They are plain picklable dataclasses, so any Beam runner can move them.
"""
import dataclasses
from typing import NamedTuple, Optional

import numpy as np


class LineBlock(NamedTuple):
    """Whole lines of one input file."""
    source: str   # the file's name, quoted in rejects
    first: bool   # the block starts the file (it may hold a header line)
    data: bytes


@dataclasses.dataclass
class ValidatedBlock:
    """One block of interaction rows after validation, before any filter.

    `valid` marks the rows that passed every check; the others are rejects.
    The ids are kept in the form the parser found them, so that Goodreads ids
    are gathered only for rows that survive the rating filter (about half):
    csv input sets `user`/`book`, positions in user_id_map / book_id_map;
    dedup_json sets `hi`/`lo` (the 128-bit user id) and `gid` (Goodreads book id).
    """
    valid: np.ndarray   # bool per row
    rating: np.ndarray  # int64 per row
    user: Optional[np.ndarray] = None
    book: Optional[np.ndarray] = None
    hi: Optional[np.ndarray] = None
    lo: Optional[np.ndarray] = None
    gid: Optional[np.ndarray] = None


@dataclasses.dataclass
class RatedBlock:
    """Kept rows of one block: the bulk of what goes through the shuffle, so compact.

    Users are run-length coded: rows of one user usually follow each other (the
    UCSD files are grouped by user), so a user id (16 bytes) is stored once per
    run of rows, and a row costs 5 bytes (book id, rating) instead of 21. Any
    row order stays correct; it only compresses less.
    """
    hi: np.ndarray          # uint64 per run: high half of the user id
    lo: np.ndarray          # uint64 per run: low half
    run_length: np.ndarray  # int32 per run: rows of the run
    gid: np.ndarray         # uint32 per row: Goodreads book id
    rating: np.ndarray      # int8 per row


@dataclasses.dataclass
class UserPartition:
    """All de-duplicated rows of one user partition, sorted by (user, book).

    Rows stay sorted by user from here on, so a partition stores each user's
    row count (`user_counts`, aligned with `uniq_hi`/`uniq_lo`) instead of a
    user code per row (`row_users` rebuilds it): less data through the shuffle.
    """
    part: int
    user_counts: np.ndarray  # rows per user
    gid: np.ndarray          # uint32 per row
    rating: np.ndarray       # int8 per row
    uniq_hi: np.ndarray      # uint64 per user
    uniq_lo: np.ndarray


@dataclasses.dataclass
class KeptPartition:
    """Rows of one partition that passed a book or user filter, sorted by user.

    `book` is the position of the row's book in the sorted top-book ids (also
    `SelectionIndex.book_sorted_ids`), so later steps never search for it.
    A user may have 0 rows until the sparse-user filter has run.
    """
    part: int
    user_counts: np.ndarray
    book: np.ndarray         # int32 per row
    rating: np.ndarray
    uniq_hi: np.ndarray
    uniq_lo: np.ndarray


@dataclasses.dataclass
class SelectionIndex:
    """Global order of the kept users and books: the index shared by examples, tf.Transform and
    the catalogue. Users: kept count descending, then hex id ascending; books: kept count
    descending, then Goodreads id ascending. The *_sorted_* arrays are the same ids sorted by
    id, with each one's index position, for lookups."""
    user_hi: np.ndarray
    user_lo: np.ndarray
    user_count: np.ndarray
    user_sorted_hi: np.ndarray
    user_sorted_lo: np.ndarray
    user_sorted_index: np.ndarray
    book_ids: np.ndarray
    book_count: np.ndarray
    book_sorted_ids: np.ndarray
    book_sorted_index: np.ndarray


def row_users(user_counts):
    """Per-row user codes of rows sorted by user, from the row count of each user."""
    return np.repeat(np.arange(len(user_counts), dtype=np.int32), user_counts)
