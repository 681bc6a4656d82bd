"""A command prints its own lines only; TensorFlow's come back on request.

The noise is what a new user saw from every step of the demo: the oneDNN
notice, "Could not find cuda drivers", "E0000 ... failed call to cuInit"
and INFO lines from TensorFlow, absl and the SavedModel builder.
`chromagen_tf.cli_logging` hides them by default. The controls show that
the same check finds the lines when the user's TF_CPP_MIN_LOG_LEVEL=0 or
absl's --verbosity asks for them, so the quiet checks can fail.
"""

import os
import re
import subprocess
import sys

import pytest

from chromagen_tf import cli_logging
from tests import conftest

# One pattern per kind of line that must not reach a newcomer's terminal.
_NOISE = {
    'absl C++ preamble': r'absl::InitializeLog',
    'oneDNN notice': r'oneDNN custom operations',
    'CUDA drivers': r'Could not find cuda drivers',
    'cuInit error': r'cuInit',
    'CPU instructions': r'This TensorFlow binary is optimized',
    # absl's prefix (C++ and Python): I1206 22:04:45.504167 ...
    'INFO line': r'(?m)^I\d{4} \d\d:\d\d:\d\d',
    'TensorFlow INFO': r'INFO:tensorflow:',
}

_IMPORT_TENSORFLOW = (
    'import chromagen_tf.cli_logging\n'
    'import tensorflow as tf\n'
    'tf.config.list_physical_devices()\n'
    'print("done")\n'
)

# No TensorFlow: absl's Python logging only, run through app.run.
_ABSL_APP = (
    'import chromagen_tf.cli_logging\n'
    'from absl import app, logging\n'
    'def main(argv):\n'
    '    logging.info("an info line")\n'
    '    logging.warning("a warning line")\n'
    'app.run(main)\n'
)


def _run(*command: str, check: bool = True, **environment: str) -> str:
    """Runs a command from the repository; returns stdout and stderr."""
    env = dict(os.environ, **environment)
    if 'TF_CPP_MIN_LOG_LEVEL' not in environment:
        # The test process (conftest) sets it; a user's shell does not.
        env.pop('TF_CPP_MIN_LOG_LEVEL', None)
    completed = subprocess.run(
        [sys.executable, *command],
        cwd=conftest.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = completed.stdout + completed.stderr
    if check:
        assert completed.returncode == 0, output
    return output


def _noise_in(output: str) -> list[str]:
    return [
        name for name, pattern in _NOISE.items() if re.search(pattern, output)
    ]


def test_verbosity_requested():
    assert cli_logging.verbosity_requested(['tool', '--verbosity=0'])
    assert cli_logging.verbosity_requested(['tool', '-v', '1'])
    assert cli_logging.verbosity_requested(['tool', '--v=1'])
    assert not cli_logging.verbosity_requested(['tool', '--video=a.mp4'])
    assert not cli_logging.verbosity_requested(['tool', '--', '-v'])
    assert not cli_logging.verbosity_requested(['-v'])  # the program name


def test_tensorflow_start_up_is_quiet_and_the_users_level_is_kept():
    quiet = _run('-c', _IMPORT_TENSORFLOW)
    assert _noise_in(quiet) == [], quiet
    assert 'done' in quiet
    # Control: the user's own level brings TensorFlow's lines back.
    loud = _run('-c', _IMPORT_TENSORFLOW, TF_CPP_MIN_LOG_LEVEL='0')
    assert {'oneDNN notice', 'CUDA drivers'} <= set(_noise_in(loud)), loud


def test_absl_info_only_with_verbosity():
    quiet = _run('-c', _ABSL_APP)
    assert 'a warning line' in quiet
    assert 'an info line' not in quiet
    loud = _run('-c', _ABSL_APP, '--verbosity=0')
    assert 'an info line' in loud


@pytest.mark.slow
def test_colorize_prints_only_its_own_lines(tmp_path):
    photo = conftest.SAMPLE_PHOTOS / 'coffee.jpg'
    output = _run(
        '-m', 'chromagen_tf.colorize', str(photo), f'--output_dir={tmp_path}'
    )
    assert _noise_in(output) == [], output
    assert '1 colorized' in output
    assert len(list(tmp_path.iterdir())) == 1


def test_a_tool_inside_a_package_quiets_tensorflow_too():
    # `python -m chromagen_tf.bundled.recipe` imports its package first, so
    # that package must not start TensorFlow before the recipe's own first
    # import (cli_logging) has run.
    # absl's --help exits with status 1 after printing the flags.
    output = _run('-m', 'chromagen_tf.bundled.recipe', '--help', check=False)
    assert _noise_in(output) == [], output
    assert '--config' in output
