"""One tiny, complete chain (data -> prep -> model -> graph) through the real command lines.

Built once per test session (the `chain` fixture in tests/conftest.py) for every test
that needs it: the end-to-end checks read it, the fault cases break copies of it.
Minutes on 2 cores, most of it TensorFlow's start-up.
"""
from tests.faults import harness

SAMPLE = ("--ratings", "20000", "--books", "600", "--users", "400", "--seed", "5")
PREPROCESS = ("--top_books", "200", "--min_user_ratings", "2", "--direct_num_workers=1")
TRAIN = ("--epochs", "1", "--batch_size", "512", "--embedding_dim", "8", "--verbose", "0")
NEIGHBORS = ("--direct_num_workers=1",)


def command(stage, paths, output=None):
    """(module, args) of `stage` reading the chain in `paths`, writing to `output`."""
    commands = {
        "sample_data": ("sample_goodreads", ("--output", output or paths["data"], *SAMPLE)),
        "preprocess": ("beam_jobs.preprocess", ("--input", paths["data"], "--output",
                                                output or paths["prep"], *PREPROCESS)),
        "train": ("model.train", ("--data", paths["prep"], "--output", output or paths["model"],
                                  *TRAIN)),
        "neighbors": ("graph_export.neighbors", ("--embeddings", paths["model"], "--catalog",
                                                 paths["prep"], "--output",
                                                 output or paths["graph"], *NEIGHBORS)),
        "ego": ("graph_export.ego", ("--graph", paths["graph"], "--book_id", paths.get("book_id", ""),
                                     "--depth", "2", "--formats", "gexf,json",
                                     "--output", output or paths["ego"])),
        "explorer": ("graph_export.explorer", ("--graph", paths["graph"], "--output",
                                               output or paths["explorer"])),
    }
    return commands[stage]


def build_chain(root):
    """Runs sample_data, preprocess, train and neighbors into `root`; returns the paths."""
    paths = {name: str(root / name) for name in ("data", "prep", "model", "graph")}
    paths.update(ego=str(root / "ego" / "book"), explorer=str(root / "explorer.html"))
    for stage in ("sample_data", "preprocess", "train", "neighbors"):
        module, args = command(stage, paths)
        outcome = harness.cli(module, *args)
        assert outcome.returncode == 0, f"{module} failed:\n{outcome.stderr[-3000:]}"
    import pandas as pd
    paths["book_id"] = str(pd.read_parquet(f"{paths['graph']}/nodes.parquet").book_id.iloc[5])
    return paths
