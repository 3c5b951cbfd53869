"""Trains the two-tower book retrieval model on a preprocess output, evaluates it, exports it.

    python -m model.train --data PREP --output MODEL [--epochs E] [--batch_size B]
        [--embedding_dim D] [--learning_rate LR] [--seed S] [--config run_configs/NAME.yaml]

Reads docs/artifacts.md section 1 from --data and writes section 2 under --output
(local or gs://). A checkpoint is kept per epoch under MODEL/checkpoints: running
the same command again resumes after the last finished epoch (and a larger
--epochs continues training). `metrics.json` is written last and marks a complete
output. `--vertex [--dry_run]` runs the same training as a Vertex AI custom job
(see model/vertex.py). The job runs in phases, one function each: read_inputs,
fit (on the training data less a small holdout), the served score's per-group
weights chosen on that holdout (model/rerank.py owns the holdout, the choice and
the served head), evaluate_model, export_outputs (metrics.png: model/report.py).
Per-epoch figures (metrics.png) are the two-tower score alone; metrics.json's
"model" is the served score.
"""
import collections
import functools
import logging
import sys
import time

import pipeline_common  # noqa: F401  (legacy Keras before TensorFlow loads)
import numpy as np
import tensorflow as tf

from model import (data, evaluate, export, lazy_adam, map_embedding, options, report, rerank,
                   towers, vertex)
from pipeline_common import artifacts, fileio
from pipeline_common.entrypoint import main
from pipeline_common.errors import UserError

# The preprocess output, as read by read_inputs.
Inputs = collections.namedtuple("Inputs", ["manifest", "train", "evals", "catalog"])


def set_determinism(seed):
    """Same seed, same data -> same model (on CPU)."""
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _book_probability(train, num_books):
    counts = np.bincount(train.book, minlength=num_books).astype(np.float64) + 1.0
    return counts / counts.sum()


def build_model(args, manifest, content, train):
    """Builds and compiles the two towers and the retrieval task."""
    history = data.user_histories(train, manifest["num_users"], args.history_length, args.seed)
    if "history" not in args.query_features:
        history = None
    query = towers.QueryTower(manifest["num_users"], args.embedding_dim, history,
                              manifest["num_books"], args.query_hidden_layers,
                              use_user_id="id" in args.query_features,
                              history_dropout=args.history_dropout, seed=args.seed)
    candidate = towers.CandidateTower(manifest["num_books"], content, args.embedding_dim,
                                      args.hidden_layers)
    model = towers.TwoTowerModel(query, candidate,
                                 _book_probability(train, manifest["num_books"]),
                                 temperature=args.temperature)
    if args.optimizer == "adam":
        optimizer = lazy_adam.LazyAdam(learning_rate=args.learning_rate)
    else:
        optimizer = tf.keras.optimizers.Adagrad(learning_rate=args.learning_rate)
    model.compile(optimizer=optimizer)
    return model, optimizer


def index_step(model, tensors):
    """`model.train_step` as a tf.function of a batch of interaction indices
    (`data.epoch_batches`), gathering its features from `tensors` (`data.as_tensors`)."""
    return tf.function(lambda index: model.train_step(data.batch_features(tensors, index)))


def train_epoch(step, batches, verbose):
    """Runs `step` (`index_step`) on every batch of `batches`.

    A plain loop rather than Keras's `fit`, whose per-step callbacks and bookkeeping
    cost ~8% of a step at 100M ratings (benchmarks/bench_train.py times the same model
    in both). Stops at the first non-finite loss. `verbose` as fit's: 1 a progress
    bar, 2 one line at the end. Returns (mean loss over the batches, seconds).
    """
    steps = len(batches)
    progress = tf.keras.utils.Progbar(steps, verbose=verbose, stateful_metrics=["loss"])
    start, total, done = time.perf_counter(), 0.0, 0
    for batch in batches:
        loss = float(step(batch)["loss"])
        total, done = total + loss, done + 1
        if not np.isfinite(loss):
            return loss, time.perf_counter() - start
        if done % 20 == 0 or done == steps:
            progress.update(done, [("loss", total / done)])
    return total / max(done, 1), time.perf_counter() - start


