"""Benchmark of model.train: quality vs baselines, speed, time to baseline quality, export memory.

    python benchmarks/bench_train.py [--ratings 1000000 --books 20000 --users 20000]
        [--prep EXISTING_PREP] [--work DIR] [--export_books 1000000] [train flags...]

1. Generates Goodreads-like data with planted structure (`beam_jobs.sample_data`)
   and preprocesses it (`beam_jobs.preprocess` when available, else the stand-in in
   tests/model_fixtures.py), unless `--prep` names an existing preprocess output.
2. Trains with model.train's defaults (extra flags are passed through), evaluating
   every epoch, and prints: training throughput (examples/s on this CPU), the
   training time until the model first matched the classic baseline (item_cosine)
   on hit@100 and recall@10 next to that baseline's own fit time in the same run,
   and the final quality table with pass/fail against the targets.
3. Exports vectors for a synthetic catalogue of `--export_books` books through the
   streaming writer and reports peak memory against the size of the vectors.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline_common  # noqa: E402,F401


def _status_mb(field):
    """VmRSS / VmHWM of this process in MB (Linux)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0), so the next peak is the export's."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def make_prep(args, work):
    """Sample data -> preprocess output; returns (prep dir, which preprocess ran)."""
    raw = os.path.join(work, "goodreads")
    prep = os.path.join(work, "prep")
    if not os.path.exists(os.path.join(raw, "goodreads_interactions.csv")):
        subprocess.run([sys.executable, "-m", "beam_jobs.sample_data", "--output", raw,
                        "--ratings", str(args.ratings), "--books", str(args.books),
                        "--users", str(args.users), "--seed", "7"], check=True)
    if os.path.exists(os.path.join(prep, "manifest.json")):
        with open(os.path.join(prep, "manifest.json")) as handle:
            stand_in = "stand_in_for" in json.load(handle).get("options", {})
        return prep, ("existing, from the stand-in" if stand_in
                      else "existing, from beam_jobs.preprocess")
    try:
        import beam_jobs.preprocess  # noqa: F401
        subprocess.run([sys.executable, "-m", "beam_jobs.preprocess", "--input", raw,
                        "--output", prep, "--top_books", str(args.books)], check=True)
        return prep, "beam_jobs.preprocess"
    except ImportError:
        from tests import model_fixtures
        model_fixtures.prep_from_goodreads(raw, prep, top_books=args.books)
        return prep, "tests/model_fixtures.prep_from_goodreads (stand-in)"


