"""Parsing and validating blocks: bad rows become `Reject`s with their reason, the rest typed blocks.

The columnar parsing is in `parsing`; this module adapts it to Beam (side
inputs, tagged outputs) and adds the check that needs the whole catalogue:
an interaction's book must be in goodreads_books.
"""
import json

import apache_beam as beam
import numpy as np

from beam_jobs import counting, parsing, selection
from beam_jobs.blocks import ValidatedBlock
from beam_jobs.rejects import Reject, RejectReason
from beam_jobs.side_inputs import PerSideInput
from pipeline_common.arrays import sorted_unique


def _catalog_flags(book_map, catalog):
    """Per csv book id: is the book in the catalogue (`catalog`: IdLookup of its ids)."""
    return catalog(book_map["gid"]) >= 0 if len(book_map["gid"]) else np.zeros(1, bool)


def _count_rejects(rejects, key):
    counts = {}
    for reject in rejects:
        name = key(reject.reason)
        counts[name] = counts.get(name, 0) + 1
    return counts


def _not_in_catalog(block, rows, source, user_map, book_map):
    """Rejects for `rows` of a ValidatedBlock, quoting their Goodreads ids (gathered from the maps for csv)."""
    if block.user is not None:
        user = block.user[rows]
        hi, lo, gid = user_map["hi"][user], user_map["lo"][user], book_map["gid"][block.book[rows]]
    else:
        hi, lo, gid = block.hi[rows], block.lo[rows], block.gid[rows]
    return [Reject(RejectReason.BOOK_NOT_IN_CATALOG, source,
                   json.dumps({"user_id": u.decode(), "book_id": str(b), "rating": r}))
            for u, b, r in zip(selection.u128_to_hex(hi, lo).tolist(), gid.tolist(), block.rating[rows].tolist())]


class ParseInteractions(beam.DoFn):
    """`LineBlock` of interaction lines -> `ValidatedBlock`.

    Outputs: main (`ValidatedBlock`s), REJECTS (`Reject`s), COUNTS (rows_read,
    rejected/<reason>). Side inputs: the sorted catalogue book ids and, for csv
    input, the id maps.
    """

    def __init__(self, input_format):
        self._format = input_format
        self._catalog = PerSideInput(selection.IdLookup)
        self._catalog_flags = PerSideInput(_catalog_flags)  # the catalogue is fixed with the map

    def process(self, block, catalog_ids, user_map=None, book_map=None):
        catalog = self._catalog(catalog_ids)
        data = parsing.strip_bom(block.data) if block.first else block.data
        if self._format == "csv":
            raw, rejects, rows = parsing.parse_interactions_csv(data, block.source, block.first)
            cols, more = parsing.resolve_csv_ids(raw, user_map, book_map, block.source)
            rejects += more
            in_catalog = self._catalog_flags(book_map, catalog)[cols["book"]]
            validated = ValidatedBlock(cols["keep"], cols["rating"], user=cols["user"], book=cols["book"])
        else:
            cols, rejects, rows = parsing.parse_interactions_json(data, block.source)
            in_catalog = catalog(cols["gid"]) >= 0
            validated = ValidatedBlock(cols["keep"], cols["rating"], hi=cols["hi"], lo=cols["lo"],
                                       gid=cols["gid"])
        missing = np.flatnonzero(validated.valid & ~in_catalog)
        if len(missing):
            rejects += _not_in_catalog(validated, missing, block.source, user_map, book_map)
        validated.valid &= in_catalog
        yield from counting.tagged_rejects(rejects)
        yield counting.tagged(**{counting.ROWS_READ: rows},
                              **_count_rejects(rejects, lambda reason: counting.REJECTED + reason.value))
        yield validated


class ParseCatalogFile(beam.DoFn):
    """`LineBlock` of a catalogue JSON file -> pyarrow table (books, authors or genres).

    Outputs: main (tables), REJECTS, COUNTS (catalog/<kind>_rows_read, _rejected).
    """

    PARSERS = {"books": parsing.parse_books, "authors": parsing.parse_authors,
               "genres": parsing.parse_genres}

    def __init__(self, kind):
        self._kind = kind

    def process(self, block):
        data = parsing.strip_bom(block.data) if block.first else block.data
        table, rejects, rows = self.PARSERS[self._kind](data, block.source)
        yield from counting.tagged_rejects(rejects)
        yield counting.tagged(**{counting.catalog_rows_read(self._kind): rows},
                              **_count_rejects(rejects, lambda _: counting.catalog_rejected(self._kind)))
        if table.num_rows:
            yield table


def catalog_ids_of(table):
    """Goodreads ids of one parsed block of goodreads_books."""
    return sorted_unique(table.column("book_id").to_numpy())


class SortedUnion(beam.CombineFn):
    """Union of int64 arrays -> one sorted unique array."""

    def create_accumulator(self):
        return np.zeros(0, np.int64)

    def add_input(self, acc, values):
        return sorted_unique(np.concatenate((acc, values)))

    def merge_accumulators(self, accs):
        return sorted_unique(np.concatenate([np.zeros(0, np.int64), *accs]))

    def extract_output(self, acc):
        return acc
