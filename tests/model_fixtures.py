"""A tiny preprocess output (docs/artifacts.md section 1) with planted structure, for model tests.

Users each like one genre; a book's readers come mostly from its genre's fans, and
book popularity falls off steeply, so popularity is a fair but beatable baseline.
`prep_from_goodreads` is a plain-pandas stand-in for beam_jobs.preprocess on
`sample_goodreads` output (benchmarks use the real job when it can be imported).
Vocabularies are built by the preprocess job's own tf.Transform graph
(beam_jobs.vocab_transform, weighted so that their order is exactly the
contract's index order), so the transform graph is a real tf.Transform output.
"""
import json
import os
import tempfile

import pipeline_common  # noqa: F401  (legacy Keras before TensorFlow loads)
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from pipeline_common import artifacts

GENRES = ("fantasy", "romance", "history", "poetry")
GENRE_WORDS = {
    "fantasy": ["dragon", "sword", "wizard", "realm", "quest"],
    "romance": ["love", "heart", "kiss", "summer", "bride"],
    "history": ["empire", "war", "king", "century", "revolution"],
    "poetry": ["verses", "songs", "poems", "rhymes", "sonnets"],
}
COMMON_WORDS = ["the", "of", "night", "last", "house", "secret"]


def make_interactions(num_users=100, num_books=150, seed=0, eval_share=0.2,
                      min_count=3):
    """Synthetic interactions with planted genre tastes and heavy-tailed popularity.

    Returns (users, books, interactions) where interactions is a list of
    (user_id, book_id, rating, is_eval) tuples.
    """
    rng = np.random.default_rng(seed)
    user_ids = ["%032x" % rng.integers(0, 2**63) for _ in range(num_users)]
    user_genre = rng.integers(0, len(GENRES), size=num_users)
    book_ids = [str(1000 + 7 * i + int(rng.integers(0, 7))) for i in range(num_books)]
    order = rng.permutation(num_books)  # popularity rank -> book position
    book_genre = np.arange(num_books) % len(GENRES)
    counts = np.empty(num_books, dtype=np.int64)
    counts[order] = np.maximum(min_count, np.round(
        0.6 * num_users * (np.arange(num_books) + 1.0) ** -0.7)).astype(np.int64)
    counts = np.minimum(counts, num_users)
    rows = []
    for b in range(num_books):
        weights = np.where(user_genre == book_genre[b], 12.0, 1.0)
        readers = rng.choice(num_users, size=int(counts[b]), replace=False,
                             p=weights / weights.sum())
        for u in readers:
            rating = int(rng.integers(3, 6) if user_genre[u] == book_genre[b]
                         else rng.integers(1, 4))
            rows.append((user_ids[u], book_ids[b], rating, bool(rng.random() < eval_share)))
    users = {"user_id": user_ids, "genre": [GENRES[g] for g in user_genre]}
    books = {"book_id": book_ids, "genre": [GENRES[g] for g in book_genre]}
    return users, books, rows


def _title(rng, genre):
    words = list(rng.choice(GENRE_WORDS[genre], size=2, replace=False))
    words.insert(int(rng.integers(0, 3)), str(rng.choice(COMMON_WORDS)))
    return " ".join(w.capitalize() for w in words)


def _run_transform(user_ids, book_ids, transform_dir, temp_dir):
    """Builds transform_output/ with the preprocess job's own tf.Transform graph.

    The vocabularies are analysed from one row per id, weighted so that their
    frequency order is exactly the given index order (as the job does).
    """
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils
    from beam_jobs import vocab_transform

    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(vocab_transform.ANALYSIS_FEATURE_SPEC))
    rows = []
    for i in range(max(len(user_ids), len(book_ids))):
        rows.append({
            "user_id": user_ids[i % len(user_ids)].encode(),
            "user_rank_weight": max(len(user_ids) - i, 0),
            "book_id": book_ids[i % len(book_ids)].encode(),
            "book_rank_weight": max(len(book_ids) - i, 0)})
    with beam.Pipeline(runner=fn_runner.FnApiRunner(), options=PipelineOptions([])) as p:
        with tft_beam.Context(temp_dir=temp_dir):
            transform_fn = ((p | "Create" >> beam.Create(rows), metadata)
                            | "Analyze" >> tft_beam.AnalyzeDataset(vocab_transform.preprocessing_fn))
            _ = transform_fn | "Write" >> tft_beam.WriteTransformFn(transform_dir)
    assets = os.path.join(transform_dir, artifacts.TRANSFORM_FN, "assets")
    for name, ids in ((artifacts.USER_VOCAB, user_ids), (artifacts.BOOK_VOCAB, book_ids)):
        with open(os.path.join(assets, name)) as handle:
            assert [line.rstrip("\n") for line in handle] == list(ids), name