def model_scorer(model, vectors):
    """score_fn for model.evaluate: users -> cosine scores against every book."""
    book_vectors = tf.constant(vectors)

    def score(users):
        query = model.query_tower(tf.constant(users, tf.int64))
        return tf.matmul(query, book_vectors, transpose_b=True).numpy()
    return score


def tower_book_vectors(model):
    """The candidate tower's vector of every book (float32 [num_books, dim])."""
    return np.concatenate([v for _, v in model.book_embeddings()])


class CheckpointState:
    """Per-epoch checkpoints, run options and metric history under MODEL/checkpoints."""

    def __init__(self, output, model, optimizer, run_options):
        self.directory = fileio.join(output, "checkpoints")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(query_tower=model.query_tower,
                                              candidate_tower=model.candidate_tower,
                                              optimizer=optimizer, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=2)
        self.options = run_options
        self.history = []

    def restore(self):
        """Restores the last finished epoch; returns it (0 when starting fresh)."""
        options_path = fileio.join(self.directory, "run_options.json")
        if not self.manager.latest_checkpoint:
            return 0
        if fileio.exists(options_path):
            saved = fileio.read_json(options_path)
            changed = [k for k in self.options if saved.get(k) != self.options[k]]
            if changed:
                raise UserError(
                    f"{self.directory} holds a checkpoint trained with other "
                    f"{', '.join(changed)} ({', '.join(f'{k}={saved.get(k)}' for k in changed)}); "
                    "use a new --output or the same options")
        self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
        epoch = int(self.epoch.numpy())
        history_path = fileio.join(self.directory, "history.json")
        if fileio.exists(history_path):
            # history.json is written before the checkpoint: a run killed between the two
            # has an entry for an epoch it will train again
            self.history = [h for h in fileio.read_json(history_path) if h["epoch"] <= epoch]
        return epoch

    def save(self, epoch):
        """Writes the options and history, then the checkpoint: whatever moment a kill
        comes, the last checkpoint's epochs are all in history.json (a resumed run's
        metrics.png is an uninterrupted run's)."""
        fileio.write_json(fileio.join(self.directory, "run_options.json"), self.options)
        fileio.write_json(fileio.join(self.directory, "history.json"), self.history)
        self.epoch.assign(epoch)
        self.manager.save(checkpoint_number=epoch)


def read_inputs(args):
    """Read phase: the preprocess output's manifest, both splits and the catalogue."""
    manifest = data.check_data_dir(args.data)
    train_set = data.read_split(args.data, "train", manifest)
    eval_set = data.read_split(args.data, "eval", manifest)
    catalog = data.read_catalog(args.data, manifest["num_books"])
    if len(eval_set.user) == 0:
        raise data.DataError(f"--data {args.data} has no eval examples to evaluate on")
    logging.info("read %d train and %d eval interactions, %d users, %d books",
                 len(train_set.user), len(eval_set.user), manifest["num_users"],
                 manifest["num_books"])
    return Inputs(manifest, train_set, eval_set, catalog)


