"""Fault cases break a private copy of the session's one tiny chain (tests/chain.py)."""
import shutil

import pytest

from tests.faults import harness


@pytest.fixture
def broken_copy(chain, tmp_path):
    """copy(name) -> a private copy of one chain folder, for a case to damage."""
    def copy(name):
        target = tmp_path / f"{name}-copy"
        shutil.copytree(chain[name], target)
        return str(target)
    return copy


def pytest_sessionfinish(session):
    """With FAULT_RECORDS set (tests/faults/report.py), saves what every case saw."""
    import json
    import os
    if os.environ.get("FAULT_RECORDS"):
        with open(os.environ["FAULT_RECORDS"], "w", encoding="utf-8") as handle:
            json.dump(harness.RECORDS, handle, indent=1)
