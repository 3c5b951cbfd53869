"""model.train on a tiny planted-structure preprocess output: outputs, signatures, runs."""
import functools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pipeline_common  # noqa: F401  (legacy Keras before TensorFlow loads)
import tensorflow as tf
import tensorflow_recommenders as tfrs
from model import baselines, data, evaluate, options, rerank, towers, train, vertex
from pipeline_common import artifacts
from pipeline_common.errors import UserError
from tests import model_fixtures

TINY = ["--epochs", "3", "--batch_size", "64", "--embedding_dim", "16", "--verbose", "0",
        "--top_k", "20", "--seed", "7"]
METRIC_KEYS = {"hit@10", "hit@50", "hit@100", "recall@10", "recall@50", "recall@100"}


@pytest.fixture(scope="module")
def prep(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("prep"))
    facts = model_fixtures.write_prep(path)
    return path, facts


@pytest.fixture(scope="module")
def trained(prep, tmp_path_factory):
    data, facts = prep
    output = str(tmp_path_factory.mktemp("model"))
    metrics = train.run(["--data", data, "--output", output] + TINY)
    return data, output, metrics, facts


def test_metrics_json_layout_and_values(trained):
    data, output, metrics, facts = trained
    with open(os.path.join(output, "metrics.json")) as handle:
        saved = json.load(handle)
    assert saved == json.loads(json.dumps(metrics))
    assert {"model", "baselines", "eval_interactions", "eval_users"} <= set(saved)
    assert set(saved["model"]) == METRIC_KEYS
    assert {"popularity", "item_cosine"} <= set(saved["baselines"])
    for values in [saved["model"]] + list(saved["baselines"].values()):
        assert set(values) == METRIC_KEYS
        assert all(0.0 <= v <= 1.0 for v in values.values())
        assert values["hit@10"] <= values["hit@50"] <= values["hit@100"]
    assert saved["eval_interactions"] == facts["manifest"]["eval_examples"]
    assert 0 < saved["eval_users"] <= facts["manifest"]["num_users"]
    with open(os.path.join(output, "metrics.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def _restored(data_dir, output, facts):
    """(args, inputs, split, model): the trained model restored from its checkpoint."""
    args, _ = options.parse_args(["--data", data_dir, "--output", output] + TINY)
    inputs = train.read_inputs(args)
    split = evaluate.EvalSplit(inputs.train, inputs.evals, facts["manifest"]["num_users"],
                               facts["manifest"]["num_books"], max_eval_users=0)
    # restores the trained checkpoint (trained without the holdout's books): no training
    model, _ = train.fit(args, rerank.holdout_inputs(args, inputs)[0], split)
    return args, inputs, split, model


def test_tfrs_hit_rate_agrees_with_shared_evaluator(trained):
    """The shared evaluator's hit@K of the two-tower scores is TFRS FactorizedTopK's."""
    data, output, metrics, facts = trained
    args, inputs, split, model = _restored(data, output, facts)
    vectors = tf.constant(np.concatenate([v for _, v in model.book_embeddings()]))
    ks = [min(k, len(vectors)) for k in (10, 50, 100)]
    index = tfrs.layers.factorized_top_k.BruteForce(k=max(ks)).index(
        vectors, tf.range(len(vectors), dtype=tf.int64))
    top_k = tfrs.metrics.FactorizedTopK(candidates=index, ks=ks)
    book = tf.constant(inputs.evals.book, tf.int64)
    top_k.update_state(model.query_tower(tf.constant(inputs.evals.user, tf.int64)),
                       tf.gather(vectors, book), true_candidate_ids=book)
    tfrs_hits = [float(hit) for hit in top_k.result()]
    ours = evaluate.evaluate_scores(train.model_scorer(model, vectors.numpy()), split)
    assert metrics["eval_interactions"] == len(inputs.evals.user)
    for k, hit in zip((10, 50, 100), tfrs_hits):
        assert ours[f"hit@{k}"] == pytest.approx(hit, abs=0.01)


def test_embedding_files(trained):
    data, output, _, facts = trained
    table = pq.read_table(os.path.join(output, "book_embeddings.parquet"))
    assert table.column_names == ["book_index", "book_id", "title", "embedding"]
    assert table.schema.equals(artifacts.EMBEDDING_SCHEMA, check_metadata=False)
    embedding_type = table.schema.field("embedding").type
    assert pa.types.is_list(embedding_type) and embedding_type.value_type == pa.float32()
    num_books = facts["manifest"]["num_books"]
    assert table.column("book_index").to_pylist() == list(range(num_books))
    assert table.column("book_id").to_pylist() == facts["book_vocab"]
    vectors = np.array(table.column("embedding").to_pylist(), np.float32)
    npy = np.load(os.path.join(output, "book_embeddings.npy"))
    # the map's vectors: the co-reading factorisation (model/map_embedding.py, --map_dim 512
    # wide, at most one per book) or the tower's (16), whichever did better on the holdout
    with open(os.path.join(output, "training_log.json")) as handle:
        choice = json.load(handle)["map_embedding"]
    figures = choice["holdout_coread"]
    assert choice["kind"] == max(figures, key=figures.get)
    dim = min(512, num_books) if choice["kind"] == "co_reading_factorisation" else 16
    assert choice.get("dim", 16) == dim
    assert npy.dtype == np.float32 and npy.shape == (num_books, dim)
    np.testing.assert_array_equal(vectors, npy)
    np.testing.assert_allclose(np.linalg.norm(npy, axis=1), 1.0, atol=1e-5)
    projector = os.path.join(output, "projector")
    with open(os.path.join(projector, "vectors.tsv")) as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle]
    assert len(rows) == num_books and len(rows[0]) == dim
    with open(os.path.join(projector, "metadata.tsv")) as handle:
        meta = handle.read().splitlines()
    assert meta[0].split("\t")[:2] == ["title", "book_id"] and len(meta) == num_books + 1
    with open(os.path.join(projector, "projector_config.pbtxt")) as handle:
        config = handle.read()
    assert 'tensor_path: "vectors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config


SIGNATURE_CHECK = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    model_dir, user_id, book_id, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    loaded = tf.saved_model.load(os.path.join(model_dir, "saved_model"))
    out = {"signatures": sorted(loaded.signatures)}
    emb = loaded.signatures["embed_books"](book_index=tf.constant([0, 3], tf.int64))
    out["embedding"] = emb["embedding"].numpy().tolist()
    sim = loaded.signatures["similar_books"](book_id=tf.constant([book_id, "no-such-book"]))
    out["similar"] = {k: v.numpy().tolist() for k, v in sim.items()}
    rec = loaded.signatures["serving_default"](user_id=tf.constant([user_id, "no-such-user"]))
    out["serving"] = {k: v.numpy().tolist() for k, v in rec.items()}
    print("RESULT" + json.dumps(out, default=lambda b: b.decode()))
""")


def test_saved_model_signatures_in_fresh_process(trained):
    data_dir, output, _, facts = trained
    train_set = data.read_split(data_dir, "train", facts["manifest"])
    reader = int(np.argmax(np.bincount(train_set.user)))   # the user with the most books read
    read_ids = {facts["book_vocab"][b] for b in train_set.book[train_set.user == reader]}
    assert len(read_ids) >= 10
    user_id, book_id = facts["user_vocab"][reader], facts["book_vocab"][2]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", SIGNATURE_CHECK, output, user_id, book_id, "20"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["signatures"] == ["embed_books", "serving_default", "similar_books"]
    npy = np.load(os.path.join(output, "book_embeddings.npy"))
    # embed_books is the candidate tower's output (unit, --embedding_dim wide); similar_books
    # ranks by the map's vectors, those of book_embeddings.npy
    tower = np.array(result["embedding"])
    assert tower.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(tower, axis=1), 1.0, atol=1e-5)

    similar = result["similar"]
    assert similar["known"] == [True, False]
    assert len(similar["book_ids"][0]) == 20 and book_id not in similar["book_ids"][0]
    scores = np.array(similar["scores"][0])
    assert np.all(np.diff(scores) <= 1e-6)
    expected = npy @ npy[2]
    expected[2] = -np.inf
    assert similar["book_index"][0][0] == int(np.argmax(expected))
    assert similar["book_ids"][1] == [""] * 20

    serving = result["serving"]
    assert serving["known"] == [True, False]
    assert len(set(serving["book_ids"][0])) == 20
    assert all(b in facts["book_vocab"] for b in serving["book_ids"][0])
    # Serving never returns a book the user read in training (the SavedModel carries them).
    assert not read_ids & set(serving["book_ids"][0])
    # An unknown user gets the most-read books (book_index order) with score 0.
    assert serving["book_index"][1] == list(range(20))
    assert serving["scores"][1] == [0.0] * 20


SERVE_USERS = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    loaded = tf.saved_model.load(os.path.join(sys.argv[1], "saved_model"))
    users = tf.constant(json.loads(sys.argv[2]))
    out = loaded.signatures["serving_default"](user_id=users)
    print("RESULT" + json.dumps({k: out[k].numpy().tolist() for k in ("book_index", "scores")}))
""")


