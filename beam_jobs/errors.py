"""The data error that stops the preprocess job with a one-line message, across Beam's wrapping."""
from pipeline_common.errors import UserError

FAIL_MARK = "PREPROCESS_FAILED: "
_END_MARK = " :END"


class PreprocessError(UserError):
    """A data problem found inside a Beam step; `preprocess.run` re-raises its message
    (`failure_message`) as a UserError once the runner has wrapped it."""

    def __init__(self, message):
        # Beam re-creates the exception with its message plus "[while running ...]".
        super().__init__(message if message.startswith(FAIL_MARK) else FAIL_MARK + message + _END_MARK)


def failure_message(err):
    """The PreprocessError message inside a (runner-wrapped) exception, or None."""
    text = str(err)
    start = text.find(FAIL_MARK)
    if start < 0:
        return None
    start += len(FAIL_MARK)
    end = text.find(_END_MARK, start)
    return text[start:end if end > 0 else None].strip()
