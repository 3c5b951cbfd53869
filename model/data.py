"""Reads a preprocess output (docs/artifacts.md section 1) into arrays the model trains on.

Everything here goes through Beam FileSystems or tf.io.gfile, so `--data` can be a
local directory or a `gs://` prefix. Interactions are small per row (two int32), so
they are held in numpy: 8 bytes per interaction, 8 MB per million.
"""
import collections
import re

import numpy as np
import tensorflow as tf

from pipeline_common import artifacts, fileio
from pipeline_common.artifacts import CATALOG, MANIFEST, TRANSFORM_DIR
from pipeline_common.errors import UserError
# The columns of artifacts.CATALOG_SCHEMA that training reads.
CATALOG_COLUMNS = ("book_index", "book_id", "title", "authors")
MANIFEST_KEYS = ("num_books", "num_users", "train_examples", "eval_examples")

Interactions = collections.namedtuple("Interactions", ["user", "book"])


class DataError(UserError):
    """The --data directory is missing, empty or not a preprocess output (the message names
    the file and what to do; model.train's command line prints it as its one error line)."""


def split_files(data, split, manifest):
    """Paths of one split's shards (`train` or `eval`), as manifest.json lists them.

    Never a glob: a shard left by an older or interrupted run must not be read.
    """
    return [fileio.join(data, name) for name in manifest["files"][split]]


def find_damaged_shard(files):
    """The first of `files` that does not read to its end as GZIP TFRecords (or None).

    Only called after a read failed, to name the file in the error line.
    """
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset([path], compression_type="GZIP").batch(1 << 16):
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError):
            return path
    return None


def check_data_dir(data):
    """Checks that `data` holds a complete preprocess output; returns its manifest.

    Raises DataError with a one-line message naming what is wrong.
    """
    if not data:
        raise DataError("--data is empty")
    manifest_path = fileio.join(data, MANIFEST)
    if not fileio.exists(manifest_path):
        if not fileio.exists(data) and not fileio.glob(fileio.join(data, "*")):
            raise DataError(f"--data {data} does not exist")
        raise DataError(f"--data {data} is not a complete preprocess output: no {MANIFEST} "
                        "(run `python -m beam_jobs.preprocess --output DIR` first)")
    try:
        manifest = fileio.read_json(manifest_path)
    except ValueError as err:
        raise DataError(f"{manifest_path} is not valid JSON: {err}") from None
    missing = [key for key in MANIFEST_KEYS if key not in manifest]
    if missing:
        raise DataError(f"{manifest_path} lacks {', '.join(missing)}: "
                        "not a preprocess output this model understands")
    for key in MANIFEST_KEYS:
        if not isinstance(manifest[key], int) or manifest[key] < 0:
            raise DataError(f"{manifest_path}: {key} must be a non-negative integer")
    if manifest["train_examples"] == 0 or manifest["num_books"] == 0:
        raise DataError(f"--data {data} is empty: manifest.json reports "
                        f"{manifest['train_examples']} training examples and "
                        f"{manifest['num_books']} books")
    if manifest.get("contract_version") != artifacts.CONTRACT_VERSION:
        raise DataError(f"{manifest_path} is from another version of beam_jobs.preprocess "
                        f"(contract_version {manifest.get('contract_version', 'missing')}, this "
                        f"model.train reads {artifacts.CONTRACT_VERSION}): run "
                        "`python -m beam_jobs.preprocess` again into a new --output")
    for split in artifacts.SPLITS:
        for path in split_files(data, split, manifest):
            if not fileio.exists(path):
                raise DataError(f"{manifest_path} lists {path}, which is missing: the output is "
                                "incomplete; run `python -m beam_jobs.preprocess` again")
    for name in (CATALOG, fileio.join(TRANSFORM_DIR, artifacts.TRANSFORM_FN, "saved_model.pb")):
        if not fileio.exists(fileio.join(data, name)):
            raise DataError(f"--data {data} lacks {name}")
    return manifest


def _parse(records):
    """The two index features of serialised examples, as int32 (the rest is not read)."""
    parsed = tf.io.parse_example(
        records, artifacts.example_feature_spec(("user_index", "book_index")))
    return {name: tf.cast(values, tf.int32) for name, values in parsed.items()}


# Shards read at once. Fixed, not AUTOTUNE: the order of the read arrays (and so of
# every epoch's batches) must not depend on the machine's core count.
PARALLEL_SHARDS = 2


