"""Where the reference formats (`shared/formats/`, beside the repository) are."""
import os
import pathlib


def _find():
    if os.environ.get("SHARED_FORMATS"):
        return pathlib.Path(os.environ["SHARED_FORMATS"])
    for parent in pathlib.Path(__file__).resolve().parents:
        candidate = parent / "shared" / "formats"
        if candidate.is_dir():
            return candidate
    raise RuntimeError("cannot find shared/formats beside the repository; "
                       "set SHARED_FORMATS=/path/to/shared/formats")


SHARED_FORMATS = _find()
