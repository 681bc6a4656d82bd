"""ChromaGen's web app: a page and an HTTP API around one loaded model.

`server.py` is the ASGI app (Starlette) and its uvicorn server,
`jobs.py` the job limits and the colorize work (a `colorizer.Colorizer`),
`uploads.py` the in-memory multipart reader, and `static/` the one page
(`app.js`, with the colour-hint editor in `hints.js`).
The entry point is `chromagen_tf/app.py`.
"""

import contextlib
import importlib.util
import shutil
import tempfile
from typing import Iterator

from chromagen_tf import errors

# The packages of the `app` extra (pyproject.toml), by import name.
_DEPENDENCIES = ('starlette', 'uvicorn', 'python_multipart')


def check_dependencies() -> None:
    """Raises errors.UsageError, naming the extra, if one is missing."""
    missing = [
        name for name in _DEPENDENCIES if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise errors.UsageError(
            f'The web app needs {", ".join(missing)}: pip install ".[app]"'
        )


@contextlib.contextmanager
def private_temporary_directory() -> Iterator[str]:
    """Points `tempfile` at a new directory only this user can read, and
    removes it afterwards.

    The app never writes an upload to disk; this catches what libraries
    write on their own (TensorFlow's autograph leaves generated sources in
    the temporary directory), so that a stopped app leaves nothing behind.
    """
    path = tempfile.mkdtemp(prefix='chromagen-app-')  # Mode 0700.
    previous = tempfile.tempdir
    tempfile.tempdir = path
    try:
        yield path
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(path, ignore_errors=True)
