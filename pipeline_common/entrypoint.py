"""How every command line ends: output on success, one line on stderr on failure.

A user who runs `python -m beam_jobs.preprocess ...` onto a full disk should read
what failed, on which file, and what to do, not forty lines of Beam and TensorFlow
frames. `main(run, prog)` calls the stage's `run()` and turns any exception into
one line and a non-zero exit status:

* a `UserError` (pipeline_common.errors: the stages' own checks of their inputs and
  options) is printed as it is: its message already names the file and what to do;
* errors of the environment (`OSError`: disk full, permission denied, a file
  where a folder should be, a missing path; also when Beam re-raises them from a
  worker as `RuntimeError: OSError: [Errno 28] ... [while running 'Step']`) name
  the file and say what to do;
* unreachable or failing object stores (gs://) say so and name the path;
* anything else is named by its type and first line, with a pointer to `--debug`.

Each is printed as "prog: error: LINE" with status 1; argparse's own errors keep its
usage text and status 2, and a `SystemExit("text")` is printed in the same form.
`--debug` anywhere on the command line shows the full traceback instead.
A command line ends with `os._exit`: after a failure at
once, after success once its atexit handlers ran (see `_exit_now` and the end of `main`).

Ctrl-C (SIGINT) ends every command with status 130 and one line, "prog: interrupted; run
the same command again to redo it", at any moment: the first one raises KeyboardInterrupt
(so that the stage's `finally` blocks remove what they staged) and is remembered, so that
whatever the runner turns it into (Beam re-raises it from a step as `RuntimeError:
KeyboardInterrupt [while running ...]`, or a worker pool fails some other way) is reported
as the interrupt; a second one ends the process at once. While the modules load, before
`main` runs, pipeline_common's sys.excepthook gives the same line and status.
"""
import atexit
import errno
import logging
import os
import re
import signal
import sys
import threading
import urllib.parse

from pipeline_common.errors import UserError  # also importable as entrypoint.UserError
from pipeline_common.fileio import final_name

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130

# What to do, per errno, for failures of the environment around the data.
ADVICE = {
    errno.ENOSPC: "no space left on the device: free space or choose another --output",
    errno.EDQUOT: "disk quota exceeded: free space or choose another --output",
    errno.EFBIG: "file too large for this filesystem or limit: choose another --output",
    errno.EACCES: "permission denied: choose a writable --output or fix the permissions",
    errno.EPERM: "operation not permitted: choose a writable --output or fix the permissions",
    errno.EROFS: "read-only filesystem: choose a writable --output",
    errno.EEXIST: "a file is in the way where a folder is needed: remove it or choose "
                  "another path",
    errno.ENOTDIR: "a file is in the way where a folder is needed: remove it or choose "
                   "another path",
    errno.EISDIR: "a folder is in the way where a file is needed: remove it or choose "
                  "another path",
    errno.ENOENT: "no such file or folder: check the path",
    errno.EIO: "input/output error from the device: check the disk",
}

