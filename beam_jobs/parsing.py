"""Reading the UCSD Goodreads files in large blocks and parsing them column-wise.

Files are read through Beam's FileSystems (local, gs://, gzip or not) in blocks
of whole lines: an uncompressed file is cut into byte ranges that workers read
independently; a compressed one is streamed and cut while decompressing. Each
block is parsed by pyarrow's CSV/JSON readers straight into arrays. A block
that pyarrow refuses (a bad row inside) is cut into smaller pieces until the
bad rows are isolated; only those small pieces are parsed line by line, so
bad rows cost time in proportion to their number.

Every function returns rejected rows as `rejects.Reject`s, their reason a `RejectReason`.
"""
import json
import logging
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
from apache_beam.io.filesystem import CompressedFile, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from isal import isal_zlib

from beam_jobs import selection
from beam_jobs.rejects import Reject, RejectReason, first_failures
from pipeline_common.artifacts import SHELF_TYPE

INTERACTION_COLUMNS = ["user_id", "book_id", "is_read", "rating", "is_reviewed"]
CSV_HEADER = b"user_id,book_id,is_read,rating,is_reviewed"
GENRES = ("children", "comics, graphic", "fantasy, paranormal", "fiction",
          "history, historical fiction, biography", "mystery, thriller, crime",
          "non-fiction", "poetry", "romance", "young-adult")

_CSV_KEYS = {"user": "user_id", "book": "book_id", "is_read": "is_read", "rating": "rating",
             "is_reviewed": "is_reviewed"}
_INT_RE = re.compile(rb"-?[0-9]{1,18}")
_SLOW_PIECE_LINES = 2048


def is_compressed(path):
    """True when Beam would decompress the file (by its suffix, e.g. .gz)."""
    return CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED


def split_ranges(size, block_size):
    """Byte ranges [start, end) covering a file of `size` bytes."""
    if size <= 0:
        return []
    return [(start, min(start + block_size, size)) for start in range(0, size, block_size)]


