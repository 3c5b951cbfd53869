"""coread@k: a label-free measure of the map's neighbours on the preprocess split.

Over every eval interaction (u, b) and every training book a of u, the share of the
(a, b) pairs whose b is among a's k graph neighbours: how often a book's neighbours
include a book the same reader reads later. Pairs are distinct (user, book) pairs;
the denominator is sum over users of |training books| x |eval books|.

The numerator is counted edge-first, so the cost is linear in the training
interactions (k look-ups each) whatever the users' history lengths: for every
training pair (u, a) and every neighbour b of a, is (u, b) an eval pair? (a sorted
key search over the eval pairs, in chunks of training pairs).

The same figure is given for classic item-item neighbours built from the same
training interactions (EASE's and item-cosine's top k, `model/baselines.py`) and
for random books, so that the graph's figure has peers:

    python -m graph_export.coread --data PREP --graph GRAPH [--output coread.json]

prints a table, writes a JSON (default GRAPH/coread.json) with every figure, and adds
the coread@k of the map and of each peer to GRAPH/summary.json (key `coread`).
"""
import argparse
import time

import numpy as np

from pipeline_common import artifacts, fileio
from pipeline_common.arrays import sorted_unique
from pipeline_common.entrypoint import main
from pipeline_common.errors import UserError

DEFAULT_K = 10
# EASE's λ for its neighbours: the reference figures (docs/model.md) use λ 2000; the λ the
# recommendation baseline chooses (by recall@20, often 128 on dense data) gives weaker
# neighbours (0.0362 against 0.0440 on goodbooks-dense).
EASE_NEIGHBOURS_L2 = 2000.0


def coread_at_k(train_user, train_book, eval_user, eval_book, source, target, num_books,
                chunk=1 << 20):
    """coread@k of the neighbour table (`source` -> `target` book_index arrays).

    `train_*` / `eval_*`: the interactions of the preprocess split (any order,
    duplicates allowed: distinct (user, book) pairs are used). `source`, `target`: one
    row per edge, e.g. edges.parquet's columns, each book's k neighbours (the caller
    passes k rows per book; a self edge never counts). Returns a dict: `coread` (the
    share, 0.0 when there is no pair), `hits` (pairs whose b is a neighbour of a),
    `pairs` (training x eval pairs over users), `neighbours_per_book` (mean edges per
    source book).
    """
    num_books = int(num_books)
    train = sorted_unique(np.asarray(train_user, np.int64) * num_books
                          + np.asarray(train_book, np.int64))
    evals = sorted_unique(np.asarray(eval_user, np.int64) * num_books
                          + np.asarray(eval_book, np.int64))
    source = np.asarray(source, np.int64)
    target = np.asarray(target, np.int64)
    if len(source) != len(target):
        raise ValueError("source and target differ in length")
    if len(source) and (min(source.min(), target.min()) < 0
                        or max(source.max(), target.max()) >= num_books):
        raise UserError(f"the neighbour table names books outside 0..{num_books - 1}: it is "
                        "not a graph of this preprocess output")
    keep = source != target
    order = np.argsort(source[keep], kind="stable")
    nbr_target = target[keep][order]
    nbr_ptr = np.searchsorted(source[keep][order], np.arange(num_books + 1))
    nbr_count = np.diff(nbr_ptr)
    train_users = train // num_books
    eval_users = evals // num_books
    max_user = int(max(train_users.max(initial=-1), eval_users.max(initial=-1))) + 1
    pairs = int((np.bincount(train_users, minlength=max_user).astype(np.int64)
                 * np.bincount(eval_users, minlength=max_user)).sum())
    hits = 0
    for start in range(0, len(train), chunk):
        keys = train[start:start + chunk]
        users, books = keys // num_books, keys % num_books
        lengths = nbr_count[books]
        first = np.repeat(nbr_ptr[books] - (np.cumsum(lengths) - lengths), lengths)
        neighbour = nbr_target[first + np.arange(int(lengths.sum()))]
        wanted = np.repeat(users, lengths) * num_books + neighbour
        pos = np.minimum(np.searchsorted(evals, wanted), max(len(evals) - 1, 0))
        hits += int((evals[pos] == wanted).sum()) if len(evals) else 0
    books_with_edges = int((nbr_count > 0).sum())
    return {"coread": hits / pairs if pairs else 0.0, "hits": hits, "pairs": pairs,
            "neighbours_per_book": float(nbr_count.sum() / max(books_with_edges, 1))}


