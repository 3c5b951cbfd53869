"""Where the reference files the tests check our formats against are (`tests/data/formats/`)."""
import pathlib

FORMATS = pathlib.Path(__file__).resolve().parent / "data" / "formats"
GEXF_RNG = FORMATS / "gexf" / "1.3" / "gexf.rng"
UCSD_SAMPLES = FORMATS / "ucsd-goodreads"
