"""The Beam steps of `beam_jobs.preprocess`: DoFns and CombineFns over blocks of rows.

Every element that flows between steps is a *block*: a dict of numpy arrays for
many rows (tens of thousands to millions), never a single rating. The columnar
work itself lives in `selection`, `parsing` and `tfrecords`; this module only
adapts it to Beam (side inputs, tagged outputs, counters).

Counts travel as small dicts (`{"rows_read": n, "rejected/not_an_integer": m,
...}`) on a tagged output and are summed at the end into the manifest.
"""
import io
import json
import logging
import posixpath
import zlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from isal import isal_zlib

from beam_jobs import parsing, selection, tfrecords
from pipeline_common import fileio

REJECTS = "rejects"
COUNTS = "counts"
FAIL_MARK = "PREPROCESS_FAILED: "


class PreprocessError(RuntimeError):
    """A data problem that stops the job; its message is shown to the user as is."""

    def __init__(self, message):
        # Beam re-creates the exception with its message plus "[while running ...]".
        super().__init__(message if message.startswith(FAIL_MARK) else FAIL_MARK + message + " :END")


def _counts(**values):
    """A counts dict on the COUNTS output."""
    return beam.pvalue.TaggedOutput(COUNTS, values)


def _rejects(rows):
    """Rejected rows on the REJECTS output."""
    for reason, source, text in rows:
        yield beam.pvalue.TaggedOutput(REJECTS, (reason, source, text))


def reject_record(row):
    """(reason, source, text) -> one JSON line of rejected/."""
    reason, source, text = row
    return json.dumps({"reason": reason, "source": source, "row": text}, ensure_ascii=False)


# ----------------------------------------------------------------------------- reading

