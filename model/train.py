"""Trains the two-tower book retrieval model on a preprocess output, evaluates it, exports it.

    python -m model.train --data PREP --output MODEL [--epochs E] [--batch_size B]
        [--embedding_dim D] [--learning_rate LR] [--seed S] [--config run_configs/NAME.yaml]

Reads docs/artifacts.md section 1 from --data and writes section 2 under --output
(local or gs://). A checkpoint is kept per epoch under MODEL/checkpoints: running
the same command again resumes after the last finished epoch (and a larger
--epochs continues training). `metrics.json` is written last and marks a complete
output. `--vertex [--dry_run]` runs the same training as a Vertex AI custom job
(see model/vertex.py).
"""
import argparse
import logging
import sys
import time

import pipeline_common  # noqa: F401  (legacy Keras before TensorFlow loads)
from pipeline_common.cli import non_negative_int, positive_float, positive_int
from pipeline_common import fileio
from pipeline_common import config

# Options that must match for a checkpoint in --output to be resumed.
ARCHITECTURE_OPTIONS = ("embedding_dim", "hidden_layers", "query_hidden_layers", "history_length",
                        "query_features", "history_dropout",
                        "max_title_tokens", "max_authors", "min_feature_count", "optimizer",
                        "seed", "batch_size", "learning_rate", "learning_rate_decay",
                        "temperature")


def _dropout_rate(text):
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _layer_list(text):
    try:
        values = tuple(int(x) for x in str(text).replace(" ", "").split(",") if x)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated layer widths like 128,64, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return values


