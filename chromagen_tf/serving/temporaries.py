"""The temporary folders of exports, and removing those killed exports left.

An export is written into a hidden folder `.tmp-<version>-<32 hex digits>`
beside its final `<version>` folder and renamed when complete
(`export_lib`). TF Serving loads only integer-named folders, so it never
sees a half-written one; but an export killed mid-write leaves its
temporary folder behind, and nothing else would ever delete it.

Telling such a folder from one that another exporter is writing right now:
every exporter holds a shared `flock` on the export base directory for as
long as its temporary folder exists, from before creating it until after
renaming or deleting it. The kernel drops a process's locks when the
process dies, by SIGKILL too. So whoever is granted the exclusive lock
knows that no live exporter has a temporary folder: every folder with the
temporary name is stale, and it is removed. An export tries the exclusive
lock without waiting as it starts; while another export is writing it gets
none and leaves the clean-up to a later export.

Why a lock rather than a marker or an age:
  * A pid written into the folder name cannot be checked from another
    container that shares the volume (another PID namespace) nor from
    another host, and pids are reused.
  * An age threshold either waits hours before removing a folder or removes
    the folder of a slow export; file times also depend on clocks.
  * The lock is released exactly when its owner dies, needs no clock, and
    holds across processes and containers of one host. Locking the
    directory itself leaves no lock file to clean up in turn.

Limits: remote paths reached through tf.io.gfile (gs://, s3://, ...) have
no locks, and neither have Windows or a file system that refuses to lock a
directory; nothing is ever removed there. On a network file system the
locks are only as good as its locking: where flock locks stay on each host (NFS mounted
with `local_lock=flock` or `local_lock=all`), two hosts exporting into one
base at the same moment could remove each other's folders.
"""

import contextlib
import os
import re
import shutil
from typing import Iterator
import uuid

from absl import logging

try:
    import fcntl
except ImportError:  # Windows: no flock, so nothing is ever removed there.
    fcntl = None

_PREFIX = '.tmp-'
# Exactly the names `temporary_name` makes: nothing else is ever removed.
_TEMPORARY_NAME = re.compile(re.escape(_PREFIX) + r'\d+-[0-9a-f]{32}')


def temporary_name(version: int) -> str:
    """A fresh hidden name to write a version under before renaming it."""
    return f'{_PREFIX}{version}-{uuid.uuid4().hex}'


def _is_local(path: str) -> bool:
    return '://' not in path


def _remove_stale(export_base: str) -> None:
    """Deletes every temporary folder; call only under the exclusive lock."""
    for name in sorted(os.listdir(export_base)):
        path = os.path.join(export_base, name)
        if not _TEMPORARY_NAME.fullmatch(name) or not os.path.isdir(path):
            continue
        logging.info('Removing %s, left by an interrupted export.', path)
        try:
            shutil.rmtree(path)
        except OSError as error:  # E.g. another user's folder.
            logging.warning('Cannot remove %s: %s', path, error)


@contextlib.contextmanager
def writing(export_base: str) -> Iterator[None]:
    """Removes stale temporary folders, then holds the base's shared lock.

    Create a temporary folder only inside this context, and rename or delete
    it before leaving: that is what lets the next export tell that a folder
    it finds was left by a dead process.

    Args:
      export_base: An existing directory.
    """
    if fcntl is None or not _is_local(export_base):
        yield
        return
    descriptor = os.open(export_base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # Another export is writing; a later export cleans up.
        except OSError as error:
            # Remove nothing without the lock: it cannot tell stale folders
            # from live ones.
            logging.info('Cannot lock %s (%s): stale temporary export '
                         'folders there are left alone.', export_base, error)
        else:
            _remove_stale(export_base)
        try:
            # Still taken after a failed exclusive try (a transient ENOLCK
            # on NFS, say), so that a later export that gets the exclusive
            # lock cannot take this export's folder for a stale one. From
            # exclusive to shared is not atomic, which is harmless: this
            # export has no temporary folder yet.
            fcntl.flock(descriptor, fcntl.LOCK_SH)
        except OSError:
            pass  # Nobody can lock here, so nobody removes anything.
        yield
    finally:
        os.close(descriptor)  # Releases the lock.