class ReadBlocks(beam.DoFn):
    """A read task -> blocks of whole lines: (source, first_block, bytes).

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
                    yield source, i == 0, block
            except (ValueError, OSError, EOFError, zlib.error, isal_zlib.error) as err:
                raise PreprocessError(f"cannot decompress {path}: {err}") from None
        else:
            yield source, start == 0, parsing.read_range(path, start, end)


def rated_block(run_hi, run_lo, run_length, gid, rating):
    """The block of kept rows that goes through the shuffle, compact because it is the bulk of it.

    Users are run-length coded: rows of one user usually follow each other (the
    UCSD files are grouped by user), so a user id (16 bytes) is stored once per
    run of rows, and a row costs 5 bytes (book id, rating) instead of 21. Any
    row order stays correct; it only compresses less.
    """
    return {"hi": run_hi, "lo": run_lo, "run_length": np.asarray(run_length, np.int32),
            "gid": gid.astype(np.uint32), "rating": rating.astype(np.int8)}


class _PerSideInput:
    """fn(value, *args), computed again only when the (side input) `value` object changes.

    Beam hands a DoFn the same side-input object for every element, so a table
    built from it (a hash index, per-id flags) is built once, not once per block.
    """

    _UNSET = object()

    def __init__(self, fn):
        self._fn, self._of, self._result = fn, self._UNSET, None

    def __call__(self, value, *args):
        if self._of is not value:
            self._result, self._of = self._fn(value, *args), value
        return self._result


def _catalog_flags(book_map, catalog):
    """Per csv book id: is the book in the catalogue (`catalog`: IdLookup of its ids)."""
    return catalog(book_map["gid"]) >= 0 if len(book_map["gid"]) else np.zeros(1, bool)


class ParseInteractions(beam.DoFn):
    """Block of interaction lines -> block of valid rows with rating >= min_rating.

    Outputs: main (`rated_block`s), rejects, counts.
    """

    def __init__(self, input_format, min_rating):
        self._format = input_format
        self._min_rating = min_rating
        self._catalog = _PerSideInput(selection.IdLookup)
        self._catalog_flags = _PerSideInput(_catalog_flags)  # the catalogue is fixed with the map

    def process(self, block, catalog_ids, user_map=None, book_map=None):
        source, first, data = block
        catalog = self._catalog(catalog_ids)
        if self._format == "csv":
            raw, rejects, rows = parsing.parse_interactions_csv(data, source, first)
            cols, more = parsing.resolve_csv_ids(raw, user_map, book_map, source)
            rejects += more
            in_catalog = self._catalog_flags(book_map, catalog)[cols["book"]]

            def user_ids(rows_):  # Goodreads ids of some rows, gathered from the id maps
                u = cols["user"][rows_]
                return user_map["hi"][u], user_map["lo"][u]

            def book_ids(rows_):
                return book_map["gid"][cols["book"][rows_]]

            def run_keys(rows_):  # csv user ids tell users apart as well, and compare cheaper
                return (cols["user"][rows_],)
        else:
            cols, rejects, rows = parsing.parse_interactions_json(data, source)
            in_catalog = catalog(cols["gid"]) >= 0

            def user_ids(rows_):
                return cols["hi"][rows_], cols["lo"][rows_]

            def book_ids(rows_):
                return cols["gid"][rows_]

            run_keys = user_ids
        keep = cols["keep"]
        missing = np.flatnonzero(keep & ~in_catalog)
        if len(missing):
            for u, b, r in zip(selection.u128_to_hex(*user_ids(missing)).tolist(), book_ids(missing).tolist(),
                               cols["rating"][missing].tolist()):
                rejects.append(("book_not_in_catalog", source,
                                json.dumps({"user_id": u.decode(), "book_id": str(b), "rating": r})))
        keep &= in_catalog
        rated = np.flatnonzero(keep & (cols["rating"] >= self._min_rating))
        counts = {"rows_read": rows, "filtered/below_min_rating": int(keep.sum()) - len(rated)}
        for reason, _, _ in rejects:
            counts["rejected/" + reason] = counts.get("rejected/" + reason, 0) + 1
        yield from _rejects(rejects)
        yield _counts(**counts)
        if len(rated):
            starts, lengths = selection.runs(*run_keys(rated))
            yield rated_block(*user_ids(rated[starts]), lengths, book_ids(rated), cols["rating"][rated])


class ParseCatalogFile(beam.DoFn):
    """Block of a catalogue JSON file -> pyarrow table (books, authors or genres)."""

    PARSERS = {"books": parsing.parse_books, "authors": parsing.parse_authors,
               "genres": parsing.parse_genres}

    def __init__(self, kind):
        self._kind = kind

    def process(self, block):
        source, _, data = block
        table, rejects, rows = self.PARSERS[self._kind](data, source)
        counts = {f"catalog/{self._kind}_rows_read": rows}
        for reason, _, _ in rejects:
            key = f"catalog/{self._kind}_rejected"
            counts[key] = counts.get(key, 0) + 1
        yield from _rejects(rejects)
        yield _counts(**counts)
        if table.num_rows:
            yield table


def catalog_ids_of(table):
    """Goodreads ids of one parsed block of goodreads_books."""
    return np.unique(table.column("book_id").to_numpy())


class SortedUnion(beam.CombineFn):
    """Union of int64 arrays -> one sorted unique array."""

    def create_accumulator(self):
        return np.zeros(0, np.int64)

    def add_input(self, acc, values):
        return np.union1d(acc, values)

    def merge_accumulators(self, accs):
        out = np.zeros(0, np.int64)
        for acc in accs:
            out = np.union1d(out, acc)
        return out

    def extract_output(self, acc):
        return acc


# ----------------------------------------------------------------------------- counting

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


def check_rejects(counts, max_reject_fraction, samples):
    """Raises PreprocessError when too large a share of the input rows is bad."""
    rows = counts.get("rows_read", 0)
    rejected = {k.split("/", 1)[1]: v for k, v in counts.items() if k.startswith("rejected/")}
    total = sum(rejected.values())
    if rows == 0:
        raise PreprocessError("the interactions input has no data rows")
    if total > max_reject_fraction * rows:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(rejected.items()))
        example = "; ".join(f"{r[0]}: {r[2][:80]!r}" for r in samples[:3])
        raise PreprocessError(
            f"{total} of {rows} interaction rows ({total / rows:.2%}) are malformed, more than "
            f"--max_reject_fraction={max_reject_fraction} ({detail}). Examples: {example}. "
            "Check --input and --input_format.")
    for key in ("books", "authors", "genres"):
        read = counts.get(f"catalog/{key}_rows_read", 0)
        bad = counts.get(f"catalog/{key}_rejected", 0)
        if bad and bad > max_reject_fraction * read:
            raise PreprocessError(
                f"{bad} of {read} lines of the {key} catalogue file are malformed, more than "
                f"--max_reject_fraction={max_reject_fraction}")
    return True


# ----------------------------------------------------------------------------- per-user partitions

class PartitionByUser(beam.DoFn):
    """`rated_block` -> (partition, sub-block) pairs; a user's rows share a partition."""

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
        run_part = selection.user_partition(block["hi"], block["lo"], self._num)
        row_groups = self._groups(np.repeat(run_part, block["run_length"]))
        for (part, runs), (_, rows) in zip(self._groups(run_part), row_groups):
            yield part, {"hi": block["hi"][runs], "lo": block["lo"][runs],
                         "run_length": block["run_length"][runs],
                         "gid": block["gid"][rows], "rating": block["rating"][rows]}


