"""Beam job: UCSD Goodreads files -> top-book interactions as TFRecords + tf.Transform vocabularies.

    python -m beam_jobs.preprocess --input DIR_OR_GS_PREFIX --output DIR_OR_GS_PREFIX \\
        [--top_books 3000] [--min_rating 1] [--min_user_ratings 1] [--eval_fraction 0.1] \\
        [--seed 42] [--input_format csv|dedup_json] [--config run_configs/NAME.yaml] \\
        [any Beam option: --runner, --project, --region, --temp_location, --setup_file, ...]

Selection, in this order (each step's removals are counted in manifest.json):
bad rows are rejected (`rejected/`, with the reason); interactions with
`rating < min_rating` are dropped; duplicate (user, book) pairs are collapsed to
one (the highest rating); the `top_books` books with most remaining interactions
are kept (ties: smaller Goodreads id first); users with fewer than
`min_user_ratings` interactions among those books are dropped. Each kept
interaction goes to train or eval by a hash of (user id, book id, seed).

The job works on blocks of rows (numpy/pyarrow), never one Python call per
rating, and partitions the ratings by user so that no worker holds them all.
Output layout: docs/artifacts.md section 1 and the README.
"""
import argparse
import logging
import math
import os
import shutil
import tempfile
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, GoogleCloudOptions, TestOptions

from pipeline_common import beam_runner, fileio
from pipeline_common import config
from beam_jobs import parsing
from beam_jobs import preprocess_steps as steps

MANIFEST = "manifest.json"
STATS = ".preprocess_stats.json"
TRANSFORM_DIR = "transform_output"
CATALOG = "book_catalog.parquet"

INPUT_FILES = {
    "interactions_csv": "goodreads_interactions.csv",
    "user_map": "user_id_map.csv",
    "book_map": "book_id_map.csv",
    "interactions_json": "goodreads_interactions_dedup.json",
    "books": "goodreads_books.json",
    "authors": "goodreads_book_authors.json",
    "genres": "goodreads_book_genres_initial.json",
}
FILTER_RULES = ("below_min_rating", "duplicate", "not_top_book", "user_below_min_ratings")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m beam_jobs.preprocess", description=__doc__.split("\n")[0])
    parser.add_argument("--input", required=True, help="directory or gs:// prefix in the UCSD layout")
    parser.add_argument("--output", required=True, help="directory or gs:// prefix to write")
    parser.add_argument("--input_format", choices=["csv", "dedup_json"], default="csv",
                        help="csv: goodreads_interactions.csv + id maps; dedup_json: "
                             "goodreads_interactions_dedup.json.gz")
    parser.add_argument("--top_books", type=int, default=3000, help="number of books to keep")
    parser.add_argument("--min_rating", type=int, default=1,
                        help="keep interactions with rating >= this (0 = not rated)")
    parser.add_argument("--min_user_ratings", type=int, default=1,
                        help="drop users with fewer kept interactions among the top books")
    parser.add_argument("--eval_fraction", type=float, default=0.1, help="share of pairs in eval")
    parser.add_argument("--seed", type=int, default=42, help="seed of the train/eval hash split")
    parser.add_argument("--max_reject_fraction", type=float, default=0.001,
                        help="fail when more than this share of input rows is malformed")
    parser.add_argument("--num_shards", type=int, default=0,
                        help="output shards (= user partitions); 0: one per ~64 MB of input")
    parser.add_argument("--block_size_mb", type=int, default=32, help="bytes read per work item")
    parser.add_argument("--compression_level", type=int, default=1,
                        help="gzip level of the TFRecord shards (1 fastest .. 9 smallest; written "
                             "with ISA-L: 1-3, 4-6 and 7-9 map onto its levels 1, 2, 3)")
    args, pipeline_args = config.parse_known_args(parser, argv)
    problems = []
    if args.top_books < 1:
        problems.append("--top_books must be >= 1")
    if not 0 <= args.min_rating <= 5:
        problems.append("--min_rating must be in 0..5 (ratings are 0..5)")
    if args.min_user_ratings < 1:
        problems.append("--min_user_ratings must be >= 1")
    if not 0.0 <= args.eval_fraction < 1.0:
        problems.append("--eval_fraction must be in [0, 1)")
    if not 0.0 <= args.max_reject_fraction <= 1.0:
        problems.append("--max_reject_fraction must be in [0, 1]")
    if args.num_shards < 0 or args.num_shards > 100_000:
        problems.append("--num_shards must be in 0..100000")
    if args.block_size_mb < 1:
        problems.append("--block_size_mb must be >= 1")
    if not 1 <= args.compression_level <= 9:
        problems.append("--compression_level must be in 1..9")
    if problems:
        parser.error("; ".join(problems))
    return args, pipeline_args


