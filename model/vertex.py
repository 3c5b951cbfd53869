"""Runs model.train as a Vertex AI custom job (`--dry_run` prints the job spec only).

    python -m model.vertex --config run_configs/vertex.yaml --dry_run
    python -m model.vertex --config run_configs/vertex.yaml --epochs 10   # submits

Flags are of two kinds: the job's own (project, region, container image, machine)
and everything else, which is handed unchanged to `python -m model.train` inside
the container after being checked here with model.train's own parser, so a typo
fails before anything is submitted. `--data` and `--output` must be `gs://` paths:
the job cannot see this machine's disk. The container image is this project
installed with `pip install .` (see README); with `--package_uris` a prebuilt
Python training image runs the project's sdist instead.
"""
import argparse
import json
import sys

import pipeline_common  # noqa: F401  (legacy Keras before TensorFlow loads)
from model import options
from pipeline_common import cli, config
from pipeline_common.entrypoint import main


def build_parser():
    parser = cli.ArgumentParser(
        prog="python -m model.vertex", allow_abbrev=False, description=__doc__.split("\n")[0],
        epilog="Any other flag is a model.train flag (--data, --output, --epochs, ...).")
    parser.add_argument("--project", required=True, help="Google Cloud project id")
    parser.add_argument("--region", required=True, help="Vertex AI region, e.g. europe-west1")
    parser.add_argument("--display_name", default="goodreads-two-tower")
    parser.add_argument("--image_uri",
                        help="training container with this project installed (custom image)")
    parser.add_argument("--package_uris", action="append", default=[],
                        help="gs:// sdist of this project (with --executor_image_uri)")
    parser.add_argument("--executor_image_uri",
                        help="prebuilt Vertex training image that runs --package_uris")
    parser.add_argument("--machine_type", default="n1-highmem-8")
    parser.add_argument("--accelerator_type", default=None,
                        help="e.g. NVIDIA_TESLA_T4 (none by default: the model is small)")
    parser.add_argument("--accelerator_count", type=int, default=0)
    parser.add_argument("--boot_disk_gb", type=int, default=100)
    parser.add_argument("--service_account", default=None)
    parser.add_argument("--staging_bucket", default=None,
                        help="gs:// base output directory of the job (logs, AIP_* dirs)")
    parser.add_argument("--labels", action="append", default=[], help="key=value")
    parser.add_argument("--dry_run", action="store_true", help="print the job spec, submit nothing")
    parser.add_argument("--vertex", action="store_true", help=argparse.SUPPRESS)
    return parser


def job_spec(args, train_argv):
    """The CustomJob resource (REST JSON field names) that runs model.train."""
    machine = {"machineType": args.machine_type}
    if args.accelerator_type and args.accelerator_count > 0:
        machine.update(acceleratorType=args.accelerator_type,
                       acceleratorCount=args.accelerator_count)
    pool = {"machineSpec": machine, "replicaCount": "1",
            "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": args.boot_disk_gb}}
    if args.package_uris:
        pool["pythonPackageSpec"] = {"executorImageUri": args.executor_image_uri,
                                     "packageUris": list(args.package_uris),
                                     "pythonModule": "model.train", "args": train_argv}
    else:
        pool["containerSpec"] = {"imageUri": args.image_uri,
                                 "command": ["python", "-m", "model.train"],
                                 "args": train_argv}
    spec = {"workerPoolSpecs": [pool]}
    if args.service_account:
        spec["serviceAccount"] = args.service_account
    if args.staging_bucket:
        spec["baseOutputDirectory"] = {"outputUriPrefix": args.staging_bucket}
    job = {"displayName": args.display_name, "jobSpec": spec}
    if args.labels:
        job["labels"] = dict(label.split("=", 1) for label in args.labels)
    return job


def parse(argv):
    """(vertex args, model.train argv) with every check done; errors exit with one line."""
    parser = build_parser()
    args, rest = config.parse_known_args(parser, argv)
    train_args, _ = options.parse_args(rest)  # rejects unknown or invalid training flags
    for flag in ("data", "output"):
        if not getattr(train_args, flag).startswith("gs://"):
            parser.error(f"--{flag} must be a gs:// path for a Vertex AI job "
                         f"(got {getattr(train_args, flag)})")
    if args.package_uris and not args.executor_image_uri:
        parser.error("--package_uris needs --executor_image_uri")
    if not args.package_uris and not args.image_uri:
        parser.error("give --image_uri (a container with this project installed) "
                     "or --package_uris with --executor_image_uri")
    if any("=" not in label for label in args.labels):
        parser.error("--labels must look like key=value")
    train_argv = [a for a in rest if a not in ("--vertex", "--dry_run")]
    return args, train_argv


def submit(args, job):
    """Creates the CustomJob with the Vertex AI API; returns its resource name."""
    # Imported here only: the client takes ~7 s to import and --dry_run never needs it.
    from google.cloud import aiplatform_v1
    client = aiplatform_v1.JobServiceClient(
        client_options={"api_endpoint": f"{args.region}-aiplatform.googleapis.com"})
    created = client.create_custom_job(
        parent=f"projects/{args.project}/locations/{args.region}",
        custom_job=aiplatform_v1.CustomJob.from_json(json.dumps(job)))
    return created.name


def run(argv=None):
    args, train_argv = parse(sys.argv[1:] if argv is None else argv)
    job = job_spec(args, train_argv)
    parent = f"projects/{args.project}/locations/{args.region}"
    if args.dry_run:
        print(json.dumps({"parent": parent, "customJob": job}, indent=2))
        return job
    name = submit(args, job)
    print(f"submitted Vertex AI custom job {name}; follow it with: gcloud ai custom-jobs "
          f"stream-logs {name.rsplit('/', 1)[-1]} --region={args.region}")
    return job


if __name__ == "__main__":
    main(run, "python -m model.vertex")