def _record_batches(files, batch_size):
    """Parsed batches of every shard's records, in an order fixed by the file list.

    Each shard is its own TFRecordDataset batched before the interleave, so the
    interleave moves batches, not records (on 2 cores about half the time of a
    record-level num_parallel_reads=AUTOTUNE interleave).
    """
    def shard(path):
        return tf.data.TFRecordDataset(path, compression_type="GZIP",
                                       buffer_size=1 << 20).batch(batch_size)
    return (tf.data.Dataset.from_tensor_slices(files)
            .interleave(shard, cycle_length=PARALLEL_SHARDS, block_length=1,
                        num_parallel_calls=PARALLEL_SHARDS, deterministic=True)
            .map(_parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(2))


def read_split(data, split, manifest, batch_size=1 << 16):
    """All interactions of a split as int32 user and book arrays; checks ids against the manifest.

    A tf.data pipeline reads the GZIP shards in parallel and parses 64k records a
    batch; each parsed batch is copied into arrays sized from the manifest, so
    memory is 8 bytes per interaction (two int32), with no second copy for a
    concatenation. The rating is not read: nothing downstream uses it.
    """
    files = split_files(data, split, manifest)
    expected = manifest[f"{split}_examples"]
    result = Interactions(np.zeros(expected, np.int32), np.zeros(expected, np.int32))
    dataset = _record_batches(files, batch_size)
    filled = 0
    try:
        for batch in dataset:
            n = len(batch["user_index"])
            if filled + n > expected:
                raise DataError(f"{split} files in {data} hold more than the {expected} "
                                f"examples manifest.json reports")
            result.user[filled:filled + n] = batch["user_index"]
            result.book[filled:filled + n] = batch["book_index"]
            filled += n
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
        damaged = find_damaged_shard(files)
        if damaged is None and isinstance(err, tf.errors.DataLossError):
            damaged = f"one of the {split} shards in {data}"
        if damaged:
            raise DataError(f"{damaged} is corrupt or truncated: run `python -m "
                            "beam_jobs.preprocess` again to rebuild it") from None
        message = str(err).strip().splitlines()[0]
        raise DataError(f"{split} files in {data} are not preprocess TFRecords "
                        f"(GZIP tf.train.Example with user_index/book_index): {message}") from None
    if filled != expected:
        raise DataError(f"{split} files in {data} hold {filled} examples, manifest.json "
                        f"reports {expected}")
    for name, values, bound in (("user_index", result.user, manifest["num_users"]),
                                ("book_index", result.book, manifest["num_books"])):
        if len(values) and (values.min() < 0 or values.max() >= bound):
            raise DataError(f"{split} data in {data} has {name} outside 0..{bound - 1}: "
                            "it does not match manifest.json")
    return result


def read_catalog(data, num_books):
    """book_catalog.parquet as a pyarrow Table, checked against the manifest."""
    path = fileio.join(data, CATALOG)
    try:
        table = artifacts.read_parquet(path)
    except artifacts.ArtifactError as err:
        raise DataError(str(err)) from None
    missing = [c for c in CATALOG_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)}")
    index = table.column("book_index").to_numpy()
    if len(index) != num_books or not np.array_equal(index, np.arange(num_books)):
        raise DataError(f"{path} must have one row per book sorted by book_index "
                        f"0..{num_books - 1} (found {len(index)} rows)")
    check_catalog_books(data, path, table.column("book_id").to_pylist())
    return table


def check_catalog_books(data, path, book_ids):
    """The catalogue's books must be the run's book index: line i of book_id_vocab (the
    vocabulary the TFRecords and the served model map ids with) is book_index i.

    A catalogue of another preprocess run with as many books names other books under
    the same indices; preprocess writes both files and checks them against each other,
    so here any difference means the catalogue was swapped in from elsewhere.
    """
    vocab_path = artifacts.vocabulary_path(data, artifacts.BOOK_VOCAB)
    if not fileio.exists(vocab_path):
        raise DataError(f"--data {data} lacks {vocab_path}: the output is incomplete; run "
                        "`python -m beam_jobs.preprocess` again")
    vocab = fileio.read_bytes(vocab_path).decode("utf-8").splitlines()
    if vocab != book_ids:
        differ = next((i for i, (a, b) in enumerate(zip(vocab, book_ids)) if a != b),
                      min(len(vocab), len(book_ids)))
        ours = book_ids[differ] if differ < len(book_ids) else "none"
        theirs = vocab[differ] if differ < len(vocab) else "none"
        raise DataError(f"{path} is from another preprocess run than the rest of --data {data}: "
                        f"its book_index {differ} is book {ours}, this run's "
                        f"{artifacts.BOOK_VOCAB} says {theirs}; put back the "
                        f"{CATALOG} written with these TFRecords, or run "
                        "`python -m beam_jobs.preprocess` again into a new --output")


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokenize(text):
    """Lower-case word tokens of a title."""
    return _TOKEN.findall((text or "").lower())