def test_serving_ranks_by_the_evaluated_score(trained):
    """serving_default (fresh process) returns the top k of the score metrics.json measures."""
    data_dir, output, _, facts = trained
    args, inputs, split, model = _restored(data_dir, output, facts)
    with open(os.path.join(output, "training_log.json")) as handle:
        log = json.load(handle)
    groups = log["rerank"]["groups"]
    assert set(groups) == {"1-2", "3-10", "11+"}
    weights = ([groups[g]["head_weight"] for g in ("1-2", "3-10", "11+")],
               [float("inf") if groups[g]["popularity_fallback"] else groups[g]["popularity_weight"]
                for g in ("1-2", "3-10", "11+")],
               log["rerank"]["holdout"])
    assert log["rerank"]["holdout"]["holdout_users"] > 0
    train.use_full_histories(args, model, inputs)
    reranker = rerank.build_reranker(args, split, weights, l2=log["rerank"]["head"].get("l2"))
    users = np.unique(inputs.train.user)[:12]
    scores = rerank.reranked_scorer(reranker, functools.partial(train.query_vectors, model),
                                    train.tower_book_vectors(model), split)(users)
    for row, user in enumerate(users):
        scores[row, split.train_items(user)] = -np.inf
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", CUDA_VISIBLE_DEVICES="")
    ids = [facts["user_vocab"][u] for u in users]
    proc = subprocess.run([sys.executable, "-c", SERVE_USERS, output, json.dumps(ids)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.split("RESULT", 1)[1])
    for row in range(len(users)):
        got = np.array(served["book_index"][row])
        np.testing.assert_allclose(served["scores"][row], scores[row, got], rtol=1e-4, atol=1e-4)
        # the served list is the evaluated top k (up to float32 ties at its end)
        kth = np.sort(scores[row])[::-1][len(got) - 1]
        assert np.all(scores[row, got] >= kth - 1e-4)


def test_rerun_resumes_and_matches_an_uninterrupted_fresh_process(prep, tmp_path, capsys):
    data, _ = prep
    base = ["--data", data, "--batch_size", "64", "--embedding_dim", "8", "--verbose", "0",
            "--top_k", "5", "--eval_every", "5"]
    resumed, straight = str(tmp_path / "resumed"), str(tmp_path / "straight")
    train.run(base + ["--output", resumed, "--epochs", "1"])
    capsys.readouterr()
    # killed after history.json got epoch 2 but before its checkpoint: epoch 2 is trained again
    history_path = os.path.join(resumed, "checkpoints", "history.json")
    with open(history_path) as handle:
        written = json.load(handle)
    with open(history_path, "w") as handle:
        json.dump(written + [dict(written[0], epoch=2, loss=-1.0)], handle)
    train.run(base + ["--output", resumed, "--epochs", "2"])
    assert "Resuming from the checkpoint after epoch 1" in capsys.readouterr().out
    # The uninterrupted run is a fresh process with another hash seed: same seed, same model.
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONHASHSEED="123")
    proc = subprocess.run([sys.executable, "-m", "model.train"] + base +
                          ["--output", straight, "--epochs", "2"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "model.train: 2 epochs" in proc.stdout
    with open(os.path.join(resumed, "training_log.json")) as handle:
        log = json.load(handle)
    assert [h["epoch"] for h in log["history"]] == [1, 2]
    assert log["history"][1]["loss"] > 0, "the killed epoch's entry was replaced"
    phases = log["phase_seconds"]
    assert set(phases) == {"read", "fit", "rerank_weights", "evaluate", "export"}
    assert all(seconds >= 0 for seconds in phases.values())
    assert phases["fit"] >= log["history"][1]["train_seconds"]   # the resumed epoch is in it
    np.testing.assert_array_equal(np.load(os.path.join(resumed, "book_embeddings.npy")),
                                  np.load(os.path.join(straight, "book_embeddings.npy")))
    with pytest.raises(UserError, match="other embedding_dim"):
        train.run(base + ["--output", resumed, "--epochs", "3", "--embedding_dim", "4"])


def test_nan_loss_stops_without_export(prep, tmp_path, monkeypatch):
    data, _ = prep
    original = towers.TwoTowerModel.compute_loss
    monkeypatch.setattr(towers.TwoTowerModel, "compute_loss",
                        lambda self, features, training=False:
                        original(self, features, training) * float("nan"))
    output = str(tmp_path / "nan")
    with pytest.raises(UserError, match="loss became nan"):
        train.run(["--data", data, "--output", output, "--epochs", "2", "--verbose", "0",
                   "--embedding_dim", "8"])
    assert not os.path.exists(os.path.join(output, "metrics.json"))
    assert not os.path.exists(os.path.join(output, "saved_model"))
    assert not os.path.exists(os.path.join(output, "book_embeddings.parquet"))


def _one_line_error(argv):
    """The message of the user error train.run raises: one line, no "error:" prefix of its own
    (the command line adds "python -m model.train: error: ")."""
    with pytest.raises(UserError) as info:
        train.run(argv)
    message = str(info.value)
    assert not message.startswith("error") and "\n" not in message
    return message


def test_clear_errors_for_bad_data(prep, tmp_path):
    data, _ = prep
    out = ["--output", str(tmp_path / "out")]
    assert "does not exist" in _one_line_error(["--data", str(tmp_path / "nope")] + out)
    (tmp_path / "empty").mkdir()
    assert "no manifest.json" in _one_line_error(["--data", str(tmp_path / "empty")] + out)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text(json.dumps({"num_books": 3}))
    assert "lacks num_users" in _one_line_error(["--data", str(broken)] + out)

    (broken / "manifest.json").write_text(json.dumps(
        {"num_books": 0, "num_users": 0, "train_examples": 0, "eval_examples": 0}))
    assert "is empty" in _one_line_error(["--data", str(broken)] + out)

    # A manifest that disagrees with the records: indices out of range.
    with open(os.path.join(data, "manifest.json")) as handle:
        manifest = json.load(handle)
    mismatch = tmp_path / "mismatch"
    mismatch.mkdir()
    for name in os.listdir(data):
        os.symlink(os.path.join(data, name), mismatch / name)
    (mismatch / "manifest.json").unlink()
    (mismatch / "manifest.json").write_text(json.dumps(dict(manifest, num_books=5)))
    assert "book_index outside 0..4" in _one_line_error(["--data", str(mismatch)] + out)


def test_a_catalogue_of_another_run_is_refused(prep, tmp_path):
    """As many books, other ids (two swapped): not this run's catalogue, whatever the count."""
    data, _ = prep
    other = tmp_path / "other"
    other.mkdir()
    for name in os.listdir(data):
        if name != artifacts.CATALOG:
            os.symlink(os.path.join(data, name), other / name)
    catalog = pq.read_table(os.path.join(data, artifacts.CATALOG))
    ids = catalog.column("book_id").to_pylist()
    ids[1], ids[2] = ids[2], ids[1]
    swapped = catalog.set_column(catalog.schema.get_field_index("book_id"), "book_id",
                                 pa.array(ids, pa.string()))
    pq.write_table(swapped, other / artifacts.CATALOG)
    message = _one_line_error(["--data", str(other), "--output", str(tmp_path / "out")])
    assert str(other / artifacts.CATALOG) in message and artifacts.BOOK_VOCAB in message, message
    assert f"book_index 1 is book {ids[1]}" in message, message
    assert not (tmp_path / "out" / artifacts.SAVED_MODEL_DIR).exists()


def test_saved_model_has_no_inputs_synthesised_in_hash_seed_order(trained):
    """tf.Transform adds a PlaceholderWithDefault for each raw input it is not fed, in the
    order of a Python set: saved_model.pb's bytes would then depend on PYTHONHASHSEED. The
    module feeds every raw input, so there are none."""
    from tensorflow.core.protobuf import saved_model_pb2
    _, output, _, _ = trained
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(output, artifacts.SAVED_MODEL_DIR, "saved_model.pb"), "rb") as handle:
        saved.ParseFromString(handle.read())
    graph = saved.meta_graphs[0].graph_def
    ops = [node.op for node in graph.node]
    ops += [node.op for function in graph.library.function for node in function.node_def]
    assert ops.count("PlaceholderWithDefault") == 0


def test_bad_flags_are_argparse_errors(prep, tmp_path, capsys):
    data, _ = prep
    for flags in (["--epochs", "0"], ["--learning_rate", "-1"], ["--hidden_layers", "a,b"],
                  ["--history_dropout", "1"], ["--no_such_flag", "1"]):
        with pytest.raises(SystemExit) as info:
            train.run(["--data", data, "--output", str(tmp_path)] + flags)
        assert info.value.code == 2
    assert "unrecognized arguments: --no_such_flag" in capsys.readouterr().err


def test_history_dropout_masks_depend_only_on_seed_and_step():
    history = np.arange(1, 41, dtype=np.int32).reshape(4, 10)
    users = tf.constant([0, 1, 2, 3], tf.int64)
    not_in_history = tf.constant([100, 100, 100, 100], tf.int64)

    def outputs(seed):
        tf.keras.utils.set_random_seed(0)
        tower = towers.QueryTower(4, 8, history, 40, use_user_id=False, history_dropout=0.5,
                                  seed=seed)
        steps = [tower(users, exclude_book=not_in_history).numpy() for _ in range(2)]
        serving = tower(users).numpy()
        return steps, serving, int(tower.dropout_step.numpy())

    first, serving, steps = outputs(1)
    again, serving_again, _ = outputs(1)
    other, _, _ = outputs(2)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    np.testing.assert_array_equal(serving, serving_again)
    assert not np.allclose(first[0], first[1])  # a new mask every step
    assert not np.allclose(first[0], other[0])  # and per seed
    assert not np.allclose(first[0], serving)  # serving uses the whole history
    assert steps == 2  # serving calls take no dropout step


def test_pooled_history_gradient_is_sparse_and_exact():
    """towers._pooled's gradient: slices over the ids read (not a dense table), exact."""
    ids = tf.constant([[3, 1, 0, 3], [0, 0, 0, 0], [2, 5, 5, 0]], tf.int32)
    embedding = tf.keras.layers.Embedding(6, 4)
    embedding.build(None)
    upstream = tf.random.stateless_normal([3, 4], [5, 6])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(towers._pooled(embedding, ids) * upstream)
    sparse = tape.gradient(loss, embedding.embeddings)
    with tf.GradientTape() as tape:   # reference: a masked mean of gathered rows
        rows = tf.gather(embedding.embeddings, ids)
        mask = tf.cast(ids > 0, tf.float32)[:, :, None]
        mean = tf.reduce_sum(rows * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
        reference_loss = tf.reduce_sum(mean * upstream)
    dense = tape.gradient(reference_loss, embedding.embeddings)
    assert isinstance(sparse, tf.IndexedSlices)
    assert sorted(sparse.indices.numpy().tolist()) == [1, 2, 3, 5]
    np.testing.assert_allclose(tf.convert_to_tensor(sparse).numpy(),
                               tf.convert_to_tensor(dense).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(towers._pooled(embedding, ids).numpy(), mean.numpy(), rtol=1e-6)


def test_in_batch_loss_and_its_gradient_equal_tfrs_retrieval():
    """towers.in_batch_softmax_loss (own gradient) = tfrs.tasks.Retrieval with logQ and
    accidental hits removed, value and gradients, including books repeated in the batch."""
    rng = np.random.default_rng(3)
    query = tf.math.l2_normalize(tf.constant(rng.normal(size=(40, 8)), tf.float32), 1)
    candidate = tf.math.l2_normalize(tf.constant(rng.normal(size=(40, 8)), tf.float32), 1)
    book = tf.constant(rng.integers(0, 12, 40), tf.int32)   # many accidental hits
    probability = rng.dirichlet(np.ones(12)).astype(np.float32)
    results = []
    for loss_of in (
            lambda q, c: towers.in_batch_softmax_loss(q, c, book, tf.math.log(probability), 0.1),
            lambda q, c: tfrs.tasks.Retrieval(temperature=0.1, remove_accidental_hits=True)(
                q, c, candidate_sampling_probability=tf.gather(probability, book),
                candidate_ids=book)):
        with tf.GradientTape() as tape:
            tape.watch([query, candidate])
            loss = loss_of(query, candidate)
        results.append([loss.numpy()] + [g.numpy() for g in tape.gradient(loss, [query, candidate])])
    for ours, reference in zip(*results):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)


def test_lazy_adam_sums_repeated_rows_and_leaves_untouched_rows_alone():
    from model import lazy_adam
    start = np.arange(12, dtype=np.float32).reshape(4, 3)
    lazy, dense = tf.Variable(start), tf.Variable(start)
    values = tf.constant([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5], [-1.0, 0.0, 1.0]])
    repeated = tf.IndexedSlices(values, tf.constant([2, 0, 2]), tf.constant([4, 3]))
    lazy_adam.LazyAdam(0.1).apply_gradients([(repeated, lazy)])
    tf.keras.optimizers.Adam(0.1).apply_gradients([(tf.convert_to_tensor(repeated), dense)])
    np.testing.assert_allclose(lazy.numpy(), dense.numpy(), atol=1e-5)  # step 1: as Adam
    assert np.array_equal(lazy.numpy()[[1, 3]], start[[1, 3]])
    optimizer = lazy_adam.LazyAdam(0.1)
    optimizer.apply_gradients([(repeated, lazy)])
    before = lazy.numpy()
    optimizer.apply_gradients([(tf.IndexedSlices(values[:1], tf.constant([3]),
                                                 tf.constant([4, 3])), lazy)])
    assert np.array_equal(lazy.numpy()[:3], before[:3])  # rows 0 and 2 keep still: lazy
    assert not np.array_equal(lazy.numpy()[3], before[3])
    lazy, dense = tf.Variable(start), tf.Variable(start)   # distinct rows, not in order
    distinct = tf.IndexedSlices(tf.gather(values, [0, 2]), tf.constant([3, 1]),
                                tf.constant([4, 3]))
    lazy_adam.LazyAdam(0.1).apply_gradients([(distinct, lazy)])
    tf.keras.optimizers.Adam(0.1).apply_gradients([(tf.convert_to_tensor(distinct), dense)])
    np.testing.assert_allclose(lazy.numpy(), dense.numpy(), atol=1e-5)


def test_config_file_and_command_line_override(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 9\nbatch_size: 32\nhidden_layers: 64,32\ndata: /x\noutput: /y\n")
    args, _ = options.parse_args(["--config", str(config), "--epochs", "2"])
    assert (args.epochs, args.batch_size, args.hidden_layers, args.data) == (2, 32, (64, 32), "/x")


def test_vertex_dry_run_prints_custom_job(capsys):
    job = vertex.run(["--config", "run_configs/vertex.yaml", "--dry_run", "--epochs", "3"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["customJob"] == job
    assert printed["parent"].startswith("projects/") and "/locations/" in printed["parent"]
    pool = job["jobSpec"]["workerPoolSpecs"][0]
    assert pool["containerSpec"]["command"] == ["python", "-m", "model.train"]
    args = pool["containerSpec"]["args"]
    assert any(a.startswith("--data=gs://") for a in args) and args[-2:] == ["--epochs", "3"]
    assert not any(a.startswith(("--project", "--region", "--image_uri")) for a in args)
    # The same through model.train --vertex.
    assert train.run(["--vertex", "--dry_run", "--config", "run_configs/vertex.yaml"]) == \
        vertex.run(["--config", "run_configs/vertex.yaml", "--dry_run"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        vertex.run(["--config", "run_configs/vertex.yaml", "--dry_run", "--output", "/local"])
    assert "must be a gs:// path" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        vertex.run(["--config", "run_configs/vertex.yaml", "--dry_run", "--epochs", "x"])


class _Split:
    """Hand-made interactions for evaluator checks."""

    def __init__(self, users, books):
        self.user = np.array(users, np.int32)
        self.book = np.array(books, np.int32)
        self.rating = np.ones(len(users), np.int32)


def test_evaluator_on_a_hand_computed_example():
    # 2 users, 5 books. User 0 trained on book 0, eval books 1 and 4; user 1 trained on 2,
    # eval book 2 (also a training book: counts for hit, not for recall) and 3.
    split = evaluate.EvalSplit(_Split([0, 1], [0, 2]), _Split([0, 0, 1, 1], [1, 4, 2, 3]),
                               num_users=2, num_books=5)
    scores = np.array([[9, 8, 1, 2, 3], [0, 1, 9, 8, 2]], np.float32)
    result = evaluate.evaluate_scores(lambda users: scores[users], split, ks=(1, 2, 5))
    # Ranks (0-based, nothing excluded): u0 book1 -> 1, book4 -> 2; u1 book2 -> 0, book3 -> 1.
    assert result["hit@1"] == 0.25 and result["hit@2"] == 0.75 and result["hit@5"] == 1.0
    # Recall with training books excluded: u0 ranking 1,4,3,2 -> relevant {1,4};
    # u1 ranking 3,4,1,0 -> relevant {3}.
    assert result["recall@1"] == pytest.approx((0.5 + 1.0) / 2)
    assert result["recall@2"] == pytest.approx((1.0 + 1.0) / 2)


def test_item_cosine_matches_a_dense_computation():
    rng = np.random.default_rng(3)
    users, books = rng.integers(0, 30, 300), rng.integers(0, 25, 300)
    train_set = _Split(users, books)
    split = evaluate.EvalSplit(train_set, _Split([0], [1]), num_users=30, num_books=25)
    model = baselines.ItemCosine(neighbours=24, max_pairs_per_block=500,
                                 max_block_cells=25 * 7).fit(split)
    x = np.zeros((30, 25))
    x[users, books] = 1
    co = x.T @ x
    sim = co / np.sqrt(np.outer(np.maximum(co.diagonal(), 1), np.maximum(co.diagonal(), 1)))
    np.fill_diagonal(sim, 0)
    expected = x @ sim
    got = model(np.arange(30))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    pop = baselines.Popularity().fit(split)(np.array([0, 1]))
    assert np.argmax(pop[0]) == np.argmax(np.bincount(books, minlength=25))


def test_eval_users_are_chosen_by_a_hash_of_the_user_id(prep, tmp_path):
    data_dir, facts = prep
    metrics = train.run(["--data", data_dir, "--output", str(tmp_path / "m"), "--epochs", "1",
                         "--batch_size", "64", "--embedding_dim", "8", "--verbose", "0",
                         "--eval_users", "10", "--ease_max_books", "0"])
    assert metrics["eval_users"] == 10 < metrics["eval_users_total"]
    assert "user id" in metrics["eval_users_chosen_by"]
    # The same ten users as the evaluator picks from the ids directly.
    inputs = train.read_inputs(options.parse_args(["--data", data_dir, "--output", "x"])[0])
    ids = evaluate.read_user_ids(data_dir)
    split = evaluate.EvalSplit(inputs.train, inputs.evals, facts["manifest"]["num_users"],
                               facts["manifest"]["num_books"], max_eval_users=10, user_ids=ids)
    assert metrics["eval_interactions"] == split.num_eval_interactions


def test_holdout_hides_one_book_of_chosen_users_deterministically():
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(0, 50, 600) * 40 + rng.integers(0, 40, 600))
    train_set = data.Interactions((pairs // 40).astype(np.int32), (pairs % 40).astype(np.int32))
    first = rerank.make_holdout(train_set, 50, seed=3, max_users=10, max_share=1.0)
    again = rerank.make_holdout(train_set, 50, seed=3, max_users=10, max_share=1.0)
    np.testing.assert_array_equal(first.user, again.user)
    np.testing.assert_array_equal(first.book, again.book)
    assert len(first.user) == len(set(first.user.tolist())) == 10
    assert len(first.fit.user) == len(train_set.user) - 10
    kept = set(zip(first.fit.user.tolist(), first.fit.book.tolist()))
    assert not kept & set(zip(first.user.tolist(), first.book.tolist()))
    capped = rerank.make_holdout(train_set, 50, seed=3, max_users=10, max_share=0.01)
    assert len(capped.user) == int(0.01 * len(train_set.user)) < 10


def test_group_boundaries_and_item_cosine_head_above_the_ease_limit():
    np.testing.assert_array_equal(rerank.group_of([0, 1, 2, 3, 10, 11, 500]),
                                  [0, 0, 0, 1, 1, 2, 2])
    rng = np.random.default_rng(1)
    pairs = np.unique(rng.integers(0, 30, 300) * 20 + rng.integers(0, 20, 300))
    train_set = data.Interactions((pairs // 20).astype(np.int32), (pairs % 20).astype(np.int32))
    split = rerank.holdout_split(train_set, 30, 20)
    index, weight, info = rerank.fit_head(split, 5, ease_max_books=10)
    assert info["kind"] == "item_cosine" and index.shape == weight.shape == (20, 5)
    # the baseline fitted with more neighbours is reused, truncated: the same head
    wider = baselines.ItemCosine(neighbours=8).fit(split)
    reused = rerank.fit_head(split, 5, ease_max_books=10, item_cosine=wider)
    np.testing.assert_array_equal(reused[0], index)
    np.testing.assert_array_equal(reused[1], weight)
    index, weight, info = rerank.fit_head(split, 5, ease_max_books=100)
    assert info["kind"] == "ease" and index.shape == (20, 5)
    # EASE's head keeps each row's 5 largest weights by magnitude, negative ones included
    ease = baselines.Ease(l2=info["l2"]).fit(split)
    for book in range(20):
        np.testing.assert_allclose(weight[book], ease.weights[book, index[book]], rtol=1e-6)
        assert np.abs(weight[book]).min() >= np.sort(np.abs(ease.weights[book]))[-5] - 1e-6
    users = np.array([0, 4])
    head = rerank.head_scores(index, weight, split.train_ptr, split.train_book, users)
    dense = np.zeros((2, 20), np.float32)
    for row, user in enumerate(users):
        for book in split.train_items(user):
            np.add.at(dense[row], index[book], weight[book])
    np.testing.assert_allclose(head, dense, rtol=1e-6)


def test_served_head_uses_the_lambda_its_weights_were_chosen_with():
    rng = np.random.default_rng(2)
    pairs = np.unique(rng.integers(0, 40, 400) * 25 + rng.integers(0, 25, 400))
    train_set = data.Interactions((pairs // 25).astype(np.int32), (pairs % 25).astype(np.int32))
    split = rerank.holdout_split(train_set, 40, 25)
    args = options.parse_args(["--data", "unused", "--output", "unused",
                               "--head_neighbours", "6"])[0]
    weights = ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], {"head_on_holdout": {"kind": "ease", "l2": 32.0}})
    baseline = baselines.Ease(l2=8.0).fit(split)       # the EASE baseline chose another λ
    served = rerank.build_reranker(args, split, weights, {"ease": baseline})
    assert served.info["head"]["l2"] == 32.0
    expected = rerank.fit_head(split, 6, args.ease_max_books, l2=32.0)
    np.testing.assert_array_equal(served.head_weight, expected[1])
    # the same λ: the fitted baseline is reused as it is
    same = rerank.build_reranker(args, split, weights,
                                 {"ease": baselines.Ease(l2=32.0).fit(split)})
    np.testing.assert_array_equal(same.head_weight, expected[1])
    # choose_l2 alone (as choose_served_weights calls it) gives the λ fit() would choose
    assert baselines.Ease().choose_l2(split) == baselines.Ease().fit(split).l2


def test_a_pair_that_trades_top10_hits_for_top100_hits_is_not_chosen():
    """Columns: 0 = more top-100 hits but fewer top-10 hits than popularity, 1 = level on
    top-10 and a little better overall, 2 = the popularity fallback."""
    rng = np.random.default_rng(3)
    users = 2000
    top10 = np.zeros((users, 3), bool)
    top100 = np.zeros((users, 3), bool)
    top10[:, 2] = rng.random(users) < 0.10
    top100[:, 2] = top10[:, 2] | (rng.random(users) < 0.20)
    top10[:, 0] = top10[:, 2] & (rng.random(users) < 0.7)         # loses top-10 hits
    top100[:, 0] = top100[:, 2] | (rng.random(users) < 0.30)      # gains many top-100 hits
    top10[:, 1] = top10[:, 2]
    top100[:, 1] = top100[:, 2] | (rng.random(users) < 0.10)
    gain = top10.astype(float) + top100
    everyone = np.ones(users, bool)
    picks = np.arange(users) % 2 == 0
    assert gain[:, 0].mean() > gain[:, 1].mean()                  # best by the sum alone
    assert rerank._best(gain, top10, everyone, picks, fallback=2) == 1
    # no pair level on top-10 hits: the popularity fallback
    assert rerank._best(gain[:, [0, 2]], top10[:, [0, 2]], everyone, picks, fallback=1) == 1


def test_the_best_of_many_pairs_that_are_no_better_than_popularity_falls_back():
    """40 pairs that are popularity plus noise: the best of them, tested on the users it
    was picked on, beats popularity by more than a standard error; tested out of sample
    (cross-fitted on two halves) it does not, and the group falls back."""
    rng = np.random.default_rng(4)
    users, pairs = 3000, 40
    picks = rng.random(users) < 0.5
    top10 = np.zeros((users, pairs + 1))                     # level on hits@10 everywhere
    gain = np.repeat(rng.random((users, 1)) < 0.2, pairs + 1, axis=1).astype(float)
    gain[:, :pairs] += rng.choice([-1.0, 0.0, 1.0], size=(users, pairs), p=[0.1, 0.8, 0.1])
    everyone = np.ones(users, bool)
    best = rerank._pick(gain, top10, everyone, fallback=pairs)
    in_sample = gain[:, best] - gain[:, pairs]
    assert in_sample.mean() > in_sample.std(ddof=1) / np.sqrt(users)   # looks better
    assert rerank._best(gain, top10, everyone, picks, fallback=pairs) == pairs
    gain[rng.random(users) < 0.1, 7] += 1.0                  # one pair really is better
    assert rerank._best(gain, top10, everyone, picks, fallback=pairs) == 7


def test_holdout_hit_credit_shares_ties_like_the_evaluator():
    """A flat scorer gets hit@K = K / (number of tied books), not a hit for everyone."""
    scores = np.zeros((3, 200), np.float32)
    scores[1, :5] = 1.0                      # row 1: 5 books above a 195-way tie
    scores[2, 7] = 1.0                       # row 2: the target alone on top
    scores[:, 150:] = -np.inf                # read books, excluded
    hits10, hits100 = rerank._hit_credit(scores, np.arange(3), np.array([3, 20, 7]), (10, 100))
    np.testing.assert_allclose(hits10, [10 / 150, 5 / 145, 1.0])
    np.testing.assert_allclose(hits100, [100 / 150, 95 / 145, 1.0])


def test_segment_sums_match_a_plain_loop_with_long_segments_in_pieces():
    from model import map_embedding
    rng = np.random.default_rng(0)
    lengths = np.array([0, 3, 0, 11, 1, 0, 5])
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    index = rng.integers(0, 9, ptr[-1])
    matrix = rng.standard_normal((9, 4)).astype(np.float32)
    expected = np.array([matrix[index[a:b]].sum(axis=0) for a, b in zip(ptr[:-1], ptr[1:])])
    for chunk in (2, 4, 100):   # 2: the 11-long segment is summed piece by piece
        np.testing.assert_allclose(map_embedding.segment_sums(ptr, index, matrix, chunk),
                                   expected, atol=1e-5)


def test_map_embedding_is_the_co_reading_factorisation():
    from model import map_embedding
    users, books, _ = _planted_pairs()
    num_books = 40
    ptr = np.searchsorted(users, np.arange(users.max() + 2))
    vectors = map_embedding.map_embedding(ptr, books, num_books, dim=8, iterations=3, chunk=50)
    # the exact factorisation: top eigenvectors of G = AᵀA, A = X diag(n^-β), scaled by λ
    x = np.zeros((users.max() + 1, num_books))
    x[users, books] = 1
    readers = x.sum(axis=0)
    a = x * np.where(readers > 0, np.maximum(readers, 1) ** -map_embedding.BETA, 0)
    values, exact = np.linalg.eigh(a.T @ a)
    exact = exact[:, ::-1][:, :8] * values[::-1][:8]
    exact[:, 0] *= map_embedding.FIRST_WEIGHT
    read = readers > 0
    cos = lambda v: v[read] / np.linalg.norm(v[read], axis=1, keepdims=True)   # noqa: E731
    np.testing.assert_allclose(np.abs(cos(vectors) @ cos(vectors).T),
                               np.abs(cos(exact) @ cos(exact).T), atol=0.02)
    # a book nobody read in training sits on the first direction alone
    assert not read[-1] and np.count_nonzero(vectors[-1]) == 1
    # planted groups: each book's nearest book is in its own group
    unit = cos(vectors)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    group = (np.flatnonzero(read) // 10)
    assert (group[np.argmax(sims, axis=1)] == group).mean() > 0.9


def _planted_pairs():
    """Distinct (user, book) pairs sorted by user: 4 groups of 10 books, each user reading
    mostly one group; book 39 is never read."""
    rng = np.random.default_rng(3)
    users, books = [], []
    for user in range(200):
        group = user % 4
        own = rng.choice(10, 6, replace=False) + 10 * group
        other = rng.choice(39, 1)
        for book in sorted(set(own.tolist() + other.tolist()) - {39}):
            users.append(user)
            books.append(book)
    return np.array(users), np.array(books), None
