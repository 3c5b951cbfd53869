"""Benchmark: implicit ALS (the classic matrix-factorisation peer) on the model's own split.

    (needs `implicit`: in the test extra, `pip install -e '.[test]'`)
    .venv/bin/python benchmarks/bench_als.py --data PREP [--model MODEL ...] \\
        [--factors 32,64,128] [--regularization 0.01,0.1] [--alpha 1,10,40] [--iterations 15]

Fits `implicit`'s AlternatingLeastSquares (Hu, Koren & Volinsky 2008) on the binary
training matrix of the preprocess output PREP, for every setting of the grid, and scores
each with model.evaluate on exactly the split model.train evaluates (the same eval users,
chosen by the same hash, training books excluded from recall@K). Prints one row per
setting and, for each `--model` output, its metrics.json next to the best ALS setting.

"Best ALS" is the grid's best value of each metric on its own, picked on the eval split
itself, which flatters ALS (a fair peer would choose one setting on training data, as
model.train does for EASE's λ): "model >= best ALS" here is a conservative comparison.
"""
import argparse
import itertools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline_common  # noqa: E402,F401  (legacy Keras before TensorFlow loads)
import numpy as np  # noqa: E402

from model import evaluate, options, train  # noqa: E402
from pipeline_common import artifacts, fileio  # noqa: E402

SHOWN = ("hit@100", "recall@10", "recall@100")


def numbers(text, kind):
    return [kind(v) for v in text.split(",") if v.strip()]


def model_split(data, eval_users):
    """The EvalSplit model.train builds for `data` (same eval users, same definitions)."""
    args, _ = options.parse_args(["--data", data, "--output", "-",
                                  "--eval_users", str(eval_users)])
    return train.eval_split(args, train.read_inputs(args))


class AlsScorer:
    """score_fn for model.evaluate: user factors x item factors."""

    def __init__(self, split, factors, regularization, alpha, iterations, seed):
        from implicit.cpu.als import AlternatingLeastSquares
        from scipy.sparse import csr_matrix
        ones = np.ones(len(split.train_user), np.float32)
        matrix = csr_matrix((ones, (split.train_user, split.train_book)),
                            shape=(split.num_users, split.num_books))
        self.model = AlternatingLeastSquares(factors=factors, regularization=regularization,
                                             alpha=alpha, iterations=iterations,
                                             random_state=seed, num_threads=0)
        self.model.fit(matrix, show_progress=False)

    def __call__(self, users):
        return self.model.user_factors[users] @ self.model.item_factors.T


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a preprocess output")
    parser.add_argument("--model", nargs="*", default=[],
                        help="model.train outputs on the same data (their metrics.json)")
    parser.add_argument("--eval_users", type=int, default=20000,
                        help="as model.train's --eval_users (default 20000)")
    parser.add_argument("--factors", default="32,64,128")
    parser.add_argument("--regularization", default="0.01,0.1")
    parser.add_argument("--alpha", default="1,10,40")
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    try:
        import implicit  # noqa: F401
    except ImportError:
        parser.error("this benchmark needs the package implicit (the test extra: "
                     "pip install -e '.[test]')")

    split = model_split(args.data, args.eval_users)
    print(f"{args.data}: {len(split.train_user)} training pairs, {split.num_users} users, "
          f"{split.num_books} books; {len(split.users)} eval users, "
          f"{split.num_eval_interactions} eval interactions")
    print(f"{'ALS factors / reg / alpha':28s}" + "".join(f"{m:>11s}" for m in SHOWN)
          + f"{'fit s':>8s}")
    results = []
    grid = itertools.product(numbers(args.factors, int), numbers(args.regularization, float),
                             numbers(args.alpha, float))
    for factors, reg, alpha in grid:
        start = time.perf_counter()
        scorer = AlsScorer(split, factors, reg, alpha, args.iterations, args.seed)
        seconds = time.perf_counter() - start
        metrics = evaluate.evaluate_scores(scorer, split, groups=True)
        results.append(((factors, reg, alpha), metrics))
        print(f"{f'{factors} / {reg:g} / {alpha:g}':28s}"
              + "".join(f"{metrics[m]:11.4f}" for m in SHOWN) + f"{seconds:8.1f}", flush=True)
    best = best_of(results)
    print("\nbest ALS = the grid's best value of each metric on its own (over all settings, "
          "overall and per group): an upper bound for ALS")
    for path in args.model:
        metrics = json.loads(fileio.read_bytes(fileio.join(path, artifacts.METRICS_JSON)))
        print(f"\n{path}:")
        print(f"{'recommender / group':28s}" + "".join(f"{m:>11s}" for m in SHOWN))
        rows = [("all", metrics["model"], best["all"])]
        rows += [(label, metrics.get("groups", {}).get("model", {}).get(label), values)
                 for label, values in best.items() if label != "all"]
        for label, mine, theirs in rows:
            if mine and mine.get("users", 1):
                print(f"{'model / ' + label:28s}" + "".join(f"{mine[m]:11.4f}" for m in SHOWN))
                print(f"{'best ALS / ' + label:28s}"
                      + "".join(f"{theirs[m]:11.4f}" for m in SHOWN))


def best_of(results):
    """{"all" or group label: {metric: the largest value any setting reached}}."""
    best = {"all": {m: max(r[1][m] for r in results) for m in SHOWN}}
    for label in results[0][1].get("groups", {}):
        best[label] = {m: max(r[1]["groups"][label][m] for r in results) for m in SHOWN}
    return best


if __name__ == "__main__":
    from benchmarks import results
    results.main_recorded(main, "ALS peer")
