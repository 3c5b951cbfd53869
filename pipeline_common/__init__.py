"""Shared plumbing for the three stages: Keras set-up, config files, file I/O, runners.

Importing this package (every stage package does so first) selects legacy Keras
(tf-keras) for TensorFlow Recommenders. This is the one place that sets it: the
variable must be in the environment before TensorFlow is first imported, and
TensorFlow reads it only once.
"""
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

_COMMAND_PACKAGES = ("beam_jobs", "graph_export", "model", "pipeline_common")


def _interrupted_while_loading(kind, value, traceback, _default=sys.excepthook):
    """Ctrl-C before a command's main() runs (its modules take seconds to load): the one
    line and status 130 of pipeline_common.entrypoint, not a traceback."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    argv = getattr(sys, "orig_argv", [])
    name = spec.name if spec else argv[argv.index("-m") + 1] if "-m" in argv[:-1] else ""
    if issubclass(kind, KeyboardInterrupt) and name.split(".")[0] in _COMMAND_PACKAGES:
        sys.stderr.write(f"python -m {name}: interrupted; run the same command again to redo it\n")
        sys.stderr.flush()
        os._exit(130)   # pylint: disable=protected-access
    _default(kind, value, traceback)


sys.excepthook = _interrupted_while_loading
