"""Reading input files as blocks of whole lines, spread over workers (the Beam side of `parsing`)."""
import posixpath
import zlib

import apache_beam as beam
from isal import isal_zlib

from beam_jobs import parsing
from beam_jobs.blocks import LineBlock
from beam_jobs.errors import PreprocessError
from pipeline_common import fileio


def read_tasks(path, block_size):
    """Work items for one file: byte ranges when uncompressed, else the whole file."""
    if parsing.is_compressed(path):
        return [(path, None, None)]
    return [(path, s, e) for s, e in parsing.split_ranges(fileio.size(path), block_size)]


class ReadBlocks(beam.DoFn):
    """A read task -> `LineBlock`s.

    A task is (path, start, end) for a byte range of an uncompressed file, or
    (path, None, None) for a whole (compressed) file streamed block by block.
    """

    def __init__(self, block_size):
        self._block_size = block_size

    def process(self, task):
        path, start, end = task
        source = posixpath.basename(path)
        if start is None:
            try:
                for i, block in enumerate(parsing.iter_blocks(path, self._block_size)):
                    yield LineBlock(source, i == 0, block)
            except (ValueError, OSError, EOFError, zlib.error, isal_zlib.error) as err:
                raise PreprocessError(f"cannot decompress {path}: {err}") from None
        else:
            yield LineBlock(source, start == 0, parsing.read_range(path, start, end))
