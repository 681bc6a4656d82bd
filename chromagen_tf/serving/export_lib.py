"""The versioned, atomic SavedModel and TFLite export of a serving module.

The serving graph itself, and its signatures, are `signatures.py`'s.
`export_saved_model` and `export_tflite` write <export_base>/<version>/, the
layout TF Serving watches. An export is first written outside the base
path, where TF Serving never looks, and published only when complete (see
`_publish`).
"""

import errno
import json
import os
import shutil
import tempfile
from typing import Callable, Optional

from absl import logging
import keras
import tensorflow as tf

from chromagen_tf import errors
from chromagen_tf import files
from chromagen_tf.serving import signatures


class VersionExistsError(errors.UsageError, FileExistsError):
    """The export version asked for exists already."""


# --- Versioned export, complete before TF Serving sees it --------------------

METADATA_FILE = 'chromagen.json'  # In <version>/assets.extra/.


def _versions(export_base: str) -> list[int]:
    if not tf.io.gfile.isdir(export_base):
        return []
    return sorted(
        int(name.rstrip('/'))
        for name in tf.io.gfile.listdir(export_base)
        if name.rstrip('/').isdigit()
    )


def next_version(export_base: str) -> int:
    """One more than the largest integer version in export_base, or 1."""
    versions = _versions(export_base)
    return versions[-1] + 1 if versions else 1


def latest_version_dir(export_base: str) -> Optional[str]:
    """The newest <export_base>/<version> holding a SavedModel, or None."""
    for version in reversed(_versions(export_base)):
        path = files.join(export_base, str(version))
        if tf.saved_model.contains_saved_model(path):
            return path
    return None


