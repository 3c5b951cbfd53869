"""docs/faults.md's table is what this suite sees.

After the fault cases (pytest orders files by name, so `make test` and `pytest tests/faults`
run this last) it checks the rows of the cases that ran. Run alone, it runs the suite
first, as `python -m tests.faults.report` does (minutes), and then also finds the rows
that no case gives any more.
"""
from tests.faults import harness, report


def test_fault_table_matches_the_suite():
    rows = report.table_rows(report.TABLE_FILE.read_text())
    whole_suite = not harness.RECORDS
    records = report.run_suite() if whole_suite else harness.RECORDS
    assert records, "no fault case recorded what it saw"
    stale = [(r["stage"], r["fault"], r["sees"], rows.get((r["stage"], r["fault"])))
             for r in records if rows.get((r["stage"], r["fault"])) != r["sees"]]
    assert not stale, ("docs/faults.md's fault table is stale; run `python -m tests.faults.report`:\n"
                       + "\n".join(f"{s} / {f}: suite sees {got!r}, the table says {old!r}"
                                   for s, f, got, old in stale))
    if whole_suite:
        gone = sorted(set(rows) - {(r["stage"], r["fault"]) for r in records})
        assert not gone, ("docs/faults.md lists cases the suite no longer has; run "
                          "`python -m tests.faults.report`: " + "; ".join(map(" / ".join, gone)))
