"""End-to-end checks of `beam_jobs.preprocess` against an independent pandas computation.

Pipeline runs are slow to start (Beam workers, tf.Transform), so a handful of
module-scoped runs is shared by all tests:

* run A: CSV input with injected bad rows, default local runner (multi-process,
  one worker per core);
* run B: the same interactions as goodreads_interactions_dedup.json.gz, one
  in-process worker -> must give byte-identical shards;
* a mostly-garbage input that must stop with one clear message;
* gs:// input and output against gcp-storage-emulator;
* a DataflowRunner job built offline (dry run) that would stage setup.py.
"""
import glob
import json
import os
import shutil
import tarfile
import zlib

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from beam_jobs import preprocess
from sample_goodreads import generate as sample_data
from pipeline_common import artifacts
from pipeline_common.errors import UserError
from tests.gcs_emulator import gcs_emulator  # noqa: F401  (pytest fixture)

TOP_BOOKS = 40
MIN_USER_RATINGS = 2
EVAL_FRACTION = 0.2
SEED = 5
SHARDS = 3
MISSING_GID = 987654321  # a Goodreads id in book_id_map.csv but not in the catalogue

# Injected CSV rows and the reason each must be rejected with.
BAD_ROWS = {
    "1,2,3": "wrong_column_count",
    "0,1,1,4,0,7": "wrong_column_count",
    "x7,5,1,4,0": "not_an_integer",
    "3,4,1,4.5,0": "not_an_integer",
    "3,4,1,9,0": "rating_out_of_range",
    "999999,1,1,4,0": "user_not_in_map",
    "2,888888,1,4,0": "book_not_in_map",
}


