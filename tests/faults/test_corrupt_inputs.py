"""Corrupt and truncated inputs of every kind a stage reads.

A stage either sets bad rows aside with their reason (counts still reconcile) or
stops with one line that names the file and says what to do. Never a traceback.
"""
import gzip
import json
import pathlib

import pytest

from tests.chain import command
from tests.faults import harness


def _truncate(path, keep=0.5):
    path = pathlib.Path(path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _flip_bytes(path, at=0.5, count=16):
    path = pathlib.Path(path)
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _only(pattern, folder):
    found = sorted(pathlib.Path(folder).glob(pattern))
    assert found, f"no {pattern} in {folder}"
    return found[0]


def _run(stage, chain, tmp_path, **inputs):
    paths = dict(chain, **inputs)
    module, args = command(stage, paths, output=str(tmp_path / "out"))
    return harness.cli(module, *args)


def _fails_in_one_line(stage, fault, outcome, tmp_path, *mentions):
    line = harness.assert_one_line_failure(outcome, *mentions)
    harness.record(stage, fault, line, tmp_path)
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not (tmp_path / "out" / "metrics.json").exists()
    assert not (tmp_path / "out" / "summary.json").exists()


def _reconciles(manifest):
    filtered = sum(manifest["filtered"].values())
    assert manifest["rows_read"] == manifest["kept"] + filtered + manifest["rejected_total"]


# --- preprocess: CSV and gzip JSON inputs -----------------------------------------------

def test_preprocess_garbage_rows_in_the_interactions_csv(chain, broken_copy, tmp_path):
    data = broken_copy("data")
    with open(f"{data}/goodreads_interactions.csv", "ab") as handle:
        handle.write(b"\x00\xff\xfe garbage,,\n12,not-a-number,1,5,0\n1,2,3\n")
    outcome = _run("preprocess", chain, tmp_path, data=data)
    assert outcome.returncode == 0, outcome.stderr[-2000:]
    manifest = harness.load_json(tmp_path / "out" / "manifest.json")
    assert manifest["rejected_total"] >= 3
    _reconciles(manifest)
    harness.record("preprocess", "garbage rows in goodreads_interactions.csv",
                   f"completes; {manifest['rejected_total']} rows set aside in rejected/ by "
                   f"reason ({', '.join(sorted(manifest['rejected']))}); counts reconcile")


def test_preprocess_truncated_gzip_catalogue(chain, broken_copy, tmp_path):
    data = broken_copy("data")
    _truncate(f"{data}/goodreads_books.json.gz")
    outcome = _run("preprocess", chain, tmp_path, data=data)
    _fails_in_one_line("preprocess", "goodreads_books.json.gz truncated", outcome, tmp_path,
                       "cannot decompress", "goodreads_books.json.gz", "truncated")


def test_preprocess_broken_json_lines_in_the_authors(chain, broken_copy, tmp_path):
    data = broken_copy("data")
    path = pathlib.Path(f"{data}/goodreads_book_authors.json.gz")
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    lines.insert(3, b'{"author_id": "1", "name": \n')
    path.write_bytes(gzip.compress(b"".join(lines)))
    outcome = _run("preprocess", chain, tmp_path, data=data)
    assert outcome.returncode == 0, outcome.stderr[-2000:]
    manifest = harness.load_json(tmp_path / "out" / "manifest.json")
    _reconciles(manifest)
    rejects = [json.loads(line) for path in (tmp_path / "out" / "rejected").glob("*.jsonl")
               for line in path.read_text().splitlines()]
    sources = [r["source"] for r in rejects if r["reason"] == "bad_catalog_row"]
    assert len(sources) == 1 and sources[0].endswith("goodreads_book_authors.json.gz"), rejects
    harness.record("preprocess", "a broken JSON line in goodreads_book_authors.json.gz",
                   "completes; the line is counted and set aside with its reason")


def test_preprocess_corrupt_id_map(chain, broken_copy, tmp_path):
    data = broken_copy("data")
    _flip_bytes(f"{data}/book_id_map.csv", at=0.0, count=40)
    outcome = _run("preprocess", chain, tmp_path, data=data)
    # The garbled map leaves rows without a book: the reject limit stops the job and
    # its line names the reason and the options to check.
    _fails_in_one_line("preprocess", "book_id_map.csv header and first rows garbled",
                       outcome, tmp_path, "book_not_in_map", "--input")


# --- model.train: TFRecord shards, catalogue parquet, manifest --------------------------

@pytest.mark.parametrize("damage", ["flipped bytes", "truncated"])
def test_train_on_a_damaged_shard(damage, chain, broken_copy, tmp_path):
    prep = broken_copy("prep")
    shard = _only("train-*.tfrecord.gz", prep)
    (_flip_bytes if damage == "flipped bytes" else _truncate)(shard)
    outcome = _run("train", chain, tmp_path, prep=prep)
    line = harness.assert_one_line_failure(outcome, shard.name)
    assert "corrupt" in line or "truncated" in line, line
    harness.record("train", f"TFRecord shard {damage}", line, tmp_path)


def test_train_on_a_corrupt_catalogue(chain, broken_copy, tmp_path):
    prep = broken_copy("prep")
    _flip_bytes(f"{prep}/book_catalog.parquet", at=0.3, count=64)
    outcome = _run("train", chain, tmp_path, prep=prep)
    _fails_in_one_line("train", "book_catalog.parquet corrupt", outcome, tmp_path,
                       "book_catalog.parquet")


@pytest.mark.parametrize("change", ["missing", "counts removed", "wrong counts",
                                    "older contract"])
def test_train_on_a_bad_manifest(change, chain, broken_copy, tmp_path):
    prep = broken_copy("prep")
    path = pathlib.Path(prep) / "manifest.json"
    manifest = json.loads(path.read_text())
    if change == "missing":
        path.unlink()
    else:
        if change == "counts removed":
            del manifest["train_examples"]
        elif change == "wrong counts":
            manifest["train_examples"] += 5
        else:
            manifest.pop("contract_version", None)
        path.write_text(json.dumps(manifest))
    outcome = _run("train", chain, tmp_path, prep=prep)
    _fails_in_one_line("train", f"manifest.json {change}", outcome, tmp_path, "manifest.json")


# --- graph_export: parquet inputs --------------------------------------------------------

@pytest.mark.parametrize("damage", ["flipped bytes", "truncated"])
def test_neighbors_on_damaged_embeddings(damage, chain, broken_copy, tmp_path):
    model = broken_copy("model")
    (_flip_bytes if damage == "flipped bytes" else _truncate)(
        f"{model}/book_embeddings.parquet")
    outcome = _run("neighbors", chain, tmp_path, model=model)
    _fails_in_one_line("neighbors", f"book_embeddings.parquet {damage}", outcome, tmp_path,
                       "book_embeddings.parquet")


@pytest.mark.parametrize("stage", ["ego", "explorer"])
@pytest.mark.parametrize("name", ["nodes.parquet", "edges.parquet"])
def test_graph_readers_on_a_truncated_graph_file(stage, name, chain, broken_copy, tmp_path):
    graph = broken_copy("graph")
    _truncate(f"{graph}/{name}")
    outcome = _run(stage, chain, tmp_path, graph=graph)
    _fails_in_one_line(stage, f"{name} truncated", outcome, tmp_path, name)