def row_users(user_counts):
    """Per-row user codes of rows sorted by user, from the row count of each user."""
    return np.repeat(np.arange(len(user_counts), dtype=np.int32), user_counts)


def dedup_partition(keyed, reject_check=True):
    """All rows of one partition -> de-duplicated rows sorted by (user, book).

    Rows stay sorted by user from here on, so a partition stores each user's row
    count (`user_counts`, aligned with `uniq_hi`/`uniq_lo`) instead of a user
    code per row (`row_users` rebuilds it): less data through the shuffle.

    `reject_check` is the (side input) result of `check_rejects`: it makes this
    step wait until the bad-row share is known, so a bad input stops the job here.
    """
    part, blocks = keyed
    blocks = list(blocks)
    cols = {k: np.concatenate([b[k] for b in blocks]) for k in ("hi", "lo", "run_length", "gid", "rating")}
    run_codes, uniq_hi, uniq_lo = selection.factorize_users(cols["hi"], cols["lo"])
    codes = np.repeat(run_codes, cols["run_length"])
    user, gid, rating, dups = selection.dedup_max_rating(codes, cols["gid"], cols["rating"])
    return {"part": part, "user_counts": np.bincount(user, minlength=len(uniq_hi)),
            "gid": gid.astype(np.uint32), "rating": rating,
            "uniq_hi": uniq_hi, "uniq_lo": uniq_lo, "duplicates": dups}


def book_counts_of(partition):
    """(book ids, interaction counts) of one de-duplicated partition."""
    return selection.count_values(partition["gid"])


def duplicate_counts(partition):
    """How many duplicate rows the partition collapsed."""
    return {"filtered/duplicate": partition["duplicates"]}


def select_top_books(pair, top_k):
    """Global (ids, counts) -> the top_k book ids, sorted by id for lookups."""
    ids, counts = pair
    top_ids, top_counts = selection.top_books(ids, counts, top_k)
    if len(top_ids) == 0:
        raise PreprocessError("no interaction is left after the rating filter: nothing to keep "
                              "(check --min_rating and the input)")
    return np.sort(top_ids)


KEPT_BOOK_COUNTS = "kept_book_counts"


class FilterPartition(beam.DoFn):
    """Keeps rows of top books, then users with >= min_user_ratings of those rows.

    Kept rows carry `book`, the position of their book in `top_ids` (which is
    also `build_index`'s `book_sorted_ids`), so later steps never search for it.
    Per partition, (book ids, kept counts) go to the KEPT_BOOK_COUNTS output.
    """

    def __init__(self, min_user_ratings):
        self._min = min_user_ratings
        self._lookup = _PerSideInput(selection.IdLookup)

    def process(self, partition, top_ids):
        lookup = self._lookup(top_ids)
        user = row_users(partition["user_counts"])
        book = lookup(partition["gid"])
        top = book >= 0
        per_user = np.bincount(user[top], minlength=len(partition["uniq_hi"]))
        keep_user = per_user >= self._min
        keep = top & keep_user[user]
        yield _counts(**{"filtered/not_top_book": int((~top).sum()),
                         "filtered/user_below_min_ratings": int((top & ~keep).sum())})
        kept_users = np.flatnonzero(keep_user & (per_user > 0))  # their kept rows: per_user each
        book = book[keep].astype(np.int32)
        book_counts = np.bincount(book, minlength=len(top_ids))
        present = np.flatnonzero(book_counts)
        yield beam.pvalue.TaggedOutput(KEPT_BOOK_COUNTS, (lookup.ids[present],
                                                          book_counts[present].astype(np.int64)))
        yield {"part": partition["part"], "book": book,
               "rating": partition["rating"][keep],
               "uniq_hi": partition["uniq_hi"][kept_users], "uniq_lo": partition["uniq_lo"][kept_users],
               "user_counts": per_user[kept_users]}


def kept_users(partition):
    """(hi, lo, kept count) of the users kept in one partition."""
    return partition["uniq_hi"], partition["uniq_lo"], partition["user_counts"]