def _common_args(out, *extra):
    return ["--output", str(out), "--top_books", str(TOP_BOOKS),
            "--min_user_ratings", str(MIN_USER_RATINGS), "--eval_fraction", str(EVAL_FRACTION),
            "--seed", str(SEED), "--num_shards", str(SHARDS), "--max_reject_fraction", "0.01",
            *extra]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Generated UCSD-layout data plus broken rows, a duplicate and an uncatalogued book."""
    base = tmp_path_factory.mktemp("goodreads")
    sample_data.run(["--output", str(base), "--ratings", "3000", "--books", "300",
                     "--users", "120", "--seed", "3", "--dedup_json"])
    csv_path = base / artifacts.INTERACTIONS_CSV
    lines = csv_path.read_text().splitlines()
    rated = next(line for line in lines[1:] if line.split(",")[3] != "0")
    book_map = (base / artifacts.BOOK_ID_MAP).read_text().splitlines()
    missing_csv_id = len(book_map) - 1
    book_map.append(f"{missing_csv_id},{MISSING_GID}")
    (base / artifacts.BOOK_ID_MAP).write_text("\n".join(book_map) + "\n")
    extra = list(BAD_ROWS) + [rated, f"0,{missing_csv_id},1,5,0"]
    # Bad rows in the middle and at the end; an exact duplicate of a rated row.
    middle = len(lines) // 2
    lines = lines[:middle] + extra[:3] + lines[middle:] + extra[3:]
    csv_path.write_text("\n".join(lines) + "\n")
    return base


def _run(args):
    return preprocess.run(args)


@pytest.fixture(scope="module")
def run_a(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep_a")
    # Worker processes here and one in-process worker in run_b: the shards must not differ.
    manifest = _run(["--input", str(data_dir), *_common_args(
        out, "--direct_running_mode=multi_processing", "--direct_num_workers=2")])
    return out, manifest


@pytest.fixture(scope="module")
def run_b(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep_b")
    manifest = _run(["--input", str(data_dir), "--input_format", "dedup_json",
                     *_common_args(out, "--direct_num_workers=1")])
    return out, manifest


# ----------------------------------------------------------------------------- reference

@pytest.fixture(scope="module")
def reference(data_dir):
    """The same selection computed independently with pandas from the raw files."""
    lines = (data_dir / artifacts.INTERACTIONS_CSV).read_text().splitlines()[1:]
    rows_read = len([line for line in lines if line.strip()])
    fields = [line.split(",") for line in lines if line.strip()]
    ok = [f for f in fields if len(f) == 5 and all(x.lstrip("-").isdigit() for x in f)]
    df = pd.DataFrame(ok, columns=["u", "b", "is_read", "rating", "is_reviewed"]).astype(np.int64)
    umap = pd.read_csv(data_dir / artifacts.USER_ID_MAP, dtype={"user_id_csv": np.int64, "user_id": str})
    bmap = pd.read_csv(data_dir / artifacts.BOOK_ID_MAP, dtype={"book_id_csv": np.int64, "book_id": np.int64})
    books = pd.read_json(data_dir / (artifacts.BOOKS_JSON + ".gz"), lines=True, dtype=False)
    catalog_ids = set(books["book_id"].astype(np.int64))
    df = df[(df.rating >= 0) & (df.rating <= 5)]
    df = df.merge(umap, left_on="u", right_on="user_id_csv").merge(bmap, left_on="b", right_on="book_id_csv")
    df = df[df.book_id.isin(catalog_ids)]
    valid = len(df)
    rated = df[df.rating >= 1]
    dedup = rated.groupby(["user_id", "book_id"], as_index=False)["rating"].max()
    counts = dedup.groupby("book_id").size().reset_index(name="n")
    counts = counts.sort_values(["n", "book_id"], ascending=[False, True])
    top = counts.head(TOP_BOOKS)
    kept = dedup[dedup.book_id.isin(top.book_id)]
    per_user = kept.groupby("user_id").size()
    kept = kept[kept.user_id.isin(per_user[per_user >= MIN_USER_RATINGS].index)]
    return {
        "rows_read": rows_read,
        "rejected": rows_read - valid,
        "below_min_rating": valid - len(rated),
        "duplicate": len(rated) - len(dedup),
        "not_top_book": len(dedup) - int(dedup.book_id.isin(top.book_id).sum()),
        "kept": kept.reset_index(drop=True),
        "top_books": set(top.book_id.astype(str)),
        "umap": umap,
    }


def read_examples(out, split):
    files = sorted(glob.glob(os.path.join(out, artifacts.shard_pattern(split))))
    assert files, f"no {split} shards in {out}"
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096).map(
        lambda x: tf.io.parse_example(x, artifacts.example_feature_spec()))
    cols = {k: [] for k in artifacts.EXAMPLE_FEATURES}
    for batch in dataset:
        for key in cols:
            cols[key].append(batch[key].numpy())
    frame = pd.DataFrame({k: np.concatenate(v) if v else [] for k, v in cols.items()})
    for key in ("user_id", "book_id"):
        frame[key] = frame[key].map(lambda b: b.decode())
    return frame


def read_catalog(out):
    return artifacts.read_parquet(os.path.join(out, artifacts.CATALOG)).to_pandas()


# ----------------------------------------------------------------------------- run A

def test_manifest_counts_reconcile_and_match_pandas(run_a, reference):
    out, manifest = run_a
    assert manifest == json.load(open(os.path.join(out, artifacts.MANIFEST)))
    assert manifest["rows_read"] == reference["rows_read"]
    assert manifest["rows_read"] == (manifest["kept"] + sum(manifest["filtered"].values())
                                     + sum(manifest["rejected"].values()))
    assert manifest["kept"] == manifest["train_examples"] + manifest["eval_examples"]
    assert manifest["kept"] == len(reference["kept"])
    assert manifest["rejected_total"] == reference["rejected"]
    for rule in ("below_min_rating", "duplicate", "not_top_book"):
        assert manifest["filtered"][rule] == reference[rule], rule
    assert manifest["num_books"] == TOP_BOOKS
    assert manifest["num_users"] == reference["kept"].user_id.nunique()


def test_every_kept_interaction_is_once_in_train_or_eval(run_a, reference):
    out, manifest = run_a
    train, evaluation = read_examples(out, "train"), read_examples(out, "eval")
    assert len(train) == manifest["train_examples"] and len(evaluation) == manifest["eval_examples"]
    both = pd.concat([train, evaluation])
    assert not both.duplicated(["user_id", "book_id"]).any()
    expected = reference["kept"].assign(book_id=lambda d: d.book_id.astype(str))
    got = both[["user_id", "book_id", "rating"]].sort_values(["user_id", "book_id"]).reset_index(drop=True)
    want = expected[["user_id", "book_id", "rating"]].sort_values(["user_id", "book_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert 0 < len(evaluation) < len(both) * 0.4


def test_kept_books_are_the_top_books_in_documented_order(run_a, reference):
    out, _ = run_a
    catalog = read_catalog(out)
    assert set(catalog.book_id) == reference["top_books"]
    assert list(catalog.book_index) == list(range(TOP_BOOKS))
    examples = pd.concat([read_examples(out, "train"), read_examples(out, "eval")])
    per_book = examples.groupby("book_id").size()
    assert list(catalog.num_interactions) == [int(per_book.get(b, 0)) for b in catalog.book_id]
    ranked = catalog.assign(num=catalog.book_id.astype(np.int64)).sort_values(
        ["num_interactions", "num"], ascending=[False, True])
    assert list(ranked.book_index) == list(range(TOP_BOOKS))
    index_of = dict(zip(catalog.book_id, catalog.book_index))
    assert (examples.book_index == examples.book_id.map(index_of)).all()


def test_catalog_has_titles_authors_and_genres(run_a, data_dir):
    out, _ = run_a
    catalog = read_catalog(out)
    books = pd.read_json(data_dir / (artifacts.BOOKS_JSON + ".gz"), lines=True, dtype=False).set_index("book_id")
    authors = pd.read_json(data_dir / (artifacts.AUTHORS_JSON + ".gz"), lines=True, dtype=False)
    names = dict(zip(authors.author_id.astype(str), authors.name))
    for row in catalog.itertuples():
        src = books.loc[row.book_id]
        assert row.title == src.title and row.work_id == src.work_id
        assert list(row.authors) == [names[a["author_id"]] for a in src.authors]
        assert row.ratings_count == int(src.ratings_count)
        assert row.average_rating == pytest.approx(float(src.average_rating))
    assert catalog.genre.notna().all()


def test_vocabularies_and_transform_map_raw_ids_like_the_examples(run_a):
    import tensorflow_transform as tft
    out, manifest = run_a
    tft_out = tft.TFTransformOutput(os.path.join(out, artifacts.TRANSFORM_DIR))
    books = open(tft_out.vocabulary_file_by_name(artifacts.BOOK_VOCAB)).read().split()
    users = open(tft_out.vocabulary_file_by_name(artifacts.USER_VOCAB)).read().split()
    assert books == list(read_catalog(out).book_id)
    assert len(users) == manifest["num_users"]
    examples = read_examples(out, "train").head(200)
    assert (examples.user_index == examples.user_id.map({u: i for i, u in enumerate(users)})).all()
    raw = {"user_id": tf.constant(list(examples.user_id) + ["unknown-user"]),
           "book_id": tf.constant(list(examples.book_id) + ["1"])}
    mapped = tft_out.transform_raw_features(raw, drop_unused_features=True)
    assert list(mapped["user_index"].numpy()) == list(examples.user_index) + [-1]
    assert list(mapped["book_index"].numpy()) == list(examples.book_index) + [-1]


def test_bad_rows_are_rejected_with_their_reason(run_a):
    out, manifest = run_a
    records = [json.loads(line) for path in glob.glob(os.path.join(out, artifacts.REJECTED_DIR, "*" + artifacts.REJECTED_SUFFIX))
               for line in open(path)]
    by_row = {r["row"]: r["reason"] for r in records}
    for row, reason in BAD_ROWS.items():
        assert by_row.get(row) == reason, row
    missing = [json.loads(r["row"]) for r in records if r["reason"] == "book_not_in_catalog"]
    assert [m["book_id"] for m in missing] == [str(MISSING_GID)]
    assert len(missing[0]["user_id"]) == 32 and int(missing[0]["user_id"], 16) >= 0
    assert missing[0]["rating"] in range(6)
    assert len(records) == manifest["rejected_total"] == len(BAD_ROWS) + 1
    assert manifest["filtered"]["duplicate"] == 1


# ----------------------------------------------------------------------------- run B

def test_rerun_on_other_format_and_worker_count_gives_identical_shards(run_a, run_b):
    out_a, manifest_a = run_a
    out_b, manifest_b = run_b
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(out_a, "*.tfrecord.gz")))
    assert names == sorted(os.path.basename(p) for p in glob.glob(os.path.join(out_b, "*.tfrecord.gz")))
    assert len(names) == 2 * SHARDS
    for name in names:
        with open(os.path.join(out_a, name), "rb") as a, open(os.path.join(out_b, name), "rb") as b:
            assert a.read() == b.read(), name  # byte-identical files, not just the same set
    for key in ("kept", "train_examples", "eval_examples", "num_users", "num_books"):
        assert manifest_a[key] == manifest_b[key]
    assert manifest_b["rejected_total"] == 0
    assert read_catalog(out_a).equals(read_catalog(out_b))


# ----------------------------------------------------------------------------- failures

def _copy_layout(src, dst, interactions_lines):
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name != "goodreads_interactions.csv":
            shutil.copy(os.path.join(src, name), dst)
    with open(os.path.join(dst, "goodreads_interactions.csv"), "w") as handle:
        handle.write("\n".join(interactions_lines) + "\n")


def test_mostly_garbage_input_stops_with_one_clear_message(data_dir, tmp_path):
    good = (data_dir / "goodreads_interactions.csv").read_text().splitlines()[:60]
    garbage = [f"garbage line {i}" for i in range(200)]
    src = tmp_path / "garbage_in"
    _copy_layout(data_dir, src, good + garbage)
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        _run(["--input", str(src), "--output", str(out), "--direct_num_workers=1"])
    message = str(err.value)
    assert "preprocess" not in message and "PREPROCESS_FAILED" not in message   # main adds "prog: error: "
    assert "malformed" in message and "--max_reject_fraction" in message
    assert "\n" not in message.strip()
    assert not (out / artifacts.MANIFEST).exists()


def test_missing_or_empty_inputs_fail_before_any_work(data_dir, tmp_path):
    with pytest.raises(UserError, match="missing input goodreads_interactions.csv"):
        _run(["--input", str(tmp_path / "nothing"), "--output", str(tmp_path / "o")])
    src = tmp_path / "empty_in"
    _copy_layout(data_dir, src, ["user_id,book_id,is_read,rating,is_reviewed"])
    with pytest.raises(UserError, match="is empty"):
        _run(["--input", str(src), "--output", str(tmp_path / "o")])
    with pytest.raises(SystemExit):
        _run(["--input", str(src), "--output", str(tmp_path / "o"), "--min_rating", "7"])


def _final_check_inputs(run_a, dst):
    """A copy of run A's vocabularies and catalogue, and the counts the driver checks them with."""
    out, manifest = run_a
    shutil.copytree(os.path.join(out, artifacts.TRANSFORM_DIR), dst / artifacts.TRANSFORM_DIR)
    shutil.copy(os.path.join(out, artifacts.CATALOG), dst)
    vocab = dst / artifacts.TRANSFORM_DIR / "transform_fn" / "assets" / artifacts.USER_VOCAB
    counts = {"rows_read": manifest["rows_read"], "train_examples": manifest["train_examples"],
              "eval_examples": manifest["eval_examples"], "num_users": manifest["num_users"],
              "num_books": manifest["num_books"],
              "check/user_vocab_crc32": zlib.crc32(vocab.read_bytes())}
    counts.update({"filtered/" + k: v for k, v in manifest["filtered"].items()})
    counts.update({"rejected/" + k: v for k, v in manifest["rejected"].items()})
    return vocab, counts


