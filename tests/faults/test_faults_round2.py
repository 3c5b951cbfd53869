"""Faults, second round (issue 29): degenerate embeddings, odd ids, odd bytes, mismatched
inputs and Ctrl-C at any moment.

Each case runs the real command line on a damaged copy of the suite's tiny chain
(conftest.py) and checks what the product promises: it works (same outputs as a clean
run), or stops with one line naming the file or value, or counts what it set aside in
manifest.json / summary.json.
"""
import gzip
import json
import pathlib
import re
import signal
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.chain import command
from tests.faults import harness

HUGE_CSV_ID = 10 ** 17   # a dense array indexed by it would need 800 PB
BOM = b"\xef\xbb\xbf"
CSV_FILES = ("goodreads_interactions.csv", "user_id_map.csv", "book_id_map.csv")
JSON_FILES = ("goodreads_books.json.gz", "goodreads_book_authors.json.gz",
              "goodreads_book_genres_initial.json.gz")
# Counts a preprocess run must share with the clean chain when its input means the same.
SAME_COUNTS = ("rows_read", "kept", "filtered", "rejected", "train_examples", "eval_examples",
               "num_books", "num_users")


def _preprocess(chain, data, tmp_path):
    module, args = command("preprocess", dict(chain, data=data), output=str(tmp_path / "out"))
    return harness.cli(module, *args)


def _gz_lines(path):
    return gzip.decompress(pathlib.Path(path).read_bytes()).splitlines(keepends=True)


def _write_gz_lines(path, lines):
    pathlib.Path(path).write_bytes(gzip.compress(b"".join(lines), mtime=0))


def _assert_same_as_clean(chain, tmp_path):
    """The output equals the clean chain's (files and counts)."""
    out = tmp_path / "out"
    harness.assert_same_tree(out, chain["prep"], ignore=harness.NOT_BYTE_STABLE)
    got = harness.load_json(out / "manifest.json")
    want = harness.load_json(pathlib.Path(chain["prep"]) / "manifest.json")
    for key in SAME_COUNTS:
        assert got[key] == want[key], (key, got[key], want[key])
    return got


# --- 1. degenerate but legal embeddings -------------------------------------------------

def test_neighbors_on_one_dimensional_embeddings(chain, broken_copy, tmp_path):
    """What `model.train --embedding_dim 1` wrote before book_embeddings.parquet became the
    co-reading factorisation: every vector +1 or -1, so every cosine is ±1 (all ties)."""
    import pyarrow as pa
    model, graph = pathlib.Path(broken_copy("model")), tmp_path / "graph"
    path = model / "book_embeddings.parquet"
    table = pq.read_table(path)
    first = [[1.0 if v[0] >= 0 else -1.0] for v in table.column("embedding").to_pylist()]
    column = table.schema.get_field_index("embedding")
    pq.write_table(table.set_column(column, "embedding", pa.array(first, pa.list_(pa.float32()))),
                   path)
    module, args = command("neighbors", dict(chain, model=str(model)), output=str(graph))
    outcome = harness.cli(module, *args)
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    summary = harness.load_json(graph / "summary.json")
    assert summary["dim"] == 1
    edges = pq.read_table(graph / "edges.parquet")
    assert edges.num_rows == summary["num_nodes"] * summary["k"]   # every book has its k
    harness.record("neighbors", "one-dimensional embeddings (--embedding_dim 1: cosines all ±1)",
                   f"completes; {summary['num_nodes']} nodes with {summary['k']} neighbours each "
                   "(ties ranked by book_index)")