def read_range(path, start, end, step=1 << 20):
    """Bytes of the lines that *start* inside [start, end) of an uncompressed file."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        offset = max(start - 1, 0)
        handle.seek(offset)
        data = handle.read(end - offset)
        if start > 0:
            cut = data.find(b"\n")
            if cut < 0:
                return b""
            data = data[cut + 1:]
            first_line_start = offset + cut + 1
            if first_line_start >= end:
                return b""
        tail = []
        # The last line starting before `end` runs to the next newline at or after end-1.
        if data and not data.endswith(b"\n"):
            while True:
                more = handle.read(step)
                if not more:
                    break
                cut = more.find(b"\n")
                if cut >= 0:
                    tail.append(more[:cut + 1])
                    break
                tail.append(more)
        return data + b"".join(tail)


def _gzip_chunks(handle, read_size):
    """Inflated chunks of a gzip stream (several concatenated members allowed), with ISA-L.

    ISA-L inflates ~1.4x faster than zlib, which matters for the single-stream
    catalogue and dedup_json files of the full data set (gigabytes each).
    """
    inflate, in_member, started = isal_zlib.decompressobj(31), False, False
    while True:
        data = handle.read(read_size)
        if not data:
            if in_member:
                raise ValueError("the gzip stream is truncated")
            return
        while data:
            in_member = True
            try:
                out = inflate.decompress(data)
            except isal_zlib.error as err:
                if not started and not data.startswith(b"\x1f\x8b"):
                    raise ValueError("it is not gzip-compressed although its name ends in .gz: "
                                     "compress it with gzip, or remove .gz from its name") from None
                raise ValueError(f"the gzip data is corrupt ({err}): download or "
                                 "compress it again") from None
            started = True
            if out:
                yield out
            if not inflate.eof:
                break
            data = inflate.unused_data  # the next gzip member, if any
            inflate, in_member = isal_zlib.decompressobj(31), False


def _raw_chunks(path, read_size):
    """Decompressed chunks of a file, each from at most read_size bytes of its input.

    gzip is inflated with ISA-L (at most 1 MB of input at a time, so a chunk stays
    a few MB), other codecs by Beam. Plain FileSystems.open would inflate 16 MB of
    compressed input on the first read, even for a 64 KB probe.
    """
    kind = CompressionTypes.detect_compression_type(path)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        if kind == CompressionTypes.GZIP:
            yield from _gzip_chunks(raw, min(read_size, 1 << 20))
            return
        handle = raw if kind == CompressionTypes.UNCOMPRESSED else CompressedFile(
            raw, compression_type=kind, read_size=read_size)
        while True:
            chunk = handle.read(read_size)
            if not chunk:
                return
            yield chunk


def iter_blocks(path, block_size):
    """Streams a (possibly compressed) file as blocks of whole lines, about block_size bytes each."""
    pending, size = [], 0
    for chunk in _raw_chunks(path, block_size):
        pending.append(chunk)
        size += len(chunk)
        if size < block_size:
            continue
        data, start = b"".join(pending), 0
        while len(data) - start >= block_size:
            cut = data.rfind(b"\n", start, start + block_size)
            if cut < start:  # a line longer than block_size: the block ends with it
                cut = data.find(b"\n", start + block_size)
                if cut < 0:
                    break
            yield data[start:cut + 1]
            start = cut + 1
        pending = [data[start:]] if start < len(data) else []
        size = len(data) - start
    data = b"".join(pending)
    if data:
        yield data


def first_data_line(path, header=None, probe=1 << 16):
    """The first non-blank line (after an optional header), or None for a file without one."""
    chunks = _raw_chunks(path, probe)
    buffered, line_no = b"", 0
    while True:
        chunk = next(chunks, b"")
        if line_no == 0 and not buffered and chunk[:2] == b"\x1f\x8b" and not is_compressed(path):
            raise ValueError("it is gzip-compressed although its name does not end in .gz: "
                             "add .gz to its name, or decompress it")
        parts = (buffered + chunk).split(b"\n")
        buffered = parts.pop() if chunk else b""  # an unfinished line waits for more
        for line in parts:
            line, first = line.strip(), line_no == 0
            line = strip_bom(line).strip() if first else line
            line_no += 1
            if line and not (first and header is not None and line == header):
                chunks.close()
                return line
        if not chunk:
            return None


def _blank(data):
    """True for empty or all-whitespace bytes (without copying a large block as strip() would)."""
    return not data or data.isspace()


def _split_lines(data, parts):
    """Cuts bytes at newlines into about `parts` pieces."""
    pieces, start, n = [], 0, len(data)
    step = max(n // parts, 1)
    while start < n:
        cut = data.find(b"\n", min(start + step, n) - 1)
        end = n if cut < 0 else cut + 1
        pieces.append(data[start:end])
        start = end
    return pieces


def _parse_with_fallback(data, fast, slow):
    """[fast(data)] or, when pyarrow refuses the block, results of smaller pieces."""
    try:
        return [fast(data)]
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        if data.count(b"\n") <= _SLOW_PIECE_LINES:
            return [slow(data)]
        results = []
        for piece in _split_lines(data, 16):
            results += _parse_with_fallback(piece, fast, slow)
        return results


BOM = b"\xef\xbb\xbf"


def strip_bom(data):
    """`data` without a leading UTF-8 byte-order mark (editors on Windows write one); call
    on the first block of a file only."""
    return data[len(BOM):] if data.startswith(BOM) else data


def _drop_header(data, header):
    """Removes a leading header line equal to `header` (after a byte-order mark, if any)."""
    data = strip_bom(data)
    if header and data.startswith(header):
        cut = data.find(b"\n")
        rest = data[len(header):cut].strip() if cut >= 0 else data[len(header):].strip()
        if not rest:
            return data[cut + 1:] if cut >= 0 else b""
    return data


# --------------------------------------------------------------------------- CSV

def parse_interactions_csv(data, source, first_block=False):
    """CSV block -> ({'user','book','rating'} int64 arrays, rejects, rows_read)."""
    if first_block:
        data = _drop_header(data, CSV_HEADER)
    results = _parse_with_fallback(
        data, lambda d: _csv_fast(d, source), lambda d: _csv_slow(d, source))
    if len(results) == 1:  # the usual case: no copy
        cols = results[0][0]
    else:
        cols = {k: np.concatenate([r[0][k] for r in results]) if results else np.zeros(0, np.int64)
                for k in _CSV_KEYS}
    rejects = [x for r in results for x in r[1]]
    return cols, rejects, sum(r[2] for r in results)


_THREADED_CSV_BLOCK = 2 << 20


def _read_interactions_table(data, threads, on_invalid):
    """pyarrow CSV parse of a block into five int64 columns."""
    block_size = _THREADED_CSV_BLOCK if threads else max(1 << 20, min(len(data) + 1, 1 << 26))
    return pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=INTERACTION_COLUMNS, use_threads=threads,
                                       block_size=block_size),
        parse_options=pacsv.ParseOptions(quote_char=False, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.int64() for c in INTERACTION_COLUMNS},
            null_values=[], strings_can_be_null=False))


def _csv_fast(data, source):
    invalid = []

    def on_invalid(row):
        invalid.append(Reject(RejectReason.WRONG_COLUMN_COUNT, source, row.text))
        return "skip"

    if _blank(data):
        return {k: np.zeros(0, np.int64) for k in _CSV_KEYS}, [], 0
    table = None
    if len(data) > 2 * _THREADED_CSV_BLOCK:
        # Clean blocks (the usual case) are parsed on all cores. Any bad row makes
        # this attempt fail; the single-threaded parse below then reports the
        # bad rows in file order, exactly as before.
        try:
            table = _read_interactions_table(data, True, lambda row: "error")
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
            table = None
    if table is None:
        table = _read_interactions_table(data, False, on_invalid)
    # is_read / is_reviewed are only quoted in rejected rows: they stay Arrow columns.
    cols = {k: table.column(c) if k in ("is_read", "is_reviewed") else table.column(c).to_numpy()
            for k, c in _CSV_KEYS.items()}
    return cols, invalid, table.num_rows + len(invalid)


def _csv_slow(data, source):
    values, rejects, rows = [], [], 0
    for raw in data.split(b"\n"):
        line = raw.rstrip(b"\r")
        if not line:
            continue
        rows += 1
        fields = line.split(b",")
        text = line.decode("utf-8", "replace")
        if len(fields) != len(INTERACTION_COLUMNS):
            rejects.append(Reject(RejectReason.WRONG_COLUMN_COUNT, source, text))
            continue
        if not all(_INT_RE.fullmatch(f) for f in fields):
            rejects.append(Reject(RejectReason.NOT_AN_INTEGER, source, text))
            continue
        values.append([int(f) for f in fields])
    matrix = np.array(values, np.int64).reshape(-1, len(INTERACTION_COLUMNS))
    cols = {k: matrix[:, i].copy() for i, k in enumerate(_CSV_KEYS)}
    return cols, rejects, rows


def read_user_map(path):
    """user_id_map.csv -> the map of csv user ids to (hi, lo) Goodreads ids (`_id_map`)."""
    table = _read_map(path, ["user_id_csv", "user_id"])
    ids, valid_id = _int_column(table.column("user_id_csv"))
    hi, lo, ok = selection.strings_to_u128(table.column("user_id").combine_chunks())
    good = valid_id & ok & (ids >= 0)
    out = _id_map(ids, good, {"hi": (hi, 0), "lo": (lo, 0)}, "user_map", table.num_rows, path)
    out["ok"] = out.pop("present")
    return out


def read_book_map(path):
    """book_id_map.csv -> the map of csv book ids to Goodreads book ids (-1: absent), `_id_map`."""
    table = _read_map(path, ["book_id_csv", "book_id"])
    ids, valid_id = _int_column(table.column("book_id_csv"))
    gids, valid_gid = _int_column(table.column("book_id"))
    good = valid_id & valid_gid & (ids >= 0) & (gids >= 0) & (gids <= selection.MAX_BOOK_ID)
    out = _id_map(ids, good, {"gid": (gids, -1)}, "book_map", table.num_rows, path)
    del out["present"]
    return out


# A map is an array indexed by the csv id itself while its largest id is below this many
# entries per listed id (the UCSD maps number their ids 0..n-1); above, one entry per listed
# id and a hash lookup, so memory never grows with the value of an id.
_DENSE_SLACK, _DENSE_MIN = 2, 1 << 16


def _id_map(ids, good, columns, name, rows, path):
    """The `good` rows of an id map as arrays by *position*, with `lookup` from csv ids.

    `columns`: {key: (values per row, value where absent)}. A csv id listed more than once
    keeps its first listing; those listed again with other values are counted as
    `id_maps/<name>_conflicts` (and logged), exact repeats as `_repeated`, rows without a
    valid pair of ids as `_bad_rows`.
    """
    ids_good = ids[good]
    order = np.argsort(ids_good, kind="stable")           # file order within an id
    sorted_ids = ids_good[order]
    first = np.r_[True, sorted_ids[1:] != sorted_ids[:-1]] if len(sorted_ids) else np.zeros(0, bool)
    keys, first_rows = sorted_ids[first], order[first]
    owner = np.cumsum(first) - 1                          # per sorted row, its key
    values = {k: np.asarray(v)[good] for k, (v, _) in columns.items()}
    differs = np.zeros(len(sorted_ids), bool)
    for col in values.values():
        differs |= col[order] != col[first_rows][owner]
    conflicting = np.unique(keys[owner[differs]])
    if len(conflicting):
        logging.warning("%s: %d csv ids are listed more than once with different ids (the first "
                        "listing is used), e.g. %d", path, len(conflicting), conflicting[0])
    dense = not len(keys) or int(keys[-1]) < max(_DENSE_MIN, _DENSE_SLACK * len(keys))
    size = int(keys[-1]) + 1 if dense and len(keys) else len(keys)
    where = keys if dense else np.arange(len(keys))
    out = {}
    for key, (_, absent) in columns.items():
        out[key] = np.full(size, absent, values[key].dtype)
        out[key][where] = values[key][first_rows]
    out["present"] = np.zeros(size, bool)
    out["present"][where] = True
    out["lookup"] = None if dense else selection.IdLookup(keys)
    out["rows"] = rows
    out["counts"] = {f"id_maps/{name}_rows": rows, f"id_maps/{name}_bad_rows": int((~good).sum()),
                     f"id_maps/{name}_conflicts": len(conflicting),
                     f"id_maps/{name}_repeated": int(len(sorted_ids) - len(keys) - differs.sum())}
    return out


def map_positions(id_map, csv_ids, size):
    """Positions in an id map of csv ids (int64 array), -1 for ids it does not list."""
    if id_map["lookup"] is not None:
        return id_map["lookup"](csv_ids)
    return np.where((csv_ids >= 0) & (csv_ids < size), csv_ids, -1)


def _read_map(path, names):
    """A whole id-map CSV as a table of strings (lines with a wrong field count skipped)."""
    with FileSystems.open(path) as handle:
        data = handle.read()
    data = _drop_header(data, b",".join(n.encode() for n in names))
    if _blank(data):
        return pa.table({n: pa.array([], pa.string()) for n in names})
    return pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
        parse_options=pacsv.ParseOptions(quote_char=False, invalid_row_handler=lambda r: "skip"),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}))


def _int_column(column):
    """String column -> (int64 values, valid mask) for decimal integers."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = pc.fill_null(pc.match_substring_regex(column, r"^-?[0-9]{1,18}$"), False)
    valid = np.asarray(valid)
    values = np.zeros(len(column), np.int64)
    if valid.any():
        values[valid] = pc.cast(pc.filter(column, pa.array(valid)), pa.int64()).to_numpy()
    return values, valid