def fit(args, inputs, split):
    """Fit phase: builds (or resumes) the model and trains the remaining epochs.

    Every `--eval_every` epochs the model is scored on `split` for metrics.png.
    Returns the model and its CheckpointState (whose history holds one entry per epoch).
    """
    manifest, train_set = inputs.manifest, inputs.train
    set_determinism(args.seed)
    content = data.content_features(inputs.catalog, args.max_title_tokens, args.max_authors,
                                    args.min_feature_count)
    model, optimizer = build_model(args, manifest, content, train_set)
    run_options = options.architecture(args)
    run_options.update(num_users=manifest["num_users"], num_books=manifest["num_books"],
                       train_examples=len(train_set.user))
    state = CheckpointState(args.output, model, optimizer, run_options)
    # Build the variables before restoring so that every checkpoint value has a home.
    model.query_tower(tf.zeros([1], tf.int64))
    model.candidate_tower(tf.zeros([1], tf.int64))
    first_epoch = state.restore()
    if first_epoch:
        print(f"Resuming from the checkpoint after epoch {first_epoch} in {state.directory}")
    first_epoch = min(first_epoch, args.epochs)

    examples, tensors = len(train_set.user), data.as_tensors(train_set)
    step = index_step(model, tensors)
    for epoch in range(first_epoch, args.epochs):
        start = time.perf_counter()
        optimizer.learning_rate.assign(args.learning_rate * args.learning_rate_decay ** epoch)
        if args.verbose:
            print(f"Epoch {epoch + 1}/{args.epochs}")
        loss, loop_seconds = train_epoch(
            step, data.epoch_batches(examples, args.batch_size, args.seed, epoch), args.verbose)
        seconds = time.perf_counter() - start
        if not np.isfinite(loss):
            raise UserError(
                f"the training loss became {loss} in epoch {epoch + 1}; stopped without "
                "exporting anything (try a lower --learning_rate or a higher --temperature)")
        entry = {"epoch": epoch + 1, "loss": float(loss), "train_seconds": seconds,
                 "loop_seconds": loop_seconds,
                 "examples_per_second": examples / max(loop_seconds, 1e-9)}
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
            entry.update(evaluate.evaluate_scores(model_scorer(model, tower_book_vectors(model)),
                                                  split))
            logging.info("epoch %d: %s", epoch + 1,
                         ", ".join(f"{k} {entry[k]:.4f}" for k in evaluate.METRIC_NAMES))
        state.history.append(entry)
        state.save(epoch + 1)
    return model, state


def query_vectors(model, users, batch=8192):
    """The user tower's vectors of `users` (float32 [n, dim])."""
    users = np.asarray(users, np.int64)
    parts = [model.query_tower(tf.constant(users[i:i + batch])).numpy()
             for i in range(0, len(users), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, model.query_tower.output_dim),
                                                        np.float32)


def use_full_histories(args, model, inputs):
    """Gives the user tower every training book of each user (training hid the holdout's)."""
    tower = model.query_tower
    if tower.history is None:
        return
    table = data.user_histories(inputs.train, inputs.manifest["num_users"], args.history_length,
                                args.seed)
    tower.history.assign(np.concatenate([table, np.zeros((1, table.shape[1]), np.int32)]))


def evaluate_model(args, model, inputs, split, weights):
    """Evaluate phase: the served scorer and the baselines on the same eval users.

    Returns (metrics.json content, extra figures for training_log.json, the reranker).
    """
    baselines, baseline_seconds, fitted = evaluate.run_baselines(
        split, ease_max_books=args.ease_max_books, return_fitted=True,
        ease_l2=weights[2].get("head_on_holdout", {}).get("l2"))
    for name, seconds in baseline_seconds.items():
        logging.info("baseline %s fitted in %.1f s", name, seconds)
    vectors = tower_book_vectors(model)
    reranker = rerank.build_reranker(args, split, weights, fitted)
    # Every model metric comes from the shared evaluator on the split's eval users, so
    # this costs time in proportion to --eval_users. (TFRS FactorizedTopK went over
    # every eval interaction; tests/test_model.py checks that both agree on hit@K.)
    model_metrics = evaluate.evaluate_scores(
        rerank.reranked_scorer(reranker, functools.partial(query_vectors, model), vectors, split),
        split, groups=True)
    two_tower = evaluate.evaluate_scores(model_scorer(model, vectors), split)
    metrics = evaluate.metrics_json(model_metrics, baselines, split)
    return metrics, {"baseline_fit_seconds": baseline_seconds,
                     "two_tower_alone": two_tower, "rerank": reranker.describe()}, reranker


