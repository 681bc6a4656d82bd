"""Running ChromaGen's own command-line tools as steps of a longer job.

The demo and the bundled model's recipe run every stage through the same
`python -m ...` commands a user types, so that what they show is what the
tools do. `run` starts one in a child process, streams its output and turns
a failure into one error naming the step. The child inherits the working
directory and environment, so it imports the same ChromaGen as its parent
(a checkout or an installed wheel) and reads relative paths alike.
"""

import subprocess
import sys
import time

from chromagen_tf import errors


class StepError(errors.ChromaGenError, RuntimeError):
    """A tool run as a step of a longer job failed."""


def run(*command: str, step: str = '') -> float:
    """Runs `python -m COMMAND...` with this Python.

    Args:
      *command: The module and its arguments.
      step: What the step is, for the error message.

    Returns:
      Its wall time in seconds.

    Raises:
      StepError: the tool exited non-zero (its own message is above).
    """
    print('      $ python -m ' + ' '.join(command), flush=True)
    start = time.monotonic()
    # The child's own cli_logging quiets TensorFlow's C++ lines unless the
    # user set TF_CPP_MIN_LOG_LEVEL, which it inherits.
    completed = subprocess.run([sys.executable, '-m', *command], check=False)
    if completed.returncode != 0:
        raise StepError(
            f'{step or command[0]} failed with exit status '
            f'{completed.returncode}; see the output above.'
        )
    return time.monotonic() - start
