"""The exact top-k step of the neighbours job and its block cache.

The books are cut into fixed blocks of `--block_rows` query rows; each worker
process holds the embedding matrix once (`CandidateMatrix`, read through
FileSystems so gs:// works) and, per block, finds the exact top-k with
`graph_export.topk` on `--threads` threads and writes the block's edges to
their own parquet file in the same step -- no N x N matrix anywhere. Block
files live in `OUTPUT/.blocks-KEY/`, KEY a hash of the vectors, k and the
block size: a run that was killed reuses the blocks an earlier run on the same
inputs finished. `read_blocks` puts them together in block order, so the
result is the same on any runner, worker count, thread count and block size.
"""
import glob as globlib
import hashlib
import os
import posixpath
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils import shared

from graph_export import inputs, topk
from pipeline_common import artifacts, fileio
from pipeline_common.artifacts import EDGE_SCHEMA
from pipeline_common.beam_runner import is_local

EDGE_ROW_GROUP = 1_000_000


class CandidateMatrix:
    """The unit-normalised valid rows and their book indices (a Shared object)."""

    def __init__(self, book_index, unit, tile, chunk):
        self.book_index = book_index
        self.index = topk.CandidateIndex(unit, tile=tile, chunk=chunk)

    @classmethod
    def load(cls, path, tile, chunk):
        table, matrix = inputs.load_embeddings(path, columns=[])
        book_index = table.column("book_index").to_numpy()
        del table
        unit, valid = topk.normalise_rows(matrix)
        del matrix
        return cls(book_index[valid], unit[valid] if not valid.all() else unit, tile, chunk)


# The launcher's own CandidateMatrix, keyed by (path, tile, chunk): with the
# local runner in one process (the default here) the DoFn finds the matrix the
# launcher already read and normalised instead of reading the parquet again;
# worker processes (multi_processing, Dataflow) do not see it and load their own.
_LAUNCHER_MATRICES = {}


def default_threads(options):
    """Kernel threads per worker process: every core when the local runner runs
    in one process (the default), else 1 (Dataflow and multi_processing start a
    process per core)."""
    if is_local(options) and options.view_as(DirectOptions).direct_num_workers == 1:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    return 1


# ---------------------------------------------------------------- the Beam step

class TopKBlockFn(beam.DoFn):
    """(start, stop) positions among the valid books -> `DIR/block-START.parquet`.

    One step from block to file, so the block's edge arrays are never Beam
    elements. Inside a block the kernel blocks of `kernel_rows` books run on
    `threads` Python threads (numpy releases the GIL in BLAS, max and
    partition) with OpenBLAS at 1 thread each -- the configuration
    `benchmarks/bench_neighbors.py` times as "the kernel". The matrix is loaded
    once per worker process (`Shared`).

    The blocks of a bundle do not wait for each other: `process` queues a
    block's kernel blocks behind the previous block's, a writer thread writes
    each block's file as soon as its kernel blocks are done, and
    `finish_bundle` waits for every file (then raises the first failure, if
    any) and outputs their paths. Waiting per block left a thread idle at the
    end of every block and the file writes between blocks (~1 s of 18 at 100k
    books).
    """

    def __init__(self, path, directory, k, tile, chunk, threads=1,
                 kernel_rows=topk.DEFAULT_BLOCK_ROWS, blas_threads=1):
        self._path, self._directory = path, directory
        self._k, self._tile, self._chunk = k, tile, chunk
        self._threads, self._kernel_rows = max(1, threads), kernel_rows
        self._blas_threads = blas_threads
        self._shared = shared.Shared()
        self._kernels = self._writer = None
        self._pending = []

    def setup(self):
        if self._blas_threads:
            topk.set_numpy_blas_threads(self._blas_threads)
        key = (self._path, self._tile, self._chunk)
        self._matrix = self._shared.acquire(
            lambda: _LAUNCHER_MATRICES.get(key) or CandidateMatrix.load(*key), tag=key)
        self._kernels = ThreadPoolExecutor(self._threads)
        self._writer = ThreadPoolExecutor(1)

    def teardown(self):
        for pool in (self._kernels, self._writer):
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def start_bundle(self):
        self._pending = []

    def process(self, block):
        start, stop = block
        parts = [self._kernels.submit(topk.topk_block, self._matrix.index,
                                      np.arange(lo, min(stop, lo + self._kernel_rows)),
                                      self._k)
                 for lo in range(start, stop, self._kernel_rows)]
        self._pending.append(self._writer.submit(self._write_block, start, stop, parts))
        return []

    def finish_bundle(self):
        pending, self._pending = self._pending, []
        futures.wait(pending)
        for written in pending:
            yield GlobalWindows.windowed_value(written.result())

    def _write_block(self, start, stop, parts):
        parts = [part.result() for part in parts]
        m = self._matrix
        neighbours = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        k_eff = neighbours.shape[1]
        table = pa.table({
            "source": np.repeat(m.book_index[start:stop], k_eff),
            "target": m.book_index[neighbours.ravel()],
            "rank": np.tile(np.arange(1, k_eff + 1, dtype=np.int32), stop - start),
            "cosine": scores.ravel(),
        }, schema=EDGE_SCHEMA)
        path = block_path(self._directory, start)
        with fileio.atomic_write(path) as handle:
            pq.write_table(table, handle, compression="zstd", **artifacts.PARQUET_WRITE_OPTIONS)
        return path