def build_index(user_parts, book_pair, top_ids):
    """Global user and book orders -> the index every writer and TFT share.

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
    return {
        "user_hi": user_hi, "user_lo": user_lo, "user_count": user_count,
        "user_sorted_hi": user_hi[by_id], "user_sorted_lo": user_lo[by_id], "user_sorted_index": by_id,
        "book_ids": book_ids, "book_count": book_count,
        "book_sorted_ids": book_ids[book_by_id], "book_sorted_index": book_by_id,
    }


USER_VOCAB_CRC = "check/user_vocab_crc32"


def user_vocab_bytes(index):
    """The exact bytes tf.Transform's user vocabulary must have: one hex id a line, index order."""
    n = len(index["user_hi"])
    lines = np.full((n, 33), ord("\n"), np.uint8)
    lines[:, :32] = selection.u128_to_hex(index["user_hi"], index["user_lo"]).view(np.uint8).reshape(n, 32)
    return lines.tobytes()


def index_counts(index):
    """Vocabulary sizes for the manifest, and a checksum the driver compares the user vocabulary to."""
    return {"num_users": len(index["user_hi"]), "num_books": len(index["book_ids"]),
            USER_VOCAB_CRC: zlib.crc32(user_vocab_bytes(index))}


# ----------------------------------------------------------------------------- writing

def shard_name(output, split, part, num):
    """Path of one output shard, e.g. train-00003-of-00016.tfrecord.gz."""
    return fileio.join(output, f"{split}-{part:05d}-of-{num:05d}.tfrecord.gz")


class WriteExamples(beam.DoFn):
    """One filtered partition -> its train and eval shards (GZIP TFRecord of tf.Examples)."""

    def __init__(self, output, num_partitions, seed, eval_fraction, level, block_rows=100_000):
        self._output = output
        self._num = num_partitions
        self._seed = seed
        self._eval_fraction = eval_fraction
        self._level = level
        self._block_rows = block_rows

    def process(self, partition, index):
        user, book = row_users(partition["user_counts"]), partition["book"]  # book: position in book_sorted_ids
        upos = selection.lookup_u128(index["user_sorted_hi"], index["user_sorted_lo"],
                                     partition["uniq_hi"], partition["uniq_lo"])
        if (upos < 0).any():
            raise PreprocessError("internal error: a kept user is missing from the user index")
        gid = index["book_sorted_ids"][book]
        # Users and books are dictionaries: their Example parts are serialised once here.
        encoder = tfrecords.ExampleEncoder(
            selection.u128_to_hex(partition["uniq_hi"], partition["uniq_lo"]), index["user_sorted_index"][upos],
            index["book_sorted_ids"].astype("S20"), index["book_sorted_index"])
        hi, lo = partition["uniq_hi"][user], partition["uniq_lo"][user]
        evaluation = selection.is_eval(hi, lo, gid, self._seed, self._eval_fraction)
        counts = {}
        for split, mask in (("train", ~evaluation), ("eval", evaluation)):
            rows = np.flatnonzero(mask)
            path = shard_name(self._output, split, partition["part"], self._num)
            with fileio.atomic_write(path) as handle:
                writer = tfrecords.GzipTFRecordWriter(handle, self._level, background=True)
                try:
                    for s in range(0, len(rows), self._block_rows):
                        r = rows[s:s + self._block_rows]
                        writer.write_coded(encoder, user[r], book[r], partition["rating"][r])
                except BaseException:
                    writer.abort()
                    raise
                writer.close()
            counts[f"{split}_examples"] = len(rows)
        yield _counts(**counts)
        yield partition["part"]


def write_empty_shards(written, output, num_partitions, level):
    """Writes empty shards for partitions that received no rows, so names stay -of-N."""
    done = set(written)
    for part in range(num_partitions):
        if part in done:
            continue
        for split in ("train", "eval"):
            with fileio.atomic_write(shard_name(output, split, part, num_partitions)) as handle:
                writer = tfrecords.GzipTFRecordWriter(handle, level)
                writer.close()
    return {"empty_shards": num_partitions - len(done)}


def filter_catalog(table, top_ids):
    """Rows of a parsed books block that describe kept books."""
    mask = selection.lookup_ids(top_ids, table.column("book_id").to_numpy()) >= 0
    if mask.any():
        yield table.filter(pa.array(mask))


