"""benchmarks/RESULTS.md, written by the benchmark scripts themselves.

Each script owns one section (`## name`) and replaces it on every run with its
table, stamped with the date, the commit, the CPU and the command that produced
it, so a figure quoted in the docs is always the last one measured.

A run may also give `headline`s: one-line figures ("Headline: what | figure" lines of
its section). README.md's results table is rebuilt from every section's headlines
after each run (`update_readme`), so the README never holds a hand-copied figure.
"""
import datetime
import os
import re
import shlex
import subprocess
import sys

from benchmarks import machine

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
TABLE_START = "<!-- results table: rebuilt by benchmarks/results.py from RESULTS.md -->"
TABLE_END = "<!-- end of results table -->"
# A table may keep only some sections: "<!-- results table (Layout): rebuilt ... -->".
_TABLE = re.compile(r"<!-- results table(?: \(([^)]*)\))?: rebuilt by benchmarks/results.py "
                    r"from RESULTS.md -->\n.*?" + re.escape(TABLE_END), re.S)
# README rows by the section they come from, in this order (others follow, as in RESULTS.md).
README_ORDER = ("Preprocess", "Scale", "Training", "Neighbours", "Layout", "Edge reasons",
                "Neighbour quality", "Evaluator", "ALS", "Explorer")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d), commit (\S+), (.*?); `(.*)`$", re.M)
_HEADLINE = re.compile(r"^Headline: (.+?) \| (.+)$", re.M)
_headlines = []
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


def headline(what, figure):
    """Gives this run's README row: `what` was measured, `figure` is the result (one line
    each, no '|'); written into the section by the next `record`."""
    _headlines.append((what.replace("|", "/"), figure.replace("|", "/")))


def sections(text):
    """`(name, stamp match or None, [(what, figure)])` per `## name` section of RESULTS.md."""
    out = []
    for match in re.finditer(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        body = match.group(2)
        out.append((match.group(1), _STAMP.search(body), _HEADLINE.findall(body)))
    return out


def readme_table(text, prefix=None, shown_elsewhere=()):
    """The README's results table (markdown lines) from RESULTS.md's headlines: of the
    sections whose name starts with `prefix` when given, else of all sections but those
    starting with one of `shown_elsewhere` (the prefixes of the README's other tables)."""
    found = [s for s in sections(text) if s[1] and s[2] and s[0].startswith(prefix or "")
             and (prefix or not s[0].startswith(tuple(shown_elsewhere)))]
    rank = {name: next((i for i, prefix in enumerate(README_ORDER) if name.startswith(prefix)),
                       len(README_ORDER)) for name, _, _ in found}
    found.sort(key=lambda s: rank[s[0]])
    lines = ["| what | figure | last run (date, commit, CPU) and command |", "| --- | --- | --- |"]
    for name, stamp, heads in found:
        date, sha, where, command = stamp.groups()
        cpu = where.split(", load average")[0]
        for what, figure in heads:
            lines.append(f"| {what} | {figure} | {date}, `{sha}`, {cpu}: `{command}` |")
    return lines


def update_readme(readme=None, results=None):
    """Rewrites each results table of README.md (between its start and end markers)."""
    readme, results = readme or README, results or RESULTS
    if not (os.path.exists(readme) and os.path.exists(results)):
        return
    text = open(readme, encoding="utf-8").read()
    measured = open(results, encoding="utf-8").read()

    elsewhere = [m.group(1) for m in _TABLE.finditer(text) if m.group(1)]

    def rebuilt(match):
        first = match.group(0).split("\n", 1)[0]
        return "\n".join([first] + readme_table(measured, match.group(1), elsewhere)
                          + [TABLE_END])

    new = _TABLE.sub(rebuilt, text)
    if new != text:
        with open(readme, "w", encoding="utf-8") as handle:
            handle.write(new)


def record(section, lines, command=None):
    """Replaces `## section` of RESULTS.md with `lines` (markdown), the stamp and the
    run's headlines, then rebuilds the README's results table."""
    if command is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec else os.path.basename(sys.argv[0]).removesuffix(".py")
        command = shlex.join(["python", "-m", module] + sys.argv[1:])
    stamp = (f"{datetime.date.today().isoformat()}, commit {commit()}, {machine.describe()}; "
             f"`{command}`")
    heads = [f"Headline: {what} | {figure}" for what, figure in _headlines]
    _headlines.clear()
    body = (f"## {section}\n\n{stamp}\n\n" + "\n".join(lines).rstrip() + "\n"
            + ("\n" + "\n".join(heads) + "\n" if heads else ""))
    text = open(RESULTS, encoding="utf-8").read() if os.path.exists(RESULTS) else HEADER
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: body + "\n", text) if pattern.search(text) \
        else text.rstrip() + "\n\n" + body
    with open(RESULTS, "w", encoding="utf-8") as handle:
        handle.write(text)
    update_readme()


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


if __name__ == "__main__":
    update_readme()
    print(f"rebuilt the results table of {README} from {RESULTS}")
