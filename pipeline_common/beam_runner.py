"""Pipeline options with offline, deterministic local defaults.

Beam's DirectRunner first tries the Prism runner, which downloads a Go binary
from the internet. Local runs here instead go straight to Beam's in-process
FnApiRunner (the engine DirectRunner falls back to), in multi-process mode
using every core unless `--direct_num_workers` says otherwise. Any other
runner (DataflowRunner, ...) is passed through untouched, with three additions:

* no Google credentials, or no network, for a Dataflow job: one line at once
  (`check_credentials`, which `config.parse_known_args` calls before a job reads
  anything), instead of Beam's ~25 s of credential retries followed by minutes
  of object-store retries;
* against a GCS emulator (`STORAGE_EMULATOR_HOST`) without credentials, Beam
  connects anonymously at once instead of retrying the credential lookup;
* a dry run (`--dry_run True`) that names `--dataflow_job_file` gets that file,
  which Beam itself writes only when it submits (`make_pipeline`, see
  `_stage_dry_run`). `run_pipeline` runs a pipeline to its end and says whether
  it really ran.
"""
import logging
import os
import socket
import threading

import apache_beam as beam
from apache_beam.options.pipeline_options import (DebugOptions, DirectOptions, PipelineOptions,
                                                  SetupOptions, StandardOptions, TestOptions)

from pipeline_common.errors import UserError

LOCAL_RUNNERS = (None, "DirectRunner", "FnApiRunner")
DRY_RUN_MESSAGE = "dry run: the job was built but not run"
EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"
STORAGE_HOST = "storage.googleapis.com"


class NoCloudCredentials(UserError):
    """A Dataflow job asked for where no Google credentials can be found."""


class NoNetwork(UserError):
    """A Dataflow job asked for where Google Cloud cannot be reached."""


def is_local(options):
    return options.view_as(StandardOptions).runner in LOCAL_RUNNERS


def is_dataflow(options):
    """True for --runner DataflowRunner (also spelled `dataflow` or by its module path)."""
    name = (options.view_as(StandardOptions).runner or "").rsplit(".", 1)[-1].lower()
    return name in ("dataflow", "dataflowrunner")


def is_dry_run(options):
    """True for --dry_run True: the runner builds the job and stops (DataflowRunner)."""
    return bool(options.view_as(TestOptions).dry_run)


def google_credentials_source(environ=None):
    """Where Google's Application Default Credentials would come from, or None.

    Looks only at what is on this machine, in google.auth's order, without a
    network call: GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file
    (`gcloud auth application-default login`), then the metadata server of a
    Google Cloud VM (known from the VM's DMI product name, GCE_METADATA_HOST, or
    Cloud Shell's CLOUD_SHELL=true).
    """
    environ = os.environ if environ is None else environ
    key_file = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        return key_file if os.path.isfile(key_file) else None
    if environ.get("CLOUDSDK_CONFIG"):
        config_dir = environ["CLOUDSDK_CONFIG"]
    elif os.name == "nt":
        config_dir = os.path.join(environ.get("APPDATA", ""), "gcloud")
    else:
        config_dir = os.path.join(os.path.expanduser("~"), ".config", "gcloud")
    adc = os.path.join(config_dir, "application_default_credentials.json")
    if os.path.isfile(adc):
        return adc
    if environ.get("NO_GCE_CHECK") != "True":
        if (environ.get("GCE_METADATA_HOST") or environ.get("GCE_METADATA_IP")
                or environ.get("CLOUD_SHELL") == "true"):
            return "metadata server"
        try:
            with open("/sys/class/dmi/id/product_name", encoding="utf-8") as handle:
                if handle.read().strip().startswith("Google"):
                    return "metadata server"
        except OSError:
            pass
    return None


def _connect_anonymously():
    """Makes Beam's GCS and Dataflow clients anonymous at once (for the emulator).

    Beam's own lookup (apache_beam.internal.gcp.auth) retries google.auth.default
    for ~25 s before it falls back to anonymous; it caches the answer in these
    two class attributes, which exist in the pinned Beam (2.77).
    """
    try:
        from apache_beam.internal.gcp import auth
    except ImportError:  # pragma: no cover - Beam without the gcp extra
        return
    holder = getattr(auth, "_Credentials", None)
    if holder is not None and hasattr(holder, "_credentials_init"):
        with holder._credentials_lock:  # pylint: disable=protected-access
            if not holder._credentials_init:  # pylint: disable=protected-access
                holder._credentials, holder._credentials_init = None, True  # pylint: disable=protected-access


