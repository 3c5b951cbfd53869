"""Tools of the fault-injection suite: run a CLI, break its surroundings, judge the outcome.

Every case runs the real command line in a subprocess (as a user would) and
checks the three promises of the README's reliability section:

1. a failure is one line on stderr (no Python traceback) and a non-zero status;
2. nothing partial is left under a final name;
3. the same command run again gives the same bytes as a run that never failed.

What each case saw is recorded (`record`) so that `python -m tests.faults.report`
can write docs/faults.md's table from the suite itself.
"""
import contextlib
import dataclasses
import filecmp
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
# Lines TensorFlow and absl print on every start; not part of what a failure says.
_NOISE = re.compile(r"^(WARNING: All log messages|[IWE]\d{4} |.*cudart_stub|To enable the "
                    r"following instructions|\d\d:\d\d:\d\d (INFO|WARNING) )")
RECORDS = []


@dataclasses.dataclass
class Outcome:
    """What a command did: its status, its stderr and the one line a user reads."""
    returncode: int
    stderr: str
    seconds: float

    @property
    def last_line(self):
        lines = [line for line in self.stderr.splitlines()
                 if line.strip() and not _NOISE.match(line)]
        return lines[-1].strip() if lines else ""


def cli(module, *args, timeout=600, preexec_fn=None, env=None):
    """Runs `python -m module args...` from the repository root; an Outcome."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout,
                            preexec_fn=preexec_fn, env=env)
    return Outcome(result.returncode, result.stderr, time.perf_counter() - start)


def cli_killed(module, *args, when, after_seconds=0.0, poll=0.02):
    """Starts the command and SIGKILLs it (and its workers) as soon as `when()` is true,
    then `after_seconds` later. Returns True if it was killed, False if it finished
    first (a test that means to kill a stage part-way must assert True)."""
    proc = subprocess.Popen([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while proc.poll() is None and not when():
        time.sleep(poll)
    try:
        proc.wait(timeout=after_seconds) if after_seconds else None
        if proc.poll() is not None:
            return False
    except subprocess.TimeoutExpired:
        pass
    os.killpg(proc.pid, signal.SIGKILL)  # the job and any worker processes
    proc.wait()
    return True


def assert_one_line_failure(outcome, *mentions):
    """Status 1 (what the stage finds wrong; 2 is argparse's, for a command line of the wrong
    form, which no fault case is), no traceback, a last line "python -m X: error: ..." naming
    each of `mentions`."""
    assert outcome.returncode == 1, (f"expected status 1, got {outcome.returncode}:\n"
                                     f"{outcome.stderr[-2000:]}")
    assert "Traceback" not in outcome.stderr, f"traceback on stderr:\n{outcome.stderr[-3000:]}"
    line = outcome.last_line
    assert re.match(r"python -m [\w.]+: error: ", line), f"not a one-line error: {line!r}"
    for mention in mentions:
        assert str(mention) in line, f"{mention!r} not named in the error line: {line!r}"
    return line


# Per-run temporary names: fileio.atomic_write's, TensorFlow's checkpoint writer's.
_TEMP_NAME = re.compile(r"\.tmp-[0-9a-f]{12}-|(?<=tempstate)\d+")
_TMP_PATH = re.compile(r"/\S*?pytest-of-[^/]+/pytest-\d+/[^/\s)']+")


def record(stage, fault, outcome_line, tmp_root=None):
    """Keeps what the user saw for docs/faults.md's table (temporary folders shown as `…`)."""
    line = outcome_line.replace(str(tmp_root), "…") if tmp_root else outcome_line
    line = _TEMP_NAME.sub(lambda m: ".tmp-…-" if m.group().startswith(".") else "…",
                          _TMP_PATH.sub("…", line))
    RECORDS.append({"stage": stage, "fault": fault, "sees": line})


def final_files(root):
    """Relative paths of every file under root that does not carry a temporary name.

    Temporary names start with "." (fileio.atomic_write's `.tmp-*`, the neighbours job's
    `.blocks-*`), "beam-temp" or "tmp" (Beam's and tf.Transform's own).
    """
    root = pathlib.Path(root)
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not any(part.startswith((".", "beam-temp", "tmp"))
                                       for part in p.relative_to(root).parts)}


def assert_no_truncated_file(root):
    """Every file under a final name under root reads to its end (gzip, parquet, JSON)."""
    import gzip
    import pyarrow.parquet as pq
    for name in sorted(final_files(root)):
        path = pathlib.Path(root) / name
        try:
            if name.endswith(".gz"):
                with gzip.open(path) as handle:
                    while handle.read(1 << 20):
                        pass
            elif name.endswith(".parquet"):
                pq.read_table(path)
            elif name.endswith(".json"):
                json.loads(path.read_text())
        except Exception as err:  # pylint: disable=broad-except
            raise AssertionError(f"{name} is left truncated under its final name: {err}")


# Files that differ between two runs that never failed: wall-clock timings; TensorFlow's
# SavedModel `saved_model.pb`/`fingerprint.pb`, whose traced-function names carry a
# per-process counter; the checkpoint index's timestamps; manifests and reject files that
# name the output path.
NOT_BYTE_STABLE = (r"(^|/)saved_model\.pb$", r"(^|/)fingerprint\.pb$", r"(^|/)summary\.json$",
                   r"(^|/)training_log\.json$", r"^checkpoints/", r"^rejected/",
                   r"^manifest\.json$")


def assert_same_tree(got, want, ignore=()):
    """Every file of `want` exists in `got` with the same bytes (and no extra final files)."""
    got_files, want_files = final_files(got), final_files(want)
    got_files = {f for f in got_files if not any(re.search(p, f) for p in ignore)}
    want_files = {f for f in want_files if not any(re.search(p, f) for p in ignore)}
    assert got_files == want_files, (f"files differ: extra {sorted(got_files - want_files)}, "
                                     f"missing {sorted(want_files - got_files)}")
    differ = [f for f in sorted(want_files)
              if not filecmp.cmp(pathlib.Path(got) / f, pathlib.Path(want) / f, shallow=False)]
    assert not differ, ("files with other bytes than a clean run: "
                        + "; ".join(_how_they_differ(pathlib.Path(got) / f, pathlib.Path(want) / f)
                                    for f in differ))


def _how_they_differ(got, want):
    """Which bytes differ (and, for gzip files, whether the content or only its encoding)."""
    text = f"{want.name} ({got.stat().st_size} vs {want.stat().st_size} bytes"
    if want.name.endswith(".gz"):
        import gzip
        try:
            mine, theirs = gzip.decompress(got.read_bytes()), gzip.decompress(want.read_bytes())
        except (OSError, EOFError) as err:
            return text + f", does not decompress: {err})"
        if mine == theirs:
            return text + ", same content once decompressed)"
        at = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b),
                  min(len(mine), len(theirs)))
        return text + f"; decompressed {len(mine)} vs {len(theirs)}, first difference at {at})"
    return text + ")"


@contextlib.contextmanager
def small_filesystem(path, size_kib, read_only=False):
    """A tmpfs of `size_kib` KiB mounted at `path` (read-only if asked), unmounted after.

    The suite runs as root in CI (as on the developers' machines), which may mount.
    """
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size_kib}k" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def load_json(path):
    return json.loads(pathlib.Path(path).read_text())
