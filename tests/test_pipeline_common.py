"""Shared plumbing: config files, atomic writes, the legacy-Keras switch, local runner."""
import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline_common import beam_runner, config, fileio
from pipeline_common.arrays import sorted_unique


def test_config_file_flags_come_first_so_command_line_wins(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("runner: DataflowRunner\ntop_books: 500\nexperiments: [a, b]\n"
                    "dry_run: true\nunused: null\n")
    argv = config.expand_config(["--top_books", "9", "--config", str(path), "--seed=3"])
    assert argv == ["--runner=DataflowRunner", "--top_books=500", "--experiments=a",
                    "--experiments=b", "--dry_run", "--top_books", "9", "--seed=3"]


@pytest.mark.parametrize("text, message", [("- a\n- b\n", "expected a mapping"),
                                           ("a: [1, {b: 2}]\n", "scalar"),
                                           ("a: [\n", "not valid YAML")])
def test_bad_config_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        config.expand_config([f"--config={path}"])
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.expand_config(["--config", str(tmp_path / "missing.yaml")])


def test_parse_known_args_reads_config_and_reports_bad_files_as_flag_errors(tmp_path, capsys,
                                                                           monkeypatch):
    import argparse
    from pipeline_common import beam_runner
    monkeypatch.setattr(beam_runner, "check_credentials", lambda args: None)  # test_dataflow.py
    parser = argparse.ArgumentParser(prog="job")
    parser.add_argument("--top_books", type=int)
    path = tmp_path / "job.yaml"
    path.write_text("top_books: 5\nrunner: DataflowRunner\n")
    args, rest = config.parse_known_args(parser, ["--config", str(path)])
    assert args.top_books == 5 and rest == ["--runner=DataflowRunner"]
    with pytest.raises(SystemExit):
        config.parse_known_args(parser, ["--config", str(tmp_path / "missing.yaml")])
    assert "job: error: cannot read config file" in capsys.readouterr().err


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "file.txt"
    with pytest.raises(RuntimeError):
        with fileio.atomic_write(str(target)) as handle:
            handle.write(b"half")
            raise RuntimeError("boom")
    assert not target.exists() and not list((tmp_path / "out").iterdir())
    fileio.write_json(str(target), {"b": 1, "a": [1]})
    assert fileio.read_json(str(target)) == {"a": [1], "b": 1}
    assert fileio.glob(str(tmp_path / "out" / "*")) == [str(target)]


def test_makedirs_tolerates_a_worker_that_created_the_directory_first(tmp_path, monkeypatch):
    """Another worker creates the directory between our exists() check and mkdirs()."""
    target = tmp_path / "blocks"
    real_exists = fileio.FileSystems.exists
    checks = []

    def exists_then_race(path):
        checks.append(path)
        if len(checks) == 1:  # our first look: absent; meanwhile the other worker makes it
            os.makedirs(path)
            return False
        return real_exists(path)

    monkeypatch.setattr(fileio.FileSystems, "exists", staticmethod(exists_then_race))
    fileio.makedirs(str(target))
    assert target.is_dir()
    (tmp_path / "plain-file").write_text("x")
    with pytest.raises(IOError):  # a real failure still surfaces
        fileio.makedirs(str(tmp_path / "plain-file" / "below"))


def test_legacy_keras_is_selected_before_tensorflow_loads():
    code = ("import model, tensorflow as tf, os; "
            "print(os.environ['TF_USE_LEGACY_KERAS'], tf.keras.__name__)")
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "1" and out[1].startswith("tf_keras")


def test_local_runs_use_the_offline_fn_api_runner():
    options = beam_runner.make_options([])
    pipeline = beam_runner.make_pipeline(options)
    assert type(pipeline.runner).__name__ == "FnApiRunner"
    from apache_beam.options.pipeline_options import DirectOptions
    direct = options.view_as(DirectOptions)
    assert (direct.direct_num_workers, direct.direct_running_mode) == (0, "multi_processing")
    chosen = beam_runner.make_options(["--direct_running_mode=in_memory"]).view_as(DirectOptions)
    assert chosen.direct_running_mode == "in_memory", "an explicit mode is kept"
    one = beam_runner.make_options(["--direct_num_workers", "1"]).view_as(DirectOptions)
    assert (one.direct_num_workers, one.direct_running_mode) == (1, "in_memory")
    with pytest.raises(beam_runner.UnsafeRunnerMode, match="multi_threading can silently drop elements"):
        beam_runner.make_options(["--direct_running_mode=multi_threading"])
    dataflow = beam_runner.make_options(["--runner=DataflowRunner"])
    assert not beam_runner.is_local(dataflow)


def test_every_artifact_name_is_documented_in_docs_artifacts_md():
    from pipeline_common import artifacts
    doc = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "docs", "artifacts.md")).read()
    names = [v for k, v in vars(artifacts).items() if k.isupper() and isinstance(v, str)]
    assert len(names) > 20
    for name in names:
        assert f"`{name}" in doc or f"{name}`" in doc or f"/{name}" in doc, name
    for feature, kind in artifacts.EXAMPLE_FEATURES.items():
        assert f"`{feature}` {kind}" in doc, feature
    assert artifacts.shard_file("train", 3, 16) == "train-00003-of-00016.tfrecord.gz"
    assert artifacts.shard_pattern("eval", 16) == "eval-*-of-00016.tfrecord.gz"
    assert sorted(artifacts.example_feature_spec(["rating", "user_id"])) == ["rating", "user_id"]


