"""The files of a photo -> Lab TFRecord conversion, local or remote.

A conversion lists the photos of an input folder and writes an output folder:

  OUTPUT/train-00000-of-000NN.tfrecord, val-...   complete shards
  OUTPUT/.[HEX-]train-00000-of-000NN.tfrecord.tmp a shard being written
                                (HEX: a unique prefix on Beam, which may
                                retry a shard)
  OUTPUT/.shards/config.json    what was converted, to refuse a mismatched
                                restart
  OUTPUT/.shards/NAME.json      per complete shard: records, bytes, skipped
                                inputs
  OUTPUT/.shards/NAME.sources.json  Beam only: the inputs of a shard
  OUTPUT/manifest.json          written last (see `manifest_lib`)
  .HEX-NAME.json.tmp            a JSON file being written atomically

Both the in-process converter (`convert_lib`) and the Beam pipeline
(`beam_pipeline`) use this module, so either can finish a conversion the
other started. Files go through `tf.io.gfile`, so the same code serves local
folders and gs:// (or any file system TensorFlow knows). gfile has no fsync,
so local files are also fsynced before they are renamed into place: after a
crash a file under its final name is complete.
"""

import dataclasses
import json
from typing import NamedTuple
import uuid

import tensorflow as tf

from chromagen_tf import errors
from chromagen_tf import files
from chromagen_tf.data import image_folders
from chromagen_tf.data import records

# Under OUTPUT; hidden, so globbing the shards does not see it.
STATE_DIR = '.shards'
# The splits a conversion writes, in the order they are planned and reported.
SPLITS = records.SPLITS


class Source(NamedTuple):
    """One input photo: its record key and where to read it."""

    key: str
    path: str


@dataclasses.dataclass(frozen=True)
class Shard:
    """One output file and the inputs planned for it, in order."""

    split: str
    index: int
    count: int
    sources: tuple[Source, ...]

    @property
    def name(self) -> str:
        return records.shard_name(self.split, self.index, self.count)


def list_image_dir(root: str) -> list[Source]:
    """All photos under `root`, recursively, keyed by relative path.

    Keys use '/' wherever the folder is stored, so a folder converts to the
    same records locally and on gs://.

    Raises:
      ValueError: if `root` is remote and is not a folder or cannot be read.
    """
    if files.is_remote(root) and not tf.io.gfile.isdir(root):
        raise errors.NotFoundError(f'--image_dir: no such folder: {root}')
    try:
        return [
            Source(key, path) for key, path in image_folders.find_images(root)
        ]
    except tf.errors.OpError as error:
        raise errors.UsageError(
            f'{root}: {errors.one_line(error.message)}'
        ) from None


class ShardState:
    """The restart bookkeeping of one output folder.

    OUTPUT/.shards/ holds the configuration of the conversion and, per
    complete shard, its statistics (records, bytes, skipped inputs). A shard
    is complete when its file exists under the final name, which is renamed
    into place only after its statistics are written.
    """

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self.state_dir = files.join(output_dir, STATE_DIR)

    def claim(self, config: dict) -> str | None:
        """Records `config`, or returns the first field that differs from
        the conversion already in the folder. Removes partial shards."""
        tf.io.gfile.makedirs(self.state_dir)
        path = files.join(self.state_dir, 'config.json')
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path, 'r') as file:
                previous = json.load(file)
            for name in sorted(set(previous) | set(config)):
                if previous.get(name) != config.get(name):
                    return name
        else:
            files.write_json_atomically(path, config)
        # Partial shards and JSON files of a killed run. Nothing is writing
        # them now: the driver claims before any writer starts.
        for directory in (self.output_dir, self.state_dir):
            for name in tf.io.gfile.listdir(directory):
                if name.startswith('.') and name.endswith(
                    ('.tfrecord.tmp', '.json.tmp')
                ):
                    tf.io.gfile.remove(files.join(directory, name))
        return None

    def is_complete(self, shard: Shard) -> bool:
        return tf.io.gfile.exists(
            files.join(self.output_dir, shard.name)
        ) and tf.io.gfile.exists(self._stats_path(shard))

    def stats(self, shard: Shard) -> dict:
        with tf.io.gfile.GFile(self._stats_path(shard), 'r') as file:
            return json.load(file)

    def open(self, shard: Shard, unique: bool = False) -> 'ShardWriter':
        """A writer for `shard`, under a hidden temporary name.

        Args:
          shard: The shard to write.
          unique: Make the temporary name unique, for runners that may
            retry a shard while a slow first attempt is still writing. Either
            name matches the pattern `claim` removes after a crash.
        """
        prefix = f'{uuid.uuid4().hex[:12]}-' if unique else ''
        return ShardWriter(
            shard,
            files.join(self.output_dir, shard.name),
            self._stats_path(shard),
            files.join(self.output_dir, f'.{prefix}{shard.name}.tmp'),
        )

    def _stats_path(self, shard: Shard) -> str:
        return files.join(self.state_dir, shard.name + '.json')


class ShardWriter:
    """Writes one shard under a temporary name; `commit` publishes it.

    As a context manager it closes the file on the way out, so a failed
    shard leaves a closed temporary file for the next `claim` to remove.
    """

    def __init__(
        self,
        shard: Shard,
        final_path: str,
        stats_path: str,
        temporary_path: str,
    ):
        self.shard = shard
        self._final_path = final_path
        self._stats_path = stats_path
        self._temporary_path = temporary_path
        self._writer = tf.io.TFRecordWriter(temporary_path)
        self._records = 0
        self._skipped = []

    def __enter__(self) -> 'ShardWriter':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Closes the file without publishing it; commit closes it too."""
        self._writer.close()

    def write(self, record: bytes) -> None:
        self._writer.write(record)
        self._records += 1

    def skip(self, entry: dict) -> None:
        self._skipped.append(entry)

    def commit(self) -> dict:
        """Publishes the shard; returns its statistics, as stored."""
        self._writer.close()
        files.sync(self._temporary_path)
        stats = {
            'records': self._records,
            'bytes': tf.io.gfile.stat(self._temporary_path).length,
            'skipped': self._skipped,
        }
        files.write_json_atomically(self._stats_path, stats)
        tf.io.gfile.rename(
            self._temporary_path, self._final_path, overwrite=True
        )
        return stats