def _examples(user_ids, book_ids, user_index, book_index, rating):
    """Serialized tf.train.Examples, batched through tf.io for speed."""
    for u, b, r in zip(user_index.tolist(), book_index.tolist(), rating.tolist()):
        feature = {
            "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[user_ids[u].encode()])),
            "book_id": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[book_ids[b].encode()])),
            "user_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[u])),
            "book_index": tf.train.Feature(int64_list=tf.train.Int64List(value=[b])),
            "rating": tf.train.Feature(int64_list=tf.train.Int64List(value=[r])),
        }
        yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_split(path_prefix, records, num_shards):
    writers = [tf.io.TFRecordWriter("%s-%05d-of-%05d.tfrecord.gz" % (path_prefix, s, num_shards),
                                    options="GZIP") for s in range(num_shards)]
    for i, record in enumerate(records):
        writers[i % num_shards].write(record)
    for writer in writers:
        writer.close()


# The contract's catalogue without its shelves (the stand-in has none).
CATALOG_SCHEMA = pa.schema([f for f in artifacts.CATALOG_SCHEMA if f.name != "shelves"])


def write_prep_arrays(output, user_ids, book_ids, user_index, book_index, rating, is_eval,
                      catalog, num_shards=2, options=None):
    """Writes PREP from interactions already indexed in the contract's order.

    `user_ids[i]`/`book_ids[i]` is the raw id of index i; `catalog` holds per-book lists
    (title, authors, work_id, ratings_count, average_rating, genre) in book_index order.
    """
    os.makedirs(output, exist_ok=True)
    with tempfile.TemporaryDirectory() as temp_dir:
        _run_transform(user_ids, book_ids, os.path.join(output, artifacts.TRANSFORM_DIR), temp_dir)
    counts = np.bincount(book_index, minlength=len(book_ids))
    table = dict(catalog)
    table.update(book_index=list(range(len(book_ids))), book_id=list(book_ids),
                 num_interactions=counts.tolist())
    pq.write_table(pa.table({f.name: table[f.name] for f in CATALOG_SCHEMA},
                            schema=CATALOG_SCHEMA),
                   os.path.join(output, artifacts.CATALOG))
    for split, mask, shards in (("train", ~is_eval, num_shards), ("eval", is_eval, 1)):
        _write_split(os.path.join(output, split),
                     _examples(user_ids, book_ids, user_index[mask], book_index[mask],
                               rating[mask]), shards)
    manifest = {"contract_version": artifacts.CONTRACT_VERSION,
                "num_books": len(book_ids), "num_users": len(user_ids),
                "train_examples": int((~is_eval).sum()), "eval_examples": int(is_eval.sum()),
                "files": {"train": artifacts.shard_files("train", num_shards),
                          "eval": artifacts.shard_files("eval", 1)},
                "options": options or {}}
    with open(os.path.join(output, artifacts.MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=2)
    return manifest


def _index(raw_ids_per_row, all_ids):
    """Contract-ordered id list and each row's index."""
    counts = {}
    for x in raw_ids_per_row:
        counts[x] = counts.get(x, 0) + 1
    ids = sorted(all_ids, key=lambda x: (-counts.get(x, 0), int(x, 16) if not x.isdigit()
                                         else int(x)))
    position = {x: i for i, x in enumerate(ids)}
    return ids, np.array([position[x] for x in raw_ids_per_row], np.int64)


def write_prep(output, num_users=100, num_books=150, seed=0, num_shards=2, min_count=3):
    """Writes a tiny planted-structure PREP directory under `output`; returns facts about it."""
    users, books, rows = make_interactions(num_users, num_books, seed, min_count=min_count)
    user_ids, user_index = _index([r[0] for r in rows], users["user_id"])
    book_ids, book_index = _index([r[1] for r in rows], books["book_id"])
    rating = np.array([r[2] for r in rows], np.int64)
    is_eval = np.array([r[3] for r in rows], bool)
    rng = np.random.default_rng(seed + 1)
    genre_of = dict(zip(books["book_id"], books["genre"]))
    authors_by_genre = {g: [f"{g.capitalize()} Author {i}" for i in range(4)] for g in GENRES}
    counts = np.bincount(book_index, minlength=len(book_ids))
    catalog = {"work_id": [str(int(b) * 3) for b in book_ids],
               "title": [_title(rng, genre_of[b]) for b in book_ids],
               "authors": [list(rng.choice(authors_by_genre[genre_of[b]],
                                           size=int(rng.integers(1, 3)), replace=False))
                           for b in book_ids],
               "ratings_count": (counts * 10).tolist(),
               "average_rating": np.round(rng.uniform(3, 5, len(book_ids)), 2).tolist(),
               "genre": [None if i % 11 == 5 else genre_of[b] for i, b in enumerate(book_ids)]}
    manifest = write_prep_arrays(output, user_ids, book_ids, user_index, book_index, rating,
                                 is_eval, catalog, num_shards,
                                 {"fixture": "tests/model_fixtures.py", "seed": seed})
    return {"manifest": manifest, "user_vocab": user_ids, "book_vocab": book_ids,
            "user_genre": dict(zip(users["user_id"], users["genre"])), "book_genre": genre_of}


def prep_from_goodreads(input_dir, output, top_books=None, eval_fraction=0.1, seed=0,
                        num_shards=4):
    """A stand-in for beam_jobs.preprocess on UCSD-layout files (benchmarks only).

    Keeps rated interactions (rating >= 1) of the `top_books` most-rated books, drops
    duplicates, splits `eval_fraction` of interactions at random into eval.
    """
    import gzip

    import pandas as pd
    inter = pd.read_csv(os.path.join(input_dir, "goodreads_interactions.csv"))
    inter = inter[inter["rating"] >= 1].drop_duplicates(["user_id", "book_id"])
    user_map = pd.read_csv(os.path.join(input_dir, "user_id_map.csv"), dtype=str)
    book_map = pd.read_csv(os.path.join(input_dir, "book_id_map.csv"), dtype=str)
    user_hex = dict(zip(user_map["user_id_csv"].astype(int), user_map["user_id"]))
    book_gr = dict(zip(book_map["book_id_csv"].astype(int), book_map["book_id"]))
    inter["gr_book"] = inter["book_id"].map(book_gr)
    inter["hex_user"] = inter["user_id"].map(user_hex)
    counts = inter["gr_book"].value_counts()
    order = sorted(counts.index, key=lambda b: (-counts[b], int(b)))
    if top_books:
        order = order[:top_books]
    inter = inter[inter["gr_book"].isin(set(order))]
    book_position = {b: i for i, b in enumerate(order)}
    user_counts = inter["hex_user"].value_counts()
    user_ids = sorted(user_counts.index, key=lambda u: (-user_counts[u], int(u, 16)))
    user_position = {u: i for i, u in enumerate(user_ids)}
    user_index = inter["hex_user"].map(user_position).to_numpy(np.int64)
    book_index = inter["gr_book"].map(book_position).to_numpy(np.int64)
    rating = inter["rating"].to_numpy(np.int64)
    is_eval = np.random.default_rng(seed).random(len(inter)) < eval_fraction

    authors = {}
    with gzip.open(os.path.join(input_dir, "goodreads_book_authors.json.gz"), "rt") as handle:
        for line in handle:
            record = json.loads(line)
            authors[record["author_id"]] = record["name"]
    genres = {}
    with gzip.open(os.path.join(input_dir, "goodreads_book_genres_initial.json.gz"),
                   "rt") as handle:
        for line in handle:
            record = json.loads(line)
            if record["genres"]:
                genres[record["book_id"]] = max(record["genres"].items(),
                                                key=lambda kv: (kv[1], kv[0]))[0]
    meta = {}
    with gzip.open(os.path.join(input_dir, "goodreads_books.json.gz"), "rt") as handle:
        for line in handle:
            record = json.loads(line)
            if record["book_id"] in book_position:
                meta[record["book_id"]] = record
    catalog = {"work_id": [], "title": [], "authors": [], "ratings_count": [],
               "average_rating": [], "genre": []}
    for b in order:
        record = meta.get(b, {})
        catalog["work_id"].append(record.get("work_id", ""))
        catalog["title"].append(record.get("title", ""))
        catalog["authors"].append([authors.get(a["author_id"], "")
                                   for a in record.get("authors", [])])
        catalog["ratings_count"].append(int(record.get("ratings_count") or 0))
        catalog["average_rating"].append(float(record.get("average_rating") or 0))
        catalog["genre"].append(genres.get(b))
    return write_prep_arrays(output, user_ids, order, user_index, book_index, rating, is_eval,
                             catalog, num_shards, {"stand_in_for": "beam_jobs.preprocess",
                                                   "top_books": top_books,
                                                   "eval_fraction": eval_fraction})


if __name__ == "__main__":
    import sys
    print(json.dumps(write_prep(sys.argv[1])["manifest"], indent=2))