def _find(base, name):
    """Path of `name` or `name.gz` under base, or None."""
    for candidate in (name, name + ".gz"):
        path = fileio.join(base, candidate)
        if fileio.exists(path):
            return path
    return None


def plan_inputs(args):
    """Resolves and checks the input files before any work; SystemExit with a clear message."""
    wanted = (["interactions_csv", "user_map", "book_map"] if args.input_format == "csv"
              else ["interactions_json"]) + ["books", "authors"]
    paths = {}
    for key in wanted + ["genres"]:
        path = _find(args.input, INPUT_FILES[key])
        if path is None and key != "genres":
            raise SystemExit(f"preprocess: missing input {INPUT_FILES[key]}(.gz) under {args.input}")
        if path is None:
            continue
        header = {"interactions_csv": parsing.CSV_HEADER, "user_map": b"user_id_csv,user_id",
                  "book_map": b"book_id_csv,book_id"}.get(key)
        if parsing.first_data_line(path, header) is None:
            if key == "genres":
                continue
            raise SystemExit(f"preprocess: input {path} is empty (no data rows)")
        paths[key] = path
    return paths


def read_tasks(path, block_size):
    """Work items for one file: byte ranges when uncompressed, else the whole file."""
    if parsing.is_compressed(path):
        return [(path, None, None)]
    return [(path, s, e) for s, e in parsing.split_ranges(fileio.size(path), block_size)]


def auto_num_shards(paths, args):
    key = "interactions_csv" if args.input_format == "csv" else "interactions_json"
    size = fileio.size(paths[key]) * (5 if parsing.is_compressed(paths[key]) else 1)
    return max(1, min(4096, math.ceil(size / (64 << 20))))


def _remove(path):
    if "://" not in path:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
        return
    matches = fileio.glob(path.rstrip("/") + "/**") if not path.endswith(
        (".json", ".parquet")) else []
    if fileio.exists(path):
        matches.append(path)
    if matches:
        FileSystems.delete(matches)


def prepare_output(output):
    """Removes a previous run's outputs, manifest first, so nothing stale looks complete."""
    _remove(fileio.join(output, MANIFEST))
    for pattern in ("train-*.tfrecord.gz", "eval-*.tfrecord.gz"):
        stale = fileio.glob(fileio.join(output, pattern))
        if stale:
            FileSystems.delete(stale)
    for name in (CATALOG, STATS, TRANSFORM_DIR, "rejected"):
        _remove(fileio.join(output, name))
    if "://" not in output:
        os.makedirs(output, exist_ok=True)


def _read_file(p, label, path, block_size, reshuffle=True):
    """PCollection of line blocks of one file, spread over workers.

    Read tasks are always spread. The blocks of a compressed file (read as one
    stream) are spread too when `reshuffle`; the catalogue files skip that: their
    blocks are parsed where they are read (on all of that worker's cores) and
    only the slim parsed tables move, not the raw JSON.
    """
    blocks = (p | f"List{label}" >> beam.Create(read_tasks(path, block_size))
              | f"Spread{label}Tasks" >> beam.Reshuffle()
              | f"Read{label}" >> beam.ParDo(steps.ReadBlocks(block_size)))
    if reshuffle and parsing.is_compressed(path):
        blocks = blocks | f"Spread{label}Blocks" >> beam.Reshuffle()
    return blocks


