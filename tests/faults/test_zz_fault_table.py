"""docs/faults.md's table is what this suite sees (runs last: pytest orders files by name)."""
from tests.faults import harness, report


def test_fault_table_matches_the_suite():
    rows = report.table_rows(report.TABLE_FILE.read_text())
    assert harness.RECORDS, "no fault case ran before this check"
    stale = [(r["stage"], r["fault"], r["sees"], rows.get((r["stage"], r["fault"])))
             for r in harness.RECORDS if rows.get((r["stage"], r["fault"])) != r["sees"]]
    assert not stale, ("docs/faults.md's fault table is stale; run `python -m tests.faults.report`:\n"
                       + "\n".join(f"{s} / {f}: suite sees {got!r}, the table says {old!r}"
                                   for s, f, got, old in stale))
