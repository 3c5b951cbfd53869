"""The selection steps on blocks and per-user partitions: rating filter, de-duplication, top books,
sparse users. The array work is in `selection`; these are its Beam adapters.

Ratings are partitioned by user (`--num_shards` partitions), so that no worker
holds them all and a user's rows meet in one partition; the only global steps
hold per-book counts.
"""
import apache_beam as beam
import numpy as np

from beam_jobs import counting, selection
from beam_jobs.blocks import KeptPartition, RatedBlock, UserPartition, row_users
from beam_jobs.errors import PreprocessError
from beam_jobs.side_inputs import PerSideInput


class DropBelowMinRating(beam.DoFn):
    """`ValidatedBlock` -> `RatedBlock` of its valid rows with rating >= min_rating.

    Goodreads ids are gathered here, for the kept rows only (from the id maps,
    side inputs, for csv input). Outputs: main, COUNTS (filtered/below_min_rating).
    """

    def __init__(self, min_rating):
        self._min_rating = min_rating

    def process(self, block, user_map=None, book_map=None):
        rated = np.flatnonzero(block.valid & (block.rating >= self._min_rating))
        yield counting.tagged(**{counting.FILTERED + "below_min_rating": int(block.valid.sum()) - len(rated)})
        if len(rated):
            yield self._rated_block(block, rated, user_map, book_map)

    @staticmethod
    def _rated_block(block, rated, user_map, book_map):
        if block.user is not None:  # csv: users are told apart by their csv id, which compares cheaper
            user = block.user[rated]
            starts, lengths = selection.runs(user)
            hi, lo = user_map["hi"][user[starts]], user_map["lo"][user[starts]]
            gid = book_map["gid"][block.book[rated]]
        else:
            hi, lo, gid = block.hi[rated], block.lo[rated], block.gid[rated]
            starts, lengths = selection.runs(hi, lo)
            hi, lo = hi[starts], lo[starts]
        return RatedBlock(hi, lo, np.asarray(lengths, np.int32), gid.astype(np.uint32),
                          block.rating[rated].astype(np.int8))


class PartitionByUser(beam.DoFn):
    """`RatedBlock` -> (partition, sub-block) pairs; a user's rows share a partition."""

    def __init__(self, num_partitions):
        self._num = num_partitions

    def _groups(self, part):
        """(partition, positions) per partition present, positions in input order."""
        # numpy's stable sort of 16-bit keys is a radix sort (partitions rarely exceed 65536).
        order = np.argsort(part.astype(np.uint16) if self._num <= 1 << 16 else part, kind="stable")
        ordered = part[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        return zip(ordered[starts].tolist(), np.split(order, starts[1:]))

    def process(self, block):
        run_part = selection.user_partition(block.hi, block.lo, self._num)
        row_groups = self._groups(np.repeat(run_part, block.run_length))
        for (part, runs), (_, rows) in zip(self._groups(run_part), row_groups):
            yield part, RatedBlock(block.hi[runs], block.lo[runs], block.run_length[runs],
                                   block.gid[rows], block.rating[rows])


class DeduplicatePartition(beam.DoFn):
    """(partition, its `RatedBlock`s) -> one `UserPartition`, duplicates collapsed to the highest rating.

    Side input `reject_check`: the result of the reject-share check; it makes
    this step wait until the bad-row share is known, so a bad input stops the
    job here, before the heavy steps. Outputs: main, COUNTS (filtered/duplicate).
    """

    def process(self, keyed, reject_check=True):
        part, blocks = keyed
        blocks = list(blocks)
        hi, lo, run_length, gid, rating = (np.concatenate([getattr(b, f) for b in blocks])
                                           for f in ("hi", "lo", "run_length", "gid", "rating"))
        run_codes, uniq_hi, uniq_lo = selection.factorize_users(hi, lo)
        codes = np.repeat(run_codes, run_length)
        user, gid, rating, dups = selection.dedup_max_rating(codes, gid, rating)
        yield counting.tagged(**{counting.FILTERED + "duplicate": dups})
        yield UserPartition(part, np.bincount(user, minlength=len(uniq_hi)), gid.astype(np.uint32),
                            rating, uniq_hi, uniq_lo)


def book_counts_of(partition):
    """(book ids, interaction counts) of one de-duplicated partition."""
    return selection.count_values(partition.gid)


def select_top_books(pair, top_k):
    """Global (ids, counts) -> the top_k book ids, sorted by id for lookups."""
    ids, counts = pair
    top_ids, _ = selection.top_books(ids, counts, top_k)
    if len(top_ids) == 0:
        raise PreprocessError("no interaction is left after the rating filter: nothing to keep "
                              "(check --min_rating and the input)")
    return np.sort(top_ids)


class KeepTopBooks(beam.DoFn):
    """`UserPartition` -> `KeptPartition` of its rows whose book is in the (side input) top ids.

    Outputs: main, COUNTS (filtered/not_top_book).
    """

    def __init__(self):
        self._lookup = PerSideInput(selection.IdLookup)

    def process(self, partition, top_ids):
        user = row_users(partition.user_counts)
        book = self._lookup(top_ids)(partition.gid)
        top = book >= 0
        yield counting.tagged(**{counting.FILTERED + "not_top_book": int((~top).sum())})
        yield KeptPartition(partition.part, np.bincount(user[top], minlength=len(partition.uniq_hi)),
                            book[top].astype(np.int32), partition.rating[top],
                            partition.uniq_hi, partition.uniq_lo)


class DropSparseUsers(beam.DoFn):
    """`KeptPartition` -> the rows of its users with >= min_user_ratings rows (users without any drop out).

    Outputs: main, COUNTS (filtered/user_below_min_ratings).
    """

    def __init__(self, min_user_ratings):
        self._min = min_user_ratings

    def process(self, partition):
        per_user = partition.user_counts
        keep_user = per_user >= self._min
        keep = keep_user[row_users(per_user)]
        yield counting.tagged(**{counting.FILTERED + "user_below_min_ratings": int((~keep).sum())})
        kept_users = np.flatnonzero(keep_user & (per_user > 0))
        yield KeptPartition(partition.part, per_user[kept_users], partition.book[keep],
                            partition.rating[keep], partition.uniq_hi[kept_users],
                            partition.uniq_lo[kept_users])
