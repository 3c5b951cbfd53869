"""Runs a command as `python -m MODULE` would, pressing Ctrl-C at a chosen moment.

    python -m tests.faults.interrupt_at WHEN MODULE ARGS...

WHEN is `call:PACKAGE.MODULE.FUNCTION` (SIGINT to the process group, as a terminal sends it,
on the first call of that function, from whatever thread calls it) or `import:NAME` (when
the command first imports module NAME, i.e. while its modules load). Deterministic, unlike
a timer: each case of tests/faults/test_faults_round2.py stops the command at one moment.
"""
import functools
import importlib
import importlib.abc
import os
import runpy
import signal
import sys


def _press_ctrl_c():
    os.killpg(os.getpgrp(), signal.SIGINT)


def _on_first_call(function):
    pressed = []

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if not pressed:
            pressed.append(True)
            _press_ctrl_c()
        return function(*args, **kwargs)
    return wrapper


class _OnImport(importlib.abc.MetaPathFinder):
    def __init__(self, name):
        self.name, self.pressed = name, False

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name and not self.pressed:
            self.pressed = True
            _press_ctrl_c()
        return None


def main():
    when, module, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    kind, _, target = when.partition(":")
    if kind == "call":
        owner, _, attr = target.rpartition(".")
        owner = importlib.import_module(owner)
        setattr(owner, attr, _on_first_call(getattr(owner, attr)))
    elif kind == "import":
        import pipeline_common  # noqa: F401  (as every command's package imports it first)
        sys.meta_path.insert(0, _OnImport(target))
    else:
        raise SystemExit(f"unknown moment {when!r}")
    sys.argv = [module, *args]
    runpy._run_module_as_main(module)   # pylint: disable=protected-access  (what -m runs)


if __name__ == "__main__":
    main()