def test_a_wrong_user_vocabulary_fails_the_final_check_in_one_line(run_a, tmp_path):
    # What a multi_threading run once produced: tf.Transform's user vocabulary
    # missing entries. The final check must say so in one line, not a traceback.
    vocab, counts = _final_check_inputs(run_a, tmp_path)
    assert preprocess.check_outputs(str(tmp_path), counts)[0] == run_a[1]["kept"]
    lines = vocab.read_bytes().splitlines(keepends=True)
    assert len(lines) == counts["num_users"] > 2
    for damaged, expected in ((lines[:-1], "users"), (lines[1:2] + lines[:1] + lines[2:], "user_index order")):
        vocab.write_bytes(b"".join(damaged))
        with pytest.raises(UserError) as err:
            preprocess.check_outputs(str(tmp_path), counts)
        message = str(err.value)
        assert message.startswith("internal error") and expected in message
        assert "\n" not in message
    vocab.write_bytes(b"".join(lines))
    with pytest.raises(UserError, match="rows read"):
        preprocess.check_outputs(str(tmp_path), dict(counts, rows_read=counts["rows_read"] + 1))


# ----------------------------------------------------------------------------- runners

def test_gcs_input_and_output_against_the_emulator(data_dir, run_a, gcs_emulator):
    from pipeline_common import fileio
    src, out = gcs_emulator.url("in"), gcs_emulator.url("prep")
    gcs_emulator.upload_dir(str(data_dir), src)
    manifest = _run(["--input", src, *_common_args(out, "--direct_num_workers=1")])
    _, manifest_a = run_a
    for key in ("rows_read", "kept", "train_examples", "eval_examples", "rejected", "filtered"):
        assert manifest[key] == manifest_a[key]
    listed = gcs_emulator.list(out)
    assert f"{out}/manifest.json" in listed and f"{out}/book_catalog.parquet" in listed
    assert f"{out}/transform_output/transform_fn/assets/book_id_vocab" in listed
    assert sum(p.endswith(".tfrecord.gz") for p in listed) == 2 * SHARDS
    catalog = artifacts.read_parquet(f"{out}/{artifacts.CATALOG}")
    assert catalog.num_rows == TOP_BOOKS