def check_credentials(options):
    """Stops a Dataflow job at once, in one line, without credentials or network.

    `options`: PipelineOptions or the leftover Beam arguments. No Google
    credentials, or credentials but Cloud Storage's name does not resolve (no
    network): NoCloudCredentials / NoNetwork. With a GCS emulator
    (STORAGE_EMULATOR_HOST) and no credentials, Beam is made to connect
    anonymously at once instead. Returns the credentials' source (or None).
    """
    source = google_credentials_source()
    emulator = os.environ.get(EMULATOR_VARIABLE)
    if source is None and emulator:
        _connect_anonymously()
        return None
    if not isinstance(options, PipelineOptions):
        options = PipelineOptions(list(options))
    if not is_dataflow(options) or emulator:
        return source
    if source is None:
        key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        found = (f"GOOGLE_APPLICATION_CREDENTIALS names {key_file}, which is not a file"
                 if key_file else "no Google Cloud credentials found")
        raise NoCloudCredentials(
            f"--runner DataflowRunner: {found}; run `gcloud auth application-default login` "
            "(or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file), or for "
            f"offline tests set {EMULATOR_VARIABLE} to a GCS emulator (docs/cloud.md)")
    problem = _unresolvable(STORAGE_HOST)
    if problem:
        raise NoNetwork(
            f"--runner DataflowRunner: {STORAGE_HOST} cannot be resolved ({problem}): connect "
            f"to the network (or set HTTPS_PROXY), or for offline tests set {EMULATOR_VARIABLE} "
            "to a GCS emulator (docs/cloud.md)")
    return source


def _unresolvable(host, timeout=5.0):
    """Why `host` does not resolve, or None (also when unsure: a slow answer, a proxy).

    Offline, name resolution fails at once, where Beam's clients would retry for
    minutes. Behind a proxy local resolution may fail while the proxy works: no check.
    """
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                                              "all_proxy")):
        return None
    answer = {}

    def resolve():
        try:
            socket.getaddrinfo(host, 443)
        except OSError as err:
            answer["error"] = err

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(timeout)
    error = answer.get("error")
    return None if error is None else (getattr(error, "strerror", None) or str(error))


class UnsafeRunnerMode(UserError):
    """A local runner mode known to give wrong results."""


def make_options(pipeline_args, **overrides):
    """PipelineOptions from leftover argv, with local defaults filled in.

    Refuses `--direct_running_mode=multi_threading`: in Beam 2.77 its in-process
    worker flushes output buffers from a timer thread (every second) without
    holding the lock the bundle thread writes under
    (data_plane.TimeBasedBufferingClosableOutputStream.flush reads, sends, then
    clears), so elements written in between are silently lost (measured: 398,913
    of 400,000 elements through a GroupByKey, in a pipeline of Beam transforms
    only). in_memory and multi_processing do not flush on a timer.
    """
    options = PipelineOptions(pipeline_args, **overrides)
    options.view_as(SetupOptions).save_main_session = False
    if is_local(options):
        direct = options.view_as(DirectOptions)
        if direct.direct_running_mode == "multi_threading":
            raise UnsafeRunnerMode(
                "--direct_running_mode=multi_threading can silently drop elements in Beam's "
                "local runner; use --direct_running_mode=multi_processing or leave the flag out")
        given = {arg.split("=", 1)[0] for arg in pipeline_args if arg.startswith("--")}
        if "--direct_num_workers" not in given:
            direct.direct_num_workers = 0  # 0 = one worker per core
        if "--direct_running_mode" not in given and direct.direct_num_workers != 1:
            direct.direct_running_mode = "multi_processing"
    return options


def make_pipeline(options):
    """A beam.Pipeline on the pinned offline local runner or the one asked for.

    A Dataflow dry run that names --dataflow_job_file writes that file (see
    `_stage_dry_run`).
    """
    if is_local(options):
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        return beam.Pipeline(runner=fn_runner.FnApiRunner(), options=options)
    if is_dataflow(options) and is_dry_run(options):
        return beam.Pipeline(runner=_dry_run_dataflow_runner(), options=options)
    return beam.Pipeline(options=options)


def run_pipeline(pipeline):
    """Runs `pipeline` to its end; returns (ran, result).

    ran is False for a dry run: the runner built the job (and, with
    --dataflow_job_file, wrote it) but ran nothing; the one line that says so is
    logged here. A job that follows a pipeline with its own reads and writes
    stops when ran is False.
    """
    result = pipeline.run()
    if is_dry_run(pipeline.options):
        logging.info(DRY_RUN_MESSAGE)
        return False, result
    result.wait_until_finish()
    return True, result


def _stage_dry_run(job):
    """What DataflowRunner does before it submits, without submitting.

    Beam's dry run stops before it stages anything or writes --dataflow_job_file.
    With that flag this stages the package(s) and the pipeline proto to the
    staging location (`pipeline.pb`, `workflow.tar.gz`, ...) and writes the job
    description Dataflow would receive, as Beam does on submission
    (apiclient.DataflowApplicationClient.create_job minus its last request). The
    file is Beam's job JSON; the pipeline itself is at its
    environment.sdkPipelineOptions.options.pipelineUrl (STAGING_LOCATION/pipeline.pb).
    """
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.runners.dataflow.internal import apiclient
    path = job.options.view_as(DebugOptions).dataflow_job_file
    if not path:
        return
    client = apiclient.DataflowApplicationClient(job.options, job.root_staging_location)
    client.create_job_description(job)
    with FileSystems.create(path, mime_type="application/json") as handle:
        handle.write(job.json().encode("utf-8"))
    logging.info("dry run: the job description is in %s", path)


def _dry_run_dataflow_runner():
    from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner

    class DryRunDataflowRunner(DataflowRunner):
        """DataflowRunner whose dry run also writes --dataflow_job_file."""

        def run_pipeline(self, pipeline, options, pipeline_proto=None):
            result = super().run_pipeline(pipeline, options, pipeline_proto)
            if is_dry_run(options):
                _stage_dry_run(result.job)
            return result

    return DryRunDataflowRunner()
