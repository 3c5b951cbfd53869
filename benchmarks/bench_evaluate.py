"""Benchmark: the bounded evaluator and the baselines on a large preprocess output.

    python -m benchmarks.bench_evaluate --data PREP [--eval_users 20000]
        [--ease_books 3000,20000] [--inverse_books 3000] [--skip item_cosine]

Reads PREP's train and eval splits (as model.train does), builds the evaluation split
over at most --eval_users users, then fits and scores each baseline with
model.evaluate's exact full-catalogue ranking. EASE is fitted on the --ease_books
most-read books (the rest of the interactions dropped). One table: per step, books,
seconds, CPU seconds of this process (on a shared machine wall time inflates when
other jobs run; CPU time much less), seconds relative to scoring popularity (the
cheapest recommender: the evaluator's own cost) and the step's peak RSS (VmHWM,
reset before each step).
"""
import argparse
import os
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline_common  # noqa: E402,F401  (legacy Keras before TensorFlow loads)
import numpy as np  # noqa: E402

from benchmarks import machine, results  # noqa: E402
from model import baselines, data, evaluate  # noqa: E402


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


class Steps:
    """Times each step and keeps its peak memory."""

    def __init__(self):
        self.rows = []

    def run(self, name, books, function):
        _reset_peak()
        start, cpu = time.perf_counter(), time.process_time()
        result = function()
        self.rows.append((name, books, time.perf_counter() - start, time.process_time() - cpu,
                          machine.peak_rss_mb()))
        print(f"  {name}: {self.rows[-1][2]:.1f} s ({self.rows[-1][3]:.1f} s CPU)", flush=True)
        return result

    def table(self, reference):
        base = dict((row[0], row[2]) for row in self.rows)[reference]
        lines = [f"{'step':34}{'books':>9}{'seconds':>10}{'CPU s':>9}{'x ' + reference:>22}"
                 f"{'peak MB':>10}"]
        for name, books, seconds, cpu, peak in self.rows:
            lines.append(f"{name:34}{books:>9}{seconds:>10.1f}{cpu:>9.1f}{seconds / base:>22.2f}"
                         f"{peak:>10.0f}")
        return "\n".join(lines)


def top_books_split(train, evals, counts, num_users, books, max_eval_users, user_ids):
    """The interactions with the `books` most-read books, re-indexed 0..books-1."""
    top = np.lexsort((np.arange(len(counts)), -counts))[:books]
    new = np.full(len(counts), -1, np.int32)
    new[top] = np.arange(len(top))
    kept = [SimpleNamespace(user=s.user[new[s.book] >= 0], book=new[s.book[new[s.book] >= 0]])
            for s in (train, evals)]
    return evaluate.EvalSplit(kept[0], kept[1], num_users, len(top), max_eval_users, user_ids)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a beam_jobs.preprocess output")
    parser.add_argument("--eval_users", type=int, default=20000)
    parser.add_argument("--ease_books", default="3000,20000",
                        help="comma-separated catalogue sizes to fit EASE on ('' for none)")
    parser.add_argument("--inverse_books", type=int, default=0,
                        help="also time EASE's inverse of the N most-read books' gram matrix: "
                             "baselines.invert_spd vs np.linalg.inv (0: not)")
    parser.add_argument("--skip", default="", help="comma-separated steps to skip: item_cosine")
    args = parser.parse_args(argv)
    steps = Steps()
    try:
        manifest = data.check_data_dir(args.data)
    except data.DataError as err:
        raise SystemExit(f"error: {err}") from None
    num_users, num_books = manifest["num_users"], manifest["num_books"]
    train, evals = steps.run("read train + eval splits", num_books, lambda: (
        data.read_split(args.data, "train", manifest), data.read_split(args.data, "eval", manifest)))
    user_ids = steps.run("read user ids", num_books, lambda: evaluate.read_user_ids(args.data))
    split = steps.run("EvalSplit (user sample)", num_books, lambda: evaluate.EvalSplit(
        train, evals, num_users, num_books, args.eval_users, user_ids))
    print(f"{len(train.user)} train / {len(evals.user)} eval interactions, {num_users} users, "
          f"{num_books} books; {split.describe()}", flush=True)
    popularity = steps.run("popularity fit", num_books,
                           lambda: baselines.Popularity().fit(split))
    steps.run("popularity scored", num_books,
              lambda: evaluate.evaluate_scores(popularity, split, groups=True))
    if "item_cosine" not in args.skip:
        cosine = steps.run("item_cosine fit", num_books, lambda: baselines.ItemCosine().fit(split))
        metrics = steps.run("item_cosine scored", num_books,
                            lambda: evaluate.evaluate_scores(cosine, split, groups=True))
        print("  item_cosine:", {k: round(v, 4) for k, v in metrics.items() if k != "groups"})
        del cosine
    for books in [int(b) for b in args.ease_books.split(",") if b]:
        sub = top_books_split(train, evals, split.counts, num_users, min(books, num_books),
                              args.eval_users, user_ids)
        model = steps.run("ease fit (incl. choosing l2)", sub.num_books,
                          lambda: baselines.Ease().fit(sub))
        print(f"  ease l2 {model.l2}, holdout recall@20 by l2: "
              f"{ {k: round(v, 4) for k, v in model.holdout_recall.items()} }")
        steps.run("ease scored", sub.num_books,
                  lambda: evaluate.evaluate_scores(model, sub, groups=True))
        del model
    if args.inverse_books:
        sub = top_books_split(train, evals, split.counts, num_users,
                              min(args.inverse_books, num_books), 0, None)
        gram = baselines.gram_matrix(sub.train_ptr, sub.train_book, sub.num_books)
        gram[np.diag_indices_from(gram)] += 100.0
        steps.run("np.linalg.inv (float32)", sub.num_books, lambda: np.linalg.inv(gram))
        steps.run("baselines.invert_spd (float32)", sub.num_books,
                  lambda: baselines.invert_spd(gram))
    print()
    print(steps.table("popularity scored"))
    seconds = {name: (books, wall) for name, books, wall, _, _ in steps.rows}
    results.headline(f"evaluator: {split.describe()['eval_users']:,} eval users ranked over all "
                     f"{num_books:,} books (popularity's scores)",
                     f"{seconds['popularity scored'][1]:.1f} s")
    if "ease fit (incl. choosing l2)" in seconds:
        books, wall = seconds["ease fit (incl. choosing l2)"]
        results.headline(f"EASE baseline fit at {books:,} books (the last of --ease_books)",
                         f"{wall:.1f} s")


if __name__ == "__main__":
    results.main_recorded(main, "Evaluator and baselines")
