"""Argument parsing shared by the command lines, so a bad flag reads the same everywhere."""
import argparse
import sys


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: `prog: error: MESSAGE (see --help)`, exit status 2.

    Plain argparse prints the whole usage block first; in a log or a CI output the
    line that matters then hides among twenty lines of flags.
    """

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _number(cast, text, ok, wanted):
    try:
        value = cast(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    return _number(int, text, lambda v: v >= 1, "a positive integer")


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text):
    """argparse type: a finite number > 0."""
    return _number(float, text, lambda v: 0 < v < float("inf"), "a positive number")
