"""Per-step cost of a training step, default model vs a plain TFRS two-tower (a diagnosis).

    python benchmarks/bench_train_step.py --prep PREP [--steps 20] [--rounds 2] [--parts]
        [model.train flags, e.g. --batch_size 2048]

On the same batches (model.data.epoch_batches of PREP's train split, model.train's
default batch size), times `train_step` of: `plain`, a TFRS id-only two-tower
(user and book id embeddings, tfrs.tasks.Retrieval, Keras Adam), the named
baseline; `default`, model.train's default model; `dense_adam`, the default model
with Keras's Adam instead of model/lazy_adam.py. Variants alternate for `--rounds`
rounds so that a shared machine's load hits them alike. Prints wall and CPU
(process time, all threads) ms per step and the ratio to `plain`. The speed of
the whole command is benchmarks/bench_train.py's figure; this one says where the
time goes. `--parts` also times the default model's parts on their own, forward and
backward: the in-batch softmax loss (and its three [B, D] x [D, B] matmuls alone), the
user tower and the book tower. `--op_profile N` traces the default model's steps with
TensorFlow's profiler and prints the N TensorFlow ops with the most self time per step
(time on the two cores together, plus IDLE: a core waiting on the other).
"""
import argparse
import glob
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline_common  # noqa: E402,F401
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from model import data, options, towers, train  # noqa: E402
from benchmarks import machine  # noqa: E402


class PlainTwoTower(tfrs.Model):
    """The TFRS tutorial's retrieval model: id embeddings and the stock Retrieval task."""

    def __init__(self, num_users, num_books, dim):
        super().__init__()
        self.users = tf.keras.layers.Embedding(num_users, dim)
        self.books = tf.keras.layers.Embedding(num_books, dim)
        self.task = tfrs.tasks.Retrieval()

    def compute_loss(self, features, training=False):
        return self.task(self.users(features["user_index"]), self.books(features["book_index"]),
                         compute_metrics=not training)


def build(variant, args, inputs, content):
    train.set_determinism(args.seed)
    if variant == "plain":
        model = PlainTwoTower(inputs.manifest["num_users"], inputs.manifest["num_books"],
                              args.embedding_dim)
        model.compile(optimizer=tf.keras.optimizers.Adam(args.learning_rate))
        return model
    model, _ = train.build_model(args, inputs.manifest, content, inputs.train)
    if variant == "dense_adam":
        model.compile(optimizer=tf.keras.optimizers.Adam(args.learning_rate))
    return model


def time_steps(model, batches, warmup=5, fn=None):
    """(wall ms, CPU ms) per step of `model.train_step` (or `fn`) after `warmup` steps."""
    step = tf.function(fn or model.train_step)
    for batch in batches[:warmup]:
        step(batch)
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches[warmup:]:
        out = step(batch)
    float(out["loss"])
    steps = len(batches) - warmup
    return ((time.perf_counter() - wall) / steps * 1000, (time.process_time() - cpu) / steps * 1000)


def _tower_pass(tower, key, target, **kwargs):
    """Forward and backward through one tower on `batch[key]`, its output pulled towards
    `target`. The gradients are returned: a tf.function prunes what its outputs do not need."""
    def run(batch):
        with tf.GradientTape() as tape:
            extra = {k: batch[v] for k, v in kwargs.items()}
            loss = tf.reduce_sum(tower(batch[key], **extra) * target)
        grads = tape.gradient(loss, tower.trainable_variables)
        return {"loss": loss, "grads": [g.values if isinstance(g, tf.IndexedSlices) else g
                                        for g in grads if g is not None]}
    return run


