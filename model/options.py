"""model.train's command line: flags, their checks and the options a checkpoint must match.

Kept free of TensorFlow so that `model.vertex` can check a training command line
(and fail on a typo) before anything heavy is imported or any job is submitted.
"""
import argparse

import pipeline_common  # noqa: F401  (legacy Keras before TensorFlow loads)
from pipeline_common import cli, config
from pipeline_common.cli import non_negative_int, positive_float, positive_int

DESCRIPTION = ("Trains the two-tower book retrieval model on a preprocess output, evaluates it, "
               "exports it (docs/artifacts.md section 2).")

# Options that must match for a checkpoint in --output to be resumed.
ARCHITECTURE_OPTIONS = ("embedding_dim", "hidden_layers", "query_hidden_layers", "history_length",
                        "query_features", "history_dropout",
                        "max_title_tokens", "max_authors", "min_feature_count", "optimizer",
                        "seed", "batch_size", "learning_rate", "learning_rate_decay",
                        "temperature", "holdout_users")


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
    parser = cli.ArgumentParser(
        prog="python -m model.train", allow_abbrev=False, description=DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", required=True, help="preprocess output (local or gs://)")
    parser.add_argument("--output", required=True, help="model output directory")
    parser.add_argument("--epochs", type=positive_int, default=2,
                        help="passes over the training data (more overfits on sparse data)")
    parser.add_argument("--batch_size", type=positive_int, default=1024,
                        help="examples per step; also the in-batch negatives per example")
    parser.add_argument("--embedding_dim", type=positive_int, default=64,
                        help="width of the user and book vectors (64 trains faster than 128 "
                             "at the same quality)")
    parser.add_argument("--learning_rate", type=positive_float, default=0.003,
                        help="learning rate of the first epoch")
    parser.add_argument("--learning_rate_decay", type=positive_float, default=0.3,
                        help="epoch e (from 0) trains at learning_rate * decay**e")
    parser.add_argument("--optimizer", choices=("adam", "adagrad"), default="adam",
                        help="adam: Adam that updates only the embedding rows a batch touched "
                             "(model/lazy_adam.py)")
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
    parser.add_argument("--holdout_users", type=non_negative_int, default=4000,
                        help="one training book of up to this many users (at most 5%% of the "
                             "training rows) is hidden from training; the served score's "
                             "weights per user group (1-2, 3-10, 11+ training books) for the "
                             "item-item head and popularity are chosen on those books, never "
                             "on the eval split (model/rerank.py, docs/model.md); 0: the "
                             "two-tower score alone")
    parser.add_argument("--head_neighbours", type=non_negative_int, default=100,
                        help="neighbours per book in the item-item head (EASE weights up to "
                             "--ease_max_books books, item cosine above; 0: no head)")
    parser.add_argument("--map_dim", type=non_negative_int, default=512,
                        help="width of the map's book vectors (book_embeddings.parquet, the "
                             "graph, similar_books): a randomized factorisation of the books' "
                             "co-reading (model/map_embedding.py, docs/model.md), unless the "
                             "candidate tower's do better on the holdout; 0: the tower's")
    parser.add_argument("--max_title_tokens", type=positive_int, default=12,
                        help="title words per book the book tower pools")
    parser.add_argument("--max_authors", type=positive_int, default=4,
                        help="authors per book the book tower pools")
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
    parser.add_argument("--eval_users", type=non_negative_int, default=20000,
                        help="metrics are computed over at most this many eval users, chosen "
                             "by a hash of the user id (0: all eval users)")
    parser.add_argument("--ease_max_books", type=non_negative_int, default=20000,
                        help="the EASE baseline is computed only for catalogues up to this "
                             "many books (it inverts a books x books matrix)")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras progress output: 1 progress bar, 2 one line per epoch")
    parser.add_argument("--vertex", action="store_true",
                        help="submit this training as a Vertex AI custom job instead")
    parser.add_argument("--dry_run", action="store_true",
                        help="with --vertex: print the job spec, submit nothing")
    return parser


def parse_args(argv):
    """(args, flags left unknown); unknown flags are an error unless --vertex takes them."""
    parser = build_parser()
    args, unknown = config.parse_known_args(parser, argv)
    if unknown and not args.vertex:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if "id" not in args.query_features and args.history_length == 0:
        parser.error("--query_features history needs --history_length > 0")
    return args, unknown


def architecture(args):
    """The options a resumed checkpoint must have been trained with (JSON-ready)."""
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in vars(args).items() if k in ARCHITECTURE_OPTIONS}
