"""Writes docs/faults.md's fault table from the fault-injection suite itself.

    python -m tests.faults.report        # runs tests/faults, rewrites the table in docs/faults.md
    python -m tests.faults.report --records FILE   # from a run made with FAULT_RECORDS=FILE

Each row is one case of the suite: the stage, the fault injected and the line the
user saw (or what the stage did instead, e.g. set rows aside). The table lives
between the FAULT_TABLE markers; tests/faults/test_zz_fault_table.py fails when it
no longer matches what the suite sees.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
TABLE_FILE = REPO / "docs" / "faults.md"
BEGIN, END = "<!-- FAULT_TABLE:BEGIN (python -m tests.faults.report) -->", "<!-- FAULT_TABLE:END -->"


def format_table(records):
    lines = ["| stage | fault | what the user sees |", "| --- | --- | --- |"]
    for row in sorted(records, key=lambda r: (r["stage"], r["fault"])):
        sees = row["sees"].replace("|", "\\|")
        lines.append(f"| {row['stage']} | {row['fault']} | `` {sees} `` |")
    return "\n".join(lines)


def table_rows(text):
    """{(stage, fault): sees} of the table between the markers in `text`."""
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = {}
    for line in body.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 3:
            rows[(cells[0], cells[1])] = cells[2].strip("`").strip().replace("\\|", "|")
    return rows


def run_suite():
    """Runs tests/faults (all but the table check); what every case saw."""
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "records.json"
        env = dict(os.environ, FAULT_RECORDS=str(out))
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "tests/faults",
                                "--deselect", "tests/faults/test_zz_fault_table.py"],
                               cwd=REPO, env=env)
        if code != 0:
            raise SystemExit("tests/faults failed: fix the suite before writing its table")
        return json.loads(out.read_text())


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--records"] and len(argv) == 2:
        records = json.loads(pathlib.Path(argv[1]).read_text())
    elif not argv:
        records = run_suite()
    else:
        raise SystemExit("usage: python -m tests.faults.report [--records FILE]")
    text = TABLE_FILE.read_text()
    if BEGIN not in text:
        raise SystemExit(f"{TABLE_FILE} has no {BEGIN} marker")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    TABLE_FILE.write_text(f"{head}{BEGIN}\n{format_table(records)}\n{END}{tail}")
    print(f"wrote {len(records)} rows to {TABLE_FILE}")


if __name__ == "__main__":
    main()