def build_pipeline(p, args, paths, num_shards, transform_dir, tft_temp_dir):
    """Adds the whole job to pipeline `p`."""
    import tensorflow_transform.beam as tft_beam
    from beam_jobs import vocab_transform

    block_size = args.block_size_mb << 20
    out = args.output
    all_counts, all_rejects = [], []

    # Catalogue: the set of known book ids is needed to validate interactions.
    books = (_read_file(p, "Books", paths["books"], block_size, reshuffle=False)
             | "ParseBooks" >> beam.ParDo(steps.ParseCatalogFile("books")).with_outputs(
                 steps.REJECTS, steps.COUNTS, main="tables"))
    all_counts.append(books[steps.COUNTS])
    all_rejects.append(books[steps.REJECTS])
    catalog_ids = (books.tables | "CatalogIds" >> beam.Map(steps.catalog_ids_of)
                   | "UnionCatalogIds" >> beam.CombineGlobally(steps.SortedUnion()))

    # Interactions: blocks -> valid, rated rows.
    side = {"catalog_ids": beam.pvalue.AsSingleton(catalog_ids)}
    if args.input_format == "csv":
        user_map = (p | "UserMapPath" >> beam.Create([paths["user_map"]])
                    | "ReadUserMap" >> beam.Map(parsing.read_user_map))
        book_map = (p | "BookMapPath" >> beam.Create([paths["book_map"]])
                    | "ReadBookMap" >> beam.Map(parsing.read_book_map))
        side.update(user_map=beam.pvalue.AsSingleton(user_map),
                    book_map=beam.pvalue.AsSingleton(book_map))
        source = paths["interactions_csv"]
    else:
        source = paths["interactions_json"]
    parsed = (_read_file(p, "Interactions", source, block_size)
              | "ParseInteractions" >> beam.ParDo(
                  steps.ParseInteractions(args.input_format, args.min_rating), **side).with_outputs(
                      steps.REJECTS, steps.COUNTS, main="rows"))
    all_counts.append(parsed[steps.COUNTS])
    all_rejects.append(parsed[steps.REJECTS])

    # Too many bad rows: stop here, before the heavy steps, with one clear message.
    samples = parsed[steps.REJECTS] | "RejectSamples" >> beam.combiners.Top.Smallest(3)
    read_ok = ((parsed[steps.COUNTS], books[steps.COUNTS]) | "FlattenReadCounts" >> beam.Flatten()
               | "SumReadCounts" >> beam.CombineGlobally(steps.SumCounts())
               | "CheckRejects" >> beam.Map(steps.check_rejects, args.max_reject_fraction,
                                            beam.pvalue.AsSingleton(samples)))

    # Per-user partitions: de-duplicate, count books, pick the top books.
    partitions = (parsed.rows
                  | "PartitionByUser" >> beam.ParDo(steps.PartitionByUser(num_shards))
                  | "GroupByPartition" >> beam.GroupByKey()
                  | "Deduplicate" >> beam.Map(steps.dedup_partition, beam.pvalue.AsSingleton(read_ok)))
    all_counts.append(partitions | "DuplicateCounts" >> beam.Map(steps.duplicate_counts))
    top_ids = (partitions | "CountBooks" >> beam.Map(steps.book_counts_of)
               | "SumBookCounts" >> beam.CombineGlobally(steps.SumIdCounts())
               | "SelectTopBooks" >> beam.Map(steps.select_top_books, args.top_books))
    filtered = (partitions | "FilterBooksAndUsers" >> beam.ParDo(
        steps.FilterPartition(args.min_user_ratings), beam.pvalue.AsSingleton(top_ids)).with_outputs(
            steps.COUNTS, steps.KEPT_BOOK_COUNTS, main="rows"))
    all_counts.append(filtered[steps.COUNTS])

    # Global order of the kept users and books: the index shared by examples, TFT, catalogue.
    kept_books = (filtered[steps.KEPT_BOOK_COUNTS]
                  | "SumKeptBookCounts" >> beam.CombineGlobally(steps.SumIdCounts()))
    kept_users = (filtered.rows | "KeptUsers" >> beam.Map(steps.kept_users)
                  | "CollectKeptUsers" >> beam.combiners.ToList())
    index = (kept_users | "BuildIndex" >> beam.Map(
        steps.build_index, beam.pvalue.AsSingleton(kept_books), beam.pvalue.AsSingleton(top_ids)))
    all_counts.append(index | "IndexCounts" >> beam.Map(steps.index_counts))

    # Examples: one train and one eval shard per partition.
    written = (filtered.rows | "WriteExamples" >> beam.ParDo(
        steps.WriteExamples(out, num_shards, args.seed, args.eval_fraction, args.compression_level),
        beam.pvalue.AsSingleton(index)).with_outputs(steps.COUNTS, main="parts"))
    all_counts.append(written[steps.COUNTS])
    all_counts.append(written.parts | "CollectWritten" >> beam.combiners.ToList()
                      | "WriteEmptyShards" >> beam.Map(
                          steps.write_empty_shards, out, num_shards, args.compression_level))

    # tf.Transform: vocabularies in index order and the transform graph.
    with tft_beam.Context(temp_dir=tft_temp_dir, force_tf_compat_v1=False):
        analysis = index | "AnalysisInput" >> beam.FlatMap(steps.analysis_batches)
        transform_fn = ((analysis, vocab_transform.analysis_adapter_config())
                        | "AnalyzeVocabularies" >> tft_beam.AnalyzeDataset(vocab_transform.preprocessing_fn))
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(transform_dir)

    # Book catalogue for the kept books.
    kept_catalog = (books.tables | "FilterCatalog" >> beam.FlatMap(
        steps.filter_catalog, beam.pvalue.AsSingleton(top_ids))
                    | "CollectCatalog" >> beam.combiners.ToList())
    needed = kept_catalog | "NeededAuthors" >> beam.Map(steps.needed_author_ids)
    authors = (_read_file(p, "Authors", paths["authors"], block_size, reshuffle=False)
               | "ParseAuthors" >> beam.ParDo(steps.ParseCatalogFile("authors")).with_outputs(
                   steps.REJECTS, steps.COUNTS, main="tables"))
    all_counts.append(authors[steps.COUNTS])
    all_rejects.append(authors[steps.REJECTS])
    author_list = (authors.tables | "FilterAuthors" >> beam.FlatMap(
        steps.filter_authors, beam.pvalue.AsSingleton(needed))
                   | "CollectAuthors" >> beam.combiners.ToList())
    if "genres" in paths:
        genres = (_read_file(p, "Genres", paths["genres"], block_size, reshuffle=False)
                  | "ParseGenres" >> beam.ParDo(steps.ParseCatalogFile("genres")).with_outputs(
                      steps.REJECTS, steps.COUNTS, main="tables"))
        all_counts.append(genres[steps.COUNTS])
        all_rejects.append(genres[steps.REJECTS])
        genre_tables = genres.tables
    else:
        genre_tables = p | "NoGenres" >> beam.Create([])
    genre_list = (genre_tables | "FilterGenres" >> beam.FlatMap(
        steps.filter_genres, beam.pvalue.AsSingleton(top_ids))
                  | "CollectGenres" >> beam.combiners.ToList())
    all_counts.append(index | "WriteCatalog" >> beam.Map(
        steps.write_catalog, beam.pvalue.AsSingleton(kept_catalog), beam.pvalue.AsSingleton(author_list),
        beam.pvalue.AsSingleton(genre_list), fileio.join(out, CATALOG)))

    # Rejected rows with their reason, and all counts for the manifest.
    _ = (tuple(all_rejects) | "FlattenRejects" >> beam.Flatten()
         | "FormatRejects" >> beam.Map(steps.reject_record)
         | "WriteRejects" >> beam.io.WriteToText(fileio.join(out, "rejected", "rejected"),
                                                 file_name_suffix=".jsonl"))
    _ = (tuple(all_counts) | "FlattenCounts" >> beam.Flatten()
         | "SumCounts" >> beam.CombineGlobally(steps.SumCounts())
         | "WriteCounts" >> beam.Map(steps.write_stats, fileio.join(out, STATS)))


