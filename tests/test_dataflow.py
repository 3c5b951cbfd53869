"""Every Beam job builds its Dataflow job offline, and what Dataflow workers install works.

Each job is launched as a user would launch it (`python -m ...` from the repository root,
`--config run_configs/...`, `--runner DataflowRunner --dry_run True`) against a local GCS
emulator standing in for Cloud Storage, with no Google credentials (an empty gcloud config
folder). With `--dataflow_job_file` the dry run stages what Dataflow would receive -- the
pipeline proto and the package built from setup.py -- and writes the job description
(pipeline_common/beam_runner.py). The tests read those back and check:

* the named stages are the top-level steps of the job graph;
* every user function in the graph was pickled and unpickles;
* the staged package is this project's sdist, with the explorer's web assets;
* the job wrote nothing under its --output, and said "dry run: ..." once;
* (slow) the staged sdist installs into a fresh virtual environment with the pinned
  constraints, as a Dataflow worker installs it, and from outside the repository the jobs'
  pickled functions unpickle there and each job runs on the local runner.

And a Dataflow command with no credentials and no emulator stops at once in one line.
"""
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap

import pytest
import yaml

from tests import graph_fixtures
from tests.gcs_emulator import gcs_emulator  # noqa: F401  (pytest fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRY_RUN_LINE = "dry run: the job was built but not run"
PROJECT, REGION = "book-map-test", "us-central1"

# The named stages of each job: preprocess's are README's selection steps and writers
# (beam_jobs/preprocess.py build_pipeline); the neighbours job's are the exact top-k of
# every block and the co-readers of every edge (graph_export/neighbors.py build_pipeline;
# CountCoReaders runs when the preprocess output lists train pairs, as the one here does).
STAGES = {
    "preprocess": {"ReadBooks", "CatalogBookIds", "ReadIdMaps", "ReadInteractionBlocks",
                   "RejectMalformed", "StopIfMostlyMalformed", "DropBelowMinRating",
                   "Deduplicate", "SelectTopBooks", "DropSparseUsers", "BuildIndex",
                   "BuildVocabularies", "WriteExamples", "WriteCatalog", "WriteRejects",
                   "WriteCounts"},
    "neighbors": {"ExactTopK", "CountCoReaders"},
}
CONFIGS = {"preprocess": "run_configs/dataflow.yaml",
           "neighbors": "run_configs/dataflow_neighbors.yaml"}
MODULES = {"preprocess": "beam_jobs.preprocess", "neighbors": "graph_export.neighbors"}
PICKLED_URNS = ("beam:dofn:pickled_python_info:v1", "beam:combinefn:pickled_python:v1",
                "beam:transform:pickled_python:v1", "beam:windowfn:pickled_python:v1")
# Functions the Python SDK names by URN instead of pickling (CombineGlobally's KeyWithVoid).
BEAM_BUILTINS = ("beam:dofn:python_key_with_none:v1",)


def _clean_env(tmp_path, **extra):
    """This process's environment without Google credentials or a path into the repo."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOOGLE_APPLICATION_CREDENTIALS", "PYTHONPATH")}
    empty = tmp_path / "gcloud-config"
    empty.mkdir(exist_ok=True)
    env["CLOUDSDK_CONFIG"] = str(empty)   # no `gcloud auth application-default login` file
    env.update(extra)
    return env


def _gs(location):
    """A Dataflow package location (storage.googleapis.com/BUCKET/PATH) as gs://BUCKET/PATH."""
    return "gs://" + location.split("storage.googleapis.com/", 1)[1]


def _read(path):
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        return handle.read()


class BuiltJob:
    """What one dry run left: its output, the job description, pipeline proto and sdist."""

    def __init__(self, name, proc, output, job, pipeline_bytes, sdist_bytes):
        self.name, self.proc, self.output = name, proc, output
        self.job, self.pipeline_bytes, self.sdist_bytes = job, pipeline_bytes, sdist_bytes

    @property
    def pipeline(self):
        from apache_beam.portability.api import beam_runner_api_pb2
        return beam_runner_api_pb2.Pipeline.FromString(self.pipeline_bytes)


