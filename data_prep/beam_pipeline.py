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
    order with `convert_lib.convert_image` and writes the shard with the
    in-process path's `shard_files.ShardWriter` (hidden temporary name,
    statistics in OUTPUT/.shards/NAME.json, then a rename into place);
  * after the pipeline, the driver writes manifest.json from those
    statistics with `manifest_lib.write`, as the in-process path does.

All file access goes through `tf.io.gfile`, so the photos and the output may
live on gs:// (or any file system TensorFlow knows). The bookkeeping is
`shard_files.ShardState`, shared with the in-process path, so either path
can finish a conversion the other started. Parallelism is one shard per
task: use at least a few shards per worker (--images_per_shard or
--num_shards).

Example:

  manifest = beam_pipeline.run(config, sources, runner='DirectRunner')
"""

import concurrent.futures
import io
import json
from typing import Iterator, Sequence

from absl import logging
import apache_beam as beam
from apache_beam.options import pipeline_options
import tensorflow as tf

from chromagen_tf import errors
from chromagen_tf import files
from chromagen_tf.data import imaging
from data_prep import convert_config
from data_prep import convert_lib
from data_prep import manifest_lib
from data_prep import shard_files

# Namespace of the Beam counters (images converted, skipped per reason), as
# shown by the Dataflow monitoring page.
METRICS_NAMESPACE = 'chromagen'

_SOURCES_SUFFIX = '.sources.json'
# Planning files are small; writing them concurrently hides the latency of
# a remote file system (about 50 ms per object on GCS).
_WRITE_THREADS = 16


def run(
    config: convert_config.ConvertConfig,
    sources: Sequence[shard_files.Source],
    listing_skips: Sequence[dict] = (),
    runner: str = 'DirectRunner',
    beam_args: Sequence[str] = (),
) -> dict:
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
    with convert_lib.output_errors(config.output_dir):
        return _run(config, sources, listing_skips, runner, beam_args)


def _run(
    config: convert_config.ConvertConfig,
    sources: Sequence[shard_files.Source],
    listing_skips: Sequence[dict],
    runner: str,
    beam_args: Sequence[str],
) -> dict:
    tf.io.gfile.makedirs(config.output_dir)
    state = shard_files.ShardState(config.output_dir)
    all_shards, pending = convert_lib.start(
        config, sources, listing_skips, state
    )
    if pending:
        write_sources(state, pending)
        logging.info('Converting %d shards with %s.', len(pending), runner)
        options = pipeline_options.PipelineOptions(list(beam_args))
        try:
            with beam.Pipeline(runner=runner, options=options) as pipeline:
                _ = (
                    pipeline
                    | 'ShardNames'
                    >> beam.Create([shard.name for shard in pending])
                    | 'Spread' >> beam.Reshuffle()
                    | 'WriteShards' >> beam.ParDo(_WriteShardFn(config))
                )
        except Exception as error:  # pylint: disable=broad-except
            # Runners wrap worker exceptions in their own types; the first
            # line of the original message is what the user needs.
            raise convert_lib.ConversionError(
                f'the {runner} pipeline failed: {_conversion_message(error)}'
            ) from error
    missing = [
        shard.name for shard in all_shards if not state.is_complete(shard)
    ]
    if missing:
        raise convert_lib.ConversionError(
            f'the pipeline finished without writing {", ".join(missing)}'
        )
    return manifest_lib.write(config, sources, listing_skips, all_shards, state)


def write_shard(
    shard: shard_files.Shard, config: convert_config.ConvertConfig
) -> dict:
    """Converts and writes one planned shard; the pipeline's unit of work.

    Returns:
      The shard's statistics, as stored in OUTPUT/.shards/NAME.json.

    Raises:
      ConversionError: with --strict, on the first broken input.
    """
    options = config.image_options
    state = shard_files.ShardState(config.output_dir)
    with state.open(shard, unique=True) as writer:
        for source in shard.sources:
            result = _convert(source, options)
            if isinstance(result, bytes):
                writer.write(result)
                beam.metrics.Metrics.counter(METRICS_NAMESPACE, 'records').inc()
                continue
            reason, detail = result
            if config.strict and reason not in imaging.FILTER_REASONS:
                raise convert_lib.ConversionError(
                    f'{source.path}: {reason} ({detail})'
                )
            writer.skip(
                manifest_lib.skip_entry(
                    source, reason, detail, config, shard.split
                )
            )
            beam.metrics.Metrics.counter(
                METRICS_NAMESPACE, f'skipped_{reason}'
            ).inc()
        return writer.commit()


def write_sources(
    state: shard_files.ShardState, shards: Sequence[shard_files.Shard]
) -> None:
    """Stores each shard's plan where `read_shard` finds it."""

    def write(shard):
        files.write_json_atomically(
            _sources_path(state, shard.name),
            {
                'split': shard.split,
                'index': shard.index,
                'count': shard.count,
                'sources': [list(source) for source in shard.sources],
            },
        )

    with concurrent.futures.ThreadPoolExecutor(_WRITE_THREADS) as pool:
        list(pool.map(write, shards))


def read_shard(state: shard_files.ShardState, name: str) -> shard_files.Shard:
    """The shard `write_sources` stored under `name`."""
    with tf.io.gfile.GFile(_sources_path(state, name), 'r') as file:
        plan = json.load(file)
    return shard_files.Shard(
        plan['split'],
        plan['index'],
        plan['count'],
        tuple(shard_files.Source(*source) for source in plan['sources']),
    )


def _sources_path(state: shard_files.ShardState, name: str) -> str:
    return files.join(state.state_dir, name + _SOURCES_SUFFIX)


class _WriteShardFn(beam.DoFn):
    """Writes the shards named by its input elements."""

    def __init__(self, config: convert_config.ConvertConfig):
        super().__init__()
        self._config = config

    def process(self, name: str) -> Iterator[dict]:
        shard = read_shard(
            shard_files.ShardState(self._config.output_dir), name
        )
        stats = write_shard(shard, self._config)
        logging.info(
            'Wrote %s: %d records, %d skipped.',
            name,
            stats['records'],
            len(stats['skipped']),
        )
        yield {'name': name, **stats}


def _convert(
    source: shard_files.Source, options: convert_config.ImageOptions
) -> bytes | tuple[str, str]:
    """Converts one input like the in-process path, wherever it is stored."""
    if not files.is_remote(source.path):
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


def _conversion_message(error: Exception) -> str:
    """The ConversionError message inside a runner's wrapped traceback."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if 'ConversionError' in line:
            return line.split('ConversionError:', 1)[-1].strip()
    return lines[-1] if lines else errors.first_line(error)