def _failure_message(err):
    text = str(err)
    start = text.find(steps.FAIL_MARK)
    if start < 0:
        return None
    start += len(steps.FAIL_MARK)
    end = text.find(" :END", start)
    return text[start:end if end > 0 else None].strip()


class OutputCheckError(RuntimeError):
    """The job ran but its outputs fail a final consistency check (never expected)."""


def reconcile(counts):
    """Checks rows read = kept + filtered + rejected and kept = train + eval."""
    rejected = {k.split("/", 1)[1]: v for k, v in counts.items() if k.startswith("rejected/")}
    filtered = {rule: counts.get("filtered/" + rule, 0) for rule in FILTER_RULES}
    kept = counts.get("train_examples", 0) + counts.get("eval_examples", 0)
    total = kept + sum(filtered.values()) + sum(rejected.values())
    if total != counts.get("rows_read", 0):
        raise OutputCheckError(
            f"rows read ({counts.get('rows_read', 0)}) != kept ({kept}) + filtered "
            f"({sum(filtered.values())}) + rejected ({sum(rejected.values())})")
    return kept, filtered, rejected


def copy_tree(src_dir, dest):
    """Copies a local directory tree to `dest` (local or gs://) via FileSystems."""
    for root, _, files in os.walk(src_dir):
        rel = os.path.relpath(root, src_dir)
        for name in files:
            target = fileio.join(dest, *([] if rel == "." else rel.split(os.sep)), name)
            with open(os.path.join(root, name), "rb") as handle:
                fileio.write_bytes(target, handle.read())


