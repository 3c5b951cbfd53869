"""A cache for tables a DoFn builds from a side input (hash indexes, per-id flags)."""


class PerSideInput:
    """fn(value, *args), computed again only when the (side input) `value` object changes.

    Beam hands a DoFn the same side-input object for every element, so a table
    built from it is built once, not once per block.
    """

    _UNSET = object()

    def __init__(self, fn):
        self._fn, self._of, self._result = fn, self._UNSET, None

    def __call__(self, value, *args):
        if self._of is not value:
            self._result, self._of = self._fn(value, *args), value
        return self._result
