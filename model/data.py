"""Reads a preprocess output (docs/artifacts.md section 1) into arrays the model trains on.

Everything here goes through Beam FileSystems or tf.io.gfile, so `--data` can be a
local directory or a `gs://` prefix. Interactions are small per row (two ints and a
rating), so they are held in numpy: ~12 bytes per interaction, ~12 MB per million.
"""
import collections
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from pipeline_common import fileio

TRANSFORM_DIR = "transform_output"
CATALOG = "book_catalog.parquet"
MANIFEST = "manifest.json"
CATALOG_COLUMNS = ("book_index", "book_id", "title", "authors")
MANIFEST_KEYS = ("num_books", "num_users", "train_examples", "eval_examples")

Interactions = collections.namedtuple("Interactions", ["user", "book", "rating"])


class DataError(ValueError):
    """The --data directory is missing, empty or not a preprocess output."""


def split_files(data, split):
    """Sorted shard paths of one split (`train` or `eval`)."""
    return fileio.glob(fileio.join(data, f"{split}-*-of-*.tfrecord.gz"))


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
    if not split_files(data, "train"):
        raise DataError(f"--data {data} has no train-*-of-*.tfrecord.gz files")
    if not split_files(data, "eval") and manifest["eval_examples"]:
        raise DataError(f"--data {data} has no eval-*-of-*.tfrecord.gz files")
    for name in (CATALOG, fileio.join(TRANSFORM_DIR, "transform_fn", "saved_model.pb")):
        if not fileio.exists(fileio.join(data, name)):
            raise DataError(f"--data {data} lacks {name}")
    return manifest


def _parse(records):
    spec = {"user_index": tf.io.FixedLenFeature([], tf.int64),
            "book_index": tf.io.FixedLenFeature([], tf.int64),
            "rating": tf.io.FixedLenFeature([], tf.int64, default_value=0)}
    return tf.io.parse_example(records, spec)


def read_split(data, split, manifest, batch_size=65536):
    """All interactions of a split as int32 arrays; checks ids against the manifest."""
    files = split_files(data, split)
    if not files:
        return Interactions(*(np.zeros(0, np.int32) for _ in range(3)))
    dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP")
               .batch(batch_size).map(_parse))
    users, books, ratings = [], [], []
    try:
        for batch in dataset:
            users.append(batch["user_index"].numpy().astype(np.int32))
            books.append(batch["book_index"].numpy().astype(np.int32))
            ratings.append(batch["rating"].numpy().astype(np.int32))
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as err:
        message = str(err).strip().splitlines()[0]
        raise DataError(f"{split} files in {data} are not preprocess TFRecords "
                        f"(GZIP tf.train.Example with user_index/book_index): {message}") from None
    result = Interactions(*(np.concatenate(x) if x else np.zeros(0, np.int32)
                            for x in (users, books, ratings)))
    if len(result.user) == 0 and split == "train":
        raise DataError(f"--data {data}: the train files hold no examples")
    for name, values, bound in (("user_index", result.user, manifest["num_users"]),
                                ("book_index", result.book, manifest["num_books"])):
        if len(values) and (values.min() < 0 or values.max() >= bound):
            raise DataError(f"{split} data in {data} has {name} outside 0..{bound - 1}: "
                            "it does not match manifest.json")
    return result


def read_catalog(data, num_books):
    """book_catalog.parquet as a pyarrow Table, checked against the manifest."""
    path = fileio.join(data, CATALOG)
    with fileio.open_read(path, compressed=False) as handle:
        table = pq.read_table(pa.PythonFile(handle, mode="r"))
    missing = [c for c in CATALOG_COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)}")
    index = table.column("book_index").to_numpy()
    if len(index) != num_books or not np.array_equal(index, np.arange(num_books)):
        raise DataError(f"{path} must have one row per book sorted by book_index "
                        f"0..{num_books - 1} (found {len(index)} rows)")
    return table


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


def epoch_dataset(train, batch_size, seed, epoch):
    """One epoch of shuffled training batches; the order depends only on (seed, epoch).

    Shuffling with numpy from a per-epoch seed makes a resumed run see exactly the
    batches an uninterrupted run would have seen.
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(train.user))
    features = {"user_index": train.user[order], "book_index": train.book[order]}
    return (tf.data.Dataset.from_tensor_slices(features)
            .batch(batch_size, drop_remainder=len(order) >= batch_size)
            .prefetch(2))


def eval_dataset(interactions, batch_size):
    features = {"user_index": interactions.user, "book_index": interactions.book}
    return tf.data.Dataset.from_tensor_slices(features).batch(batch_size)


def user_histories(train, num_users, length, seed):
    """int32 [num_users, length]: up to `length` training books per user, as index + 1.

    Users with more books keep a random (seeded) subset; 0 pads the rest.
    """
    table = np.zeros((num_users, length), np.int32)
    if length == 0 or len(train.user) == 0:
        return table
    rng = np.random.default_rng([seed, 17])
    order = np.lexsort((rng.random(len(train.user)), train.user))
    users, books = train.user[order], train.book[order]
    starts = np.searchsorted(users, np.arange(num_users))
    position = np.arange(len(users)) - starts[users]
    keep = position < length
    table[users[keep], position[keep]] = books[keep] + 1
    return table