def top_k_table(index, valid=None):
    """(source, target) arrays of an int [num_books, k] neighbour index (rows where `valid`)."""
    index = np.asarray(index)
    source = np.repeat(np.arange(len(index), dtype=np.int64), index.shape[1])
    target = index.reshape(-1).astype(np.int64)
    keep = np.ones(len(target), bool) if valid is None else np.asarray(valid).reshape(-1)
    keep &= source != target
    return source[keep], target[keep]


def split_of(train_user, train_book, eval_user, eval_book, num_users, num_books):
    """The model's EvalSplit of these interactions (what the baselines fit on)."""
    from model.data import Interactions
    from model.evaluate import EvalSplit
    return EvalSplit(Interactions(np.asarray(train_user, np.int32), np.asarray(train_book,
                                                                             np.int32)),
                     Interactions(np.asarray(eval_user, np.int32), np.asarray(eval_book,
                                                                           np.int32)),
                     num_users, num_books)


def ease_neighbours(split, k=DEFAULT_K, l2=EASE_NEIGHBOURS_L2, max_books=20000):
    """EASE's top-k item-item neighbours (largest weights; λ chosen as the recommendation
    baseline does when `l2` is None): (source, target, λ), or None above `max_books` books
    (EASE is a dense books x books model)."""
    from model.baselines import Ease
    if split.num_books > max_books:
        return None
    ease = Ease(l2=l2).fit(split)
    weights = ease.weights
    kk = min(k, split.num_books - 1)
    index = np.empty((split.num_books, kk), np.int64)
    for start in range(0, split.num_books, 1024):
        rows = weights[start:start + 1024].copy()
        rows[np.arange(len(rows)), np.arange(start, start + len(rows))] = -np.inf
        index[start:start + 1024] = _top_columns(rows, kk)
    source, target = top_k_table(index)
    return source, target, float(ease.l2)


def item_cosine_neighbours(split, k=DEFAULT_K):
    """Item-cosine's top-k neighbours (binary co-occurrence cosine; books co-read with fewer
    than k books keep fewer)."""
    from model.baselines import ItemCosine
    cosine = ItemCosine(neighbours=k).fit(split)
    return top_k_table(cosine.nbr_index, cosine.nbr_sim > 0)


def random_neighbours(num_books, k=DEFAULT_K, seed=0):
    """k distinct random other books per book."""
    rng = np.random.default_rng(seed)
    kk = min(k, num_books - 1)
    if num_books <= 4 * kk + 1:
        offsets = np.argsort(rng.random((num_books, num_books - 1)), axis=1)[:, :kk] + 1
    else:
        offsets = np.sort(rng.integers(1, num_books, (num_books, kk)), axis=1)
        while True:   # redraw the rows with a repeated offset
            repeat = np.flatnonzero((np.diff(offsets, axis=1) == 0).any(axis=1))
            if not len(repeat):
                break
            offsets[repeat] = np.sort(rng.integers(1, num_books, (len(repeat), kk)), axis=1)
    return top_k_table((np.arange(num_books)[:, None] + offsets) % num_books)


def embedding_neighbours(vectors, k=DEFAULT_K, block=1024):
    """Exact top-k by cosine of `vectors` (float [num_books, dim]), self excluded."""
    vectors = np.asarray(vectors, np.float32)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    kk = min(k, len(unit) - 1)
    index = np.empty((len(unit), kk), np.int64)
    for start in range(0, len(unit), block):
        sims = unit[start:start + block] @ unit.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        index[start:start + block] = _top_columns(sims, kk)
    return top_k_table(index)


