"""Why an input row is rejected: one enumeration that the parsers emit and the README lists.

A rejected row travels as a `Reject` (reason, source file name, row text) to
`rejected/rejected-*.jsonl`; interaction rejects are counted in manifest.json
under `rejected.<reason>`. The README's reason table is `markdown_table()`
(tests/test_preprocess_transforms.py checks that they agree).
"""
import enum
import json
from typing import NamedTuple

import numpy as np


class RejectReason(str, enum.Enum):
    """A reason, its value as written in rejected/ and the manifest, and what the row was."""

    def __new__(cls, value, description):
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    WRONG_COLUMN_COUNT = "wrong_column_count", "CSV line without exactly 5 fields"
    NOT_AN_INTEGER = "not_an_integer", "CSV field that is not an integer"
    BAD_JSON = "bad_json", "JSON line that does not parse or has wrongly typed fields"
    MISSING_FIELD = "missing_field", "JSON line without `user_id`, `book_id` or `rating`"
    BAD_USER_ID = "bad_user_id", "user id that is not 32 hex digits"
    BAD_BOOK_ID = "bad_book_id", "book id that is not a decimal integer below 2^32"
    RATING_OUT_OF_RANGE = "rating_out_of_range", "rating outside 0..5"
    USER_NOT_IN_MAP = "user_not_in_map", "CSV user id missing from `user_id_map.csv`"
    BOOK_NOT_IN_MAP = "book_not_in_map", "CSV book id missing from `book_id_map.csv`"
    BOOK_NOT_IN_CATALOG = "book_not_in_catalog", "book missing from `goodreads_books.json.gz`"
    BAD_CATALOG_ROW = "bad_catalog_row", ("line of a catalogue file (books, authors, genres) that "
                                          "does not parse or has no valid id; counted under `catalog`")

    def __str__(self):
        return self.value


class Reject(NamedTuple):
    """One rejected row."""
    reason: RejectReason
    source: str  # input file name
    text: str    # the raw line, or the parsed fields for rows rejected after parsing

    def to_json(self):
        """One JSON line of rejected/."""
        return json.dumps({"reason": self.reason.value, "source": self.source, "row": self.text},
                          ensure_ascii=False)


def first_failures(checks):
    """Per row, the first failed check: (ok mask, [(row, reason)] of the failing rows, in row order).

    `checks` is a list of (reason, bad mask) in priority order: a row that fails
    several is rejected for the first.
    """
    checks = list(checks)
    n = len(checks[0][1])
    failed = np.zeros(n, np.int8)  # 0: passed all; i: failed checks[i - 1] first
    for i, (_, bad) in enumerate(checks, 1):
        failed[(failed == 0) & bad] = i
    rows = np.flatnonzero(failed)
    return failed == 0, [(int(row), checks[failed[row] - 1][0]) for row in rows]


def markdown_table():
    """The README's table of interaction reject reasons (catalogue rows are counted apart)."""
    lines = ["| reason | row |", "| --- | --- |"]
    lines += [f"| `{r.value}` | {r.description} |" for r in RejectReason if r is not RejectReason.BAD_CATALOG_ROW]
    return "\n".join(lines)
