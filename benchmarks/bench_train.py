"""Benchmark of model.train: speed next to a plain TFRS two-tower, quality vs baselines, memory.

    python -m benchmarks.bench_train [--ratings 1000000 --books 20000 --users 20000]
        [--prep EXISTING_PREP] [--work DIR] [--export_books 1000000] [train flags...]

1. Generates Goodreads-like data with planted structure (`sample_goodreads`)
   and preprocesses it (`beam_jobs.preprocess` when available, else the stand-in in
   tests/model_fixtures.py), unless `--prep` names an existing preprocess output.
2. Runs, in the same run and on the same data, one after the other in fresh
   processes: the named baseline, a plain TFRS id-only two-tower (user and book id
   embeddings, tfrs.tasks.Retrieval, Adam, the TFRS tutorial's input pipeline) for
   one epoch at the same batch size and embedding width; then the `python -m model.train`
   command line with its defaults (extra flags are passed through), evaluating every epoch.
   Prints the throughputs (examples/s over the epochs' training loops; the plain model
   both in Keras's `fit`, as the tutorial trains it, and in model.train's own loop,
   `train.train_epoch`), their ratios, the CLI wall
   time and peak RSS, the training time until the model first matched item_cosine
   on hit@100 and recall@10, and the final quality table with pass/fail checks.
   The quality table compares the served model (two-tower + item-item head +
   popularity, model/rerank.py) with every baseline, overall and per user group,
   and checks the quality goals: ahead of EASE on recall@10, recall@100 and
   hit@100, and at least level with popularity in every group.
   `--tables MODEL_DIR [MODEL_DIR ...]` prints only the markdown quality table of
   finished model.train outputs (the quality tables of docs/model.md), with the
   command lines that made them (from their training_log.json).
`--map_embedding PAIRS BOOKS USERS DIM` only times the map's embedding
(model/map_embedding.py) on random pairs (docs/model.md, "The map's embedding").
3. Exports vectors for a synthetic catalogue of `--export_books` books through the
   streaming writer and reports peak memory against the size of the vectors.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline_common  # noqa: E402,F401
import numpy as np  # noqa: E402
from model import evaluate, report  # noqa: E402
from benchmarks import machine, results  # noqa: E402
from pipeline_common import artifacts  # noqa: E402


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
    if not os.path.exists(os.path.join(raw, artifacts.INTERACTIONS_CSV)):
        subprocess.run([sys.executable, "-m", "sample_goodreads", "--output", raw,
                        "--ratings", str(args.ratings), "--books", str(args.books),
                        "--users", str(args.users), "--seed", "7"], check=True)
    if os.path.exists(os.path.join(prep, artifacts.MANIFEST)):
        with open(os.path.join(prep, artifacts.MANIFEST)) as handle:
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
        size = os.path.getsize(os.path.join(out, artifacts.BOOK_EMBEDDINGS)) / 2**20
    return seconds, _status_mb("VmHWM") - before, num_books * dim * 4 / 2**20, size


def plain_tfrs_throughput(prep, batch_size, dim, learning_rate=0.003):
    """Examples/s of a plain TFRS id-only two-tower on `prep`'s train split: one epoch in
    Keras's `fit` (as the TFRS tutorial trains it), then one in model.train's own loop."""
    import numpy as np
    import tensorflow as tf

    class EpochTimer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    from benchmarks.bench_train_step import PlainTwoTower  # the TFRS tutorial's model
    from model import data, train

    manifest = data.check_data_dir(prep)
    interactions = data.read_split(prep, "train", manifest)
    order = np.random.default_rng(0).permutation(len(interactions.user))
    dataset = (tf.data.Dataset.from_tensor_slices({"user_index": interactions.user[order],
                                                   "book_index": interactions.book[order]})
               .batch(batch_size, drop_remainder=True).prefetch(2))
    model = PlainTwoTower(manifest["num_users"], manifest["num_books"], dim)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    timer = EpochTimer()
    model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
    steps = len(order) // batch_size
    _, loop_seconds = train.train_epoch(
        train.index_step(model, data.as_tensors(interactions)),
        data.epoch_batches(len(order), batch_size, 0, 0), 0)
    return steps * batch_size / timer.seconds, steps * batch_size / loop_seconds


def scored_baselines(metrics):
    """The baselines metrics.json has figures for."""
    return [name for name, values in metrics["baselines"].items() if "recall@10" in values]


def run_measured(command):
    """Runs a command line; returns (wall seconds, peak RSS MB of that process alone)."""
    start = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: {' '.join(command)} failed")
    return wall, usage.ru_maxrss / 1024.0


QUALITY_METRICS = ("hit@100", "recall@10", "recall@100")


def quality_checks(metrics):
    """{check: passed} for the quality goals on one metrics.json."""
    model, checks = metrics["model"], {}
    ease = metrics["baselines"].get("ease")
    if ease:
        for m in QUALITY_METRICS:
            checks[f"{m} > ease"] = model[m] > ease[m]
    groups = metrics.get("groups", {})
    for label, values in groups.get("model", {}).items():
        pop = groups.get("popularity", {}).get(label)
        if pop and values["users"]:
            checks[f"group {label}: >= popularity on {', '.join(QUALITY_METRICS)}"] = all(
                values[m] >= pop[m] - 1e-12 for m in QUALITY_METRICS)
    return checks


def markdown_table(metrics, title):
    """Markdown rows: every recommender overall, then model vs popularity per group."""
    lines = [f"**{title}** ({metrics['eval_users']} eval users, "
             f"{metrics['eval_interactions']} eval interactions)", "",
             "| recommender | group | users | " + " | ".join(QUALITY_METRICS) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in QUALITY_METRICS) + " |"]
    rows = [("model", metrics["model"])] + list(metrics["baselines"].items())
    for name, values in rows:
        lines.append(f"| {name} | all | {metrics['eval_users']} | "
                     + " | ".join(f"{values[m]:.4f}" for m in QUALITY_METRICS) + " |")
    model_groups = metrics.get("groups", {}).get("model", {})
    for label, _ in evaluate.GROUPS:
        values = model_groups.get(label)
        if not values or not values["users"]:
            continue
        for name in ("model", "popularity", "ease"):
            group = metrics["groups"].get(name, {}).get(label)
            if group:
                lines.append(f"| {name} | {label} | {group['users']} | "
                             + " | ".join(f"{group[m]:.4f}" for m in QUALITY_METRICS) + " |")
    failed = [name for name, ok in quality_checks(metrics).items() if not ok]
    lines += ["", "checks: " + ("all pass" if not failed else "FAIL: " + "; ".join(failed))]
    return "\n".join(lines)


def summary_table(runs):
    """One markdown table of several runs: every recommender, then model vs popularity per group."""
    head = " | ".join(QUALITY_METRICS)
    lines = [f"| run | recommender | {head} |", ("| --- | --- | " + "--- | " * 3).rstrip()]
    for label, metrics in runs:
        for name, values in [("model", metrics["model"])] + list(metrics["baselines"].items()):
            lines.append(f"| {label} | {name} | "
                         + " | ".join(f"{values[m]:.4f}" for m in QUALITY_METRICS) + " |")
    slash = " / ".join(QUALITY_METRICS)
    lines += ["", f"| run | group (eval users) | model {slash} | popularity {slash} |",
              "| --- | --- | --- | --- |"]
    for label, metrics in runs:
        for group, _ in evaluate.GROUPS:
            model = metrics["groups"]["model"][group]
            pop = metrics["groups"]["popularity"][group]
            if model["users"]:
                lines.append(f"| {label} | {group} ({model['users']}) | "
                             + " / ".join(f"{model[m]:.4f}" for m in QUALITY_METRICS) + " | "
                             + " / ".join(f"{pop[m]:.4f}" for m in QUALITY_METRICS) + " |")
    return "\n".join(lines)


def print_tables(model_dirs, data=None):
    runs = []
    for directory in model_dirs:
        with open(os.path.join(directory, artifacts.METRICS_JSON)) as handle:
            metrics = json.load(handle)
        with open(os.path.join(directory, artifacts.TRAINING_LOG)) as handle:
            log = json.load(handle)
        options = log.get("options", {})
        command = (f"python -m model.train --data {data or 'PREP'} --output {directory} "
                   f"--seed {options.get('seed')}")
        print(markdown_table(metrics, f"`{command}`"))
        runs.append((f"{os.path.basename(directory.rstrip('/'))}, seed {options.get('seed')}",
                     metrics))
        figures = "; ".join(
            f"{name} " + " / ".join(f"{values[m]:.3f}" for m in QUALITY_METRICS)
            for name, values in [("served model", metrics["model"])]
            + sorted(metrics["baselines"].items()))
        results.headline(f"quality, {data or directory} (model seed {options.get('seed')}): "
                         "hit@100 / recall@10 / recall@100", figures)
        groups = log.get("rerank", {}).get("groups", {})
        if groups:
            print("\nserved-score weights chosen on the training holdout: " + "; ".join(
                (f"{g} popularity fallback" if groups[g].get("popularity_fallback") else
                 f"{g} head {groups[g]['head_weight']:g}, "
                 f"popularity {groups[g]['popularity_weight']:g}")
                for g, _ in evaluate.GROUPS if g in groups))
        two_tower = log.get("two_tower_alone")
        if two_tower:
            print("two-tower alone: " + ", ".join(f"{m} {two_tower[m]:.4f}"
                                                  for m in QUALITY_METRICS))
        print()
    if len(runs) > 1:
        print(summary_table(runs))


def map_embedding_cost(pairs, books, users, dim, seed=0):
    """Time and peak memory of the map's embedding (model/map_embedding.py) on random pairs
    with Zipf-like book popularity: (distinct pairs, wall s, CPU s, peak RSS MB)."""
    from model import map_embedding
    rng = np.random.default_rng(seed)
    weight = (np.arange(books) + 1.0) ** -0.8
    user = rng.integers(0, users, pairs)
    book = rng.choice(books, pairs, p=weight / weight.sum())
    key = np.unique(user.astype(np.int64) * books + book)
    ptr = np.searchsorted(key // books, np.arange(users + 1))
    _reset_peak_rss()
    wall, cpu = time.perf_counter(), time.process_time()
    map_embedding.map_embedding(ptr, key % books, books, dim=dim)
    return (len(key), time.perf_counter() - wall, time.process_time() - cpu,
            _status_mb("VmHWM"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--books", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--prep", help="use this preprocess output instead of generating one")
    parser.add_argument("--work", help="working directory (kept; default: a temp dir)")
    parser.add_argument("--export_books", type=int, default=1_000_000)
    parser.add_argument("--tables", nargs="+", metavar="MODEL_DIR",
                        help="only print the quality tables of finished model.train outputs "
                             "(of --prep)")
    parser.add_argument("--map_embedding", type=int, nargs=4,
                        metavar=("PAIRS", "BOOKS", "USERS", "DIM"),
                        help="only time the map's embedding on random pairs")
    parser.add_argument("--export_only", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--plain_only", help=argparse.SUPPRESS)
    args, train_flags = parser.parse_known_args(argv)
    if args.tables:
        print_tables(args.tables, args.prep)
        return
    if args.map_embedding:
        pairs, seconds, cpu, peak = map_embedding_cost(*args.map_embedding)
        print(f"map embedding: {pairs:,} pairs, {args.map_embedding[1]:,} books, dim "
              f"{args.map_embedding[3]}: {seconds:.1f} s wall, {cpu:.1f} s CPU, "
              f"peak RSS {peak:.0f} MB")
        return
    if args.export_only:
        print(json.dumps(export_memory(args.export_only)))
        return
    from model import options
    train_args, _ = options.parse_args(["--data", "-", "--output", "-"] + train_flags)
    if args.plain_only:
        print(json.dumps(plain_tfrs_throughput(args.plain_only, train_args.batch_size,
                                               train_args.embedding_dim)))
        return
    work = args.work or tempfile.mkdtemp(prefix="bench_train_")
    os.makedirs(work, exist_ok=True)

    start = time.perf_counter()
    if args.prep:
        prep, source = args.prep, "given"
    else:
        prep, source = make_prep(args, work)
    with open(os.path.join(prep, artifacts.MANIFEST)) as handle:
        manifest = json.load(handle)
    data_seconds = time.perf_counter() - start

    # The named baseline first, in a fresh process, on the same data, batch size and width.
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--plain_only", prep,
                           "--batch_size", str(train_args.batch_size),
                           "--embedding_dim", str(train_args.embedding_dim)],
                          check=True, capture_output=True, text=True)
    plain_fit, plain_loop = json.loads(proc.stdout.strip().splitlines()[-1])

    output = os.path.join(work, "model")
    if os.path.exists(output):
        shutil.rmtree(output)
    wall, peak_mb = run_measured([sys.executable, "-m", "model.train", "--data", prep,
                                  "--output", output, "--verbose", "2", "--eval_every", "1"]
                                 + train_flags)
    with open(os.path.join(output, artifacts.TRAINING_LOG)) as handle:
        log = json.load(handle)
    with open(os.path.join(output, artifacts.METRICS_JSON)) as handle:
        metrics = json.load(handle)
    history = log["history"]
    classic = metrics["baselines"]["item_cosine"]
    popularity = metrics["baselines"]["popularity"]
    train_seconds = sum(h["train_seconds"] for h in history)
    loop_seconds = sum(h["loop_seconds"] for h in history)
    examples = manifest["train_examples"] * len(history)
    ours = examples / loop_seconds
    reached, elapsed = None, 0.0
    for h in history:
        elapsed += h["train_seconds"]
        if h["hit@100"] >= classic["hit@100"] and h["recall@10"] >= classic["recall@10"]:
            reached = (h["epoch"], elapsed)
            break

    print()
    print(f"data: {source}: {manifest['train_examples']} train / {manifest['eval_examples']} "
          f"eval interactions, {manifest['num_users']} users, {manifest['num_books']} books "
          f"({data_seconds:.0f} s to prepare); batch size {train_args.batch_size}")
    print(f"machine: {machine.describe()}")
    print(f"{'figure':52s}{'value':>14s}")
    print(f"{'plain TFRS id-only two-tower in Keras fit (ex/s, baseline)':52s}{plain_fit:14.0f}")
    print(f"{'the same in model.train.train_epoch (examples/s)':52s}{plain_loop:14.0f}")
    print(f"{'model.train default model (examples/s, epoch loop)':52s}{ours:14.0f}"
          f"   ({ours / plain_fit:.2f}x the plain two-tower in fit, "
          f"{ours / plain_loop:.2f}x in the same loop)")
    print(f"{'model.train (examples/s, incl. per-epoch set-up)':52s}"
          f"{examples / train_seconds:14.0f}")
    print(f"{'model.train command wall time (s)':52s}{wall:14.1f}")
    print(f"{'model.train command peak RSS (MB)':52s}{peak_mb:14.0f}")
    for name, seconds in log["baseline_fit_seconds"].items():
        print(f"{name + ' fit time (s)':52s}{seconds:14.1f}")
    if reached:
        print(f"{'model time to item_cosine quality (s)':52s}{reached[1]:14.1f}   (epoch {reached[0]})")
    else:
        print(f"{'model time to item_cosine quality (s)':52s}{'not reached':>14s}")
    print()
    keys = list(evaluate.METRIC_NAMES)
    print("per epoch (training seconds, eval metrics):")
    for h in history:
        if "hit@10" in h:
            print(f"  epoch {h['epoch']:2d} {h['train_seconds']:7.1f} s  "
                  + "  ".join(f"{k} {h[k]:.4f}" for k in keys))
    print()
    print(report.format_table(metrics))
    print()
    command = ["python", "-m", "model.train", "--data", prep, "--output", output] + train_flags
    print(markdown_table(metrics, "`" + " ".join(command) + "`"))
    model = metrics["model"]
    checks = {
        "beats popularity clearly (hit@100 and recall@10 >= 1.2x)":
            model["hit@100"] >= 1.2 * popularity["hit@100"]
            and model["recall@10"] >= 1.2 * popularity["recall@10"],
        "hit@100 >= item_cosine": model["hit@100"] >= classic["hit@100"],
        "recall@10 >= item_cosine": model["recall@10"] >= classic["recall@10"],
        "throughput >= 40k examples/s": ours >= 40000,
        **quality_checks(metrics),
    }
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    scale = (f"{manifest['train_examples'] / 1e6:.3g}M train interactions, "
             f"{manifest['num_books']:,} books")
    results.headline(f"model.train at {scale}: epoch loop (and the plain TFRS two-tower in "
                     "Keras fit), peak RSS",
                     f"{ours:,.0f} ({plain_fit:,.0f}) examples/s, {peak_mb:,.0f} MB")
    best = max(scored_baselines(metrics), key=lambda name: metrics["baselines"][name]["recall@10"])
    results.headline(f"served model vs the best baseline on recall@10 ({best}) at {scale}: "
                     "recall@10, hit@100",
                     f"{model['recall@10']:.3f} vs {metrics['baselines'][best]['recall@10']:.3f}, "
                     f"{model['hit@100']:.3f} vs {metrics['baselines'][best]['hit@100']:.3f}")

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
    results.main_recorded(main, "Training speed and quality tables")
