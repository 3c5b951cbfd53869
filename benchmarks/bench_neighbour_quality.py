"""Benchmark: how coherent each book's 10 neighbours are, for the model and the item-item baselines.

    make demo   # or: sample_goodreads -> preprocess -> model.train, as in the Makefile
    python -m benchmarks.bench_neighbour_quality --data demo_output/preprocessed \\
        --model demo_output/model [--goodreads demo_output/goodreads] [--k 10]

For every book of the preprocess output, its k nearest books by
* model: cosine of the model's book embeddings (MODEL/book_embeddings.npy), the
  neighbours graph_export.neighbors puts in the graph;
* ease: the k largest weights of the book's row of EASE's item-item matrix B
  (model.baselines.Ease, λ chosen on the training data as in metrics.json);
* item_cosine: the book's k most similar books by co-occurrence cosine
  (model.baselines.ItemCosine; a book co-read with fewer than k books has empty slots,
  which count as not sharing);
* als: cosine of implicit ALS's item factors (`--als factors,reg,alpha`; the default is
  the most coherent of 7 settings tried on the demo data: the README's table);
all peers fitted on the same training split the model trained on. Prints coread@k
(graph_export.coread: over every eval interaction (u, b) and every training book a of u,
the share of pairs whose b is among a's k neighbours; EASE also at λ 2000, the λ the
coread reference figures use, and random books), the
mean share of the k neighbours that share the book's genre (the catalogue's top
genre, the generator's planted genre) and, when the generator's `book_topics.csv`
(book_id,topic) is in --goodreads, its planted topic; "chance" is the share for k
books drawn at random (sum over labels of share²), the reference every row is
compared with (ratio column).
"""
import argparse
import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline_common  # noqa: E402,F401  (legacy Keras before TensorFlow loads)
import numpy as np  # noqa: E402

from sample_goodreads.generate import TOPICS_FILE  # noqa: E402
from benchmarks import results  # noqa: E402
from graph_export import coread  # noqa: E402
from model import baselines, data, evaluate  # noqa: E402
from pipeline_common import fileio  # noqa: E402
from benchmarks.bench_als import AlsScorer  # noqa: E402


def top_k_rows(scores_of_rows, num_books, k, block=1024):
    """[num_books, k] indices of the k largest scores of each row, the row's own book excluded."""
    neighbours = np.empty((num_books, k), np.int64)
    for start in range(0, num_books, block):
        rows = np.arange(start, min(start + block, num_books))
        scores = np.array(scores_of_rows(rows), np.float64)
        scores[np.arange(len(rows)), rows] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        neighbours[rows] = np.take_along_axis(top, order, axis=1)
    return neighbours


def share_alike(neighbours, labels, valid):
    """Mean over books with a label of the share of their neighbours with the same label."""
    same = (labels[neighbours] == labels[:, None]) & valid & (labels[:, None] >= 0)
    has = labels >= 0
    return float(same[has].mean(axis=1).mean())


def chance(labels):
    known = labels[labels >= 0]
    shares = np.bincount(known) / len(known)
    return float((shares ** 2).sum())


def label_codes(values):
    """Integer code per book (-1 for unknown)."""
    codes, table = np.full(len(values), -1, np.int64), {}
    for i, value in enumerate(values):
        if value is not None and value != "":
            codes[i] = table.setdefault(value, len(table))
    return codes


