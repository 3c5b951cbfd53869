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
import logging
import math
import os
import shutil
import tempfile
import uuid
import zlib

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, GoogleCloudOptions, TestOptions

from pipeline_common import artifacts, beam_runner, cli, config, fileio
from pipeline_common.entrypoint import main
from pipeline_common.errors import UserError
from beam_jobs import counting, errors, parsing
from beam_jobs.stages import (
    BuildIndex, BuildVocabularies, CatalogBookIds, Deduplicate, DropBelowMinRating, DropSparseUsers,
    ReadBlocksOfFile, ReadCatalogFile, ReadIdMaps, RejectMalformed, SelectTopBooks, StopIfMostlyMalformed,
    WriteCatalog, WriteCounts, WriteExamples, WriteRejects)

STATS = ".preprocess_stats.json"  # the job's summed counts, read by the driver, then removed

INPUT_FILES = {
    "interactions_csv": artifacts.INTERACTIONS_CSV,
    "user_map": artifacts.USER_ID_MAP,
    "book_map": artifacts.BOOK_ID_MAP,
    "interactions_json": artifacts.INTERACTIONS_DEDUP_JSON,
    "books": artifacts.BOOKS_JSON,
    "authors": artifacts.AUTHORS_JSON,
    "genres": artifacts.GENRES_JSON,
}


def parse_args(argv):
    parser = cli.ArgumentParser(prog="python -m beam_jobs.preprocess", description=__doc__.split("\n")[0])
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
    """Resolves and checks the input files before any work; a UserError names what is wrong."""
    wanted = (["interactions_csv", "user_map", "book_map"] if args.input_format == "csv"
              else ["interactions_json"]) + ["books", "authors"]
    paths = {}
    for key in wanted + ["genres"]:
        path = _find(args.input, INPUT_FILES[key])
        if path is None and key != "genres":
            raise UserError(f"missing input {INPUT_FILES[key]}(.gz) under {args.input}")
        if path is None:
            continue
        header = {"interactions_csv": parsing.CSV_HEADER, "user_map": b"user_id_csv,user_id",
                  "book_map": b"book_id_csv,book_id"}.get(key)
        try:
            first = parsing.first_data_line(path, header)
        except (ValueError, OSError, EOFError, zlib.error) as err:
            raise UserError(f"cannot read input {path}: {err}") from None
        if first is None:
            if key == "genres":
                continue
            raise UserError(f"input {path} is empty (no data rows)")
        paths[key] = path
    return paths


def auto_num_shards(paths, args):
    key = "interactions_csv" if args.input_format == "csv" else "interactions_json"
    size = fileio.size(paths[key]) * (5 if parsing.is_compressed(paths[key]) else 1)
    return max(1, min(4096, math.ceil(size / (64 << 20))))


def prepare_output(output):
    """Removes a previous run's outputs, manifest first, so nothing stale looks complete."""
    fileio.remove_tree(fileio.join(output, artifacts.MANIFEST))
    for split in artifacts.SPLITS:
        stale = fileio.glob(fileio.join(output, artifacts.shard_pattern(split)))
        if stale:
            fileio.delete(stale)
    for name in (artifacts.CATALOG, STATS, artifacts.TRANSFORM_DIR, artifacts.REJECTED_DIR):
        fileio.remove_tree(fileio.join(output, name))
    if "://" not in output:
        os.makedirs(output, exist_ok=True)


def build_pipeline(p, args, paths, num_shards, transform_dir, tft_temp_dir):
    """Adds the whole job to pipeline `p`: the README's selection steps, in order, then the writers."""
    block_size = args.block_size_mb << 20
    out = args.output
    # The catalogue's book ids are needed to validate interactions.
    books = p | "ReadBooks" >> ReadCatalogFile("books", paths["books"], block_size)
    catalog_ids = books.rows | "CatalogBookIds" >> CatalogBookIds()
    if args.input_format == "csv":
        id_maps = p | "ReadIdMaps" >> ReadIdMaps(paths["user_map"], paths["book_map"])
        source = paths["interactions_csv"]
    else:
        id_maps, source = None, paths["interactions_json"]

    valid = (p | "ReadInteractionBlocks" >> ReadBlocksOfFile(source, block_size)
             | "RejectMalformed" >> RejectMalformed(args.input_format, catalog_ids, id_maps))
    reject_check = ((valid.counts, books.counts, valid.rejects)
                    | "StopIfMostlyMalformed" >> StopIfMostlyMalformed(args.max_reject_fraction))
    rated = valid.rows | "DropBelowMinRating" >> DropBelowMinRating(args.min_rating, id_maps)
    deduped = rated.rows | "Deduplicate" >> Deduplicate(num_shards, reject_check)
    top, top_ids = deduped.rows | "SelectTopBooks" >> SelectTopBooks(args.top_books)
    kept = top.rows | "DropSparseUsers" >> DropSparseUsers(args.min_user_ratings)

    index = kept.rows | "BuildIndex" >> BuildIndex(top_ids)
    _ = index.rows | "BuildVocabularies" >> BuildVocabularies(transform_dir, tft_temp_dir)
    examples = kept.rows | "WriteExamples" >> WriteExamples(
        out, num_shards, args.seed, args.eval_fraction, args.compression_level, index.rows)
    catalog = index.rows | "WriteCatalog" >> WriteCatalog(
        out, books.rows, top_ids, paths["authors"], paths.get("genres"), block_size)

    stages = (books, valid, rated, deduped, top, kept, index, examples, catalog)
    _ = tuple(s.rejects for s in stages if s.rejects is not None) | "WriteRejects" >> WriteRejects(out)
    counts = tuple(s.counts for s in stages)
    if id_maps is not None:   # rows of the id maps, bad, repeated or conflicting (parsing._id_map)
        counts += tuple(pcoll | f"{name}Counts" >> beam.Map(lambda m: m["counts"])
                        for name, pcoll in (("UserMap", id_maps.user_map), ("BookMap", id_maps.book_map)))
    _ = counts | "WriteCounts" >> WriteCounts(fileio.join(out, STATS))


