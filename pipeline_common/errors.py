"""The one error family for what a user can fix: `UserError` and its few subclasses.

A stage that finds something wrong with what its command line names (an input
file missing, corrupt or from another run; an option value that picks nothing)
raises a `UserError` whose message is the one line the user needs: it names the
file or option and says what to do, with no "prog:" or "error:" prefix of its own.
`pipeline_common.entrypoint.main` prints it as "prog: error: MESSAGE" and exits
with status 1 (no traceback; `--debug` shows it). Status 2 stays argparse's: a
command line whose form is wrong, found before any file is read (`parser.error`).

Raise `UserError` itself; a subclass exists only where a caller or a test tells
that kind apart, and lives beside the code that raises it:

* `pipeline_common.config.ConfigError`: a bad `--config` file (reported as a bad flag);
* `pipeline_common.artifacts.ArtifactError`: a stage's input file is missing or
  unreadable (a cache reader treats it as "compute again");
* `pipeline_common.beam_runner.NoCloudCredentials`, `NoNetwork`, `UnsafeRunnerMode`:
  a runner that cannot or must not run;
* `beam_jobs.errors.PreprocessError`: a data error raised inside a Beam step (its
  message survives the runner's wrapping; `beam_jobs.preprocess` unwraps it);
* `model.data.DataError`: a `--data` folder that is not a usable preprocess output.

Failures of the environment (disk full, permission denied, an unreachable store)
stay `OSError` and the like; `entrypoint.describe` words them.
"""


class UserError(Exception):
    """An error whose message is already the one line a user needs (names the file or option)."""