def export_outputs(args, model, inputs, split, metrics, state, log, reranker, clock=None):
    """Export phase: vectors, projector files, SavedModel, metrics.png, logs; metrics.json last.

    `clock` (a PhaseClock) gets the export's time up to writing the logs, which
    then carry every phase's time (`phase_seconds`).

    The SavedModel carries each user's training books (the split's CSR lists), so
    that serving never recommends a book the user has read.
    """
    vectors = tower_book_vectors(model)
    choice = log.get("map_choice")
    map_vectors, log = map_vectors_of(
        args, split, {k: v for k, v in log.items() if k != "map_choice"}, choice)
    export.write_book_embeddings(
        args.output, export.vector_batches(vectors if map_vectors is None else map_vectors),
        inputs.catalog, args.embedding_dim if map_vectors is None else map_vectors.shape[1],
        args.projector_max_books)
    module = export.RecommenderModule(model.query_tower, model.candidate_tower, vectors,
                                      inputs.catalog.column("book_id").to_pylist(),
                                      fileio.join(args.data, data.TRANSFORM_DIR), args.top_k,
                                      split.train_ptr, split.train_book, reranker, map_vectors)
    export.save_model(fileio.join(args.output, artifacts.SAVED_MODEL_DIR), module)
    history = [h for h in state.history if "hit@10" in h]
    png_path = fileio.join(args.output, artifacts.METRICS_PNG)
    report.plot_history(history, metrics["baselines"],
                          lambda png: fileio.write_bytes(png_path, png))
    if clock is not None:
        clock.lap("export")
        log = dict(log, phase_seconds=clock.seconds)
    fileio.write_json(fileio.join(args.output, artifacts.TRAINING_LOG),
                      dict(history=state.history, options=state.options, **log))
    fileio.write_json(fileio.join(args.output, artifacts.METRICS_JSON), metrics)


# Above this many books the map is the co-reading factorisation without a holdout check (the
# check ranks every book against every other: books² x dim).
MAP_CHOICE_MAX_BOOKS = 20_000


def choose_map(args, model, inputs, holdout):
    """Which vectors the map uses: the co-reading factorisation (model/map_embedding.py) or
    the candidate tower's, whichever has the higher coread@10 on the training holdout (each
    hidden book against the user's other training books; both sets of vectors made without
    the hidden books). On dense real readers the factorisation wins by a third; on very
    sparse data (~2 books a reader) the tower can win (docs/model.md). Returns the choice
    (a dict for training_log.json's `map_embedding`)."""
    num_users, num_books = inputs.manifest["num_users"], inputs.manifest["num_books"]
    if not args.map_dim:
        return {"kind": "candidate_tower", "chosen_by": "--map_dim 0"}
    if len(holdout.user) == 0 or num_books > MAP_CHOICE_MAX_BOOKS:
        return {"kind": "co_reading_factorisation",
                "chosen_by": f"default (no holdout, or over {MAP_CHOICE_MAX_BOOKS:,} books)"}
    from graph_export import coread
    start = time.perf_counter()
    fit_split = rerank.holdout_split(holdout.fit, num_users, num_books)
    candidates = {"co_reading_factorisation": map_embedding.map_embedding(
        fit_split.train_ptr, fit_split.train_book, num_books, dim=args.map_dim, seed=args.seed),
        "candidate_tower": tower_book_vectors(model)}
    figures = {name: coread.coread_at_k(holdout.fit.user, holdout.fit.book, holdout.user,
                                        holdout.book, *coread.embedding_neighbours(vectors),
                                        num_books)["coread"]
               for name, vectors in candidates.items()}
    kind = max(candidates, key=lambda name: (figures[name], name == "co_reading_factorisation"))
    logging.info("map vectors: %s (holdout coread@10 %s)", kind, figures)
    return {"kind": kind, "chosen_by": "coread@10 on the training holdout",
            "holdout_coread": figures, "choice_seconds": time.perf_counter() - start}