def verify_vocabularies(output, counts):
    """The vocabularies must list the index: books as in book_catalog.parquet, users by checksum."""
    import io
    import zlib
    import pyarrow.parquet as pq
    assets = fileio.join(output, TRANSFORM_DIR, "transform_fn", "assets")
    books = fileio.read_bytes(fileio.join(assets, "book_id_vocab")).decode().splitlines()
    catalog = pq.read_table(io.BytesIO(fileio.read_bytes(fileio.join(output, CATALOG))))
    if books != catalog.column("book_id").to_pylist():
        raise OutputCheckError(f"book_id_vocab ({len(books)} entries) differs from "
                               f"book_catalog.parquet ({catalog.num_rows} books in book_index order)")
    users = fileio.read_bytes(fileio.join(assets, "user_id_vocab"))
    num_users = users.count(b"\n")
    if len(books) != counts["num_books"] or num_users != counts["num_users"]:
        raise OutputCheckError(f"the vocabularies have {num_users} users / {len(books)} books, the "
                               f"index {counts['num_users']} users / {counts['num_books']} books")
    expected_crc = counts.get(steps.USER_VOCAB_CRC)
    if expected_crc is not None and zlib.crc32(users) != expected_crc:
        raise OutputCheckError("user_id_vocab lists the right number of users but not the index's "
                               "users in user_index order")


def check_outputs(output, counts):
    """Final checks; a failure is one line (SystemExit) and no manifest is written."""
    try:
        reconcile_result = reconcile(counts)
        verify_vocabularies(output, counts)
    except OutputCheckError as err:
        raise SystemExit(f"preprocess: internal error, the outputs under {output} are inconsistent "
                         f"and no manifest.json was written: {err}. Re-run the job.") from None
    return reconcile_result


def local_defaults(options, pipeline_args):
    """Local runs default to one in-process worker; an explicit worker flag wins.

    This job's heavy steps use every core on their own (pyarrow parses CSV blocks
    on threads, shards are deflated in a helper thread while the next block is
    encoded), and its tf.Transform part needs TensorFlow. FnApiRunner worker
    processes would each import TensorFlow and copy every block through gRPC,
    which measured slower on this job (benchmarks/bench_preprocess.py prints both).
    `--direct_num_workers=N` or `--direct_running_mode=...` keep the usual behaviour
    (`multi_threading` is refused by beam_runner.make_options: it drops elements;
    here it lost whole elements in 3 of 3 runs on 20M rows).
    """
    if not beam_runner.is_local(options):
        return options
    direct = options.view_as(DirectOptions)
    given = {arg.split("=", 1)[0] for arg in pipeline_args if arg.startswith("--")}
    if not given & {"--direct_num_workers", "--direct_running_mode"}:
        direct.direct_num_workers = 1
        direct.direct_running_mode = "in_memory"
    return options


