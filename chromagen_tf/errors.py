"""One way for ChromaGen's tools to fail.

Every error a user should see as one line of text derives from
`ChromaGenError`. A tool's `main` catches `ChromaGenError` and nothing
broader: any other exception is a bug, and keeps its traceback.

The exit-code rule, the same for every tool:
  2  the command asked for something that cannot be done as asked, and
     nothing was done: a bad flag, a path that holds no data or no model, a
     configuration that does not match a model_dir (`UsageError`);
  1  the command was well formed but the work failed: a corrupt record, a
     failed download, a non-finite loss, some inputs that could not be read
     (`ChromaGenError`);
  0  everything asked for was done.
absl's own flag errors (`app.UsageError`, `flags.IllegalFlagValueError`)
print their usage message and exit 1 or 2 by absl's rules before `main`
runs.

Every message is printed as `TOOL: error: MESSAGE`, on standard error; a
message may go on with lines of advice (what to run instead).
"""

import sys
from typing import NoReturn, Union

USAGE_EXIT_CODE = 2
RUNTIME_EXIT_CODE = 1


class ChromaGenError(Exception):
    """An error whose message is meant for the user; the work failed."""

    exit_code = RUNTIME_EXIT_CODE


class UsageError(ChromaGenError):
    """What the command asked for cannot be done as asked."""

    exit_code = USAGE_EXIT_CODE


class NotFoundError(UsageError, FileNotFoundError):
    """A path the command was given holds nothing it can use."""


class TrainingError(ChromaGenError, RuntimeError):
    """Training cannot start or cannot go on; the message says why."""


class NonFiniteLossError(TrainingError):
    """A loss became NaN or Inf."""


def first_line(error: Union[BaseException, str], limit: int = 300) -> str:
    """The first non-empty line of an error message (or its type name)."""
    text = str(error)
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return type(error).__name__ if isinstance(error, BaseException) else ''


def one_line(message: str) -> str:
    """A message folded onto one line (file system errors span several)."""
    return ' '.join(str(message).split())


def fail(
    tool: str, error: Union[BaseException, str], exit_code: int | None = None
) -> NoReturn:
    """Prints `TOOL: error: MESSAGE` to stderr and exits by the rule above.

    Args:
      tool: The command's short name, e.g. 'train'.
      error: A ChromaGenError (its exit_code applies) or a message.
      exit_code: Overrides the error's exit code.
    """
    if exit_code is None:
        exit_code = getattr(error, 'exit_code', RUNTIME_EXIT_CODE)
    message = str(error).strip() or first_line(error)
    sys.stderr.write(f'{tool}: error: {message}\n')
    sys.exit(exit_code)