def test_dataflow_job_builds_offline_and_stages_setup_py(data_dir, tmp_path, gcs_emulator):
    from apache_beam.options.pipeline_options import SetupOptions
    from apache_beam.portability.api import beam_runner_api_pb2
    from apache_beam.runners.portability.stager import Stager
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    argv = ["--config", os.path.join(root, "run_configs", "dataflow.yaml"),
            "--input", str(data_dir), "--output", "gs://example-bucket/prep",
            "--project", "example-project", "--temp_location", "gs://example-bucket/tmp",
            "--setup_file", os.path.join(root, "setup.py"), "--dry_run=True"]
    result = _run(argv)
    assert result["dry_run"] is True
    job = result["result"].job
    assert job.proto.type.name == "JOB_TYPE_BATCH"
    step_names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    # The README's stages are the top-level boxes of the Dataflow job graph.
    top_level = {name for name in step_names if "/" not in name}
    assert {"ReadBooks", "ReadInteractionBlocks", "RejectMalformed", "StopIfMostlyMalformed",
            "DropBelowMinRating", "Deduplicate", "SelectTopBooks", "DropSparseUsers", "BuildIndex",
            "BuildVocabularies", "WriteExamples", "WriteCatalog", "WriteRejects", "WriteCounts"} <= top_level
    assert {"Deduplicate/CollapseDuplicates", "BuildVocabularies/WriteTransformFn"} <= step_names
    options = job.options  # the job's own options: what DataflowRunner would stage from
    assert options.view_as(SetupOptions).setup_file == os.path.join(root, "setup.py")
    staged = {}
    for artifact in Stager.create_job_resources(options, str(tmp_path)):
        role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload)
        path = beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path
        staged[role.staged_name] = path
    assert "workflow.tar.gz" in staged, staged
    with tarfile.open(staged["workflow.tar.gz"]) as tar:
        members = tar.getnames()
    assert any(m.endswith("beam_jobs/preprocess.py") for m in members)
    assert any(m.endswith("beam_jobs/stages.py") for m in members)
    assert any(m.endswith("pipeline_common/beam_runner.py") for m in members)


