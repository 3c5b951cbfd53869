"""The one error family for what a user can fix: `UserError` and its few subclasses.

A stage that finds something wrong with its input, options or outputs raises a
`UserError` whose message is the one line the user needs: it names the file or
option and says what to do. `pipeline_common.entrypoint.main` prints it as
"prog: error: MESSAGE" (no traceback; `--debug` shows it) and exits with status 1.
The message carries no "prog:" or "error:" prefix of its own.

Raise `UserError` itself unless a caller catches that kind specifically; the
subclasses live beside the code that raises them:

* `pipeline_common.config.ConfigError`: a bad `--config` file (turned into an
  argparse error, status 2);
* `pipeline_common.artifacts.ArtifactError`: a stage's input file is missing or
  unreadable;
* `pipeline_common.beam_runner.NoCloudCredentials`, `NoNetwork`, `UnsafeRunnerMode`:
  a runner that cannot or must not run;
* `beam_jobs.errors.PreprocessError`: a data error raised inside a Beam step (its
  message survives Beam's wrapping);
* `model.data.DataError`: a `--data` folder that is not a usable preprocess output;
* `graph_export.ego.TitleLookupError`: a `--title` / `--book_id` that names no book.

Failures of the environment (disk full, permission denied, an unreachable store)
stay `OSError` and the like; `entrypoint.describe` words them.
"""


class UserError(Exception):
    """An error whose message is already the one line a user needs (names the file or option)."""
