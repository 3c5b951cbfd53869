"""SplitMix64, the one stable 64-bit hash of integers every stage uses (split, eval users, picks).

Defined once so the preprocess split and the model's choices of users hash alike and
never drift apart.
"""
import numpy as np

GOLDEN = 0x9E3779B97F4A7C15


def fmix64(x):
    """SplitMix64's finaliser: a fast, well-mixed 64-bit hash of uint64 arrays."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return x


def splitmix64(values):
    """SplitMix64 of integers (the state advanced once, then finalised): a stable hash of
    an index."""
    with np.errstate(over="ignore"):
        return fmix64(np.asarray(values).astype(np.uint64) + np.uint64(GOLDEN))
