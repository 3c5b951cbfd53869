"""The data error that stops the preprocess job with a one-line message, across Beam's wrapping."""

FAIL_MARK = "PREPROCESS_FAILED: "
_END_MARK = " :END"


class PreprocessError(RuntimeError):
    """A data problem that stops the job; its message is shown to the user as is."""

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
