"""Paths and files, local or on any tf.io.gfile file system (gs://, ...).

The one home of the remote-path test, path joining and atomic JSON writes;
every tool that writes a manifest, a config or export metadata uses them.
"""

import json
import os
import posixpath
import uuid


def _gfile():
    # Imported on first use: reading a config must not start TensorFlow
    # before a command has quieted its start-up lines (`cli_logging`).
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    return tf.io.gfile


def is_remote(path: str) -> bool:
    """Whether `path` names a file system other than the local one."""
    return '://' in path


def join(directory: str, *names: str) -> str:
    """Joins a folder and names, for local paths and URLs alike.

    URLs always join with '/', local paths with the platform's separator.
    """
    if is_remote(directory):
        return posixpath.join(directory, *names)
    return os.path.join(directory, *names)


def read_json(path: str):
    """The JSON value stored at `path`, or None when there is no file."""
    if not _gfile().exists(path):
        return None
    with _gfile().GFile(path) as f:
        return json.load(f)


def write_json_atomically(path: str, value: object) -> None:
    """Writes JSON to a unique temporary name, then renames it over `path`.

    Readers see the old file or the new one, never half of one. The
    temporary name is unique because a Beam runner may retry a shard while a
    slow first attempt is still writing the same file. Local files are
    flushed to disk before the rename; remote stores commit on close.
    """
    directory, name = (
        posixpath.split(path) if is_remote(path) else (os.path.split(path))
    )
    if directory:
        _gfile().makedirs(directory)
    temporary = join(directory, f'.{uuid.uuid4().hex[:12]}-{name}.tmp')
    with _gfile().GFile(temporary, 'w') as f:
        f.write(json.dumps(value, indent=1, sort_keys=True) + '\n')
    sync(temporary)
    _gfile().rename(temporary, path, overwrite=True)


def sync(path: str) -> None:
    """Flushes a closed local file to disk; remote stores commit on close."""
    if not is_remote(path):
        with open(path, 'rb+') as f:
            os.fsync(f.fileno())