def read_topics(goodreads, book_ids):
    """Planted topic per book from the generator's book_topics.csv, or None when absent."""
    path = fileio.join(goodreads, TOPICS_FILE) if goodreads else None
    if path is None or not fileio.exists(path):
        return None
    topic_of = {row["book_id"]: row["topic"]
                for row in csv.DictReader(fileio.read_bytes(path).decode().splitlines())}
    return label_codes([topic_of.get(b) for b in book_ids])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="demo_output/preprocessed",
                        help="the preprocess output the model was trained on")
    parser.add_argument("--model", default="demo_output/model", help="a model.train output")
    parser.add_argument("--goodreads", default="demo_output/goodreads",
                        help="the generator's output, for its planted topics when written")
    parser.add_argument("--k", type=int, default=10, help="neighbours per book")
    parser.add_argument("--als", default="128,10,10",
                        help="factors,regularization,alpha of the implicit ALS peer (its item "
                             "vectors' cosine neighbours; needs the package implicit, "
                             "in the test extra); '' to leave it out")
    args = parser.parse_args(argv)
    if args.als:
        try:
            import implicit  # noqa: F401
        except ImportError:
            parser.error("--als needs the package implicit (the test extra: pip install -e "
                         "'.[test]'), or pass --als ''")
    try:
        manifest = data.check_data_dir(args.data)
        train = data.read_split(args.data, "train", manifest)
        evals = data.read_split(args.data, "eval", manifest)
        catalog = data.read_catalog(args.data, manifest["num_books"])
    except data.DataError as err:
        raise SystemExit(f"error: {err}") from None
    embeddings_path = fileio.join(args.model, "book_embeddings.npy")
    if not fileio.exists(embeddings_path):
        raise SystemExit(f"error: --model {args.model} has no book_embeddings.npy "
                         "(run python -m model.train first)")
    import io
    vectors = np.load(io.BytesIO(fileio.read_bytes(embeddings_path)))
    num_books, k = manifest["num_books"], args.k
    if vectors.shape[0] != num_books:
        raise SystemExit(f"error: {embeddings_path} has {vectors.shape[0]} rows, --data has "
                         f"{num_books} books: not the model of this data")
    split = evaluate.EvalSplit(train, evals, manifest["num_users"], num_books)
    labels = {}
    if "genre" in catalog.column_names:
        genres = label_codes(catalog.column("genre").to_pylist())
        if (genres >= 0).any():
            labels["genre"] = genres
    topics = read_topics(args.goodreads, catalog.column("book_id").to_pylist())
    if topics is not None:
        labels["topic"] = topics

    rows, seconds = [], {}
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    start = time.perf_counter()
    found = top_k_rows(lambda r: unit[r] @ unit.T, num_books, k)
    rows.append(("model (embedding cosine)", found, np.ones_like(found, bool)))
    seconds["model (embedding cosine)"] = time.perf_counter() - start
    start = time.perf_counter()
    ease = baselines.Ease().fit(split)
    found = top_k_rows(lambda r: ease.weights[r], num_books, k)
    name = f"ease (l2 {ease.l2:g})"
    rows.append((name, found, np.ones_like(found, bool)))
    seconds[name] = time.perf_counter() - start
    del ease
    start = time.perf_counter()
    cosine = baselines.ItemCosine(neighbours=k).fit(split)
    found = cosine.nbr_index.astype(np.int64)
    rows.append(("item_cosine", found, cosine.nbr_sim > 0))
    seconds["item_cosine"] = time.perf_counter() - start
    start = time.perf_counter()
    source, target, l2 = coread.ease_neighbours(split, k)
    found = target.reshape(num_books, -1)
    name = f"ease (l2 {l2:g})"
    rows.append((name, found, np.ones_like(found, bool)))
    seconds[name] = time.perf_counter() - start
    source, target = coread.random_neighbours(num_books, k, seed=0)
    rows.append(("random books", target.reshape(num_books, -1), None))
    seconds["random books"] = 0.0
    if args.als:
        factors, reg, alpha = (float(v) for v in args.als.split(","))
        start = time.perf_counter()
        items = AlsScorer(split, int(factors), reg, alpha, 15, 42).model.item_factors
        items = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
        found = top_k_rows(lambda r: items[r] @ items.T, num_books, k)
        name = f"als ({int(factors)} / {reg:g} / {alpha:g})"
        rows.append((name, found, np.ones_like(found, bool)))
        seconds[name] = time.perf_counter() - start

    reference = {name: chance(codes) for name, codes in labels.items()}
    header = f"{'neighbours (k=' + str(k) + ')':28}{'coread@' + str(k):>11}"
    for name in labels:
        header += f"{'same ' + name:>13}{'x chance':>10}"
    lines = [header + f"{'seconds':>9}"]
    figures = {}
    for name, found, valid in rows:
        valid = np.ones_like(found, bool) if valid is None else valid
        table = coread.top_k_table(found, valid)
        figure = coread.coread_at_k(train.user, train.book, evals.user, evals.book, *table,
                                    num_books)["coread"]
        figures[name] = figure
        line = f"{name:28}{figure:>11.4f}"
        for label, codes in labels.items():
            value = share_alike(found, codes, valid)
            line += f"{value:>13.3f}{value / reference[label]:>10.2f}"
        lines.append(line + f"{seconds[name]:>9.1f}")
    line = f"{'chance (expected)':28}{'':>11}"
    for label in labels:
        line += f"{reference[label]:>13.3f}{1.0:>10.2f}"
    lines.append(line)
    print(f"{num_books} books, {len(split.train_user)} training pairs; data {args.data}, "
          f"model {args.model}")
    if topics is None:
        print(f"(no {TOPICS_FILE} in --goodreads {args.goodreads}: the planted topic is not "
              "measured, genre only)")
    print("\n".join(lines))
    results.headline(f"the neighbours' coread@{k} (how often a book's neighbours include a book "
                     f"its readers read later), {args.data}",
                     ", ".join(f"{name} {value:.4f}" for name, value in figures.items()))


if __name__ == "__main__":
    results.main_recorded(main, "Neighbour quality (genre, topic, coread@10)")