def _dry_run(name, job_args, emulator, tmp_path):
    job_file = tmp_path / f"{name}-job.json"
    argv = [sys.executable, "-m", MODULES[name], "--config", CONFIGS[name], *job_args,
            "--project", PROJECT, "--region", REGION,
            "--temp_location", emulator.url(f"tmp-{name}"),
            "--dry_run", "True", "--dataflow_job_file", str(job_file)]
    proc = subprocess.run(argv, cwd=REPO, env=_clean_env(tmp_path), capture_output=True,
                          text=True, timeout=600)
    output = job_args[job_args.index("--output") + 1]
    if proc.returncode != 0 or not job_file.exists():
        return BuiltJob(name, proc, output, None, None, None)
    job = json.loads(job_file.read_text())
    options = job["environment"]["sdkPipelineOptions"]["options"]
    packages = {p["name"]: p["location"] for p in job["environment"]["workerPools"][0]["packages"]}
    sdist = _read(_gs(packages["workflow.tar.gz"])) if "workflow.tar.gz" in packages else None
    return BuiltJob(name, proc, output, job, _read(options["pipelineUrl"]), sdist)


def _add_train_pairs(prep, n, users=30, per_user=6):
    """A preprocess output's train pairs (one partition) and the manifest that lists them."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    rng = np.random.default_rng(28)
    books = np.concatenate([rng.choice(n, per_user, replace=False) for _ in range(users)])
    name = "train_pairs-00000-of-00001.parquet"
    pq.write_table(pa.table({"user_index": pa.array(np.repeat(np.arange(users), per_user), pa.int32()),
                             "book_index": pa.array(books, pa.int32())}), str(prep / name))
    (prep / "manifest.json").write_text(json.dumps({"files": {"train_pairs": [name]}}))


@pytest.fixture(scope="module")
def built(gcs_emulator, tmp_path_factory):  # noqa: F811
    """Both jobs' Dataflow dry runs against the emulator, run once for this module."""
    from sample_goodreads import generate as sample_data
    tmp = tmp_path_factory.mktemp("dataflow")
    sample_data.run(["--output", str(tmp / "goodreads"), "--ratings", "2000", "--books", "200",
                     "--users", "80", "--seed", "5"])
    graph_fixtures.make_model_output(str(tmp / "model"), n=40)
    graph_fixtures.make_catalog(str(tmp / "prep"), n=40)
    _add_train_pairs(tmp / "prep", n=40)
    for folder in ("goodreads", "model", "prep"):
        gcs_emulator.upload_dir(str(tmp / folder), gcs_emulator.url(folder))
    jobs = {
        "preprocess": _dry_run("preprocess", [
            "--input", gcs_emulator.url("goodreads"), "--output", gcs_emulator.url("out-prep"),
            "--top_books", "50", "--min_user_ratings", "2"], gcs_emulator, tmp),
        "neighbors": _dry_run("neighbors", [
            "--embeddings", gcs_emulator.url("model"), "--catalog", gcs_emulator.url("prep"),
            "--output", gcs_emulator.url("out-graph")], gcs_emulator, tmp),
    }
    return tmp, jobs


def _built_job(built, name):
    _, jobs = built
    job = jobs[name]
    assert job.proc.returncode == 0, (
        f"{name} dry run failed (exit {job.proc.returncode}):\n{job.proc.stderr[-3000:]}")
    assert job.job is not None, f"{name} dry run wrote no --dataflow_job_file"
    return job


def _top_level_names(pipeline):
    transforms = pipeline.components.transforms
    names = []
    for root in pipeline.root_transform_ids:
        # Beam wraps the whole pipeline in one unnamed root; its children are the job's steps.
        children = transforms[root].subtransforms if not transforms[root].unique_name \
            or transforms[root].unique_name.startswith("ref_") else [root]
        names += [transforms[child].unique_name for child in children]
    return names