def block_path(directory, start):
    return fileio.join(directory, f"block-{start:012d}.parquet")


def block_ranges(n, block_rows):
    """Fixed [start, stop) blocks over n rows (independent of the worker count)."""
    return [(s, min(n, s + block_rows)) for s in range(0, n, block_rows)]


BLOCK_FORMAT = 1   # bump when a block file's content changes for the same inputs


def blocks_key(book_index, unit, k, block_rows):
    """Content hash of what a block file depends on: the unit vectors, their book
    indices, k and the block size (the results are exact, so not the tile/chunk/threads).

    A run killed part-way leaves `.blocks-KEY/`; the next run with the same key
    reuses its finished blocks, any other key means other inputs: removed.
    """
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.asarray([BLOCK_FORMAT, k, block_rows, len(book_index)], np.int64).tobytes())
    digest.update(np.ascontiguousarray(book_index, np.int64).tobytes())
    digest.update(np.ascontiguousarray(unit, np.float32).tobytes())
    return digest.hexdigest()


def remove_other_block_dirs(out, keep):
    """Removes block folders of runs on other inputs (they can never be reused)."""
    folders = {posixpath.dirname(p) for p in fileio.glob(fileio.join(out, ".blocks-*", "*"))}
    if "://" not in out:   # empty local folders too
        folders |= set(globlib.glob(os.path.join(out, ".blocks-*")))
    norm = (lambda path: path.rstrip("/")) if "://" in out else os.path.abspath
    for folder in folders:
        if norm(folder) != norm(keep):
            fileio.remove_tree(folder)


def split_finished_blocks(block_dir, blocks, k, num_valid):
    """(blocks still to compute, blocks already on disk) for `block_dir`.

    A block file exists only complete (written under a temporary name, then
    renamed); it is reused only if its parquet footer reads and holds the
    block's row count. Anything else is computed again.
    """
    k_eff = min(k, max(num_valid - 1, 0))
    todo, done = [], []
    for start, stop in blocks:
        path = block_path(block_dir, start)
        rows = -1
        if fileio.exists(path):
            try:
                with artifacts.parquet_file(path) as parquet:
                    rows = parquet.metadata.num_rows
            except artifacts.ArtifactError:   # unreadable: computed again
                pass
        (done if rows == (stop - start) * k_eff else todo).append((start, stop))
    return todo, done


def read_blocks(block_dir, blocks):
    """The block files' edges in block order: every edge, sorted by source, rank."""
    tables = []
    for start, _ in blocks:
        path = block_path(block_dir, start)
        if not fileio.exists(path):
            raise RuntimeError(f"block file {path} is missing: the pipeline did not "
                               "finish every block")
        tables.append(pq.read_table(pa.BufferReader(fileio.read_bytes(path))))
    return pa.concat_tables(tables) if tables else EDGE_SCHEMA.empty_table()


def write_edges(path, edges):
    with fileio.atomic_write(path) as handle:
        pq.write_table(edges, handle, row_group_size=EDGE_ROW_GROUP, compression="zstd",
                       **artifacts.PARQUET_WRITE_OPTIONS)