@pytest.mark.parametrize("vectors", ["one-dimensional", "all identical"])
def test_top_k_when_every_query_is_a_tie(vectors):
    from graph_export import topk
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(700, 1)) if vectors == "one-dimensional" else np.ones((700, 8))
    unit, valid = topk.normalise_rows(matrix)
    neighbours, scores = topk.topk_block(topk.CandidateIndex(unit[valid]), np.arange(700), 10)
    cosine = unit.astype(np.float64) @ unit.T.astype(np.float64)
    np.fill_diagonal(cosine, -np.inf)
    for query in range(0, 700, 37):   # cosine descending, then index ascending
        want = np.lexsort((np.arange(700), -np.round(cosine[query], 6)))[:10]
        assert neighbours[query].tolist() == want.tolist(), query


# --- 2. Ctrl-C at any moment of any command ----------------------------------------------

# (stage, moment, `tests.faults.interrupt_at` WHEN): Ctrl-C as a terminal sends it (SIGINT
# to the process group) at that moment.
INTERRUPTS = [
    ("preprocess", "while its modules load", "import:apache_beam"),
    ("preprocess", "inside a Beam step", "call:beam_jobs.parsing.resolve_csv_ids"),
    ("train", "while its modules load", "import:tensorflow"),
    ("train", "at the start of an epoch", "call:model.data.epoch_batches"),
    ("neighbors", "inside the top-k step", "call:graph_export.topk.topk_block"),
    ("sample_data", "while writing", "call:pipeline_common.fileio.atomic_write"),
    ("ego", "while reading the graph", "call:pipeline_common.artifacts.read_parquet"),
    ("explorer", "while reading the graph", "call:pipeline_common.artifacts.read_parquet"),
]