def _vocab_ids(rows, max_len, min_count, max_size):
    """Integer matrix [len(rows), max_len] of vocabulary ids (0 = padding / rare)."""
    counts = collections.Counter(tok for row in rows for tok in dict.fromkeys(row))
    # Sorted by count, then token: the same ids in every process (no hash order).
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_size]
    kept = [tok for tok, n in ranked if n >= min_count]
    vocab = {tok: i + 1 for i, tok in enumerate(kept)}
    ids = np.zeros((len(rows), max_len), np.int32)
    for r, row in enumerate(rows):
        values = [vocab[t] for t in row if t in vocab][:max_len]
        ids[r, :len(values)] = values
    return ids, len(vocab) + 1


def content_features(catalog, max_title_tokens=12, max_authors=4, min_count=2,
                     max_vocab=200000):
    """Title-word, author and genre ids per book from the catalogue.

    Words and authors seen on fewer than `min_count` books carry no signal beyond
    the book id, so they map to padding (0). Returns a dict of int32 arrays indexed
    by book_index and the matching vocabulary sizes.
    """
    titles = [tokenize(t) for t in catalog.column("title").to_pylist()]
    authors = [[a for a in (names or []) if a] for names in catalog.column("authors").to_pylist()]
    title_ids, title_vocab = _vocab_ids(titles, max_title_tokens, min_count, max_vocab)
    author_ids, author_vocab = _vocab_ids(authors, max_authors, min_count, max_vocab)
    if "genre" in catalog.column_names:
        genres = [[g] if g else [] for g in catalog.column("genre").to_pylist()]
    else:
        genres = [[] for _ in titles]
    genre_ids, genre_vocab = _vocab_ids(genres, 1, 1, 1000)
    return {"title": title_ids, "authors": author_ids, "genre": genre_ids[:, 0],
            "sizes": {"title": title_vocab, "authors": author_vocab, "genre": genre_vocab}}


def as_tensors(interactions):
    """The training interactions as int32 tensors (one copy, 8 bytes per interaction)."""
    return Interactions(tf.constant(interactions.user), tf.constant(interactions.book))


def epoch_batches(examples, batch_size, seed, epoch):
    """One epoch's batches of interaction indices (int32 views of one permutation).

    The order depends only on (seed, epoch): a numpy permutation from a per-epoch seed
    (4 bytes per interaction) makes a resumed run see exactly the batches an
    uninterrupted run would have seen. The last partial batch is dropped unless it is
    the only one. The training step gathers its batch from the `as_tensors` tensors
    (`batch_features`), so no shuffled copy of the interactions is made, and no
    tf.data pipeline runs beside the step (its iterator could take seconds to reach the
    end of an epoch or to be torn down).
    """
    order = np.arange(examples, dtype=np.int32)
    np.random.default_rng([seed, epoch]).shuffle(order)  # in place, as permutation() would
    size = min(batch_size, examples)
    if size == 0:
        return []
    return [order[start:start + size] for start in range(0, examples - size + 1, size)]


def batch_features(tensors, index):
    """The features of the interactions `index` (a batch of `epoch_batches`)."""
    return {"user_index": tf.gather(tensors.user, index),
            "book_index": tf.gather(tensors.book, index)}


def user_histories(train, num_users, length, seed, chunk=1 << 22):
    """int32 [num_users, length]: up to `length` training books per user, as index + 1.

    Users with more books keep a random (seeded) subset; 0 pads the rest. Each
    interaction becomes one int64 key (user, random bits, book), sorted in place:
    8 bytes per interaction plus `chunk`-sized temporaries, not several index arrays.
    """
    table = np.zeros((num_users, length), np.int32)
    size = len(train.user)
    if length == 0 or size == 0:
        return table
    book_bits = int(train.book.max()).bit_length()
    user_shift = 63 - int(num_users).bit_length()
    random_bits = user_shift - book_bits
    if random_bits < 8:
        raise ValueError(f"{num_users} users and books up to {train.book.max()} leave "
                         f"{random_bits} random bits in a 63-bit key")
    rng = np.random.default_rng([seed, 17])
    key = train.user.astype(np.int64) << user_shift
    for start in range(0, size, chunk):
        stop = min(start + chunk, size)
        key[start:stop] |= ((rng.integers(0, 1 << random_bits, stop - start, dtype=np.int64)
                             << book_bits) | train.book[start:stop])
    key.sort()
    starts = np.searchsorted(key, np.arange(num_users, dtype=np.int64) << user_shift)
    for start in range(0, size, chunk):
        block = key[start:start + chunk]
        users = block >> user_shift
        position = np.arange(start, start + len(block)) - starts[users]
        keep = position < length
        table[users[keep], position[keep]] = (block[keep] & ((1 << book_bits) - 1)) + 1
    return table
