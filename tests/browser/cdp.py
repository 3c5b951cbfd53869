"""Drives Debian's headless Chromium over the DevTools protocol, standard library only.

Chromium is started with ``--remote-debugging-pipe``: it reads NUL-terminated
JSON commands on file descriptor 3 and writes replies and events on 4, so no
port, websocket library or browser download is needed. Networking is off
(host resolver maps every name to NOTFOUND, DevTools network emulation is
offline) and every request the page makes is recorded, so a test can assert
that nothing but the page itself was loaded.
"""
import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

BROWSER_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser")
# WebGL runs on SwiftShader (software): no GPU is used or needed.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--disable-dev-shm-usage",
    "--no-default-browser-check", "--mute-audio", "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
]


class CDPError(RuntimeError):
    """A DevTools command failed or an awaited event never came."""


def find_browser():
    """Path of a Chromium binary on PATH (Debian packages), or None."""
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium process with a fresh profile, driven over a pipe."""

    def __init__(self, binary, width=1400, height=900):
        self.profile = tempfile.mkdtemp(prefix="explorer-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_fds():  # child side: fd 3 = commands in, fd 4 = replies out
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            close_fds=False, preexec_fn=wire_fds)  # Python's own fds are non-inheritable
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._replies = {}
        self.events = []
        self._closed = False
        self._stderr = []
        threading.Thread(target=self._read_loop, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace"))

    def _read_loop(self):
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    self._closed = True
                    self._lock.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._lock:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                        self._on_event(message)
                self._lock.notify_all()

    def _on_event(self, message):
        # A dialog blocks the page until handled: dismiss it at once (it is recorded).
        if message.get("method") == "Page.javascriptDialogOpening":
            threading.Thread(target=self.call, args=("Page.handleJavaScriptDialog",),
                             kwargs={"session": message.get("sessionId"), "accept": False},
                             daemon=True).start()

    def call(self, method, session=None, timeout=30, **params):
        """Sends one command and returns its result (raises CDPError on error)."""
        command_id = next(self._ids)
        message = {"id": command_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._lock:
            while command_id not in self._replies:
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    why = "browser exited" if self._closed else "timeout"
                    raise CDPError(f"no reply to {method} ({why}); "
                                   f"stderr: {''.join(self._stderr)[-2000:]}")
                self._lock.wait(left)
            reply = self._replies.pop(command_id)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_event(self, method, predicate=lambda params: True, timeout=30, since=0):
        """Waits for an event (from index `since` of self.events); returns its params."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self.events[since:]:
                    if event.get("method") == method and predicate(event.get("params", {})):
                        return event.get("params", {})
                left = deadline - time.monotonic()
                if self._closed or left <= 0:
                    raise CDPError(f"event {method} did not come")
                self._lock.wait(left)

    def new_page(self, fresh=False):
        """Attaches to the start page (or a new tab) and enables the domains the tests watch."""
        pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        target = pages[0]["targetId"] if pages and not fresh else self.call(
            "Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        return Page(self, session)

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close", timeout=5)
                except CDPError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab: navigation, script evaluation, real mouse/keyboard input, screenshots."""

    def __init__(self, browser, session):
        self.browser, self.session = browser, session
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")
        self.call("Network.emulateNetworkConditions", offline=True, latency=0,
                  downloadThroughput=-1, uploadThroughput=-1)

    def call(self, method, **params):
        return self.browser.call(method, session=self.session, **params)

    def close(self):
        self.browser.call("Target.closeTarget", targetId=self.call("Target.getTargetInfo")[
            "targetInfo"]["targetId"])

    def events(self, method):
        return [e.get("params", {}) for e in self.browser.events
                if e.get("method") == method and e.get("sessionId") == self.session]

    def navigate(self, url, timeout=60):
        since = len(self.browser.events)
        self.call("Page.navigate", url=url)
        self.browser.wait_event("Page.loadEventFired", timeout=timeout, since=since)

    def evaluate(self, expression, await_promise=False):
        """Evaluates JS in the page; returns the value (JSON-serialisable)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise CDPError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=20, interval=0.05):
        """Polls a JS expression until it is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(f"!!({expression})")
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for: {expression}")
            time.sleep(interval)

    def centre_of(self, selector):
        """Viewport centre (x, y) of the first element matching a CSS selector."""
        box = self.evaluate(
            "(() => { const e = document.querySelector(%s); if (!e) return null;"
            " const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
            % json.dumps(selector))
        if not box:
            raise CDPError(f"no element matches {selector}")
        return box

    def mouse_move(self, x, y):
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def click(self, x, y):
        self.mouse_move(x, y)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                      buttons=1 if kind == "mousePressed" else 0, clickCount=1)

    def click_selector(self, selector):
        x, y = self.centre_of(selector)
        self.click(x, y)

    def type_text(self, text):
        self.call("Input.insertText", text=text)

    def press(self, key, code=None, key_code=None):
        params = {"key": key, "code": code or key}
        if key_code:
            params["windowsVirtualKeyCode"] = key_code
        self.call("Input.dispatchKeyEvent", type="keyDown", **params)
        self.call("Input.dispatchKeyEvent", type="keyUp", **params)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(data))
        return path
