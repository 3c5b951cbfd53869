"""benchmarks/RESULTS.md, written by the benchmark scripts themselves.

Each script owns one section (`## name`) and replaces it on every run with its
table, stamped with the date, the commit, the CPU and the command that produced
it, so a figure quoted in the docs is always the last one measured.
"""
import datetime
import os
import re
import subprocess
import sys

from benchmarks import machine

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
HEADER = ("# Benchmark results\n\nWritten by the scripts in `benchmarks/` (each replaces its own "
          "section when it runs); do not edit by hand.\n")


def commit():
    """The short hash of HEAD, with '+changes' when the work tree differs from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, text=True, capture_output=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record(section, lines, command=None):
    """Replaces `## section` of RESULTS.md with `lines` (markdown) and the stamp."""
    if command is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec else os.path.basename(sys.argv[0]).removesuffix(".py")
        command = " ".join(["python -m", module] + sys.argv[1:])
    stamp = (f"{datetime.date.today().isoformat()}, commit {commit()}, {machine.describe()}; "
             f"`{command}`")
    body = f"## {section}\n\n{stamp}\n\n" + "\n".join(lines).rstrip() + "\n"
    text = open(RESULTS, encoding="utf-8").read() if os.path.exists(RESULTS) else HEADER
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: body + "\n", text) if pattern.search(text) \
        else text.rstrip() + "\n\n" + body
    with open(RESULTS, "w", encoding="utf-8") as handle:
        handle.write(text)


class _Tee:
    def __init__(self, stream):
        self.stream, self.lines = stream, []

    def write(self, text):
        self.lines.append(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def main_recorded(main, section):
    """Runs a benchmark's `main()` as its command line, printing as usual, and records
    what it printed as its section of RESULTS.md (when it ends without an error; not for
    a script's own child processes, started with --child)."""
    if "--child" in sys.argv:
        main()
        return
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        main()
    finally:
        sys.stdout = tee.stream
    text = "".join(tee.lines).strip("\n")
    record(section, ["```", text, "```"])