def resolve_csv_ids(cols, user_map, book_map, source):
    """csv ids -> positions in the id maps, a valid mask, and rejects for unmapped rows.

    Returns ({"user", "book": positions in user_map / book_map (0 where invalid),
    "rating", "keep"}, rejects). Callers gather the Goodreads ids (user_map hi/lo,
    book_map gid) for the rows they keep only, which is about half of them.
    """
    user, book, rating = cols["user"], cols["book"], cols["rating"]
    u = map_positions(user_map, user, len(user_map["ok"]))
    in_user = u >= 0
    u = np.where(in_user, u, 0)
    in_user &= user_map["ok"][u] if len(user_map["ok"]) else False
    b = map_positions(book_map, book, len(book_map["gid"]))
    in_book = b >= 0
    b = np.where(in_book, b, 0)
    in_book &= book_map["gid"][b] >= 0 if len(book_map["gid"]) else False
    keep, failed = first_failures([(RejectReason.RATING_OUT_OF_RANGE, (rating < 0) | (rating > 5)),
                                   (RejectReason.USER_NOT_IN_MAP, ~in_user),
                                   (RejectReason.BOOK_NOT_IN_MAP, ~in_book)])
    rejects = [Reject(reason, source, f"{user[i]},{book[i]},{cols['is_read'][i]},{rating[i]},{cols['is_reviewed'][i]}")
               for i, reason in failed]
    return {"user": u, "book": b, "rating": rating, "keep": keep}, rejects