def test_read_parquet_reads_columns_through_filesystems(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pipeline_common import artifacts
    path = str(tmp_path / "t.parquet")
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), path)
    assert artifacts.read_parquet(path).to_pydict() == {"a": [1, 2], "b": ["x", "y"]}
    assert artifacts.read_parquet(path, columns=["b"]).column_names == ["b"]
    assert artifacts.read_parquet(path, filters=[("a", ">", 1)]).to_pydict() == {"a": [2], "b": ["y"]}
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(artifacts.ArtifactError, match="bad.parquet is corrupt or truncated"):
        artifacts.read_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(artifacts.ArtifactError, match="nope.parquet does not exist"):
        artifacts.read_parquet(str(tmp_path / "nope.parquet"))
    pq.write_table(pa.table({"a": list(range(1000))}), path)
    (tmp_path / "cut.parquet").write_bytes(open(path, "rb").read()[:-20])
    with pytest.raises(artifacts.ArtifactError, match="cut.parquet is corrupt or truncated"):
        artifacts.read_parquet(str(tmp_path / "cut.parquet"))


def test_entrypoint_turns_errors_into_one_line(capsys):
    import errno
    from pipeline_common import entrypoint

    def fails_with(err):
        def run(argv):
            raise err
        return run

    cases = [
        (OSError(errno.ENOSPC, "No space left on device", "/out/x"), "no space left", "/out/x"),
        (RuntimeError("OSError: [Errno 30] Read-only file system: '/ro/y' "
                      "[while running 'WriteExamples/Write']"), "read-only", "WriteExamples"),
        (entrypoint.UserError("/p/manifest.json lists /p/a, which is missing"), "lists /p/a", ""),
        (ValueError("strange\nsecond line"), "ValueError: strange", "--debug"),
        (RuntimeError("google.api_core.exceptions.RetryError: Timeout of 120.0s exceeded, last "
                      "exception: HTTPConnectionPool(host='h', port=1): Max retries exceeded with "
                      "url: /upload/storage/v1/b/bk/o?uploadType=resumable&name=g%2F.tmp-"
                      "0123456789ab-edges.parquet (Caused by NewConnectionError)"),
         "object store did not answer", "on gs://bk/g/edges.parquet ("),
        (SystemExit("missing input x under y"), "error: missing input x", ""),
    ]
    for err, first, second in cases:
        with pytest.raises(SystemExit) as info:
            entrypoint.main(fails_with(err), "python -m x", [])
        assert info.value.code == 1
        line = capsys.readouterr().err.strip()
        assert "\n" not in line and line.startswith("python -m x: error: ")
        assert first in line and second in line
    with pytest.raises(ValueError):   # --debug: the traceback, not one line
        entrypoint.main(fails_with(ValueError("x")), "python -m x", ["--debug"])


def test_a_successful_command_line_runs_its_atexit_handlers_and_flushes_its_output():
    """main() ends a real command line with os._exit (no interpreter teardown): the
    atexit handlers still run, buffered output still arrives, the status is 0."""
    script = ("import atexit, sys\n"
              "from pipeline_common.entrypoint import main\n"
              "atexit.register(lambda: print('atexit ran'))\n"
              "sys.argv = ['x']\n"
              "main(lambda argv: print('done', end=''), 'x')\n"
              "print('not reached')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "doneatexit ran\n"


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_sorted_unique_equals_np_unique(dtype):
    rng = np.random.default_rng(3)
    for values in (np.zeros(0, dtype), np.array([5], dtype),
                   rng.integers(-50, 50, 1000).astype(dtype),
                   rng.integers(0, 2**30, (40, 25)).astype(dtype)):
        got = sorted_unique(values)
        np.testing.assert_array_equal(got, np.unique(values))
        assert got.dtype == values.dtype
