"""Installs the book-map pipeline: preprocess (beam_jobs), model, graph_export.

This file is also what Dataflow workers install via ``--setup_file ./setup.py``,
so it lists only what the jobs need at run time; test tools are an extra.
Direct dependencies are pinned here; ``constraints.txt`` pins the rest of the
tree to a set that is known to install together on Python 3.11.
"""
import setuptools

REQUIRED = [
    "apache-beam[gcp]==2.77.0",
    "tensorflow==2.21.0",
    "tf-keras==2.21.0",
    "tensorflow-recommenders==0.7.7",
    "tensorflow-transform==1.21.0",
    "networkx==3.6.1",
    "pandas==3.1.1",
    "pyarrow==25.0.1",
    "numpy==2.4.6",
    "PyYAML==6.0.4",
    "matplotlib==3.11.2",
    "isal==1.9.1",  # ISA-L gzip for the TFRecord shards (beam_jobs/tfrecords.py)
    "openTSNE==1.0.4",  # the map's layout (graph_export/layout.py)
    "scipy==1.17.1",    # sparse matrices for the map's names and affinities
]

TEST = [
    "pytest==9.2.0",
    "gcp-storage-emulator==2026.7.19",
    "lxml==6.1.3",
]

# The peers the benchmarks measure against (python -m benchmarks.<script>); no test needs them.
BENCH = [
    "duckdb==2.0.1",      # bench_preprocess: the same selection and split in DuckDB
    "faiss-cpu==1.15.1",  # bench_neighbors: exact top-k with IndexFlatIP
    "implicit==0.7.3",    # bench_als: the ALS peer
]

setuptools.setup(
    name="goodreads-book-map",
    version="0.1.0",
    description=("Goodreads ratings -> book embeddings -> 'books like this one' "
                 "graph (Beam, TF Transform, TFRS, GEXF/JSON)."),
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(
        include=["pipeline_common", "beam_jobs", "model", "graph_export", "sample_goodreads",
                 "pipeline_common.*", "beam_jobs.*", "model.*", "graph_export.*"]),
    package_data={"graph_export": ["explorer_web/*.html", "explorer_web/*.css",
                                   "explorer_web/js/*.js"]},
    install_requires=REQUIRED,
    extras_require={"test": TEST, "bench": BENCH},
)