# --------------------------------------------------------------------------- JSON

_DEDUP_SCHEMA = pa.schema([("user_id", pa.string()), ("book_id", pa.string()), ("rating", pa.int64())])


# The longest JSON line (record) read: longer ones are rejected with their reason. The UCSD
# files' longest records are well under 1 MB (a long description, 100 shelves).
MAX_RECORD_BYTES = 64 << 20


def _json_table(data, schema, one_line=False):
    """pyarrow JSON-lines parse with an explicit schema; other fields are ignored.

    4 MB parse blocks spread a big block over all cores; a line longer than
    that fails here and is parsed on its own (`one_line`: one block holds it
    whole) by parse_json_block's fallback.
    """
    if _blank(data):
        return pa.Table.from_batches([], schema=schema)
    block_size = len(data) + 1 if one_line else min(len(data) + 1, 1 << 22)
    return pajson.read_json(
        pa.py_buffer(data),
        read_options=pajson.ReadOptions(use_threads=True, block_size=block_size),
        parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))


def parse_json_block(data, schema, source, reason=RejectReason.BAD_JSON):
    """JSON-lines block -> (pa.Table with `schema` columns, rejects, rows_read)."""

    def fast(d):
        table = _json_table(d, schema)
        return table, [], table.num_rows

    def slow(d):
        tables, rejects, rows = [], [], 0
        for raw in d.split(b"\n"):
            if not raw.strip():
                continue
            rows += 1
            if len(raw) > MAX_RECORD_BYTES:
                rejects.append(Reject(reason, source, f"a line of {len(raw)} bytes, longer than "
                                      f"the {MAX_RECORD_BYTES >> 20} MB a record may have; it "
                                      f"starts {raw[:200].decode('utf-8', 'replace')}"))
                continue
            try:
                json.loads(raw)
                tables.append(_json_table(raw + b"\n", schema, one_line=True))
            except (ValueError, pa.ArrowInvalid, pa.ArrowTypeError):
                rejects.append(Reject(reason, source, raw.decode("utf-8", "replace").rstrip("\r")))
        return (pa.concat_tables(tables) if tables else pa.Table.from_batches([], schema=schema),
                rejects, rows)

    results = _parse_with_fallback(data, fast, slow)
    tables = [r[0] for r in results if r[0].num_rows]
    table = pa.concat_tables(tables) if tables else pa.Table.from_batches([], schema=schema)
    return table, [x for r in results for x in r[1]], sum(r[2] for r in results)