def time_parts(args, inputs, content, batches):
    """(part, wall ms, CPU ms) for the default model's parts, forward and backward."""
    model = build("default", args, inputs, content)
    dim = args.embedding_dim
    rows = int(batches[0]["book_index"].shape[0])
    query = tf.math.l2_normalize(tf.random.stateless_normal([rows, dim], [1, 2]), axis=1)
    candidate = tf.math.l2_normalize(tf.random.stateless_normal([rows, dim], [3, 4]), axis=1)

    def softmax(batch):
        with tf.GradientTape() as tape:
            tape.watch([query, candidate])
            book = tf.reshape(tf.cast(batch["book_index"], tf.int32), [-1])
            loss = towers.in_batch_softmax_loss(query, candidate, book, model.log_probability,
                                                args.temperature)
        return {"loss": loss, "g": tape.gradient(loss, [query, candidate])}

    def matmuls(batch):
        scores = tf.matmul(query, candidate, transpose_b=True)
        return {"loss": tf.reduce_sum(tf.matmul(scores, candidate))
                + tf.reduce_sum(tf.matmul(scores, query, transpose_a=True))}

    parts = [("train_step", model.train_step), ("softmax loss", softmax),
             ("  its 3 matmuls", matmuls),
             ("user tower", _tower_pass(model.query_tower, "user_index", query,
                                        exclude_book="book_index")),
             ("book tower", _tower_pass(model.candidate_tower, "book_index", candidate))]
    return [(name, *time_steps(None, batches, fn=fn)) for name, fn in parts]


def op_profile(model, batches, top):
    """(ms per step, op type, op name) of the `top` ops with the most self time."""
    step = tf.function(model.train_step)
    for batch in batches[:5]:
        step(batch)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for batch in batches[5:]:
            out = step(batch)
        float(out["loss"])
        tf.profiler.experimental.stop()
        from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin
        trace = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        table = json.loads(plugin.xspace_to_tools_data(trace, "framework_op_stats", {})[0])[0]
    column = {c["id"]: i for i, c in enumerate(table["cols"])}
    steps = len(batches) - 5
    rows = [[cell.get("v") if cell else None for cell in row["c"]] for row in table["rows"]]
    rows.sort(key=lambda r: -r[column["total_self_time"]])
    return [(r[column["total_self_time"]] / steps / 1000, r[column["type"]],
             r[column["operation"]]) for r in rows[:top]]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prep", required=True, help="a preprocess output")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="plain,default,dense_adam",
                        help="comma-separated subset of plain,default,dense_adam")
    parser.add_argument("--parts", action="store_true",
                        help="also time the default model's parts (forward and backward)")
    parser.add_argument("--op_profile", type=int, default=0, metavar="N",
                        help="also print the N ops with the most self time per step")
    bench, train_flags = parser.parse_known_args(argv)
    args, _ = options.parse_args(["--data", bench.prep, "--output", "-"] + train_flags)
    inputs = train.read_inputs(args)
    content = data.content_features(inputs.catalog, args.max_title_tokens, args.max_authors,
                                    args.min_feature_count)
    tensors = data.as_tensors(inputs.train)
    batches = [data.batch_features(tensors, index) for index in data.epoch_batches(
        len(inputs.train.user), args.batch_size, args.seed, 0)[:bench.steps + 5]]
    results = {}
    for _ in range(bench.rounds):
        for variant in bench.variants.split(","):
            results.setdefault(variant, []).append(
                time_steps(build(variant, args, inputs, content), batches))
    print(f"{len(inputs.train.user)} train interactions, {inputs.manifest['num_users']} users, "
          f"{inputs.manifest['num_books']} books, batch {args.batch_size}")
    print(f"machine: {machine.describe()}")
    print(f"{'variant':12s}{'wall ms/step':>14s}{'CPU ms/step':>14s}{'CPU vs plain':>14s}")
    plain_cpu = min(cpu for _, cpu in results["plain"]) if "plain" in results else None
    for variant, runs in results.items():
        wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
        ratio = f"{plain_cpu / cpu:13.2f}x" if plain_cpu else f"{'-':>14s}"
        print(f"{variant:12s}{wall:14.1f}{cpu:14.1f}{ratio}")
    if bench.parts:
        print(f"\n{'part (forward + backward)':28s}{'wall ms':>10s}{'CPU ms':>10s}")
        for name, wall, cpu in time_parts(args, inputs, content, batches):
            print(f"{name:28s}{wall:10.1f}{cpu:10.1f}")
    if bench.op_profile:
        print(f"\n{'ms/step':>8s}  {'op type':30s}op")
        for ms, kind, name in op_profile(build("default", args, inputs, content), batches,
                                         bench.op_profile):
            print(f"{ms:8.2f}  {kind[:30]:30s}{name}")


if __name__ == "__main__":
    from benchmarks import results
    results.main_recorded(main, "Training step profile")
