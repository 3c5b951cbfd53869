"""What the edges' reasons cost: the neighbours command with --catalog against the same without.

    python -m benchmarks.bench_edge_reasons [--prep /tmp/bench_scale/prep] [--dim 64]

On a preprocess output (default: the one `make scale` leaves, 100M generated
interactions, 50k books), book embeddings are made up for its books (random, seeded:
the cost of counting co-readers does not depend on what the vectors say), then
`python -m graph_export.neighbors` runs twice as a user runs it: without --catalog,
then with --catalog PREP (co-readers counted from every train pair, shared authors
and shelves, names from the shelves). What the reasons add is the difference in
the steps that do their work (summary.json's pipeline, edge_reasons and names
seconds); the whole commands' wall times are given too. Written to
benchmarks/RESULTS.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import machine, results
from pipeline_common import artifacts


def fake_model(prep, out, dim, seed=0):
    """MODEL/book_embeddings.parquet for PREP's books: random unit vectors."""
    catalog = pq.read_table(os.path.join(prep, artifacts.CATALOG),
                            columns=["book_index", "book_id", "title"])
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(catalog.num_rows, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = catalog.append_column("embedding", pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.ravel()), dim).cast(pa.list_(pa.float32())))
    os.makedirs(out, exist_ok=True)
    pq.write_table(table, os.path.join(out, artifacts.BOOK_EMBEDDINGS))
    return catalog.num_rows


def run_neighbours(model, out, extra):
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "graph_export.neighbors", "--embeddings", model,
                    "--output", out] + extra, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    return seconds, json.load(open(os.path.join(out, artifacts.GRAPH_SUMMARY)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prep", default="/tmp/bench_scale/prep")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--work", default=None)
    args = parser.parse_args(argv)
    print(machine.describe())
    work = args.work or tempfile.mkdtemp(prefix="bench_reasons-")
    manifest = json.load(open(os.path.join(args.prep, artifacts.MANIFEST)))
    books = fake_model(args.prep, os.path.join(work, "model"), args.dim)
    model = os.path.join(work, "model")
    plain, plain_summary = run_neighbours(model, os.path.join(work, "plain"), [])
    full, full_summary = run_neighbours(model, os.path.join(work, "reasons"),
                                        ["--catalog", args.prep])
    steps = ("pipeline_seconds", "edge_reasons_seconds", "communities_seconds",
             "layout_seconds", "names_seconds", "graph_files_seconds")
    table = ["| command | wall s | " + " | ".join(s.replace("_seconds", "") for s in steps) + " |",
             "| --- | --- | " + " | ".join("---" for _ in steps) + " |"]
    for label, seconds, summary in (("neighbors (no --catalog)", plain, plain_summary),
                                    ("neighbors --catalog PREP", full, full_summary)):
        row = f"| {label} | {seconds:.1f} | " + " | ".join(
            str(summary.get(s, "")) for s in steps) + " |"
        table.append(row)
        print(row)
    added = sum(full_summary.get(s, 0) - plain_summary.get(s, 0)
                for s in ("pipeline_seconds", "edge_reasons_seconds", "names_seconds"))
    note = (f"{books:,} books, {manifest['train_examples']:,} train interactions in "
            f"{len(manifest['files'].get('train_pairs', []))} pairs files. The steps that do "
            f"the reasons' work (the Beam pipeline with CountCoReaders, edge_reasons, names) "
            f"take {added:.1f} s more; the whole command {full - plain:+.1f} s (the other "
            "steps, the layout above all, vary by more than that on a shared machine).")
    print(note)
    results.headline(f"the edges' reasons (co-readers, shared authors and shelves) at "
                     f"{manifest['train_examples'] / 1e6:.1f}M train interactions, {books:,} books",
                     f"the steps doing their work take {added:.0f} s more in the neighbours "
                     "command")
    results.record("Edge reasons (co-readers, shared authors and shelves)", table + ["", note])


if __name__ == "__main__":
    main()