def map_vectors_of(args, split, log, choice=None):
    """The map's book vectors (unit rows; model/map_embedding.py) from every training pair of
    `split`, or None when the map is the tower's (`choice`, from choose_map; --map_dim 0);
    `log` gains their facts."""
    choice = choice or {"kind": "co_reading_factorisation" if args.map_dim else
                        "candidate_tower"}
    if choice["kind"] == "candidate_tower":
        return None, dict(log, map_embedding=choice)
    start = time.perf_counter()
    vectors = export.unit_rows(map_embedding.map_embedding(
        split.train_ptr, split.train_book, split.num_books, dim=args.map_dim, seed=args.seed))
    seconds = time.perf_counter() - start
    logging.info("map embedding: %d books x %d in %.1f s", len(vectors), vectors.shape[1], seconds)
    return vectors, dict(log, map_embedding={
        **choice, "dim": int(vectors.shape[1]),
        "beta": map_embedding.BETA, "first_weight": map_embedding.FIRST_WEIGHT,
        "iterations": map_embedding.ITERATIONS, "seconds": seconds})


def eval_split(args, inputs):
    """The EvalSplit every metric of this job is computed on (also used by benchmarks).

    Eval users are chosen by a hash of their Goodreads user id, so the same users are
    evaluated whatever the vocabulary order; the ids are only read when there is a choice.
    """
    num_users = inputs.manifest["num_users"]
    user_ids = (evaluate.read_user_ids(args.data)
                if args.eval_users and num_users > args.eval_users else None)
    return evaluate.EvalSplit(inputs.train, inputs.evals, num_users,
                              inputs.manifest["num_books"], max_eval_users=args.eval_users,
                              user_ids=user_ids)


class PhaseClock:
    """Wall seconds of each phase of the job (training_log.json's `phase_seconds`):
    at Goodreads scale the phases around the epochs take as long as the epochs."""

    def __init__(self):
        self.seconds, self._last = {}, time.perf_counter()

    def lap(self, phase):
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now


def train(args):
    """The whole job; returns the metrics dict."""
    clock = PhaseClock()
    inputs = read_inputs(args)
    split = eval_split(args, inputs)
    # One training book of a few thousand users is hidden from training: the weights
    # of the served score are chosen on it (model/rerank.py), never on the eval split.
    fit_inputs, holdout = rerank.holdout_inputs(args, inputs)
    clock.lap("read")
    model, state = fit(args, fit_inputs, split)
    clock.lap("fit")
    # While the user tower still holds the histories it was trained with (hidden books left out).
    weights = rerank.choose_served_weights(args, inputs, holdout, split,
                                           functools.partial(query_vectors, model),
                                           tower_book_vectors(model))
    map_choice = choose_map(args, model, inputs, holdout)
    use_full_histories(args, model, inputs)
    clock.lap("rerank_weights")
    metrics, log, reranker = evaluate_model(args, model, inputs, split, weights)
    log = dict(log, map_choice=map_choice)
    clock.lap("evaluate")
    export_outputs(args, model, inputs, split, metrics, state, log, reranker, clock)
    logging.info("phase seconds: %s", ", ".join(f"{k} {v:.1f}" for k, v in clock.seconds.items()))

    print(report.format_table(metrics))
    examples = len(inputs.train.user)
    seconds = sum(h["train_seconds"] for h in state.history)
    epochs_run = len(state.history)
    model_metrics, baselines = metrics["model"], metrics["baselines"]
    best = max((name for name in baselines if "hit@100" in baselines[name]),
               key=lambda name: baselines[name]["hit@100"])
    print(f"model.train: {epochs_run} epochs on {examples} interactions in {seconds:.0f} s "
          f"({examples * epochs_run / max(seconds, 1e-9):.0f} examples/s); "
          f"hit@100 {model_metrics['hit@100']:.3f} vs {best} {baselines[best]['hit@100']:.3f}, "
          f"recall@10 {model_metrics['recall@10']:.3f} vs {baselines[best]['recall@10']:.3f}; "
          f"wrote {args.output}")
    return metrics


def run(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args, _ = options.parse_args(argv)
    if args.vertex:
        return vertex.run(argv)
    return train(args)


if __name__ == "__main__":
    main(run, "python -m model.train")
