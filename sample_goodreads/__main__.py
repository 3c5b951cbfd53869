"""`python -m sample_goodreads`: see sample_goodreads/generate.py."""
from pipeline_common.entrypoint import main
from sample_goodreads.generate import PROG, run

if __name__ == "__main__":
    main(run, PROG)
