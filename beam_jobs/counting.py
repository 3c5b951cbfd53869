"""Counts of the preprocess job: what each stage read, dropped or rejected, summed for the manifest.

Counts travel as small dicts (`{"rows_read": n, "rejected/not_an_integer": m}`)
on each stage's `counts` output and are summed once, at the end.
"""
import logging

import apache_beam as beam
import numpy as np

from beam_jobs import parsing, selection
from beam_jobs.errors import PreprocessError
from pipeline_common import fileio

COUNTS = "counts"    # tag of a DoFn's counts output
REJECTS = "rejects"  # tag of a DoFn's rejects output (`rejects.Reject`s)

ROWS_READ = "rows_read"
REJECTED = "rejected/"  # + RejectReason value
FILTERED = "filtered/"  # + a FILTER_RULES name
FILTER_RULES = ("below_min_rating", "duplicate", "not_top_book", "user_below_min_ratings")
CATALOG_KINDS = ("books", "authors", "genres")
USER_VOCAB_CRC = "check/user_vocab_crc32"


def catalog_rows_read(kind):
    return f"catalog/{kind}_rows_read"


def catalog_rejected(kind):
    return f"catalog/{kind}_rejected"


def tagged(**values):
    """A counts dict on a DoFn's COUNTS output."""
    return beam.pvalue.TaggedOutput(COUNTS, values)


def tagged_rejects(rejects):
    """Rejected rows on a DoFn's REJECTS output."""
    for reject in rejects:
        yield beam.pvalue.TaggedOutput(REJECTS, reject)


class SumCounts(beam.CombineFn):
    """Sums dicts of counts."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, counts):
        for key, value in counts.items():
            acc[key] = acc.get(key, 0) + int(value)
        return acc

    def merge_accumulators(self, accs):
        out = {}
        for acc in accs:
            self.add_input(out, acc)
        return out

    def extract_output(self, acc):
        return dict(sorted(acc.items()))


class SumIdCounts(beam.CombineFn):
    """Sums (ids, counts) array pairs; memory bounded by the number of distinct ids."""

    def create_accumulator(self):
        return (np.zeros(0, np.int64), np.zeros(0, np.int64))

    def add_input(self, acc, pair):
        return self.merge_accumulators([acc, pair])

    def merge_accumulators(self, accs):
        accs = list(accs)
        return selection.sum_counts([a[0] for a in accs], [a[1] for a in accs])

    def extract_output(self, acc):
        return acc


def rejected_by_reason(counts):
    """{reason: count} of the interaction rejects in summed counts."""
    return {k[len(REJECTED):]: v for k, v in counts.items() if k.startswith(REJECTED)}


def check_reject_share(counts, max_reject_fraction, samples):
    """Raises PreprocessError when too large a share of the input rows is bad; else True."""
    rows = counts.get(ROWS_READ, 0)
    rejected = rejected_by_reason(counts)
    total = sum(rejected.values())
    if rows == 0:
        raise PreprocessError("the interactions input has no data rows")
    if total > max_reject_fraction * rows:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(rejected.items()))
        example = "; ".join(f"{r.reason.value}: {r.text[:80]!r}" for r in samples[:3])
        books_set_aside = counts.get(catalog_rejected("books"), 0)
        cause = (f" {books_set_aside} line(s) of goodreads_books were set aside as bad_catalog_row "
                 "(a line that does not parse, has no valid book_id or is longer than "
                 f"{parsing.MAX_RECORD_BYTES >> 20} MB), so their books' interactions count as "
                 "book_not_in_catalog." if books_set_aside and rejected.get("book_not_in_catalog")
                 else "")
        raise PreprocessError(
            f"{total} of {rows} interaction rows ({total / rows:.2%}) are malformed, more than "
            f"--max_reject_fraction={max_reject_fraction} ({detail}).{cause} Examples: {example}. "
            "Check --input and --input_format.")
    for kind in CATALOG_KINDS:
        read = counts.get(catalog_rows_read(kind), 0)
        bad = counts.get(catalog_rejected(kind), 0)
        if bad and bad > max_reject_fraction * read:
            raise PreprocessError(
                f"{bad} of {read} lines of the {kind} catalogue file are malformed, more than "
                f"--max_reject_fraction={max_reject_fraction}")
    return True


def write_counts(counts, path):
    """Writes the summed counts for the driver to check and put in the manifest."""
    fileio.write_json(path, counts)
    logging.info("counts: %s", counts)
    return path