@pytest.mark.parametrize("stage,when", [("preprocess", "call:beam_jobs.parsing.resolve_csv_ids")])
def test_ctrl_c_then_the_same_command_gives_a_clean_run(stage, when, chain, tmp_path):
    """The interrupted line says "run the same command again to redo it": that rerun must
    give the bytes of a run that was never interrupted."""
    output = tmp_path / "out"
    module, args = command(stage, chain, output=str(output))
    result = subprocess.run([sys.executable, "-m", "tests.faults.interrupt_at", when, module,
                             *map(str, args)], cwd=harness.REPO, capture_output=True, text=True,
                            timeout=600, start_new_session=True)
    assert result.returncode == 130, result.stderr[-3000:]
    harness.assert_no_truncated_file(output)
    again = harness.cli(module, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    clean = chain["prep" if stage == "preprocess" else "graph"]
    harness.assert_same_tree(output, clean, ignore=harness.NOT_BYTE_STABLE)


@pytest.mark.parametrize("stage,moment,when", INTERRUPTS, ids=[f"{s}-{w}" for s, _, w in INTERRUPTS])
def test_ctrl_c_ends_with_130_and_one_line(stage, moment, when, chain, tmp_path):
    output = str(tmp_path / ("out.html" if stage == "explorer" else "out"))
    module, args = command(stage, chain, output=output)
    result = subprocess.run([sys.executable, "-m", "tests.faults.interrupt_at", when, module,
                             *map(str, args)], cwd=harness.REPO, capture_output=True, text=True,
                            timeout=600, start_new_session=True)
    outcome = harness.Outcome(result.returncode, result.stderr, 0.0)
    assert outcome.returncode == 128 + signal.SIGINT, (outcome.returncode, outcome.stderr[-3000:])
    assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    assert outcome.last_line == (f"python -m {module}: interrupted; run the same command "
                                 "again to redo it"), outcome.stderr[-3000:]
    harness.record(stage, f"Ctrl-C {moment}", f"exit 130: {outcome.last_line}")


# --- 3. a plain-text file named .gz ------------------------------------------------------

@pytest.mark.parametrize("name", JSON_FILES + ("goodreads_interactions.csv",))
def test_preprocess_on_a_plain_file_named_gz(name, chain, broken_copy, tmp_path):
    data = pathlib.Path(broken_copy("data"))
    if name.endswith(".gz"):
        (data / name).write_bytes(gzip.decompress((data / name).read_bytes()))
        shown = name
    else:   # the csv is found as name.gz too
        shown = name + ".gz"
        (data / name).rename(data / shown)
    outcome = _preprocess(chain, str(data), tmp_path)
    line = harness.assert_one_line_failure(outcome, shown, "not gzip-compressed")
    harness.record("preprocess", f"plain text named {shown}", line, tmp_path)


@pytest.mark.parametrize("name", ["goodreads_interactions.csv", "user_id_map.csv",
                                  "goodreads_books.json.gz"])
def test_preprocess_on_a_gzip_file_not_named_gz(name, chain, broken_copy, tmp_path):
    data = pathlib.Path(broken_copy("data"))
    if name.endswith(".gz"):
        shown = name[:-len(".gz")]
        (data / name).rename(data / shown)
    else:
        shown = name
        (data / name).write_bytes(gzip.compress((data / name).read_bytes()))
    outcome = _preprocess(chain, str(data), tmp_path)
    line = harness.assert_one_line_failure(outcome, shown, "gzip-compressed")
    harness.record("preprocess", f"gzip data named {shown} (no .gz)", line, tmp_path)


# --- 4. a csv id far above the others ----------------------------------------------------

def _renumber_user(data, old, new):
    """Gives csv user `old` the csv id `new` in user_id_map.csv and the interactions."""
    for name in ("user_id_map.csv", "goodreads_interactions.csv"):
        path = pathlib.Path(data) / name
        lines = path.read_bytes().splitlines(keepends=True)
        prefix = f"{old},".encode()
        path.write_bytes(b"".join(f"{new},".encode() + line[len(prefix):]
                                  if line.startswith(prefix) else line for line in lines))


def test_id_maps_do_not_grow_with_the_value_of_an_id(tmp_path):
    from beam_jobs import parsing
    path = tmp_path / "user_id_map.csv"
    path.write_text("user_id_csv,user_id\n0,%s\n300000000,%s\n" % ("a" * 32, "b" * 32))
    user_map = parsing.read_user_map(str(path))
    assert sum(a.nbytes for a in user_map.values() if isinstance(a, np.ndarray)) < 1 << 20
    cols = {"user": np.array([300000000, 0, 5, -1]), "book": np.zeros(4, np.int64),
            "rating": np.full(4, 4), "is_read": np.ones(4, np.int64),
            "is_reviewed": np.zeros(4, np.int64)}
    book_map = parsing.read_book_map(_one_book_map(tmp_path))
    resolved, rejects = parsing.resolve_csv_ids(cols, user_map, book_map, "x.csv")
    assert resolved["keep"].tolist() == [True, True, False, False]
    assert user_map["hi"][resolved["user"][:2]].tolist() == [int("b" * 16, 16), int("a" * 16, 16)]
    assert [r.reason.value for r in rejects] == ["user_not_in_map", "user_not_in_map"]


def _one_book_map(tmp_path):
    path = tmp_path / "book_id_map.csv"
    path.write_text("book_id_csv,book_id\n0,17\n")
    return str(path)


def test_book_id_map_does_not_grow_with_the_value_of_an_id(tmp_path):
    from beam_jobs import parsing
    path = tmp_path / "book_id_map.csv"
    path.write_text(f"book_id_csv,book_id\n0,17\n{HUGE_CSV_ID},18\n")
    book_map = parsing.read_book_map(str(path))
    assert sum(a.nbytes for a in book_map.values() if isinstance(a, np.ndarray)) < 1 << 20
    positions = parsing.map_positions(book_map, np.array([HUGE_CSV_ID, 0, 1]), len(book_map["gid"]))
    assert positions[2] == -1 and book_map["gid"][positions[:2]].tolist() == [18, 17]


def test_preprocess_with_a_huge_csv_user_id(chain, broken_copy, tmp_path):
    data = broken_copy("data")
    _renumber_user(data, 5, HUGE_CSV_ID)
    outcome = _preprocess(chain, data, tmp_path)
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    _assert_same_as_clean(chain, tmp_path)
    harness.record("preprocess", f"csv user id {HUGE_CSV_ID} in user_id_map.csv",
                   "completes; same outputs as with the id renumbered (maps hold one entry per "
                   "listed id)")


# --- 7. conflicts: a csv id listed twice with different ids ------------------------------

def test_preprocess_with_a_csv_id_listed_twice(chain, broken_copy, tmp_path):
    data = pathlib.Path(broken_copy("data"))
    with open(data / "user_id_map.csv", "a", encoding="utf-8") as handle:
        handle.write(f"7,{'f' * 32}\n3,{'e' * 32}\n")          # two conflicts
    with open(data / "book_id_map.csv", "a", encoding="utf-8") as handle:
        first = (data / "book_id_map.csv").read_text().splitlines()[1]
        handle.write(f"{first}\n4,999999999\n")                # a repeat and a conflict
    outcome = _preprocess(chain, str(data), tmp_path)
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    manifest = _assert_same_as_clean(chain, tmp_path)           # the first listing is used
    maps = manifest["id_maps"]
    assert (maps["user_map_conflicts"], maps["book_map_conflicts"]) == (2, 1), maps
    assert maps["book_map_repeated"] == 1, maps
    assert "listed more than once" in outcome.stderr
    harness.record("preprocess", "csv ids listed twice in the id maps with other ids",
                   "completes with the first listing; manifest id_maps: user_map_conflicts 2, "
                   "book_map_conflicts 1, book_map_repeated 1 (and a warning naming an id)")


# --- 8. a UTF-8 byte-order mark -----------------------------------------------------------

def test_preprocess_with_a_byte_order_mark_on_every_input(chain, broken_copy, tmp_path):
    data = pathlib.Path(broken_copy("data"))
    for name in CSV_FILES:
        (data / name).write_bytes(BOM + (data / name).read_bytes())
    for name in JSON_FILES:
        lines = _gz_lines(data / name)
        _write_gz_lines(data / name, [BOM + lines[0]] + lines[1:])
    outcome = _preprocess(chain, str(data), tmp_path)
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    manifest = _assert_same_as_clean(chain, tmp_path)
    assert manifest["catalog"] == harness.load_json(
        pathlib.Path(chain["prep"]) / "manifest.json")["catalog"]
    harness.record("preprocess", "UTF-8 byte-order mark before every CSV header and JSON file",
                   "completes; same outputs and counts as without it")


# --- 6. a valid catalogue record above 4 MB (pyarrow refused lines over two of its blocks) ----------------------------------------------

def _kept_book_ids(chain):
    return pq.read_table(pathlib.Path(chain["prep"]) / "book_catalog.parquet").column(
        "book_id").to_pylist()


def _record_of(lines, book_id):
    at = next(i for i, line in enumerate(lines) if json.loads(line)["book_id"] == book_id)
    return at, json.loads(lines[at])


def test_preprocess_with_a_book_record_of_12_mb(chain, broken_copy, tmp_path):
    data = pathlib.Path(broken_copy("data"))
    lines = _gz_lines(data / "goodreads_books.json.gz")
    at, record = _record_of(lines, _kept_book_ids(chain)[0])   # the most-read book
    record["description"] = "A long description. " * ((12 << 20) // 20 + 1)
    lines[at] = json.dumps(record).encode() + b"\n"
    assert len(lines[at]) > 12 << 20
    _write_gz_lines(data / "goodreads_books.json.gz", lines)
    outcome = _preprocess(chain, str(data), tmp_path)
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    manifest = _assert_same_as_clean(chain, tmp_path)
    assert "books_rejected" not in manifest["catalog"], manifest["catalog"]
    harness.record("preprocess", "a valid 12 MB record in goodreads_books.json.gz",
                   "completes; same outputs as without the long field (records up to 64 MB "
                   "are read; longer ones are counted as bad_catalog_row)")


def test_the_stop_line_names_the_catalogue_lines_set_aside(chain, broken_copy, tmp_path):
    data = pathlib.Path(broken_copy("data"))
    lines = _gz_lines(data / "goodreads_books.json.gz")
    at, _ = _record_of(lines, _kept_book_ids(chain)[0])
    lines[at] = lines[at][:len(lines[at]) // 2] + b"\n"      # a line cut in two: set aside
    _write_gz_lines(data / "goodreads_books.json.gz", lines)
    outcome = _preprocess(chain, str(data), tmp_path)
    line = harness.assert_one_line_failure(outcome, "book_not_in_catalog",
                                           "1 line(s) of goodreads_books were set aside")
    harness.record("preprocess", "the most-read book's record in goodreads_books.json.gz broken",
                   line, tmp_path)


# --- 7. conflicts in the catalogue -------------------------------------------------------

def test_preprocess_counts_catalogue_conflicts(chain, broken_copy, tmp_path):
    data = pathlib.Path(broken_copy("data"))
    kept = _kept_book_ids(chain)
    books = _gz_lines(data / "goodreads_books.json.gz")
    _, twice = _record_of(books, kept[1])
    books.append(json.dumps(dict(twice, title=twice["title"] + " (again)")).encode() + b"\n")
    at, unknown = _record_of(books, kept[2])
    unknown["authors"] = unknown["authors"] + [{"author_id": "999999999", "role": ""}]
    books[at] = json.dumps(unknown).encode() + b"\n"
    _write_gz_lines(data / "goodreads_books.json.gz", books)
    authors = _gz_lines(data / "goodreads_book_authors.json.gz")
    # an author of a kept book (only those reach the catalogue) listed again with another name
    author_id = _record_of(books, kept[0])[1]["authors"][0]["author_id"]
    named = next(json.loads(line) for line in authors if json.loads(line)["author_id"] == author_id)
    authors.append(json.dumps(dict(named, name=named["name"] + " Jr.")).encode() + b"\n")
    _write_gz_lines(data / "goodreads_book_authors.json.gz", authors)
    clean = pq.read_table(pathlib.Path(chain["prep"]) / "book_catalog.parquet").to_pylist()
    other = next(r["book_id"] for r in clean if r["genre"] not in (None, "young-adult"))
    with gzip.open(data / "goodreads_book_genres_initial.json.gz", "ab") as handle:
        handle.write(json.dumps({"book_id": other, "genres": {"young-adult": 999}}).encode() + b"\n")
    outcome = _preprocess(chain, str(data), tmp_path)
    assert outcome.returncode == 0, outcome.stderr[-3000:]
    manifest = _assert_same_as_clean(chain, tmp_path)   # the smaller title, name and genre
    catalog = manifest["catalog"]
    assert (catalog["catalog_book_conflicts"], catalog["catalog_authors_missing"],
            catalog["catalog_author_conflicts"], catalog["catalog_genre_conflicts"]) == (1, 1, 1, 1), catalog
    harness.record("preprocess", "a kept book listed twice with two titles, an author id without "
                   "a record, an author listed twice with two names, a book's genres twice",
                   "completes with the smaller title, name and genre; manifest catalog: "
                   "catalog_book_conflicts 1, catalog_authors_missing 1, catalog_author_conflicts 1, "
                   "catalog_genre_conflicts 1")


def test_json_files_read_back_with_a_byte_order_mark(tmp_path):
    """manifest.json / summary.json saved again by an editor that adds the mark."""
    from pipeline_common import fileio
    path = tmp_path / "manifest.json"
    path.write_bytes(BOM + b'{"num_books": 3}')
    assert fileio.read_json(str(path)) == {"num_books": 3}


def test_byte_order_mark_on_the_dedup_json_interactions_and_every_catalogue_file():
    """The same mark where the chain has no file: the dedup_json input (parsed by the same
    DoFn), and each catalogue kind's first block. (pyarrow's JSON reader skipped it before
    too: a guard, not a fault found.)"""
    from apache_beam import pvalue
    from beam_jobs import validation
    from beam_jobs.blocks import LineBlock
    user = "0123456789abcdef" * 2
    line = json.dumps({"user_id": user, "book_id": "17", "rating": 4}).encode() + b"\n"
    parse = validation.ParseInteractions("dedup_json")
    out = list(parse.process(LineBlock("goodreads_interactions_dedup.json", True, BOM + line),
                             np.array([17])))
    counts = [o.value for o in out if isinstance(o, pvalue.TaggedOutput) and o.tag == "counts"]
    blocks = [o for o in out if not isinstance(o, pvalue.TaggedOutput)]
    assert counts == [{"rows_read": 1}] and blocks[0].valid.tolist() == [True], out
    records = {"books": {"book_id": "17", "title": "T", "authors": []},
               "authors": {"author_id": "5", "name": "N"},
               "genres": {"book_id": "17", "genres": {"fiction": 3}}}
    for kind, record in records.items():
        data = BOM + json.dumps(record).encode() + b"\n"
        out = list(validation.ParseCatalogFile(kind).process(LineBlock(kind, True, data)))
        tables = [o for o in out if not isinstance(o, pvalue.TaggedOutput)]
        assert len(tables) == 1 and tables[0].num_rows == 1, (kind, out)


# --- found while looking further (item 3) ------------------------------------------------

@pytest.mark.parametrize("stage", ["ego", "explorer"])
def test_graph_readers_on_a_book_listed_twice_in_nodes(stage, chain, broken_copy, tmp_path):
    import pyarrow as pa
    graph = pathlib.Path(broken_copy("graph"))
    nodes = pq.read_table(graph / "nodes.parquet")
    pq.write_table(pa.concat_tables([nodes, nodes.slice(0, 3)]), graph / "nodes.parquet")
    module, args = command(stage, dict(chain, graph=str(graph)),
                           output=str(tmp_path / ("out.html" if stage == "explorer" else "out")))
    outcome = harness.cli(module, *args)
    line = harness.assert_one_line_failure(outcome, "nodes.parquet", "book_index")
    harness.record(stage, "three books listed twice in nodes.parquet", line, tmp_path)


@pytest.mark.parametrize("stage", ["ego", "explorer"])
def test_graph_readers_on_nodes_of_another_run(stage, chain, broken_copy, tmp_path):
    graph = pathlib.Path(broken_copy("graph"))
    nodes = pq.read_table(graph / "nodes.parquet")
    centre = nodes.column("book_id").to_pylist().index(chain["book_id"])
    pq.write_table(nodes.slice(0, centre + 1), graph / "nodes.parquet")   # edges name the rest
    module, args = command(stage, dict(chain, graph=str(graph)),
                           output=str(tmp_path / ("out.html" if stage == "explorer" else "out")))
    outcome = harness.cli(module, *args)
    line = harness.assert_one_line_failure(outcome, "edges.parquet", "nodes.parquet",
                                           "different runs")
    # which book and how many ends depend on the chain's graph: not part of the table
    shown = re.sub(r"\(\d+ edge ends\)", "(… edge ends)", re.sub(r"book_index \d+", "book_index …", line))
    harness.record(stage, "nodes.parquet of another run (edges name books it lacks)", shown,
                   tmp_path)


def test_neighbors_on_embeddings_of_length_0(chain, broken_copy, tmp_path):
    import pyarrow as pa
    model = pathlib.Path(broken_copy("model"))
    path = model / "book_embeddings.parquet"
    table = pq.read_table(path)
    empty = pa.array([[] for _ in range(table.num_rows)], table.schema.field("embedding").type)
    pq.write_table(table.set_column(table.schema.get_field_index("embedding"), "embedding", empty),
                   path)
    module, args = command("neighbors", dict(chain, model=str(model)), output=str(tmp_path / "out"))
    outcome = harness.cli(module, *args)
    harness.assert_one_line_failure(outcome, "book_embeddings.parquet")