def test_a_rerun_first_removes_the_previous_outputs(gcs_emulator, tmp_path):
    from pipeline_common import fileio
    stale = ["manifest.json", "train-00000-of-00002.tfrecord.gz", "eval-00001-of-00002.tfrecord.gz",
             "book_catalog.parquet", "transform_output/transform_fn/assets/book_id_vocab",
             "rejected/rejected-00000-of-00001.jsonl", "unrelated.txt"]
    for base in (gcs_emulator.url("stale"), str(tmp_path / "stale")):
        for name in stale:
            fileio.write_bytes(fileio.join(base, *name.split("/")), b"old")
        preprocess.prepare_output(base)
        left = [name for name in stale if fileio.exists(fileio.join(base, *name.split("/")))]
        assert left == ["unrelated.txt"], base


def test_local_runs_default_to_one_in_process_worker_unless_asked():
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
    from pipeline_common import beam_runner

    def direct(args):
        options = preprocess.local_defaults(beam_runner.make_options(args), args)
        view = options.view_as(DirectOptions)
        return view.direct_num_workers, view.direct_running_mode, options

    assert direct([])[:2] == (1, "in_memory")
    assert direct(["--direct_num_workers=2"])[:2] == (2, "multi_processing")
    assert direct(["--direct_running_mode=multi_processing"])[:2] == (0, "multi_processing")
    _, _, dataflow = direct(["--runner=DataflowRunner"])
    assert dataflow.view_as(StandardOptions).runner == "DataflowRunner"
    assert dataflow.view_as(DirectOptions).direct_num_workers == 1  # Beam's default, untouched
