"""The shared evaluator (user sample, per-group metrics) and the baselines, on tiny exact cases."""
import numpy as np
import pytest

from model import baselines, evaluate, report


class _Interactions:
    def __init__(self, users, books):
        self.user = np.asarray(users, np.int32)
        self.book = np.asarray(books, np.int32)
        self.rating = np.ones(len(self.user), np.int32)


def _random_split(seed=3, num_users=40, num_books=25, rows=400, **kwargs):
    rng = np.random.default_rng(seed)
    users, books = rng.integers(0, num_users, rows), rng.integers(0, num_books, rows)
    eval_users, eval_books = rng.integers(0, num_users, rows // 4), rng.integers(0, num_books, rows // 4)
    return evaluate.EvalSplit(_Interactions(users, books), _Interactions(eval_users, eval_books),
                              num_users, num_books, **kwargs), users, books


def _dense(users, books, num_users, num_books):
    x = np.zeros((num_users, num_books))
    x[users, books] = 1.0
    return x


def test_user_sample_is_bounded_stable_and_follows_the_id():
    num_users, num_books = 60, 10
    rng = np.random.default_rng(0)
    train = _Interactions(rng.integers(0, num_users, 300), rng.integers(0, num_books, 300))
    evals = _Interactions(np.repeat(np.arange(num_users), 2), rng.integers(0, num_books, 120))
    ids = [f"user{u:03d}" for u in range(num_users)]
    split = evaluate.EvalSplit(train, evals, num_users, num_books, max_eval_users=7, user_ids=ids)
    assert len(split.users) == 7 and split.num_eval_interactions == 14
    assert split.describe() == {"eval_users": 7, "eval_users_total": 60,
                                "eval_users_chosen_by": "smallest blake2b-64 hash of the user id"}
    # The same people whatever the row order and whatever index the vocabulary gave them.
    shuffled = rng.permutation(len(evals.user))
    again = evaluate.EvalSplit(train, _Interactions(evals.user[shuffled], evals.book[shuffled]),
                               num_users, num_books, max_eval_users=7, user_ids=ids)
    np.testing.assert_array_equal(again.users, split.users)
    relabel = rng.permutation(num_users)  # old index -> new index
    new_ids = [None] * num_users
    for old, new in enumerate(relabel):
        new_ids[new] = ids[old]
    moved = evaluate.EvalSplit(_Interactions(relabel[train.user], train.book),
                               _Interactions(relabel[evals.user], evals.book),
                               num_users, num_books, max_eval_users=7, user_ids=new_ids)
    assert sorted(new_ids[u] for u in moved.users) == sorted(ids[u] for u in split.users)
    by_index = evaluate.EvalSplit(train, evals, num_users, num_books, max_eval_users=7)
    assert len(by_index.users) == 7 and "user index" in by_index.chosen_by
    everyone = evaluate.EvalSplit(train, evals, num_users, num_books, max_eval_users=0)
    assert len(everyone.users) == 60 and everyone.num_eval_interactions == 120
    # Baselines still fit on every user's training rows.
    assert len(by_index.train_user) == len(everyone.train_user)


def test_metrics_on_a_user_sample_match_the_same_users_alone():
    split, users, books = _random_split(max_eval_users=9)
    chosen = set(split.users.tolist())
    evals = _Interactions(split.eval_user, split.eval_book)
    keep = np.isin(evals.user, list(chosen))
    alone = evaluate.EvalSplit(_Interactions(users, books),
                               _Interactions(evals.user[keep], evals.book[keep]), 40, 25)
    scores = np.random.default_rng(1).random((40, 25))
    assert evaluate.evaluate_scores(lambda u: scores[u], split) == \
        evaluate.evaluate_scores(lambda u: scores[u], alone)


def test_group_metrics_add_up_to_the_overall_metrics():
    # Eval books are never training books, so every user has relevant books and
    # recall averages over users; hit averages over eval interactions.
    rng = np.random.default_rng(5)
    num_users, num_books = 30, 40
    lengths = np.array([1, 2, 3, 5, 10, 11, 20] * 4 + [1, 4])
    train_users = np.repeat(np.arange(num_users), lengths)
    train_books = np.concatenate([rng.permutation(20)[:n] for n in lengths])
    eval_users = np.repeat(np.arange(num_users), 2)
    eval_books = 20 + rng.integers(0, 20, 2 * num_users)
    split = evaluate.EvalSplit(_Interactions(train_users, train_books),
                               _Interactions(eval_users, eval_books), num_users, num_books)
    scores = rng.random((num_users, num_books))
    result = evaluate.evaluate_scores(lambda u: scores[u], split, groups=True)
    groups = result["groups"]
    assert [g["users"] for g in groups.values()] == [9, 13, 8]
    assert list(groups) == ["1-2", "3-10", "11+"]
    assert sum(g["eval_interactions"] for g in groups.values()) == split.num_eval_interactions
    for metric in evaluate.METRIC_NAMES:
        weight = "eval_interactions" if metric.startswith("hit") else "users"
        total = sum(g[metric] * g[weight] for g in groups.values()) / sum(
            g[weight] for g in groups.values())
        assert total == pytest.approx(result[metric])
    flat = evaluate.evaluate_scores(lambda u: scores[u], split)
    assert flat == {k: v for k, v in result.items() if k != "groups"}
    # Batches of 2 users scored on 1 or 3 threads: the same figures to the last bit.
    for threads in (1, 3):
        assert evaluate.evaluate_scores(lambda u: scores[u], split, max_cells=2 * num_books,
                                        groups=True, threads=threads) == result


def test_item_cosine_keeps_the_top_neighbours_of_a_dense_computation():
    split, users, books = _random_split()
    k = 6
    model = baselines.ItemCosine(neighbours=k, max_pairs_per_block=500,
                                 max_block_cells=25 * 7).fit(split)
    x = _dense(users, books, 40, 25)
    co = x.T @ x
    norm = np.sqrt(np.maximum(co.diagonal(), 1))
    sim = co / np.outer(norm, norm)
    np.fill_diagonal(sim, 0)
    kept = np.zeros_like(sim)
    for i in range(25):
        order = np.lexsort((np.arange(25), -sim[i]))
        order = order[order != i][:k]
        kept[i, order] = sim[i, order]
    expected = x @ kept
    got = model(np.arange(40)) - model.tiebreak
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_ease_matches_the_closed_form():
    split, users, books = _random_split(seed=8)
    model = baselines.Ease(l2=3.0).fit(split)
    x = _dense(users, books, 40, 25)
    p = np.linalg.inv(x.T @ x + 3.0 * np.eye(25))
    b = np.eye(25) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(model.weights, b, atol=1e-4)
    np.testing.assert_allclose(model(np.arange(40)) - model.tiebreak, x @ b, atol=1e-4)


def test_block_inverse_matches_numpy():
    rng = np.random.default_rng(4)
    x = (rng.random((90, 37)) < 0.2).astype(np.float32)
    gram = x.T @ x + 5.0 * np.eye(37, dtype=np.float32)
    expected = np.linalg.inv(gram.astype(np.float64))
    got = baselines.invert_spd(gram.copy(), base=4)  # recursion down to 4 x 4 blocks
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got, got.T, atol=1e-6)