# Beam re-raises a worker's exception as text: "OSError: [Errno 28] No space left
# on device: '/x/y' [while running 'WriteExamples/...']".
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\] ([^:\[\]'\n]+)(?:: '([^']*)')?")
_STEP_TEXT = re.compile(r"\[while running '([^']+)'\]")
# TensorFlow's file errors are not OSErrors; their class names say what happened.
_TF_ERRORS = {
    "DataLossError": "the file is corrupt or truncated: rebuild it with the stage that wrote it",
    "PermissionDeniedError": ADVICE[errno.EACCES],
    "NotFoundError": ADVICE[errno.ENOENT],
    "ResourceExhaustedError": "out of memory or disk space: free some, or use smaller "
                              "--batch_size / another --output",
}
_TF_FUNCTION = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_STORE_ERRORS = ("InvalidResponse", "ServiceUnavailable", "InternalServerError", "TooManyRequests",
                 "GatewayTimeout", "BadGateway", "ConnectionError", "ConnectionRefusedError",
                 "MaxRetryError", "NewConnectionError", "RetryError", "TransportError")


# A JSON API request names its object as [http://host]/storage/v1/b/BUCKET/o/NAME, or
# /upload/storage/v1/b/BUCKET/o?...&name=NAME (urllib3 errors give the path only).
_STORE_URL = re.compile(r"(?:(?:GET|POST|PUT|PATCH|DELETE|HEAD) )?(?:https?://[^/\s]+)?"
                        r"(?:/upload)?/storage/v1/b/([^/\s?]+)/o(?:/([^?\s:]+))?"
                        r"(?:\?([^\s:)]*))?:?")


def store_path(text):
    """The gs:// path named by the object-store requests in an error text (the most
    specific one: an object or listing prefix before a bare bucket), or None."""
    found = []
    for match in _STORE_URL.finditer(text):
        name = match.group(2)
        if name is None and match.group(3):
            query = urllib.parse.parse_qs(match.group(3))
            name = (query.get("name") or query.get("prefix") or [None])[0]   # a write or a listing
            name = name and urllib.parse.quote(name)
        name = final_name(urllib.parse.unquote(name)) if name else ""
        found.append(f"gs://{match.group(1)}" + (f"/{name}" if name else ""))
    return max(found, key=len) if found else None


def _gs_path(text):
    """The first gs:// path in a text (a temporary name shown as its final name), or None."""
    match = re.search(r"gs://[^\s'\"\]\),;]+", text)
    return final_name(match.group()) if match else None


def _first_line(text, limit=300):
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _chain(err):
    """The exception and its causes/contexts, outermost first."""
    seen = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def describe(err):
    """One line (without the program name) that says what failed and what to do."""
    if isinstance(err, UserError):
        return str(err)
    for item in _chain(err):
        if isinstance(item, OSError) and item.errno in ADVICE:
            where = item.filename or ""
            return f"{ADVICE[item.errno]}" + (f" ({where})" if where else "")
    text = str(err)
    match = _ERRNO_TEXT.search(text)
    if match and int(match.group(1)) in ADVICE:
        where = match.group(3) or ""
        step = _STEP_TEXT.search(text)
        return (ADVICE[int(match.group(1))] + (f" ({where})" if where else "")
                + (f" in step {step.group(1)}" if step else ""))
    for item in _chain(err):
        name = type(item).__name__
        if name == "FailedPreconditionError" and "not a directory" in str(item):
            return f"{ADVICE[errno.ENOTDIR]} ({_first_line(item, 200)})"
        if name in _TF_ERRORS:
            text = _TF_FUNCTION.sub("", str(item))   # TensorFlow's internal op names
            if "No space left" in text:
                return f"{ADVICE[errno.ENOSPC]} ({_first_line(text, 400)})"
            return f"{_TF_ERRORS[name]} ({_first_line(text, 400)})"
    names = {type(item).__name__ for item in _chain(err)}
    if names & set(_STORE_ERRORS) or any(name in text for name in _STORE_ERRORS):
        where = store_path(text) or _gs_path(text)
        return ("the object store did not answer or kept failing after retries"
                + (f" on {where}" if where else "")
                + f" ({type(err).__name__}: {_first_line(re.sub(' +', ' ', _STORE_URL.sub('', text)), 200)}); "
                "check the gs:// path, the network and credentials, then run the same "
                "command again")
    return (f"{type(err).__name__}: {_first_line(text)} "
            "(run the same command with --debug for the traceback)")


class _NoTracebacks(logging.Filter):
    """Drops log records that carry a traceback (Beam logs a failing step's one).

    The failure is reported once, as the command's last line; `--debug` keeps them.
    """

    def filter(self, record):
        return not (record.exc_info or "Traceback (most recent call last)" in record.getMessage())


def interrupted_line(prog):
    """The one line every command prints when Ctrl-C stops it."""
    return f"{prog}: interrupted; run the same command again to redo it"


class _Interrupts:
    """The SIGINT handler of a command line: remembers the first Ctrl-C, ends at the second."""

    def __init__(self, prog):
        self.prog, self.seen = prog, False

    def __call__(self, signum, frame):
        if self.seen:   # a second Ctrl-C while the first is being cleaned up after
            _say_interrupted(self.prog)
        self.seen = True
        raise KeyboardInterrupt

    def caused(self, err):
        """True when `err` is, or came from, an interrupt (whatever a runner wrapped it in)."""
        return self.seen or any(isinstance(item, KeyboardInterrupt) or "KeyboardInterrupt" in
                                f"{type(item).__name__}: {item}" for item in _chain(err))


def _say_interrupted(prog):
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # nothing may cut the line short now
        print(interrupted_line(prog), file=sys.stderr)
    finally:
        _exit_now(EXIT_INTERRUPTED, True)


def main(run, prog, argv=None):
    """Runs `run(argv)` as a command line: logging set up, one-line errors, exit status."""
    owns_process = argv is None   # a real command line; tests pass argv and get SystemExit
    interrupts = _Interrupts(prog)
    if owns_process and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, interrupts)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    try:
        from pipeline_common.logs import configure_logging
        configure_logging()
        if not debug:
            for handler in logging.getLogger().handlers:
                handler.addFilter(_NoTracebacks())
        run(argv)
    except SystemExit as stop:
        if interrupts.seen and owns_process:
            _say_interrupted(prog)
        if stop.code in (None, 0):
            raise
        if isinstance(stop.code, str):
            print(f"{prog}: error: {stop.code}", file=sys.stderr)
        _exit_now(stop.code if isinstance(stop.code, int) else EXIT_FAILURE, owns_process)
    except BaseException as err:  # pylint: disable=broad-except
        if interrupts.caused(err):
            if debug:
                raise
            print(interrupted_line(prog), file=sys.stderr)
            _exit_now(EXIT_INTERRUPTED, owns_process)
        if debug:
            raise
        print(f"{prog}: error: {describe(err)}", file=sys.stderr)
        _exit_now(EXIT_FAILURE, owns_process)
    if interrupts.seen and owns_process:   # the interrupt was swallowed on the way: still stop
        _say_interrupted(prog)
    if owns_process:
        signal.signal(signal.SIGINT, lambda *_: _say_interrupted(prog))   # during atexit
        # Every output is written, closed and renamed by now. The interpreter's own
        # teardown of the ~2,000 modules Beam, pandas and TensorFlow load took ~0.9 s
        # (the neighbours command at 100k books: 4% of it); the atexit handlers
        # (thread pools, multiprocessing) still run, then the process ends.
        atexit._run_exitfuncs()  # pylint: disable=protected-access
        _exit_now(0, owns_process)


def _exit_now(status, owns_process):
    """Ends the process without running interpreter teardown (after a failure,
    and after success once the atexit handlers ran).

    A failed Beam or pyarrow step can leave native threads running; tearing the
    interpreter down around them may abort (`terminate called without an active
    exception`, status -6) after the one-line error was printed. The stage has
    already removed its partial outputs in its own `finally` blocks, so the
    process ends here with the status the user should see. Called with an
    explicit argv (tests), `main` raises SystemExit instead.
    """
    if not owns_process:
        sys.exit(status)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # pylint: disable=protected-access
