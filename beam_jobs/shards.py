"""Writing the example shards: one train and one eval GZIP TFRecord shard per user partition,
and the partition's train pairs as parquet (user_index, book_index) beside them.

Each kept interaction goes to eval when `selection.is_eval` (a hash of user id,
book id and seed) says so, else to train; the encoding is `tfrecords.ExampleEncoder`.
"""
import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from beam_jobs import counting, selection, tfrecords
from beam_jobs.blocks import row_users
from beam_jobs.errors import PreprocessError
from pipeline_common import artifacts, fileio


def shard_path(output, split, part, num):
    """Path of one output shard, e.g. OUTPUT/train-00003-of-00016.tfrecord.gz."""
    return fileio.join(output, artifacts.shard_file(split, part, num))


class SplitAndWriteShards(beam.DoFn):
    """One `KeptPartition` -> its train and eval shards (side input: the `SelectionIndex`).

    Outputs: main (the partition number), COUNTS (train_examples, eval_examples).
    """

    def __init__(self, output, num_partitions, seed, eval_fraction, level, block_rows=100_000):
        self._output = output
        self._num = num_partitions
        self._seed = seed
        self._eval_fraction = eval_fraction
        self._level = level
        self._block_rows = block_rows

    def process(self, partition, index):
        user, book = row_users(partition.user_counts), partition.book  # book: position in book_sorted_ids
        upos = selection.lookup_u128(index.user_sorted_hi, index.user_sorted_lo,
                                     partition.uniq_hi, partition.uniq_lo)
        if (upos < 0).any():
            raise PreprocessError("internal error: a kept user is missing from the user index")
        gid = index.book_sorted_ids[book]
        # Users and books are dictionaries: their Example parts are serialised once here.
        encoder = tfrecords.ExampleEncoder(
            selection.u128_to_hex(partition.uniq_hi, partition.uniq_lo), index.user_sorted_index[upos],
            index.book_sorted_ids.astype("S20"), index.book_sorted_index)
        hi, lo = partition.uniq_hi[user], partition.uniq_lo[user]
        evaluation = selection.is_eval(hi, lo, gid, self._seed, self._eval_fraction)
        counts = {}
        for split, mask in (("train", ~evaluation), ("eval", evaluation)):
            rows = np.flatnonzero(mask)
            with fileio.atomic_write(shard_path(self._output, split, partition.part, self._num)) as handle:
                writer = tfrecords.GzipTFRecordWriter(handle, self._level, background=True)
                try:
                    for s in range(0, len(rows), self._block_rows):
                        r = rows[s:s + self._block_rows]
                        writer.write_coded(encoder, user[r], book[r], partition.rating[r])
                except BaseException:
                    writer.abort()
                    raise
                writer.close()
            counts[f"{split}_examples"] = len(rows)
            if split == "train":
                write_pairs(fileio.join(self._output, artifacts.pairs_file(partition.part, self._num)),
                            index.user_sorted_index[upos][user[rows]], index.book_sorted_index[book[rows]])
        yield counting.tagged(**counts)
        yield partition.part


def write_pairs(path, user_index, book_index):
    """A partition's train pairs as parquet (docs/artifacts.md): int32 columns, zstd."""
    table = pa.table({"user_index": np.asarray(user_index, np.int32),
                      "book_index": np.asarray(book_index, np.int32)}, schema=artifacts.TRAIN_PAIRS_SCHEMA)
    with fileio.atomic_write(path) as handle:
        pq.write_table(table, handle, compression="zstd", **artifacts.PARQUET_WRITE_OPTIONS)


def write_empty_shards(written, output, num_partitions, level):
    """Writes empty shards for partitions that received no rows, so names stay -of-N."""
    done = set(written)
    for part in range(num_partitions):
        if part in done:
            continue
        for split in artifacts.SPLITS:
            with fileio.atomic_write(shard_path(output, split, part, num_partitions)) as handle:
                tfrecords.GzipTFRecordWriter(handle, level).close()
        write_pairs(fileio.join(output, artifacts.pairs_file(part, num_partitions)), [], [])
    return {"empty_shards": num_partitions - len(done)}