def export_memory(num_books, dim=128):
    """Streams vectors of `num_books` synthetic books; returns (seconds, peak RSS growth MB)."""
    import numpy as np
    import pyarrow as pa

    from model import data, export, towers
    catalog = pa.table({
        "book_index": pa.array(np.arange(num_books, dtype=np.int64)),
        "book_id": pa.array([str(100000 + i) for i in range(num_books)]),
        "title": pa.array([f"Title {i % 5000} of the {i % 37} saga" for i in range(num_books)]),
        "authors": pa.array([[f"Author {i % 20000}"] for i in range(num_books)]),
        "genre": pa.array([f"genre {i % 10}" for i in range(num_books)])})
    content = data.content_features(catalog)
    tower = towers.CandidateTower(num_books, content, dim)
    model = towers.TwoTowerModel(towers.QueryTower(10, dim), tower, np.ones(num_books) / num_books)
    with tempfile.TemporaryDirectory() as out:
        model.candidate_tower(np.zeros(1, np.int64))
        _reset_peak_rss()
        before = _status_mb("VmRSS")
        start = time.perf_counter()
        export.write_book_embeddings(out, model.book_embeddings(), catalog, dim)
        seconds = time.perf_counter() - start
        size = os.path.getsize(os.path.join(out, "book_embeddings.parquet")) / 2**20
    return seconds, _status_mb("VmHWM") - before, num_books * dim * 4 / 2**20, size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--books", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--prep", help="use this preprocess output instead of generating one")
    parser.add_argument("--work", help="working directory (kept; default: a temp dir)")
    parser.add_argument("--export_books", type=int, default=1_000_000)
    parser.add_argument("--export_only", type=int, help=argparse.SUPPRESS)
    args, train_flags = parser.parse_known_args(argv)
    if args.export_only:
        print(json.dumps(export_memory(args.export_only)))
        return
    work = args.work or tempfile.mkdtemp(prefix="bench_train_")
    os.makedirs(work, exist_ok=True)

    start = time.perf_counter()
    if args.prep:
        prep, source = args.prep, "given"
    else:
        prep, source = make_prep(args, work)
    with open(os.path.join(prep, "manifest.json")) as handle:
        manifest = json.load(handle)
    data_seconds = time.perf_counter() - start

    from model import train
    output = os.path.join(work, "model")
    start = time.perf_counter()
    metrics = train.run(["--data", prep, "--output", output, "--verbose", "2",
                         "--eval_every", "1"] + train_flags)
    wall = time.perf_counter() - start
    with open(os.path.join(output, "training_log.json")) as handle:
        log = json.load(handle)
    history = log["history"]
    classic = metrics["baselines"]["item_cosine"]
    popularity = metrics["baselines"]["popularity"]
    train_seconds = sum(h["train_seconds"] for h in history)
    keras_seconds = sum(h.get("keras_epoch_seconds", h["train_seconds"]) for h in history)
    examples = manifest["train_examples"] * len(history)
    reached, elapsed = None, 0.0
    for h in history:
        elapsed += h["train_seconds"]
        if h["hit@100"] >= classic["hit@100"] and h["recall@10"] >= classic["recall@10"]:
            reached = (h["epoch"], elapsed)
            break
    fit = log["baseline_fit_seconds"]["item_cosine"]

    print()
    print(f"data: {source}: {manifest['train_examples']} train / {manifest['eval_examples']} "
          f"eval interactions, {manifest['num_users']} users, {manifest['num_books']} books "
          f"({data_seconds:.0f} s to prepare)")
    print(f"{'figure':48s}{'value':>14s}")
    print(f"{'training throughput (examples/s, CPU, Keras epochs)':48s}"
          f"{examples / keras_seconds:14.0f}")
    print(f"{'training throughput (examples/s, incl. fit overhead)':48s}"
          f"{examples / train_seconds:14.0f}")
    print(f"{'training time, all epochs, incl. fit overhead (s)':48s}{train_seconds:14.1f}")
    print(f"{'model.train wall time incl. eval+export (s)':48s}{wall:14.1f}")
    print(f"{'item_cosine fit time (s)':48s}{fit:14.1f}")
    if reached:
        print(f"{'model time to item_cosine quality (s)':48s}{reached[1]:14.1f}"
              f"   (epoch {reached[0]}; ratio to item_cosine fit: {reached[1] / fit:.2f}x)")
    else:
        print(f"{'model time to item_cosine quality (s)':48s}{'not reached':>14s}")
    print()
    keys = list(metrics["model"])
    print("per epoch (training seconds, eval metrics):")
    for h in history:
        if "hit@10" in h:
            print(f"  epoch {h['epoch']:2d} {h['train_seconds']:7.1f} s  "
                  + "  ".join(f"{k} {h[k]:.4f}" for k in keys))
    print()
    rows = [("model", metrics["model"]), ("popularity", popularity), ("item_cosine", classic)]
    print(f"{'':14s}" + "".join(f"{k:>11s}" for k in keys))
    for name, values in rows:
        print(f"{name:14s}" + "".join(f"{values[k]:11.4f}" for k in keys))
    model = metrics["model"]
    checks = {
        "beats popularity clearly (hit@100 and recall@10 >= 1.2x)":
            model["hit@100"] >= 1.2 * popularity["hit@100"]
            and model["recall@10"] >= 1.2 * popularity["recall@10"],
        "hit@100 >= item_cosine": model["hit@100"] >= classic["hit@100"],
        "recall@10 >= item_cosine": model["recall@10"] >= classic["recall@10"],
    }
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")

    if args.export_books:
        # In a fresh process, so that training's memory peak does not hide the export's.
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--export_only", str(args.export_books)],
            check=True, capture_output=True, text=True)
        seconds, grown, vectors_mb, parquet_mb = json.loads(proc.stdout.strip().splitlines()[-1])
        print()
        print(f"export of {args.export_books} books: {seconds:.1f} s, peak RSS growth during "
              f"the export {grown:.0f} MB, of which {vectors_mb:.0f} MB is the kept "
              f"[num_books, dim] matrix "
              f"(book_embeddings.parquet {parquet_mb:.0f} MB)")
    print(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()