def read_metadata(version_dir: str) -> dict:
    """The export's settings (render_size, ...) or {} if there are none."""
    path = files.join(version_dir, 'assets.extra', METADATA_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


# The file TF Serving's loader needs before it reads anything else: a
# version folder without it fails to load with NotFound and is retried
# (LoadSessionBundleOrSavedModelBundle in tensorflow_serving's
# session_bundle_util.cc; --max_num_load_retries=5 at
# --load_retry_interval_micros=60 s by default).
_SAVED_MODEL_FILES = ('saved_model.pb', 'saved_model.pbtxt')


def _staging_directory(export_base: str) -> str:
    """A fresh folder to write a version in, outside the base path.

    Local exports are staged beside the base, on the same file system, so
    that publishing is one rename; remote ones in the local temporary
    folder, since they are copied anyway. TF Serving reads only the base
    path, so a folder that a killed export leaves here never affects
    serving; it may be deleted whenever no export is running.
    """
    if not files.is_remote(export_base):
        parent, name = os.path.split(os.path.abspath(export_base))
        try:
            return tempfile.mkdtemp(prefix=f'.{name}-staging-', dir=parent)
        except OSError as error:  # E.g. a base mounted into a read-only /.
            logging.info(
                'Cannot stage beside %s (%s); staging in %s.',
                export_base,
                error,
                tempfile.gettempdir(),
            )
    return tempfile.mkdtemp(prefix='chromagen-export-')


def _copy_saved_model_file_last(source: str, destination: str) -> None:
    """Copies a folder tree, with saved_model.pb after every other file.

    A rename on a bucket (gs://, s3://) is a copy file by file, so TF
    Serving polling it can see a version folder half written. Without
    saved_model.pb that folder only fails to load, and is retried; once
    saved_model.pb is there, every other file is complete. An export killed
    while copying leaves a version folder without saved_model.pb: TF
    Serving keeps serving the version it has, and `latest_version_dir`
    skips it; delete it by hand.
    """
    last = []
    for directory, _, names in tf.io.gfile.walk(source):
        relative = os.path.relpath(directory, source)
        target = (
            destination
            if relative == '.'
            else files.join(destination, *relative.split(os.sep))
        )
        tf.io.gfile.makedirs(target)
        for name in sorted(names):
            pair = (os.path.join(directory, name), files.join(target, name))
            if relative == '.' and name in _SAVED_MODEL_FILES:
                last.append(pair)
            else:
                tf.io.gfile.copy(*pair)
    for pair in last:
        tf.io.gfile.copy(*pair)


def _publish(staged: str, final: str) -> None:
    """Makes a complete staged version visible as `final`.

    A local rename is atomic. Across file systems, and on remote paths,
    the files are copied with saved_model.pb last.
    """
    if not files.is_remote(final):
        try:
            os.rename(staged, final)
            return
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
    try:
        _copy_saved_model_file_last(staged, final)
    except BaseException:
        if tf.io.gfile.exists(final):
            tf.io.gfile.rmtree(final)
        raise


def _write_version(
    export_base: str, version: Optional[int], write: Callable[[str], None]
) -> str:
    """Writes a version outside the base path, then publishes it.

    Args:
      export_base: TF Serving's --model_base_path; created if missing.
      version: The version number; default: the next integer.
      write: Writes the version's files into the folder it is given (which
        does not exist yet).

    Returns:
      The version directory.

    Raises:
      VersionExistsError: the version already exists.
    """
    tf.io.gfile.makedirs(export_base)
    if version is None:
        version = next_version(export_base)
    if version < 0:
        raise ValueError(f'version must be >= 0, got {version}')
    final = files.join(export_base, str(version))
    if tf.io.gfile.exists(final):
        raise VersionExistsError(
            f'{final} already exists; pick another --version or leave '
            'it out to use the next one.'
        )
    staging = _staging_directory(export_base)
    try:
        staged = os.path.join(staging, str(version))
        write(staged)
        _publish(staged, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def export_saved_model(
    module: signatures.ColorizationModule,
    export_base: str,
    version: Optional[int] = None,
    metadata: Optional[dict] = None,
) -> str:
    """Exports a ColorizationModule as <export_base>/<version>/.

    Args:
      module: The module to export.
      export_base: TF Serving's --model_base_path.
      version: The version number; default: the next integer.
      metadata: Extra facts (checkpoint, model config) written with the
        module's settings into assets.extra/chromagen.json.

    Returns:
      The version directory.

    Raises:
      VersionExistsError: the version already exists.
    """
    settings = dict(metadata or {})
    settings.update(
        render_size=module.render_size,
        size_multiple=module.size_multiple,
        max_pixels=module.max_pixels,
    )

    def write(path: str) -> None:
        # keras.export.ExportArchive rather than tf.saved_model.save: Keras 3
        # variables saved straight from a tf.Module are not found by the
        # session-based loader that TF Serving and saved_model_cli use.
        archive = keras.export.ExportArchive()
        archive.track(module.generator)
        for name, function in module.endpoints().items():
            archive.add_endpoint(name, function)
        archive.write_out(path, verbose=False)
        extra = files.join(path, 'assets.extra')
        tf.io.gfile.makedirs(extra)
        with tf.io.gfile.GFile(files.join(extra, METADATA_FILE), 'w') as f:
            json.dump(settings, f, indent=2, sort_keys=True)

    return _write_version(export_base, version, write)


def export_tflite(
    module: signatures.ColorizationModule,
    export_base: str,
    version: Optional[int] = None,
) -> str:
    """Exports the raw model for TFLite at a fixed square working size.

    The interpreter has static shapes: the file takes normalised L
    [1, S, S, 1], S = render_size rounded up to the size multiple, and
    returns normalised ab [1, S, S, 2]; a hint model's also takes
    hint_ab [1, S, S, 2] and hint_mask [1, S, S, 1], as predict_ab_with_hints
    does. Pre- and post-processing (resize,
    padding, joining with full-resolution L) are left to the app, as
    described for `predict_ab`.

    Returns:
      The path of <export_base>/<version>/model.tflite.
    """
    side = -(-module.render_size // module.size_multiple) * module.size_multiple
    inputs = keras.Input(
        [side, side, 1], batch_size=1, name=signatures.L_CHANNEL
    )
    if module.takes_hints:
        inputs = [
            inputs,
            keras.Input([side, side, 2], batch_size=1, name=signatures.HINT_AB),
            keras.Input(
                [side, side, 1], batch_size=1, name=signatures.HINT_MASK
            ),
        ]
    fixed = keras.Model(inputs, module.generator(inputs))
    # from_keras_model freezes the weights into the flatbuffer; converting a
    # concrete function instead keeps them as resource variables that the
    # interpreter never initialises (all-NaN outputs with TF 2.21).
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(fixed).convert()

    def write(path: str) -> None:
        tf.io.gfile.makedirs(path)
        with tf.io.gfile.GFile(files.join(path, 'model.tflite'), 'wb') as f:
            f.write(flatbuffer)

    return files.join(
        _write_version(export_base, version, write), 'model.tflite'
    )