class OutputCheckError(RuntimeError):
    """The job ran but its outputs fail a final consistency check (never expected)."""


def reconcile(counts):
    """Checks rows read = kept + filtered + rejected and kept = train + eval."""
    rejected = counting.rejected_by_reason(counts)
    filtered = {rule: counts.get(counting.FILTERED + rule, 0) for rule in counting.FILTER_RULES}
    kept = counts.get("train_examples", 0) + counts.get("eval_examples", 0)
    total = kept + sum(filtered.values()) + sum(rejected.values())
    if total != counts.get(counting.ROWS_READ, 0):
        raise OutputCheckError(
            f"rows read ({counts.get(counting.ROWS_READ, 0)}) != kept ({kept}) + filtered "
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
    books = fileio.read_bytes(
        artifacts.vocabulary_path(output, artifacts.BOOK_VOCAB)).decode().splitlines()
    catalog = artifacts.read_parquet(fileio.join(output, artifacts.CATALOG), columns=["book_id"])
    if books != catalog.column("book_id").to_pylist():
        raise OutputCheckError(f"book_id_vocab ({len(books)} entries) differs from "
                               f"book_catalog.parquet ({catalog.num_rows} books in book_index order)")
    users = fileio.read_bytes(artifacts.vocabulary_path(output, artifacts.USER_VOCAB))
    num_users = users.count(b"\n")
    if len(books) != counts["num_books"] or num_users != counts["num_users"]:
        raise OutputCheckError(f"the vocabularies have {num_users} users / {len(books)} books, the "
                               f"index {counts['num_users']} users / {counts['num_books']} books")
    expected_crc = counts.get(counting.USER_VOCAB_CRC)
    if expected_crc is not None and zlib.crc32(users) != expected_crc:
        raise OutputCheckError("user_id_vocab lists the right number of users but not the index's "
                               "users in user_index order")


def check_outputs(output, counts):
    """Final checks; a failure is one line (UserError) and no manifest is written."""
    try:
        reconcile_result = reconcile(counts)
        verify_vocabularies(output, counts)
    except OutputCheckError as err:
        raise UserError(f"internal error, the outputs under {output} are inconsistent "
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
        transform_dir = os.path.join(staging, artifacts.TRANSFORM_DIR)
        tft_temp = os.path.join(staging, "tft_tmp")
    else:
        transform_dir = fileio.join(args.output, artifacts.TRANSFORM_DIR)
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
            message = errors.failure_message(err)
            if message:
                raise UserError(message) from None
            raise
        counts = fileio.read_json(fileio.join(args.output, STATS))
        if local:
            copy_tree(transform_dir, fileio.join(args.output, artifacts.TRANSFORM_DIR))
        kept, filtered, rejected = check_outputs(args.output, counts)
    finally:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
    manifest = {
        "contract_version": artifacts.CONTRACT_VERSION,
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
        "id_maps": {k.split("/", 1)[1]: v for k, v in counts.items() if k.startswith("id_maps/")},
        "feature_spec": dict(artifacts.EXAMPLE_FEATURES),
        "files": {**{split: artifacts.shard_files(split, num_shards) for split in artifacts.SPLITS},
                  "train_pairs": [artifacts.pairs_file(p, num_shards) for p in range(num_shards)],
                  "catalog": artifacts.CATALOG, "transform_output": artifacts.TRANSFORM_DIR,
                  "rejected": f"{artifacts.REJECTED_DIR}/{artifacts.REJECTED_PREFIX}-*{artifacts.REJECTED_SUFFIX}"},
        "book_index_order": "kept interactions descending, then Goodreads book id ascending",
        "user_index_order": "kept interactions descending, then hex user id ascending",
    }
    fileio.remove_tree(fileio.join(args.output, STATS))
    fileio.write_json(fileio.join(args.output, artifacts.MANIFEST), manifest)
    logging.info("preprocess: %d rows read, %d kept (%d train, %d eval), %d books, %d users -> %s",
                 manifest["rows_read"], kept, manifest["train_examples"], manifest["eval_examples"],
                 manifest["num_books"], manifest["num_users"], args.output)
    return manifest


if __name__ == "__main__":
    main(run, "python -m beam_jobs.preprocess")