def _pickled_payloads(pipeline):
    """(transform name, payload) for every pickled user function in the pipeline."""
    from apache_beam.portability.api import beam_runner_api_pb2
    found = []
    for transform in pipeline.components.transforms.values():
        spec = transform.spec
        if spec.urn == "beam:transform:pardo:v1":
            fn = beam_runner_api_pb2.ParDoPayload.FromString(spec.payload).do_fn
            found.append((transform.unique_name, fn.urn, fn.payload))
        elif spec.urn in ("beam:transform:combine_per_key:v1",
                          "beam:transform:combine_grouped_values:v1",
                          "beam:transform:combine_globally:v1"):
            fn = beam_runner_api_pb2.CombinePayload.FromString(spec.payload).combine_fn
            found.append((transform.unique_name, fn.urn, fn.payload))
        elif spec.urn == "beam:transform:pickled_python:v1":
            found.append((transform.unique_name, spec.urn, spec.payload))
    for strategy_id, strategy in pipeline.components.windowing_strategies.items():
        if strategy.window_fn.urn == "beam:windowfn:pickled_python:v1":
            found.append((strategy_id, strategy.window_fn.urn, strategy.window_fn.payload))
    return found


def _check_built_job(job, config):
    # One line says what happened, the exit status is 0, nothing else went wrong.
    text = job.proc.stdout + job.proc.stderr
    assert text.count(DRY_RUN_LINE) == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    # The run config reached the job: machine type, workers, region, project.
    pool = job.job["environment"]["workerPools"][0]
    assert pool["machineType"] == config["machine_type"]
    assert pool["autoscalingSettings"]["maxNumWorkers"] == config["max_num_workers"]
    options = job.job["environment"]["sdkPipelineOptions"]["options"]
    assert (options["project"], options["region"]) == (PROJECT, REGION)
    assert options["setup_file"] == config["setup_file"] == "./setup.py"
    assert job.job["type"] == "JOB_TYPE_BATCH"
    # The named stages are the top-level steps (what the Dataflow console shows as boxes).
    names = _top_level_names(job.pipeline)
    assert STAGES[job.name] <= set(names), sorted(names)
    unnamed = [n for n in names if "(" in n or "<" in n or n[:1].islower()]
    assert not unnamed, f"top-level steps without a stage name: {unnamed}"
    # Every user function was pickled and unpickles (here; on a worker in the slow test).
    from apache_beam.internal import pickler
    payloads = _pickled_payloads(job.pipeline)
    assert payloads
    bad = [(name, urn) for name, urn, _ in payloads if urn not in PICKLED_URNS + BEAM_BUILTINS]
    assert not bad, f"functions neither pickled nor Beam's own: {bad}"
    for name, urn, payload in payloads:
        if urn in PICKLED_URNS:
            assert pickler.loads(payload) is not None, name
    # It wrote nothing under --output.
    from apache_beam.io.filesystems import FileSystems
    leftovers = FileSystems.match([job.output.rstrip("/") + "/**"])[0].metadata_list
    assert not leftovers, [m.path for m in leftovers]




def _explorer_assets():
    """The explorer's web assets in this checkout, relative to graph_export/explorer_web."""
    web = os.path.join(REPO, "graph_export", "explorer_web")
    return sorted(os.path.relpath(os.path.join(root, name), web).replace(os.sep, "/")
                  for root, _, names in os.walk(web) for name in names
                  if name.endswith((".html", ".css", ".js")))


