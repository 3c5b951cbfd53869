"""Log set-up for the command-line entry points: our progress at INFO, Beam's plumbing quiet.

Beam's local multi-process runner forwards every worker's start-up chatter at
INFO; TensorFlow's C++ side prints INFO lines about CPU features and CUDA.
Both drown the lines a user wants (counts, where outputs went), so they are
raised to WARNING here; `--log_level DEBUG`-style needs can still lower them.
"""
import logging
import os

NOISY = ("apache_beam.runners.portability", "apache_beam.runners.worker",
         "apache_beam.runners.direct", "apache_beam.io.gcp", "apache_beam.internal",
         "absl", "tensorflow")


def configure_logging(level=logging.INFO):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # must precede the TF import
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger().setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # Worker log lines relayed by the local runner: its WARNs are start-up
    # notices; real worker failures come as ERROR and still show.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(
        max(level, logging.ERROR))
