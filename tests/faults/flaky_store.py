"""A gs:// store that fails on purpose: gcp-storage-emulator behind a fault-injecting proxy.

`FlakyStore` starts the emulator (objects on disk, so it can be stopped and
started again with its data) and an HTTP proxy in this process that forwards
every request to it, unless told to answer `503 Service Unavailable`:

* `fail_every(n)`: every n-th request (a store with transient errors);
* `fail_all()`: every request from now on (a store that is down);
* `recover()`: forward everything again.

`stop_emulator()` / `start_emulator()` stop the emulator process itself (the
client then sees refused connections) and start it again on the same port.
A CLI under test talks to `endpoint` (the proxy) or `emulator_endpoint`
through `STORAGE_EMULATOR_HOST` (see `env`), run with `tests.faults.gcs_cli`.
`download(prefix, folder)` reads objects back over the JSON API with urllib,
independently of Beam and google-cloud-storage.
"""
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

from tests.gcs_emulator import _free_port, _wait_ready

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade", "host", "content-length"}


class FlakyStore:
    """The emulator, the proxy in front of it and the fault switches (see module docstring)."""

    def __init__(self, data_dir):
        self.data_dir = str(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.bucket = f"fault-bucket-{uuid.uuid4().hex[:8]}"
        self.emulator_port = _free_port()
        self.emulator_endpoint = f"http://127.0.0.1:{self.emulator_port}"
        self.requests = self.failed = 0
        self._every = 0
        self._lock = threading.Lock()
        self._emulator = None
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.start_emulator()

    # --- the store's state
    def start_emulator(self):
        exe = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
        env = dict(os.environ, STORAGE_BASE=self.data_dir)
        self._emulator = subprocess.Popen(
            [exe, "start", "--host", "127.0.0.1", "--port", str(self.emulator_port),
             "--default-bucket", self.bucket], env=env, cwd=self.data_dir,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_ready(self.emulator_endpoint, self._emulator)

    def stop_emulator(self):
        if self._emulator is not None:
            self._emulator.kill()
            self._emulator.wait()
            self._emulator = None

    def fail_every(self, n):
        with self._lock:
            self._every, self.requests, self.failed = n, 0, 0

    def fail_all(self):
        self.fail_every(1)

    def recover(self):
        self.fail_every(0)

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self.stop_emulator()

    # --- helpers for tests
    def url(self, path):
        return f"gs://{self.bucket}/{path.strip('/')}"

    def env(self, direct=False, retry_seconds=None):
        """Environment for a CLI subprocess: the proxy (or the emulator itself when direct)."""
        env = dict(os.environ, STORAGE_EMULATOR_HOST=self.emulator_endpoint if direct
                   else self.endpoint, NO_GCE_CHECK="True")
        env.setdefault("GOOGLE_CLOUD_PROJECT", "test-project")
        if retry_seconds:
            env["FAULT_GCS_RETRY_SECONDS"] = str(retry_seconds)
        return env

    def names(self, prefix):
        """Object names under gs://bucket/prefix/ (relative to it), read from the emulator."""
        names, token = [], None
        while True:
            query = {"prefix": prefix.strip("/") + "/"}
            if token:
                query["pageToken"] = token
            with urllib.request.urlopen(f"{self.emulator_endpoint}/storage/v1/b/{self.bucket}/o?"
                                        + urllib.parse.urlencode(query), timeout=30) as answer:
                listing = json.load(answer)
            names += [item["name"][len(query["prefix"]):] for item in listing.get("items", [])]
            token = listing.get("nextPageToken")
            if not token:
                return sorted(names)

    def upload(self, path, name):
        """Copies one local file to gs://bucket/name."""
        with open(path, "rb") as handle:
            request = urllib.request.Request(
                f"{self.emulator_endpoint}/upload/storage/v1/b/{self.bucket}/o?uploadType=media"
                f"&name={urllib.parse.quote(name, safe='')}", data=handle.read(), method="POST",
                headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(request, timeout=30).close()

    def download(self, prefix, folder):
        """Copies gs://bucket/prefix/** to a local folder; returns it."""
        for name in self.names(prefix):
            quoted = urllib.parse.quote(f"{prefix.strip('/')}/{name}", safe="")
            path = os.path.join(folder, *name.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with urllib.request.urlopen(f"{self.emulator_endpoint}/storage/v1/b/{self.bucket}/o/"
                                        f"{quoted}?alt=media", timeout=30) as answer, \
                    open(path, "wb") as handle:
                handle.write(answer.read())
        return folder

    # --- the proxy's decision
    def _should_fail(self):
        with self._lock:
            self.requests += 1
            if self._every and self.requests % self._every == 0:
                self.failed += 1
                return True
            return False


def _handler_for(store):
    class Handler(http.server.BaseHTTPRequestHandler):
        """Forwards a request to the emulator, or answers 503 when the store says so."""
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self, status, headers, body):
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _forward(self):
            body = self._body()
            if store._should_fail():  # pylint: disable=protected-access
                message = json.dumps({"error": {"code": 503, "message": "injected fault: "
                                                "service unavailable"}}).encode()
                self._answer(503, [("Content-Type", "application/json")], message)
                return
            upstream = http.client.HTTPConnection("127.0.0.1", store.emulator_port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                replies = [(k, v.replace(store.emulator_endpoint, store.endpoint))
                           for k, v in answer.getheaders()]
                self._answer(answer.status, replies, data)
            except OSError:   # the emulator is stopped: a gateway error, as a real front end
                self._answer(502, [("Content-Type", "text/plain")], b"bad gateway")
            finally:
                upstream.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _forward

    return Handler


def wait_for(predicate, timeout, step=0.2):
    """Polls `predicate` until true (True) or `timeout` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
