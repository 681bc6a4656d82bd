"""The photo -> Lab TFRecord conversion as an Apache Beam pipeline.

This is the `--runner` path of `data_prep.make_tfrecords`, for datasets that
one machine converts too slowly (needs `pip install .[beam]`). It produces
the same files as the in-process path, record for record:

  * the driver plans the shards with `convert_lib.plan_shards` and claims
    the output folder exactly as `convert_lib.run` does;
  * it writes the inputs of each pending shard to
    OUTPUT/.shards/NAME.sources.json, so the pipeline graph carries only
    shard names however many photos there are;
  * each pipeline element is one shard: a worker converts its photos in plan
    order with `convert_lib.convert_image`, writes the shard under a hidden
    temporary name, records its statistics (records, bytes, skipped inputs)
    in OUTPUT/.shards/NAME.json and renames the shard into place;
  * after the pipeline, the driver builds manifest.json from those
    statistics with `convert_lib.build_manifest`.

All file access goes through `tf.io.gfile`, so the photos and the output may
live on gs:// (or any file system TensorFlow knows). The bookkeeping layout
is that of `convert_lib.ShardState`, so either path can finish a conversion
the other started. Parallelism is one shard per task: use at least a few
shards per worker (--images_per_shard or --num_shards).

Example:

  manifest = beam_pipeline.run(config, sources, runner='DirectRunner')
"""

import concurrent.futures
import io
import json
import posixpath
import uuid
from typing import Iterator, Sequence

from absl import logging
import apache_beam as beam
from apache_beam.options import pipeline_options
import tensorflow as tf

from chromagen_tf import imaging
from data_prep import allocator
from data_prep import convert_lib

# Namespace of the Beam counters (images converted, skipped per reason), as
# shown by the Dataflow monitoring page.
METRICS_NAMESPACE = 'chromagen'

_STATE_DIR = '.shards'
_SOURCES_SUFFIX = '.sources.json'
# Planning files are small; writing them concurrently hides the latency of
# a remote file system (about 50 ms per object on GCS).
_WRITE_THREADS = 16


def is_remote(path: str) -> bool:
    """Whether `path` names a file system other than the local one."""
    return '://' in path


def join(directory: str, name: str) -> str:
    """Joins a folder and a name, for local paths and URLs alike."""
    return posixpath.join(directory, name) if is_remote(directory) else (
        tf.io.gfile.join(directory, name))


def list_image_dir(root: str) -> list[convert_lib.Source]:
    """`convert_lib.list_image_dir` for any file system `tf.io.gfile` knows.

    Keys are paths relative to `root`, as the local listing gives them, so a
    folder converts to the same records wherever it is stored.

    Raises:
      ValueError: if `root` is not a folder.
    """
    if not is_remote(root):
        return convert_lib.list_image_dir(root)
    try:
        if not tf.io.gfile.isdir(root):
            raise ValueError(f'--image_dir: no such folder: {root}')
        root = root.rstrip('/')
        sources = []
        for directory, _, files in tf.io.gfile.walk(root):
            for name in files:
                if name.lower().endswith(imaging.IMAGE_EXTENSIONS):
                    path = posixpath.join(directory, name)
                    sources.append(
                        convert_lib.Source(path[len(root) + 1:], path))
    except tf.errors.OpError as error:
        raise ValueError(f'{root}: {_one_line(error.message)}') from None
    return sorted(sources)


def run(config: convert_lib.ConvertConfig,
        sources: Sequence[convert_lib.Source],
        listing_skips: Sequence[dict] = (),
        runner: str = 'DirectRunner',
        beam_args: Sequence[str] = ()) -> dict:
    """Converts `sources` into shards under `config.output_dir` with Beam.

    Args:
      config: The conversion; `num_processes` is not used.
      sources: The inputs found by listing.
      listing_skips: Inputs already rejected while listing, as manifest
        entries.
      runner: The Beam runner, e.g. 'DirectRunner' or 'DataflowRunner'.
      beam_args: Pipeline options in command-line form, e.g.
        ['--project=p', '--region=europe-west4', '--temp_location=gs://b/t'].

    Returns:
      The manifest, also written to OUTPUT/manifest.json.

    Raises:
      ConversionError: with --strict, on the first bad image; when the output
        folder holds a conversion with a different configuration; when the
        pipeline fails; or when the output folder cannot be written.
    """
    try:
        return _run(config, sources, listing_skips, runner, beam_args)
    except tf.errors.OpError as error:
        raise convert_lib.ConversionError(
            f'{config.output_dir}: {_one_line(error.message)}') from None


