"""Runs a CLI against the GCS emulator: `python -m tests.faults.gcs_cli MODULE ARGS...`.

Two things differ from a user's run, both about the test machine, not the code
under test: no Google credentials are looked up (offline that lookup retries
for ~25 s before it falls back to an anonymous client, which the emulator
accepts), and with `FAULT_GCS_RETRY_SECONDS` set, google-cloud-storage's retry
deadline (120 s by default) is shortened so that a store that keeps failing
ends the test in seconds. The retries themselves, their back-off and what
happens when they run out are the real ones.
"""
import os
import runpy
import sys


def _shorten_retry_deadline(seconds):
    """Sets the deadline of the library's shared Retry objects in place (they are also
    bound as default arguments, so rebinding the module names would not reach them)."""
    from google.cloud.storage import retry as storage_retry
    from apache_beam.io.gcp import gcsio_retry
    for policy in (storage_retry.DEFAULT_RETRY, gcsio_retry.DEFAULT_RETRY_WITH_THROTTLING_COUNTER):
        policy._timeout = policy._deadline = seconds  # pylint: disable=protected-access


def main():
    module, sys.argv = sys.argv[1], [sys.argv[1]] + sys.argv[2:]
    from apache_beam.internal.gcp import auth
    auth._Credentials._credentials_init, auth._Credentials._credentials = True, None  # pylint: disable=protected-access
    if os.environ.get("FAULT_GCS_RETRY_SECONDS"):
        _shorten_retry_deadline(float(os.environ["FAULT_GCS_RETRY_SECONDS"]))
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