def needed_author_ids(tables):
    """Author ids of the kept books (to keep only their names)."""
    ids = set()
    for table in tables:
        for authors in table.column("author_ids").to_pylist():
            ids.update(a for a in (authors or []) if a)
    return np.array(sorted(ids), dtype=object)


def filter_authors(table, needed):
    """Rows of a parsed authors block for the needed author ids."""
    needed_set = set(needed.tolist())
    ids = table.column("author_id").to_pylist()
    mask = [a in needed_set for a in ids]
    if any(mask):
        yield table.filter(pa.array(mask))


def filter_genres(table, top_ids):
    """Rows of a parsed genres block for kept books."""
    mask = selection.lookup_ids(top_ids, table.column("book_id").to_numpy()) >= 0
    if mask.any():
        yield table.filter(pa.array(mask))


CATALOG_SCHEMA = pa.schema([
    ("book_index", pa.int64()), ("book_id", pa.string()), ("work_id", pa.string()),
    ("title", pa.string()), ("authors", pa.list_(pa.string())), ("ratings_count", pa.int64()),
    ("average_rating", pa.float64()), ("genre", pa.string()), ("num_interactions", pa.int64())])


def write_catalog(index, book_tables, author_tables, genre_tables, path):
    """Assembles and writes book_catalog.parquet (one row per kept book, by book_index)."""
    books = {}
    for table in book_tables:
        for row in table.to_pylist():
            prev = books.get(row["book_id"])
            if prev is None or (row["title"] or "", row["work_id"] or "") < (prev["title"] or "", prev["work_id"] or ""):
                books[row["book_id"]] = row
    names = {}
    for table in author_tables:
        for aid, name in zip(table.column("author_id").to_pylist(), table.column("name").to_pylist()):
            if aid not in names or (name or "") < (names[aid] or ""):
                names[aid] = name
    genres = {}
    for table in genre_tables:
        for gid, genre in zip(table.column("book_id").to_pylist(), table.column("genre").to_pylist()):
            if genre is not None:
                genres[gid] = min(genre, genres.get(gid, genre))
    rows = []
    for i, (gid, count) in enumerate(zip(index["book_ids"].tolist(), index["book_count"].tolist())):
        row = books.get(gid, {})
        authors = [names[a] for a in (row.get("author_ids") or []) if names.get(a)]
        rows.append({"book_index": i, "book_id": str(gid), "work_id": row.get("work_id"),
                     "title": row.get("title"), "authors": authors,
                     "ratings_count": row.get("ratings_count"),
                     "average_rating": row.get("average_rating"), "genre": genres.get(gid),
                     "num_interactions": count})
    table = pa.Table.from_pylist(rows, schema=CATALOG_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    fileio.write_bytes(path, sink.getvalue())
    return {"catalog_books": table.num_rows,
            "catalog_books_without_genre": sum(r["genre"] is None for r in rows)}


def write_stats(counts, path):
    """Writes the summed counts for the driver to check and put in the manifest."""
    fileio.write_json(path, counts)
    logging.info("counts: %s", counts)
    return path


# ----------------------------------------------------------------------------- TF Transform input

def analysis_batches(index, batch_rows=100_000):
    """The vocabularies as tf.Transform input: one row per user/book, weight = rank from the end.

    The vocabulary analyzer orders by total weight (descending). Giving entry i
    the weight n - i makes its order exactly the index order built here; shorter
    columns are padded by repeating entries with weight 0, which changes no total.
    """
    users = selection.u128_to_hex(index["user_hi"], index["user_lo"])
    books = index["book_ids"].astype("S20")
    n_users, n_books = len(users), len(books)
    n = max(n_users, n_books)
    one_per_row = None
    for s in range(0, n, batch_rows):
        rows = np.arange(s, min(s + batch_rows, n))
        if one_per_row is None or len(one_per_row) != len(rows) + 1:
            one_per_row = pa.array(np.arange(len(rows) + 1, dtype=np.int32))
        cols = {
            "user_id": pa.array(users[rows % n_users], type=pa.binary()),
            "book_id": pa.array(books[rows % n_books], type=pa.binary()),
            "user_rank_weight": pa.array(np.where(rows < n_users, n_users - rows, 0)),
            "book_rank_weight": pa.array(np.where(rows < n_books, n_books - rows, 0)),
        }
        yield pa.RecordBatch.from_arrays(
            [pa.ListArray.from_arrays(one_per_row, values) for values in cols.values()], names=list(cols))