def _check_sdist(sdist_bytes, modules):
    """The staged package is this project's sdist: name/version, module sources, web assets."""
    meta = subprocess.run([sys.executable, "setup.py", "--name", "--version"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.split()
    name, version = meta[-2], meta[-1]
    top = f"{name}-{version}"
    with tarfile.open(fileobj=io.BytesIO(sdist_bytes), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        pkg_info = tar.extractfile(members[f"{top}/PKG-INFO"]).read().decode()
        assert f"Name: {name}" in pkg_info and f"Version: {version}" in pkg_info
        for module in modules + ["pipeline_common/beam_runner.py", "setup.py"]:
            path = f"{top}/{module}"
            assert path in members, f"{module} is not in the staged sdist"
            with open(os.path.join(REPO, module), "rb") as handle:
                assert tar.extractfile(members[path]).read() == handle.read(), \
                    f"the staged {module} is not this checkout's"
        for rel in _explorer_assets():
            path = f"{top}/graph_export/explorer_web/{rel}"
            assert path in members, f"explorer_web/{rel} is not in the staged sdist"


def test_preprocess_builds_its_dataflow_job_offline(built):
    job = _built_job(built, "preprocess")
    _check_built_job(job, yaml.safe_load(open(os.path.join(REPO, CONFIGS["preprocess"]))))
    _check_sdist(job.sdist_bytes, ["beam_jobs/preprocess.py", "beam_jobs/stages.py"])


def test_neighbors_builds_its_dataflow_job_offline(built):
    job = _built_job(built, "neighbors")
    _check_built_job(job, yaml.safe_load(open(os.path.join(REPO, CONFIGS["neighbors"]))))
    _check_sdist(job.sdist_bytes, ["graph_export/neighbors.py", "graph_export/topk.py"])


def test_run_pipeline_says_whether_the_job_ran(gcs_emulator, tmp_path, caplog):  # noqa: F811
    import logging

    import apache_beam as beam
    from pipeline_common import beam_runner
    seen = tmp_path / "seen"
    local = beam_runner.make_pipeline(beam_runner.make_options(["--direct_num_workers=1"]))
    _ = local | beam.Create([str(seen)]) | beam.Map(lambda path: open(path, "w").close())
    ran, _ = beam_runner.run_pipeline(local)
    assert ran and seen.exists()
    job_file = tmp_path / "job.json"
    options = beam_runner.make_options([
        "--runner=DataflowRunner", f"--project={PROJECT}", f"--region={REGION}",
        f"--temp_location={gcs_emulator.url('tmp-unit')}", "--dry_run=True",
        f"--dataflow_job_file={job_file}"])
    assert beam_runner.is_dataflow(options) and beam_runner.is_dry_run(options)
    pipeline = beam_runner.make_pipeline(options)
    _ = (pipeline | "Numbers" >> beam.Create([1, 2])
         | "AddOne" >> beam.Map(lambda x: x + 1))
    with caplog.at_level(logging.INFO):
        ran, result = beam_runner.run_pipeline(pipeline)
    assert not ran and result.job is not None
    assert caplog.text.count(beam_runner.DRY_RUN_MESSAGE) == 1
    job = json.loads(job_file.read_text())
    staged = _read(job["environment"]["sdkPipelineOptions"]["options"]["pipelineUrl"])
    from apache_beam.portability.api import beam_runner_api_pb2
    names = _top_level_names(beam_runner_api_pb2.Pipeline.FromString(staged))
    assert names == ["Numbers", "AddOne"]


def test_every_beam_job_has_a_dataflow_dry_run_here():
    """A Beam job added later (a module that builds a pipeline) must be added to MODULES."""
    jobs = set()
    for package in ("beam_jobs", "graph_export", "model"):
        for root, _, files in os.walk(os.path.join(REPO, package)):
            for file_name in files:
                if file_name.endswith(".py"):
                    path = os.path.join(root, file_name)
                    with open(path, encoding="utf-8") as handle:
                        text = handle.read()
                    if "make_pipeline(" in text or "beam.Pipeline(" in text:
                        jobs.add(os.path.relpath(path, REPO)[:-3].replace(os.sep, "."))
    assert jobs == set(MODULES.values())


def test_a_dataflow_command_without_credentials_stops_at_once_in_one_line(tmp_path):
    """No credentials, no emulator: one line saying what to do, before anything is read.

    The input is on a bucket that does not exist: reaching it would first cost Beam's
    ~25 s of credential retries and then the object store's retries."""
    env = _clean_env(tmp_path)
    env.pop("STORAGE_EMULATOR_HOST", None)
    env["NO_GCE_CHECK"] = "True"   # not a Google Cloud VM whatever machine runs this
    for name, args in (("preprocess", ["--input", "gs://no-such-bucket-28/in"]),
                       ("neighbors", ["--embeddings", "gs://no-such-bucket-28/model"])):
        proc = subprocess.run(
            [sys.executable, "-m", MODULES[name], "--config", CONFIGS[name], *args,
             "--output", "gs://no-such-bucket-28/out", "--project", PROJECT,
             "--temp_location", "gs://no-such-bucket-28/tmp"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr[-2000:]
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr[-2000:]
        assert lines[0].startswith(f"python -m {MODULES[name]}: error: --runner DataflowRunner")
        assert "gcloud auth application-default login" in lines[0]
        assert "STORAGE_EMULATOR_HOST" in lines[0]


def test_credentials_are_looked_for_where_google_auth_looks(tmp_path, monkeypatch):
    from pipeline_common import beam_runner
    key = tmp_path / "key.json"
    key.write_text("{}")
    adc = tmp_path / "gcloud" / "application_default_credentials.json"
    empty = {"CLOUDSDK_CONFIG": str(tmp_path / "none"), "NO_GCE_CHECK": "True"}
    assert beam_runner.google_credentials_source(empty) is None
    assert beam_runner.google_credentials_source(
        dict(empty, GOOGLE_APPLICATION_CREDENTIALS=str(key))) == str(key)
    assert beam_runner.google_credentials_source(
        dict(empty, GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "missing.json"))) is None
    adc.parent.mkdir()
    adc.write_text("{}")
    assert beam_runner.google_credentials_source(
        dict(empty, CLOUDSDK_CONFIG=str(adc.parent))) == str(adc)
    assert beam_runner.google_credentials_source(
        {"CLOUDSDK_CONFIG": str(tmp_path / "none"), "GCE_METADATA_HOST": "10.0.0.1"}) \
        == "metadata server"
    # A local run needs no credentials; a Dataflow run without them is one UserError line.
    for name, value in empty.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    assert beam_runner.check_credentials(["--direct_num_workers=1"]) is None
    with pytest.raises(beam_runner.NoCloudCredentials, match="application-default login"):
        beam_runner.check_credentials(["--runner", "DataflowRunner"])
    with pytest.raises(beam_runner.NoCloudCredentials):
        beam_runner.check_credentials(["--runner=dataflow"])
    # Credentials but no network: one line too, unless a proxy does the resolving.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    import socket

    def offline(*_):
        raise socket.gaierror(-2, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    with pytest.raises(beam_runner.NoNetwork, match="storage.googleapis.com cannot be resolved"):
        beam_runner.check_credentials(["--runner", "DataflowRunner"])
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert beam_runner.check_credentials(["--runner", "DataflowRunner"]) == str(key)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_: [])
    monkeypatch.delenv("HTTPS_PROXY")
    assert beam_runner.check_credentials(["--runner", "DataflowRunner"]) == str(key)


# ------------------------------------------------------------------ what workers install

WORKER_SCRIPT = textwrap.dedent("""
    # Run by the fresh environment's python, outside the repository: what a worker does.
    import json, os, sys
    import pipeline_common  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
    from apache_beam.internal import pickler
    import beam_jobs.preprocess, beam_jobs.stages, graph_export.neighbors, graph_export.explorer
    site = os.path.dirname(os.path.dirname(beam_jobs.preprocess.__file__))
    repo = sys.argv[1]
    for module in (beam_jobs.stages, graph_export.neighbors, pipeline_common):
        assert os.path.realpath(module.__file__).startswith(os.path.realpath(site)), module
        assert not os.path.realpath(module.__file__).startswith(os.path.realpath(repo)), module
    counts = {}
    for name, path in json.loads(sys.argv[2]).items():
        payloads = json.load(open(path))
        for payload in payloads:
            pickler.loads(bytes.fromhex(payload))
        counts[name] = len(payloads)
    web = graph_export.explorer.WEB_DIR
    assets = sorted(os.path.relpath(os.path.join(root, name), web).replace(os.sep, "/")
                    for root, _, names in os.walk(web) for name in names)
    print(json.dumps({"site": site, "unpickled": counts, "web_dir": web, "assets": assets}))
""")


def _worker_payloads(job, path):
    payloads = [p.hex() for _, urn, p in _pickled_payloads(job.pipeline) if urn in PICKLED_URNS]
    with open(path, "w") as handle:
        json.dump(payloads, handle)
    return len(payloads)


def _worker_venv(tmp_path, env):
    """A fresh virtual environment with the image's packages, as on a Dataflow worker.

    A worker runs `pip install workflow.tar.gz` in Beam's SDK container, whose Python already
    holds Beam and its dependencies; pip resolves the sdist's requirements against those and
    installs what is missing. Here the fresh venv sees this checkout's .venv (made by `make
    install` from setup.py and constraints.txt, from PyPI) as that preinstalled layer, through a
    .pth line: pip checks every pinned requirement against it and installs the project itself
    into the venv. (A .pth line adds the folder without running the .pth files in it, so the
    editable install of the repository is not seen.) BOOKMAP_WORKER_FULL_INSTALL=1 makes it
    an empty venv where pip downloads everything (~1.5 GB, 3-4 minutes here).
    """
    import sysconfig
    venv = tmp_path / "worker-venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, env=env, timeout=300)
    python = str(venv / "bin" / "python")
    if os.environ.get("BOOKMAP_WORKER_FULL_INSTALL") != "1":
        site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        with open(os.path.join(site, "_image_packages.pth"), "w") as handle:
            handle.write(sysconfig.get_paths()["purelib"] + "\n")
    return venv, python


@pytest.mark.slow
def test_the_staged_sdist_installs_and_runs_outside_the_repository(built, tmp_path):
    """pip installs the staged workflow.tar.gz with the pinned constraints into a fresh
    venv, as a Dataflow worker installs it (see _worker_venv); from a folder outside the
    repository the jobs' pickled functions unpickle there, and the chain's jobs run on the
    local runner from the installed package."""
    job = _built_job(built, "preprocess")
    sdist = tmp_path / "workflow.tar.gz"
    sdist.write_bytes(job.sdist_bytes)
    env = _clean_env(tmp_path)
    env.pop("STORAGE_EMULATOR_HOST", None)
    venv, python = _worker_venv(tmp_path, env)
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "-c", os.path.join(REPO, "constraints.txt"),
         str(sdist)], env=env, capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-3000:]

    outside = tmp_path / "outside"
    outside.mkdir()
    payload_files = {}
    for name in ("preprocess", "neighbors"):
        _, jobs = built
        if jobs[name].job is not None:   # the neighbours dry run may not be wired yet
            payload_files[name] = str(tmp_path / f"{name}-payloads.json")
            _worker_payloads(jobs[name], payload_files[name])
    check = subprocess.run([python, "-c", WORKER_SCRIPT, REPO, json.dumps(payload_files)],
                           cwd=outside, env=env, capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stderr[-3000:]
    report = json.loads(check.stdout.strip().splitlines()[-1])
    assert str(venv) in report["site"] and str(venv) in report["web_dir"]
    assert report["unpickled"].get("preprocess", 0) > 0
    missing = set(_explorer_assets()) - set(report["assets"])
    assert not missing, f"explorer assets missing from the install: {sorted(missing)}"

    # The chain's Beam jobs and the explorer, on the local runner, from the installed package.
    tmp, _ = built
    run = [python, "-m"]
    steps = [
        ["beam_jobs.preprocess", "--input", str(tmp / "goodreads"), "--output", "prep",
         "--top_books", "50", "--min_user_ratings", "2", "--num_shards", "2"],
        ["graph_export.neighbors", "--embeddings", str(tmp / "model"),
         "--catalog", str(tmp / "prep"), "--output", "graph"],
        ["graph_export.explorer", "--graph", "graph", "--output", "explorer.html"],
    ]
    for step in steps:
        proc = subprocess.run(run + step, cwd=outside, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"{step[0]}: {proc.stderr[-3000:]}"
    manifest = json.loads((outside / "prep" / "manifest.json").read_text())
    assert manifest["num_books"] == 50 and manifest["kept"] > 0
    summary = json.loads((outside / "graph" / "summary.json").read_text())
    assert summary["num_edges"] == summary["num_nodes"] * 10
    html = (outside / "explorer.html").read_text()
    assert "<script" in html and len(html) > 10_000   # assembled from the packaged assets
