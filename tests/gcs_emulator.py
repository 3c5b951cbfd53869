"""A pytest fixture: a local Google Cloud Storage emulator for gs:// tests, offline.

Starts `gcp-storage-emulator` (in-memory storage) on 127.0.0.1 on a free port in
a subprocess, points Beam's GCS filesystem (google-cloud-storage) at it through
``STORAGE_EMULATOR_HOST``, creates one bucket and stops everything afterwards.

Use it from any test module::

    from tests.gcs_emulator import gcs_emulator  # noqa: F401  (pytest fixture)

    def test_something(gcs_emulator):
        prefix = gcs_emulator.url("my/dir")        # gs://<bucket>/my/dir
        gcs_emulator.upload_dir(local_dir, prefix)  # copy a local tree up

The fixture is module-scoped: one emulator per test module. Only Beam's
FileSystems (and google-cloud-storage) honour the emulator; TensorFlow's own
gs:// support (tf.io.gfile) does not, so code under test must do gs:// I/O
through FileSystems.

Offline, Beam looks for Google credentials with retries for ~25 s in every
process before it falls back to an anonymous client. The fixture makes this
process skip that (anonymous client at once), so run pipelines against the
emulator in-process: `--direct_num_workers=1` (FnApiRunner in_memory). Worker
subprocesses (multi_processing) would each pay the 25 s.
"""
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

BUCKET_PREFIX = "test-bucket"


def _free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GcsEmulator:
    """Handle on a running emulator: its endpoint, bucket and small helpers."""

    def __init__(self, endpoint, bucket):
        self.endpoint = endpoint
        self.bucket = bucket

    def url(self, path=""):
        return f"gs://{self.bucket}/{path.lstrip('/')}" if path else f"gs://{self.bucket}"

    def upload_dir(self, local_dir, prefix):
        """Copies every file under local_dir to gs:// prefix (via Beam FileSystems)."""
        from apache_beam.io.filesystems import FileSystems
        for root, _, files in os.walk(local_dir):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), local_dir).replace(os.sep, "/")
                with open(os.path.join(root, name), "rb") as src, \
                        FileSystems.create(f"{prefix.rstrip('/')}/{rel}",
                                           compression_type="uncompressed") as dst:
                    dst.write(src.read())

    def list(self, prefix):
        from apache_beam.io.filesystems import FileSystems
        result = FileSystems.match([prefix.rstrip("/") + "/**"])[0]
        return sorted(m.path for m in result.metadata_list)


def _wait_ready(endpoint, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gcp-storage-emulator did not start within %ss" % timeout)


@contextlib.contextmanager
def run_emulator():
    """Context manager form (for scripts): yields a GcsEmulator."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    bucket = f"{BUCKET_PREFIX}-{uuid.uuid4().hex[:8]}"
    exe = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
    cmd = [exe if os.path.exists(exe) else "gcp-storage-emulator", "start", "--host", "127.0.0.1",
           "--port", str(port), "--in-memory", "--default-bucket", bucket]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "NO_GCE_CHECK",
                                             "GOOGLE_CLOUD_PROJECT")}
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    os.environ["NO_GCE_CHECK"] = "True"          # no metadata-server probing offline
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "test-project")
    from apache_beam.internal.gcp import auth
    saved_auth = (auth._Credentials._credentials_init, auth._Credentials._credentials)
    auth._Credentials._credentials_init, auth._Credentials._credentials = True, None
    try:
        _wait_ready(endpoint, proc)
        yield GcsEmulator(endpoint, bucket)
    finally:
        auth._Credentials._credentials_init, auth._Credentials._credentials = saved_auth
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def gcs_emulator():
    """Module-scoped GCS emulator with one empty bucket (see module docstring)."""
    with run_emulator() as emulator:
        yield emulator