def parse_interactions_json(data, source):
    """goodreads_interactions_dedup.json block -> (columns, keep mask, rejects, rows_read)."""
    table, rejects, rows = parse_json_block(data, _DEDUP_SCHEMA, source)
    user_col = table.column("user_id").combine_chunks()
    book_col = table.column("book_id").combine_chunks()
    rating_col = table.column("rating").combine_chunks()
    missing = np.asarray(pc.or_(pc.or_(user_col.is_null(), book_col.is_null()), rating_col.is_null()))
    hi, lo, user_ok = selection.strings_to_u128(user_col)
    gid, gid_ok = _int_column(book_col)
    gid_ok &= (gid >= 0) & (gid <= selection.MAX_BOOK_ID)
    rating = pc.fill_null(rating_col, -1).to_numpy().astype(np.int64)
    keep, failed = first_failures([(RejectReason.MISSING_FIELD, missing), (RejectReason.BAD_USER_ID, ~user_ok),
                                   (RejectReason.BAD_BOOK_ID, ~gid_ok),
                                   (RejectReason.RATING_OUT_OF_RANGE, (rating < 0) | (rating > 5))])
    for i, reason in failed:
        rejects.append(Reject(reason, source, json.dumps(
            {"user_id": user_col[i].as_py(), "book_id": book_col[i].as_py(),
             "rating": rating_col[i].as_py()})))
    cols = {"hi": hi, "lo": lo, "gid": gid, "rating": rating, "keep": keep}
    return cols, rejects, rows


# --------------------------------------------------------------------------- catalogue

BOOKS_SCHEMA = pa.schema([
    ("book_id", pa.string()), ("work_id", pa.string()), ("title", pa.string()),
    ("authors", pa.list_(pa.struct([("author_id", pa.string()), ("role", pa.string())]))),
    ("ratings_count", pa.string()), ("average_rating", pa.string()),
    ("popular_shelves", pa.list_(pa.struct([("count", pa.string()), ("name", pa.string())])))])
# Shelves kept per book in the catalogue: the first ones as published (the UCSD records list
# them by count, most-used first); enough to name map regions and explain edges.
MAX_SHELVES = 32
AUTHORS_SCHEMA = pa.schema([("author_id", pa.string()), ("name", pa.string())])
GENRES_SCHEMA = pa.schema([("book_id", pa.string()),
                           ("genres", pa.struct([(g, pa.int64()) for g in GENRES]))])


