"""Keeps a command's terminal to its own lines: progress, results, errors.

Every entry point imports this module before anything that loads
TensorFlow. Unless the user asks for more, it:

- sets TF_CPP_MIN_LOG_LEVEL=3 if the user has not set it. Level 3 is the
  one that also hides "E0000 ... failed call to cuInit: ... CUDA error",
  which TensorFlow prints on every machine without a GPU; level 2 does not.
- runs `import tensorflow` with file descriptor 2 pointed at /dev/null
  when that level hides INFO (1 or more, whoever set it). TensorFlow prints
  its start-up notices (oneDNN, "Could not find cuda drivers", CPU
  instructions) through absl's C++ logging before that logging is
  initialised, and no environment variable filters them.
- lowers absl's `--verbosity` to WARNING (-1). `app.run` would otherwise
  raise it to INFO, which lets through the INFO lines of TensorFlow, absl
  and the SavedModel builder.

absl's own flag, `--verbosity=0` (or `-v 0`), brings all of these back,
C++ lines included. A TF_CPP_MIN_LOG_LEVEL set by the user is kept as it is.
Python warnings and errors stay visible, and a C++ error that matters
reaches Python as an exception.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys
from typing import Iterator, Sequence

from absl import flags
from absl import logging

_QUIET_CPP_LEVEL = '3'


def verbosity_requested(argv: Sequence[str]) -> bool:
    """Whether a command line sets absl's `--verbosity` (or `-v`)."""
    for argument in argv[1:]:
        if argument == '--':
            break
        if argument.startswith('-'):
            name = argument.lstrip('-').split('=', 1)[0]
            if name in ('verbosity', 'v'):
                return True
    return False


@contextlib.contextmanager
def _stderr_descriptor_silenced() -> Iterator[None]:
    """Points file descriptor 2 at /dev/null, for C++ code writing to it."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
    """Runs another loader's `exec_module` with stderr silenced."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module is in sys.modules by now; give it its real loader back.
        module.__loader__ = self._loader
        module.__spec__.loader = self._loader
        with _stderr_descriptor_silenced():
            self._loader.exec_module(module)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as usual, the first time, with a quiet loader.

    A finder rather than an import here, so that the tools that never load
    TensorFlow (the serving client, the photo downloader) do not pay for it.
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != 'tensorflow':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet(argv: Sequence[str]) -> None:
    """Quiets TensorFlow's start-up and INFO logging unless asked for.

    Call before TensorFlow is imported; this module calls it on import.

    Args:
      argv: The command line, to look for `--verbosity`.
    """
    if verbosity_requested(argv):
        return
    # Without the flag, app.run would raise the verbosity to INFO; set so,
    # it is no longer the default, and a --verbosity parsed later still wins.
    flags.FLAGS.verbosity = logging.converter.ABSL_WARNING
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', _QUIET_CPP_LEVEL)
    try:
        level = int(os.environ['TF_CPP_MIN_LOG_LEVEL'])
    except ValueError:
        return
    if level >= 1 and 'tensorflow' not in sys.modules:
        sys.meta_path.insert(0, _QuietTensorFlowImport())


quiet(sys.argv)
