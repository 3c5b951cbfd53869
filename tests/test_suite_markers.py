"""The names tests/conftest.py marks slow still name a test or fixture of their module."""
import ast
import pathlib

from tests import conftest

TESTS = pathlib.Path(__file__).resolve().parent


def _defined(path):
    return {node.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef)}


def test_every_name_marked_slow_exists():
    everywhere = set().union(*(_defined(path) for path in TESTS.rglob("*.py")))
    assert conftest.SLOW_EVERYWHERE <= everywhere, conftest.SLOW_EVERYWHERE - everywhere
    for module, names in conftest.SLOW.items():
        missing = names - _defined(TESTS / module)
        assert not missing, f"tests/conftest.py marks {sorted(missing)} of {module} slow; no such test or fixture"