def run(argv=None):
    """Runs the preprocess job; returns the manifest dict ({"dry_run": True, ...} for a dry run)."""
    args, pipeline_args = parse_args(argv)
    options = local_defaults(beam_runner.make_options(pipeline_args), pipeline_args)
    dry_run = options.view_as(TestOptions).dry_run
    local = beam_runner.is_local(options)

    paths = plan_inputs(args)
    num_shards = args.num_shards or auto_num_shards(paths, args)
    if not dry_run:
        prepare_output(args.output)
    staging = tempfile.mkdtemp(prefix="preprocess-") if (local or dry_run) else None
    if local:
        transform_dir = os.path.join(staging, TRANSFORM_DIR)
        tft_temp = os.path.join(staging, "tft_tmp")
    else:
        transform_dir = fileio.join(args.output, TRANSFORM_DIR)
        temp_root = options.view_as(GoogleCloudOptions).temp_location or fileio.join(args.output, ".tmp")
        tft_temp = fileio.join(temp_root, "tft-" + uuid.uuid4().hex[:8])
        if dry_run:  # tf.Transform creates its temp dir while the job is built: keep that offline
            tft_temp = os.path.join(staging, "tft_tmp")

    try:
        pipeline = beam_runner.make_pipeline(options)
        build_pipeline(pipeline, args, paths, num_shards, transform_dir, tft_temp)
        try:
            result = pipeline.run()
            if dry_run:
                logging.info("dry run: the job was built but not run")
                return {"dry_run": True, "result": result}
            result.wait_until_finish()
        except Exception as err:  # pylint: disable=broad-except
            message = _failure_message(err)
            if message:
                raise SystemExit(f"preprocess: {message}") from None
            raise
        counts = fileio.read_json(fileio.join(args.output, STATS))
        if local:
            copy_tree(transform_dir, fileio.join(args.output, TRANSFORM_DIR))
        kept, filtered, rejected = check_outputs(args.output, counts)
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    manifest = {
        "options": {k: v for k, v in sorted(vars(args).items())},
        "pipeline_options": options.get_all_options(drop_default=True, retain_unknown_options=True),
        "num_shards": num_shards,
        "input_files": {key: {"path": path, "bytes": fileio.size(path)} for key, path in sorted(paths.items())},
        "rows_read": counts["rows_read"],
        "kept": kept,
        "filtered": filtered,
        "rejected": dict(sorted(rejected.items())),
        "rejected_total": sum(rejected.values()),
        "train_examples": counts.get("train_examples", 0),
        "eval_examples": counts.get("eval_examples", 0),
        "num_users": counts["num_users"],
        "num_books": counts["num_books"],
        "catalog": {k.split("/", 1)[1] if "/" in k else k: v for k, v in counts.items()
                    if k.startswith("catalog")},
        "feature_spec": {"user_id": "bytes", "book_id": "bytes", "user_index": "int64",
                         "book_index": "int64", "rating": "int64"},
        "files": {"train": f"train-*-of-{num_shards:05d}.tfrecord.gz",
                  "eval": f"eval-*-of-{num_shards:05d}.tfrecord.gz", "catalog": CATALOG,
                  "transform_output": TRANSFORM_DIR, "rejected": "rejected/rejected-*.jsonl"},
        "book_index_order": "kept interactions descending, then Goodreads book id ascending",
        "user_index_order": "kept interactions descending, then hex user id ascending",
    }
    _remove(fileio.join(args.output, STATS))
    fileio.write_json(fileio.join(args.output, MANIFEST), manifest)
    logging.info("preprocess: %d rows read, %d kept (%d train, %d eval), %d books, %d users -> %s",
                 manifest["rows_read"], kept, manifest["train_examples"], manifest["eval_examples"],
                 manifest["num_books"], manifest["num_users"], args.output)
    return manifest


if __name__ == "__main__":
    from pipeline_common.logs import configure_logging
    configure_logging()
    run()