def test_ease_chooses_l2_on_training_data_only():
    split, users, books = _random_split(seed=9, rows=600)
    other_evals = _Interactions([0, 1, 2], [3, 4, 5])
    other = evaluate.EvalSplit(_Interactions(users, books), other_evals, 40, 25)
    first, second = baselines.Ease().fit(split), baselines.Ease().fit(other)
    assert first.l2 in baselines.Ease.l2_grid and first.l2 == second.l2
    assert set(first.holdout_recall) == set(baselines.Ease.l2_grid)
    assert all(0.0 <= r <= 1.0 for r in first.holdout_recall.values())


def test_run_baselines_skips_ease_above_its_catalogue_limit_and_says_why(tmp_path):
    split, _, _ = _random_split()
    metrics, seconds = evaluate.run_baselines(split, ease_max_books=10)
    assert set(metrics) == {"popularity", "item_cosine", "ease"}
    assert set(seconds) == {"popularity", "item_cosine"}
    assert "25 books > --ease_max_books 10" in metrics["ease"]["skipped"]
    assert set(metrics["popularity"]["groups"]) == {"1-2", "3-10", "11+"}
    model = dict(metrics["popularity"])
    saved = evaluate.metrics_json(model, metrics, split)
    assert set(saved["baselines"]) == {"popularity", "item_cosine"}
    assert set(saved["groups"]) == {"model", "popularity", "item_cosine"}
    assert set(saved["model"]) == set(evaluate.METRIC_NAMES)
    assert saved["skipped_baselines"] == {"ease": metrics["ease"]["skipped"]}
    assert saved["eval_users"] == saved["eval_users_total"] == len(split.users)
    table = report.format_table(saved)
    assert "ease" in table and "skipped: 25 books" in table and "11+ item_cosine" in table
    written = []
    history = [dict(metrics["popularity"], epoch=1)]
    report.plot_history(history, metrics, written.append)
    assert written[0][:8] == b"\x89PNG\r\n\x1a\n"
    metrics, seconds, fitted = evaluate.run_baselines(split, ease_max_books=25,
                                                      return_fitted=True)
    assert "hit@10" in metrics["ease"] and "ease" in seconds
    # a λ chosen beforehand (model.train's, by the same choose_l2) gives the same baseline
    chosen = baselines.Ease().choose_l2(split)
    again, _, refit = evaluate.run_baselines(split, names=("ease",), ease_max_books=25,
                                             return_fitted=True, ease_l2=chosen)
    assert refit["ease"].l2 == fitted["ease"].l2 == chosen
    assert again["ease"] == metrics["ease"]


def test_hit_at_k_breaks_ties_at_random_in_expectation():
    # One user trained on book 0, eval books 1 (user 0) and 1 (user 1), 5 books.
    split = evaluate.EvalSplit(_Interactions([0, 1], [0, 0]), _Interactions([0, 1], [1, 1]),
                               num_users=2, num_books=5)
    scores = np.array([[3, 1, 1, 2, 0],     # book 1: 2 books above, 1 tied with it
                       [1, 1, 1, 1, 1]],    # book 1: everything tied (a flat scorer)
                      np.float64)
    result = evaluate.evaluate_scores(lambda users: scores[users], split, ks=(1, 2, 3, 4, 5))
    # user 0: hit@1,2 = 0, hit@3 = 1/2, hit@4,5 = 1; user 1: hit@K = K/5.
    for k, expected in {1: (0 + 0.2) / 2, 2: (0 + 0.4) / 2, 3: (0.5 + 0.6) / 2,
                        4: (1 + 0.8) / 2, 5: (1 + 1) / 2}.items():
        assert result[f"hit@{k}"] == pytest.approx(expected), k