def _top_columns(rows, k):
    """Column indices of each row's k largest values, largest first."""
    part = np.argpartition(-rows, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(rows, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def read_split(data):
    """(train Interactions, eval Interactions, manifest) of preprocess output `data`."""
    from model import data as model_data
    manifest = model_data.check_data_dir(data)   # a DataError (UserError) names what is wrong
    return (model_data.read_split(data, "train", manifest),
            model_data.read_split(data, "eval", manifest), manifest)


def read_edges(graph):
    """(source, target) of GRAPH/edges.parquet (a file path is read as is)."""
    path = graph if graph.endswith(".parquet") else fileio.join(graph, artifacts.EDGES)
    if not fileio.exists(path):
        raise UserError(f"--graph {graph}: no {artifacts.EDGES} (run the neighbours job first)")
    table = artifacts.read_parquet(path)
    missing = [c for c in ("source", "target") if c not in table.column_names]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}")
    return table.column("source").to_numpy(), table.column("target").to_numpy()


def peer_figures(train, evals, num_users, num_books, k=DEFAULT_K, seed=0, ease_max_books=20000,
                 cosine_max_books=200_000):
    """coread@k of EASE's, item-cosine's and random neighbours on the same split: a dict
    name -> figures (EASE's also carries its λ). EASE is left out above `ease_max_books`
    books (a dense books x books inverse), item-cosine above `cosine_max_books` (its fit
    counts books² cells, block by block)."""
    split = split_of(train.user, train.book, evals.user, evals.book, num_users, num_books)
    out = {}
    tables = {"random": random_neighbours(num_books, k, seed)}
    if num_books <= cosine_max_books:
        tables["item_cosine"] = item_cosine_neighbours(split, k)
    ease = ease_neighbours(split, k, max_books=ease_max_books)
    if ease is not None:
        tables["ease"] = ease[:2]
    for name, (source, target) in tables.items():
        out[name] = coread_at_k(train.user, train.book, evals.user, evals.book, source, target,
                                num_books)
    if ease is not None:
        out["ease"]["l2"] = ease[2]
    return {name: out[name] for name in ("ease", "item_cosine", "random") if name in out}


def measure(data, graph, k=DEFAULT_K, seed=0, peers=True, ease_max_books=20000):
    """coread@k of the graph in GRAPH and of its peers on the split of preprocess output DATA."""
    start = time.perf_counter()
    train, evals, manifest = read_split(data)
    num_books = manifest["num_books"]
    source, target = read_edges(graph)
    result = {"k": k, "data": data, "graph": graph, "num_books": num_books,
              "train_interactions": int(len(train.user)),
              "eval_interactions": int(len(evals.user)),
              "map": coread_at_k(train.user, train.book, evals.user, evals.book, source, target,
                                 num_books)}
    if peers:
        result["peers"] = peer_figures(train, evals, manifest["num_users"], num_books, k, seed,
                                       ease_max_books)
    result["seconds"] = time.perf_counter() - start
    return result


def format_table(result):
    rows = [("map (graph)", result["map"])] + list(result.get("peers", {}).items())
    lines = [f"| neighbours ({result['k']} per book) | coread@{result['k']} |", "| --- | --- |"]
    lines += [f"| {name} | {fig['coread']:.4f} |" for name, fig in rows]
    return "\n".join(lines)


def run(argv=None):
    parser = argparse.ArgumentParser(prog="python -m graph_export.coread",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="preprocess output (local or gs://)")
    parser.add_argument("--graph", required=True,
                        help="neighbours job output directory (or an edges .parquet file)")
    parser.add_argument("--output", default=None,
                        help="JSON to write (default GRAPH/coread.json)")
    parser.add_argument("--k", type=int, default=DEFAULT_K,
                        help="neighbours per book of the peers (the graph's are its edges)")
    parser.add_argument("--no_peers", action="store_true", help="only the graph's figure")
    parser.add_argument("--seed", type=int, default=0, help="of the random neighbours")
    args = parser.parse_args(argv)
    result = measure(args.data, args.graph, args.k, args.seed, not args.no_peers)
    output = args.output or fileio.join(
        args.graph if not args.graph.endswith(".parquet") else args.graph.rsplit("/", 1)[0],
        "coread.json")
    fileio.write_json(output, result)
    if not args.graph.endswith(".parquet"):
        add_to_summary(fileio.join(args.graph, artifacts.GRAPH_SUMMARY), result)
    print(format_table(result))
    print(f"wrote {output}")
    return result


def add_to_summary(path, result):
    """Puts the coread@k figures (map and peers) into the graph's summary.json, rewritten
    whole (atomically), so that the run's one summary carries the map's quality."""
    if not fileio.exists(path):
        return
    summary = fileio.read_json(path)
    summary["coread"] = {"k": result["k"], "map": round(result["map"]["coread"], 6),
                         **{name: round(fig["coread"], 6)
                            for name, fig in result.get("peers", {}).items()}}
    fileio.write_json(path, summary)


if __name__ == "__main__":
    main(run, "python -m graph_export.coread")