def _feature_list(text):
    values = tuple(x for x in str(text).replace(" ", "").split(",") if x)
    unknown = set(values) - {"id", "history"}
    if not values or unknown:
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated subset of id,history, got {text!r}")
    return values


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m model.train", allow_abbrev=False, description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, help="preprocess output (local or gs://)")
    parser.add_argument("--output", required=True, help="model output directory")
    parser.add_argument("--epochs", type=positive_int, default=2,
                        help="passes over the training data (more overfits on sparse data)")
    parser.add_argument("--batch_size", type=positive_int, default=2048,
                        help="examples per step; also the in-batch negatives per example")
    parser.add_argument("--embedding_dim", type=positive_int, default=128,
                        help="width of the user and book vectors")
    parser.add_argument("--learning_rate", type=positive_float, default=0.003,
                        help="learning rate of the first epoch")
    parser.add_argument("--learning_rate_decay", type=positive_float, default=0.3,
                        help="epoch e (from 0) trains at learning_rate * decay**e")
    parser.add_argument("--optimizer", choices=("adam", "adagrad"), default="adam",
                        help="optimizer")
    parser.add_argument("--temperature", type=positive_float, default=0.1,
                        help="softmax temperature on cosine scores")
    parser.add_argument("--hidden_layers", type=_layer_list, default=(),
                        help="ReLU layer widths in the book tower before its projection")
    parser.add_argument("--query_hidden_layers", type=_layer_list, default=(),
                        help="ReLU layer widths in the user tower")
    parser.add_argument("--query_features", type=_feature_list, default=("history",),
                        help="user tower inputs: id (user id embedding), history (pooled "
                             "training books); comma-separated. The id embedding memorises "
                             "training books and loses to history alone on held-out books")
    parser.add_argument("--history_length", type=non_negative_int, default=50,
                        help="training books per user pooled in the user tower (0: no history; "
                             "needs --query_features id)")
    parser.add_argument("--history_dropout", type=_dropout_rate, default=0.3,
                        help="share of a user's history books hidden at random in each "
                             "training step (regularises the user tower)")
    parser.add_argument("--max_title_tokens", type=positive_int, default=12)
    parser.add_argument("--max_authors", type=positive_int, default=4)
    parser.add_argument("--min_feature_count", type=positive_int, default=2,
                        help="title words / authors on fewer books are ignored")
    parser.add_argument("--seed", type=int, default=42,
                        help="same seed + same data = same model on CPU")
    parser.add_argument("--top_k", type=positive_int, default=100,
                        help="results per query in the serving signatures")
    parser.add_argument("--projector_max_books", type=non_negative_int, default=50000,
                        help="most-read books written to the projector files")
    parser.add_argument("--eval_every", type=positive_int, default=1,
                        help="evaluate (for metrics.png) every N epochs")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras progress output: 1 progress bar, 2 one line per epoch")
    parser.add_argument("--vertex", action="store_true",
                        help="submit this training as a Vertex AI custom job instead")
    parser.add_argument("--dry_run", action="store_true",
                        help="with --vertex: print the job spec, submit nothing")
    return parser


def parse_args(argv):
    parser = build_parser()
    args, unknown = config.parse_known_args(parser, argv)
    if unknown and not args.vertex:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if "id" not in args.query_features and args.history_length == 0:
        parser.error("--query_features history needs --history_length > 0")
    return args, unknown


def set_determinism(seed):
    """Same seed, same data -> same model (on CPU)."""
    import tensorflow as tf
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _book_probability(train, num_books):
    import numpy as np
    counts = np.bincount(train.book, minlength=num_books).astype(np.float64) + 1.0
    return counts / counts.sum()


def build_model(args, manifest, content, train):
    """Builds and compiles the two towers and the retrieval task."""
    import tensorflow as tf

    from model import data, towers
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
        optimizer = tf.keras.optimizers.Adam(learning_rate=args.learning_rate)
    else:
        optimizer = tf.keras.optimizers.Adagrad(learning_rate=args.learning_rate)
    model.compile(optimizer=optimizer)
    return model, optimizer


def _epoch_timer():
    """A Keras callback that keeps the seconds between epoch begin and end."""
    import tensorflow as tf

    class EpochTimer(tf.keras.callbacks.Callback):
        seconds = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start
    return EpochTimer()


def model_scorer(model, vectors):
    """score_fn for model.evaluate: users -> cosine scores against every book."""
    import tensorflow as tf
    book_vectors = tf.constant(vectors)

    def score(users):
        query = model.query_tower(tf.constant(users, tf.int64))
        return tf.matmul(query, book_vectors, transpose_b=True).numpy()
    return score


def _all_vectors(model):
    import numpy as np
    return np.concatenate([v for _, v in model.book_embeddings()])


class CheckpointState:
    """Per-epoch checkpoints, run options and metric history under MODEL/checkpoints."""

    def __init__(self, output, model, optimizer, options):
        import tensorflow as tf
        self.directory = fileio.join(output, "checkpoints")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(query_tower=model.query_tower,
                                              candidate_tower=model.candidate_tower,
                                              optimizer=optimizer, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=2)
        self.options = options
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
                raise SystemExit(
                    f"error: {self.directory} holds a checkpoint trained with other "
                    f"{', '.join(changed)} ({', '.join(f'{k}={saved.get(k)}' for k in changed)}); "
                    "use a new --output or the same options")
        self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
        history_path = fileio.join(self.directory, "history.json")
        if fileio.exists(history_path):
            self.history = fileio.read_json(history_path)
        return int(self.epoch.numpy())

    def save(self, epoch):
        self.epoch.assign(epoch)
        self.manager.save(checkpoint_number=epoch)
        fileio.write_json(fileio.join(self.directory, "run_options.json"), self.options)
        fileio.write_json(fileio.join(self.directory, "history.json"), self.history)


def train(args):
    """The whole job; returns the metrics dict."""
    import numpy as np
    import tensorflow as tf

    from model import data, evaluate, export

    try:
        manifest = data.check_data_dir(args.data)
        train_set = data.read_split(args.data, "train", manifest)
        eval_set = data.read_split(args.data, "eval", manifest)
        catalog = data.read_catalog(args.data, manifest["num_books"])
    except data.DataError as err:
        raise SystemExit(f"error: {err}") from None
    if len(eval_set.user) == 0:
        raise SystemExit(f"error: --data {args.data} has no eval examples to evaluate on")
    logging.info("read %d train and %d eval interactions, %d users, %d books",
                 len(train_set.user), len(eval_set.user), manifest["num_users"],
                 manifest["num_books"])

    set_determinism(args.seed)
    content = data.content_features(catalog, args.max_title_tokens, args.max_authors,
                                    args.min_feature_count)
    model, optimizer = build_model(args, manifest, content, train_set)
    options = {k: (list(v) if isinstance(v, tuple) else v)
               for k, v in vars(args).items() if k in ARCHITECTURE_OPTIONS}
    options.update(num_users=manifest["num_users"], num_books=manifest["num_books"],
                   train_examples=len(train_set.user))
    state = CheckpointState(args.output, model, optimizer, options)
    # Build the variables before restoring so that every checkpoint value has a home.
    model.query_tower(tf.zeros([1], tf.int64))
    model.candidate_tower(tf.zeros([1], tf.int64))
    first_epoch = state.restore()
    if first_epoch:
        print(f"Resuming from the checkpoint after epoch {first_epoch} in {state.directory}")
    first_epoch = min(first_epoch, args.epochs)

    split = evaluate.EvalSplit(train_set, eval_set, manifest["num_users"], manifest["num_books"])
    baselines, baseline_seconds = evaluate.run_baselines(split)
    for name, seconds in baseline_seconds.items():
        logging.info("baseline %s fitted in %.1f s", name, seconds)

    examples = len(train_set.user)
    for epoch in range(first_epoch, args.epochs):
        start, timer = time.perf_counter(), _epoch_timer()
        optimizer.learning_rate.assign(args.learning_rate * args.learning_rate_decay ** epoch)
        fit = model.fit(data.epoch_dataset(train_set, args.batch_size, args.seed, epoch),
                        initial_epoch=epoch, epochs=epoch + 1, verbose=args.verbose,
                        callbacks=[tf.keras.callbacks.TerminateOnNaN(), timer])
        seconds = time.perf_counter() - start
        loss = fit.history.get("loss", [float("nan")])[-1]
        if model.stop_training or not np.isfinite(loss):
            raise SystemExit(
                f"error: the training loss became {loss} in epoch {epoch + 1}; stopped without "
                "exporting anything (try a lower --learning_rate or a higher --temperature)")
        entry = {"epoch": epoch + 1, "loss": float(loss), "train_seconds": seconds,
                 "keras_epoch_seconds": timer.seconds,
                 "examples_per_second": examples / max(timer.seconds, 1e-9)}
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
            entry.update(evaluate.evaluate_scores(model_scorer(model, _all_vectors(model)),
                                                  split))
            logging.info("epoch %d: %s", epoch + 1,
                         ", ".join(f"{k} {entry[k]:.4f}" for k in evaluate.METRIC_NAMES))
        state.history.append(entry)
        state.save(epoch + 1)

    # Final evaluation: TFRS FactorizedTopK over the whole catalogue for hit@K,
    # the shared evaluator for per-user recall@K (training books excluded).
    # A catalogue smaller than K has every book in the top K: hit@K is then hit@num_books.
    ks = {k: min(k, manifest["num_books"]) for k in evaluate.KS}
    model.use_catalogue_metrics(tuple(sorted(set(ks.values()))))
    tfrs_results = model.evaluate(data.eval_dataset(eval_set, args.batch_size),
                                  return_dict=True, verbose=0)
    own = evaluate.evaluate_scores(model_scorer(model, _all_vectors(model)), split)
    model_metrics = {
        f"hit@{k}": float(tfrs_results[f"factorized_top_k/top_{ks[k]}_categorical_accuracy"])
        for k in evaluate.KS}
    model_metrics.update({f"recall@{k}": own[f"recall@{k}"] for k in evaluate.KS})
    metrics = {"model": model_metrics, "baselines": baselines,
               "eval_interactions": split.num_eval_interactions,
               "eval_users": int(len(split.users))}

    vectors = export.write_book_embeddings(args.output, model.book_embeddings(), catalog,
                                           args.embedding_dim, args.projector_max_books)
    module = export.RecommenderModule(model.query_tower, model.candidate_tower, vectors,
                                      catalog.column("book_id").to_pylist(),
                                      fileio.join(args.data, data.TRANSFORM_DIR), args.top_k)
    export.save_model(fileio.join(args.output, "saved_model"), module)
    history = [h for h in state.history if "hit@10" in h]
    evaluate.plot_history(history, baselines,
                          lambda png: fileio.write_bytes(fileio.join(args.output, "metrics.png"),
                                                         png))
    fileio.write_json(fileio.join(args.output, "training_log.json"), {
        "history": state.history, "baseline_fit_seconds": baseline_seconds,
        "own_evaluator_model_metrics": own, "options": options})
    fileio.write_json(fileio.join(args.output, "metrics.json"), metrics)

    print(evaluate.format_table(metrics))
    seconds = sum(h["train_seconds"] for h in state.history)
    epochs_run = len(state.history)
    best = max(baselines, key=lambda name: baselines[name]["hit@100"])
    print(f"model.train: {epochs_run} epochs on {examples} interactions in {seconds:.0f} s "
          f"({examples * epochs_run / max(seconds, 1e-9):.0f} examples/s); "
          f"hit@100 {model_metrics['hit@100']:.3f} vs {best} {baselines[best]['hit@100']:.3f}, "
          f"recall@10 {model_metrics['recall@10']:.3f} vs {baselines[best]['recall@10']:.3f}; "
          f"wrote {args.output}")
    return metrics


def run(argv=None):
    args, unknown = parse_args(sys.argv[1:] if argv is None else argv)
    if args.vertex:
        from model import vertex
        return vertex.run(sys.argv[1:] if argv is None else argv)
    return train(args)


if __name__ == "__main__":
    from pipeline_common.logs import configure_logging
    configure_logging()
    run()