def _run(config: convert_lib.ConvertConfig,
         sources: Sequence[convert_lib.Source], listing_skips: Sequence[dict],
         runner: str, beam_args: Sequence[str]) -> dict:
    tf.io.gfile.makedirs(config.output_dir)
    state = GfileShardState(config.output_dir)
    all_shards, pending = convert_lib.start(config, sources, listing_skips,
                                            state)
    if pending:
        state.write_sources(pending)
        logging.info('Converting %d shards with %s.', len(pending), runner)
        options = pipeline_options.PipelineOptions(list(beam_args))
        try:
            with beam.Pipeline(runner=runner, options=options) as pipeline:
                _ = (pipeline
                     | 'ShardNames' >> beam.Create(
                         [shard.name for shard in pending])
                     | 'Spread' >> beam.Reshuffle()
                     | 'WriteShards' >> beam.ParDo(_WriteShardFn(config)))
        except Exception as error:  # pylint: disable=broad-except
            # Runners wrap worker exceptions in their own types; the first
            # line of the original message is what the user needs.
            raise convert_lib.ConversionError(
                f'the {runner} pipeline failed: {_first_line(error)}'
            ) from error
    missing = [shard.name for shard in all_shards
               if not state.is_complete(shard)]
    if missing:
        raise convert_lib.ConversionError(
            f'the pipeline finished without writing {", ".join(missing)}')
    manifest = convert_lib.build_manifest(config, sources, listing_skips,
                                          all_shards, state)
    write_json_atomically(join(config.output_dir, convert_lib.MANIFEST_NAME),
                          manifest)
    return manifest


def write_shard(shard: convert_lib.Shard,
                config: convert_lib.ConvertConfig) -> dict:
    """Converts and writes one planned shard; the pipeline's unit of work.

    Returns:
      The shard's statistics, as stored in OUTPUT/.shards/NAME.json.

    Raises:
      ConversionError: with --strict, on the first broken input.
    """
    options = config.image_options
    state = GfileShardState(config.output_dir)
    final_path = join(config.output_dir, shard.name)
    # A unique temporary name, because a runner may retry a shard while a
    # slow first attempt is still writing; the '.*.tfrecord.tmp' pattern is
    # what `ShardState.claim` removes after a crash.
    temporary_path = join(config.output_dir,
                          f'.{uuid.uuid4().hex[:12]}-{shard.name}.tmp')
    records, skipped = 0, []
    with tf.io.TFRecordWriter(temporary_path) as writer:
        for source in shard.sources:
            result = _convert(source, options)
            if isinstance(result, bytes):
                writer.write(result)
                records += 1
                beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                             'records').inc()
                continue
            reason, detail = result
            if config.strict and reason not in imaging.FILTER_REASONS:
                raise convert_lib.ConversionError(
                    f'{source.path}: {reason} ({detail})')
            skipped.append(convert_lib.skip_entry(source, reason, detail,
                                                  config, shard.split))
            beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                         f'skipped_{reason}').inc()
    stats = {'records': records,
             'bytes': tf.io.gfile.stat(temporary_path).length,
             'skipped': skipped}
    write_json_atomically(state.stats_path(shard), stats)
    tf.io.gfile.rename(temporary_path, final_path, overwrite=True)
    return stats


def write_json_atomically(path: str, value: object) -> None:
    """`convert_lib.write_json_atomically` for any `tf.io.gfile` path."""
    directory, name = posixpath.split(path)
    temporary = join(directory, f'.{uuid.uuid4().hex[:12]}-{name}.tmp')
    with tf.io.gfile.GFile(temporary, 'w') as file:
        file.write(json.dumps(value, indent=1, sort_keys=True) + '\n')
    tf.io.gfile.rename(temporary, path, overwrite=True)


