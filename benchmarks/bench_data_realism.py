"""How much a reading data set looks like real readers: label-free statistics of who reads what.

Compares generated data (`python -m sample_goodreads`) with real reading data on what both
have: how many books a user reads, how concentrated reading is on a few books, how much of
a user's reading is among the most-read books, and how strong and how clustered the
item-item co-reading signal is. Reads the UCSD layout's `goodreads_interactions.csv` and keeps
what preprocess keeps (rating >= --min_rating, the --top_books most-read books, users with
>= --min_user_ratings of them), so the figures describe what the model sees.

    python -m benchmarks.bench_data_realism DIR [DIR ...] [--top_books 3000] [--min_user_ratings 2]

Statistics (one column per DIR):
- books a user: median, p10, p90 of the kept reads per user;
- gini: Gini coefficient of reads per book; top1% / top10%: share of reads on the 1% / 10%
  most-read books;
- in top-100: mean over users of the share of their reads among the 100 most-read books;
- coread cos / rnd: coread@10 (graph_export.coread) of item-cosine's top 10 and of random
  books on a random 20% of the reads held out, and their ratio: how much co-reading
  predicts later reading;
- knn mutual: share of item-cosine top-10 edges a->b with a in b's top 10; knn clustering:
  share of pairs of a's neighbours that are neighbours of each other (high when books form
  closed groups, as cleanly planted topics do); knn in top-100: share of neighbours among the
  100 most-read books (popularity pull of the neighbours).
"""
import argparse

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmarks import results
from graph_export.coread import coread_at_k


def load(path, min_rating, top_books, min_user_ratings):
    """(user, book) index arrays of the kept reads, books ranked by reads (0 = most read)."""
    rows = pd.read_csv(f"{path}/goodreads_interactions.csv",
                       usecols=["user_id", "book_id", "rating"])
    rows = rows[rows.rating >= min_rating].drop_duplicates(["user_id", "book_id"])
    counts = rows.book_id.value_counts()
    keep = counts.index[:top_books]
    rows = rows[rows.book_id.isin(keep)]
    per_user = rows.user_id.value_counts()
    rows = rows[rows.user_id.isin(per_user.index[per_user >= min_user_ratings])]
    rank = {b: i for i, b in enumerate(rows.book_id.value_counts().index)}
    users = pd.factorize(rows.user_id)[0]
    return users.astype(np.int64), rows.book_id.map(rank).to_numpy(np.int64)


def top_k_cosine(matrix, k):
    """(source, target) of each book's k most cosine-similar books (binary co-reading)."""
    co = (matrix.T @ matrix).tocsr().astype(np.float64)
    norm = np.sqrt(co.diagonal()) + 1e-9
    co = sp.diags(1 / norm) @ co @ sp.diags(1 / norm)
    co.setdiag(0)
    dense = co.toarray()
    target = np.argsort(-dense, axis=1, kind="stable")[:, :k]
    return np.repeat(np.arange(dense.shape[0]), k), target.ravel()


def statistics(users, books, seed=0, k=10):
    num_users, num_books = users.max() + 1, books.max() + 1
    per_user = np.bincount(users)
    per_book = np.sort(np.bincount(books, minlength=num_books))[::-1]
    cum = np.cumsum(per_book[::-1]) / per_book.sum()
    gini = 1 - 2 * cum.mean() + 1 / num_books
    top = lambda share: per_book[:max(1, int(round(share * num_books)))].sum() / per_book.sum()
    in_top = np.bincount(users, books < 100, minlength=num_users) / per_user
    rng = np.random.default_rng(seed)
    held = rng.random(len(users)) < 0.2
    train = sp.csr_matrix((np.ones((~held).sum()), (users[~held], books[~held])),
                          shape=(num_users, num_books))
    train.data[:] = 1
    source, target = top_k_cosine(train, k)
    rnd = rng.integers(0, num_books - 1, len(source))
    rnd += rnd >= source
    coread = lambda t: coread_at_k(users[~held], books[~held], users[held], books[held],
                                   source, t, num_books)["coread"]
    cos, rnd_figure = coread(target), coread(rnd)
    nbr = target.reshape(num_books, k)
    is_nbr = sp.csr_matrix((np.ones(len(source)), (source, target)), shape=(num_books,) * 2)
    mutual = np.asarray(is_nbr[target, source]).ravel().mean()
    closed = [is_nbr[nbr[a][:, None], nbr[a][None, :]].sum() / (k * (k - 1))
              for a in range(num_books)]
    return {
        "users": num_users, "books": num_books, "reads": len(users),
        "books a user: median": np.median(per_user),
        "books a user: p10": np.percentile(per_user, 10),
        "books a user: p90": np.percentile(per_user, 90),
        "gini": gini, "top1%": top(0.01), "top10%": top(0.10), "in top-100": in_top.mean(),
        "coread cos": cos, "coread rnd": rnd_figure,
        "coread cos / rnd": cos / max(rnd_figure, 1e-12),
        "knn mutual": mutual, "knn clustering": float(np.mean(closed)),
        "knn in top-100": (target < 100).mean(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_data_realism",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="+", help="directories in the UCSD layout")
    parser.add_argument("--min_rating", type=int, default=1)
    parser.add_argument("--top_books", type=int, default=3000)
    parser.add_argument("--min_user_ratings", type=int, default=2)
    args = parser.parse_args(argv)
    table = {path: statistics(*load(path, args.min_rating, args.top_books,
                                    args.min_user_ratings)) for path in args.data}
    frame = pd.DataFrame(table)
    figure = lambda v: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    print(frame.to_string(float_format=figure))
    lines = ["| statistic | " + " | ".join(f"`{path}`" for path in args.data) + " |",
             "| --- |" + " --- |" * len(args.data)]
    lines += [f"| {name} | " + " | ".join(figure(v) for v in row) + " |"
              for name, row in frame.iterrows()]
    results.record("Data realism: generated against real readers", lines)
    return frame


if __name__ == "__main__":
    main()
