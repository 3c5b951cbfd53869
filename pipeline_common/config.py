"""`--config run_configs/NAME.yaml`: options from a file, command-line flags win.

A config file is a flat YAML mapping of flag name -> value, e.g.::

    runner: DataflowRunner
    region: europe-west1
    experiments: [use_runner_v2]     # a list repeats the flag

It is turned into ``--name=value`` arguments placed *before* the command line,
so argparse (last one wins) lets explicit flags override the file.
"""
import os
import sys

import yaml
from apache_beam.io.filesystems import FileSystems

from pipeline_common.errors import UserError


class ConfigError(UserError):
    """A config file that cannot be read or has the wrong shape (reported as a bad flag)."""


def config_to_argv(mapping, source="config"):
    """Turns a flat mapping into a list of ``--key=value`` strings."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"{source}: expected a mapping of option -> value, "
                          f"got {type(mapping).__name__}")
    argv = []
    for key, value in mapping.items():
        flag = "--" + str(key).lstrip("-")
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                # store_true style flags: present when true, absent when false
                if item:
                    argv.append(flag)
                continue
            if isinstance(item, (dict, list)):
                raise ConfigError(f"{source}: option {key!r} must be a scalar "
                                  "or a list of scalars")
            argv.append(f"{flag}={item}")
    return argv


def read_config(path):
    """Reads a YAML config file (local or gs://) into a dict."""
    try:
        with FileSystems.open(path) as handle:
            data = yaml.safe_load(handle.read().decode("utf-8"))
    except (OSError, IOError) as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    return {} if data is None else data


def expand_config(argv):
    """Replaces ``--config PATH`` / ``--config=PATH`` in argv with the file's flags.

    The file's flags go first so any flag given on the command line wins.
    """
    argv = list(argv)
    rest, paths = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a file path")
            paths.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    from_files = []
    for path in paths:
        from_files += config_to_argv(read_config(path), source=path)
    return from_files + rest


def parse_known_args(parser, argv=None):
    """`parser.parse_known_args` after expanding `--config` files (argv None: sys.argv).

    A bad config file is reported like any other bad flag: one argparse error line.
    A Dataflow job without Google credentials stops here, in one line, before it
    reads anything (beam_runner.check_credentials).
    Returns (args, the arguments the parser does not know, e.g. Beam options).
    """
    try:
        argv = expand_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as err:
        parser.error(str(err))
    args, rest = parser.parse_known_args(argv)
    from pipeline_common import beam_runner
    if (any(arg.split("=", 1)[0] == "--runner" for arg in rest)
            or os.environ.get(beam_runner.EMULATOR_VARIABLE)):
        beam_runner.check_credentials(rest)
    return args, rest