class GfileShardState:
    """`convert_lib.ShardState` through `tf.io.gfile`, plus shard inputs.

    The layout is the same: OUTPUT/.shards/config.json, and per complete
    shard OUTPUT/.shards/NAME.json next to OUTPUT/NAME.
    """

    def __init__(self, output_dir: str):
        self.output_dir = output_dir
        self._state_dir = join(output_dir, _STATE_DIR)

    def claim(self, config: dict) -> str | None:
        """As `ShardState.claim`: returns the first differing field, or
        records `config`; removes partial shards."""
        tf.io.gfile.makedirs(self._state_dir)
        path = join(self._state_dir, 'config.json')
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path, 'r') as file:
                previous = json.load(file)
            for name in sorted(set(previous) | set(config)):
                if previous.get(name) != config.get(name):
                    return name
        else:
            write_json_atomically(path, config)
        for name in tf.io.gfile.listdir(self.output_dir):
            if name.startswith('.') and name.endswith('.tfrecord.tmp'):
                tf.io.gfile.remove(join(self.output_dir, name))
        return None

    def is_complete(self, shard: convert_lib.Shard) -> bool:
        return (tf.io.gfile.exists(join(self.output_dir, shard.name)) and
                tf.io.gfile.exists(self.stats_path(shard)))

    def stats(self, shard: convert_lib.Shard) -> dict:
        with tf.io.gfile.GFile(self.stats_path(shard), 'r') as file:
            return json.load(file)

    def stats_path(self, shard: convert_lib.Shard) -> str:
        return join(self._state_dir, shard.name + '.json')

    def write_sources(self, shards: Sequence[convert_lib.Shard]) -> None:
        """Stores each shard's plan where `read_shard` finds it."""

        def write(shard):
            write_json_atomically(self._sources_path(shard.name), {
                'split': shard.split, 'index': shard.index,
                'count': shard.count,
                'sources': [list(source) for source in shard.sources]})

        with concurrent.futures.ThreadPoolExecutor(_WRITE_THREADS) as pool:
            list(pool.map(write, shards))

    def read_shard(self, name: str) -> convert_lib.Shard:
        with tf.io.gfile.GFile(self._sources_path(name), 'r') as file:
            plan = json.load(file)
        return convert_lib.Shard(
            plan['split'], plan['index'], plan['count'],
            tuple(convert_lib.Source(*source) for source in plan['sources']))

    def _sources_path(self, name: str) -> str:
        return join(self._state_dir, name + _SOURCES_SUFFIX)


class _WriteShardFn(beam.DoFn):
    """Writes the shards named by its input elements."""

    def __init__(self, config: convert_lib.ConvertConfig):
        super().__init__()
        self._config = config

    def setup(self) -> None:
        allocator.retain_freed_memory()

    def process(self, name: str) -> Iterator[dict]:
        shard = GfileShardState(self._config.output_dir).read_shard(name)
        stats = write_shard(shard, self._config)
        logging.info('Wrote %s: %d records, %d skipped.', name,
                     stats['records'], len(stats['skipped']))
        yield {'name': name, **stats}


def _convert(source: convert_lib.Source,
             options: convert_lib.ImageOptions) -> bytes | tuple[str, str]:
    """Converts one input like the in-process path, wherever it is stored."""
    if not is_remote(source.path):
        return convert_lib.try_convert(source.path, source.key, options)
    # A remote photo is read whole: one request instead of a seek per read
    # Pillow makes. The local path's checks on the file come first.
    try:
        with tf.io.gfile.GFile(source.path, 'rb') as file:
            content = file.read()
    except tf.errors.NotFoundError as error:
        return imaging.MISSING_FILE, error.message
    except tf.errors.OpError as error:
        return imaging.UNREADABLE, error.message
    if not content:
        return imaging.EMPTY_FILE, 'zero-byte file'
    return convert_lib.try_convert(io.BytesIO(content), source.key, options)


def _one_line(message: str) -> str:
    return ' '.join(message.split())


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if 'ConversionError' in line:
            return line.split('ConversionError:', 1)[-1].strip()
    return lines[-1] if lines else type(error).__name__