def parse_books(data, source):
    """goodreads_books.json block -> (slim pa.Table, rejects, rows_read)."""
    table, rejects, rows = parse_json_block(data, BOOKS_SCHEMA, source, reason=RejectReason.BAD_CATALOG_ROW)
    gid, ok = _int_column(table.column("book_id"))
    ok &= (gid >= 0) & (gid <= selection.MAX_BOOK_ID)
    for i in np.flatnonzero(~ok):
        rejects.append(Reject(RejectReason.BAD_CATALOG_ROW, source, json.dumps({"book_id": table.column("book_id")[i].as_py()})))
    table = table.filter(pa.array(ok))
    gid = gid[ok]
    ratings_count, rc_ok = _int_column(table.column("ratings_count"))
    avg = pc.cast(pc.if_else(
        pc.fill_null(pc.match_substring_regex(table.column("average_rating"), r"^-?[0-9]+(\.[0-9]*)?$"), False),
        table.column("average_rating"), None), pa.float64())
    authors = table.column("authors").combine_chunks()
    author_ids = pa.ListArray.from_arrays(
        pc.fill_null(authors.offsets, 0) if authors.null_count else authors.offsets,
        pc.struct_field(authors.flatten(), "author_id")) if len(authors) else pa.array([], pa.list_(pa.string()))
    slim = pa.table({
        "book_id": pa.array(gid, pa.int64()),
        "work_id": table.column("work_id"),
        "title": table.column("title"),
        "author_ids": author_ids,
        "ratings_count": pa.array(np.where(rc_ok, ratings_count, 0), pa.int64(), mask=~rc_ok),
        "average_rating": avg,
        "shelves": top_shelves(table.column("popular_shelves")),
    })
    return slim, rejects, rows


def top_shelves(column):
    """popular_shelves (count as a string) -> the first MAX_SHELVES as (name, int count).

    A shelf without a name or a decimal count is left out; a missing list is empty.
    """
    shelves = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(shelves):
        return pa.array([], SHELF_TYPE)
    shelves = pc.list_slice(pc.fill_null(shelves, pa.scalar([], shelves.type)), 0, MAX_SHELVES)
    values = shelves.flatten()
    counts, ok = _int_column(pc.struct_field(values, "count"))
    names = pc.struct_field(values, "name")
    ok &= np.asarray(pc.fill_null(pc.greater(pc.utf8_length(names), 0), False))
    ok &= counts >= 0
    parent = pc.list_parent_indices(shelves).to_numpy()[ok]
    offsets = np.zeros(len(shelves) + 1, np.int32)
    np.cumsum(np.bincount(parent, minlength=len(shelves)), out=offsets[1:])
    kept = pa.StructArray.from_arrays(
        [names.filter(pa.array(ok)), pa.array(counts[ok], pa.int64())], names=["name", "count"])
    return pa.ListArray.from_arrays(pa.array(offsets), kept, type=SHELF_TYPE)


def parse_authors(data, source):
    """goodreads_book_authors.json block -> (author_id, name) table, rejects, rows_read."""
    table, rejects, rows = parse_json_block(data, AUTHORS_SCHEMA, source, reason=RejectReason.BAD_CATALOG_ROW)
    return table.filter(pc.is_valid(table.column("author_id"))), rejects, rows


def parse_genres(data, source):
    """Genres block -> (table book_id int64, genre string or null, rejects, rows_read)."""
    table, rejects, rows = parse_json_block(data, GENRES_SCHEMA, source, reason=RejectReason.BAD_CATALOG_ROW)
    gid, ok = _int_column(table.column("book_id"))
    genres = table.column("genres").combine_chunks()
    counts = np.stack([pc.fill_null(pc.struct_field(genres, g), 0).to_numpy(zero_copy_only=False)
                       .astype(np.int64) for g in GENRES], axis=1) if len(genres) else np.zeros((0, len(GENRES)), np.int64)
    if genres.null_count:
        counts[np.asarray(genres.is_null())] = 0
    best = counts.argmax(axis=1) if len(counts) else np.zeros(0, np.int64)
    has = counts.max(axis=1) > 0 if len(counts) else np.zeros(0, bool)
    names = np.array(GENRES, dtype=object)[best] if len(best) else np.array([], dtype=object)
    genre = pa.array(np.where(has, names, None), pa.string())
    return pa.table({"book_id": pa.array(gid[ok], pa.int64()), "genre": genre.filter(pa.array(ok))}), rejects, rows
