"""Photos -> sharded Lab TFRecords: the library behind make_tfrecords.

The conversion is planned before anything is decoded: the inputs are listed,
sorted by key, sampled and shuffled with the seed, split into train and val,
and each split is cut into shards of consecutive inputs. Every shard is
therefore a pure function of the configuration, which gives the two
guarantees the tool makes:

  * the output does not depend on the number of worker processes, because
    results are written in plan order;
  * a killed run is finished by running the same command again: shards are
    written under a temporary name and renamed only when complete, so any
    shard under its final name is complete and is not redone.

`convert_image` is the per-image step (decode, resize, Lab, serialise); a
distributed pipeline can map it over inputs on its own. The files (listing
the inputs, the shards, the restart state) are handled by `shard_files` and
the manifest by `manifest_lib`; the Beam pipeline shares both.
"""

import collections
import contextlib
import functools
import math
import multiprocessing
import random
from typing import Callable, Iterable, Iterator, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tqdm

from chromagen_tf import color
from chromagen_tf import errors
from chromagen_tf.data import imaging
from chromagen_tf.data import records
from data_prep import coco
from data_prep import convert_config
from data_prep import manifest_lib
from data_prep import shard_files

# Unexpected exceptions while converting one image are skipped under this
# reason rather than ending a run of 118k images.
INTERNAL_ERROR = 'internal_error'

# Inputs handed to a worker at once, and how many such chunks may wait for
# the writer per worker: enough to keep the pool busy, bounded so memory
# does not grow with the dataset.
_CHUNK_SIZE = 8
_CHUNKS_IN_FLIGHT_PER_PROCESS = 4


class ConversionError(errors.ChromaGenError):
    """A fatal problem: --strict and a bad image (exit 1)."""


class OutputFolderError(ConversionError):
    """The output folder cannot be used: unwritable, or it holds another
    conversion (exit 2: nothing was converted)."""

    exit_code = errors.USAGE_EXIT_CODE


def convert_image(
    path: imaging.Source, key: str, options: convert_config.ImageOptions
) -> bytes:
    """Converts one photo into a serialised Lab record.

    Args:
      path: The photo: a local path, or an open binary file (for example
        from a distributed file system).
      key: The record key: the path relative to the input root, or the COCO
        image id.
      options: Stored size, resize policy and input limits.

    Returns:
      A serialised `tf.train.Example` in the schema of
      `chromagen_tf.data.records`.

    Raises:
      imaging.BadImageError: if the photo is broken, too small, too large or
        grayscale.
    """
    loaded = imaging.load_for_storage(
        path,
        options.image_size,
        options.resize,
        options.max_pixels,
        options.min_size,
    )
    lab = color.rgb_to_lab_numpy(np.asarray(loaded.image, dtype=np.uint8))
    if imaging.is_grayscale_lab(lab):
        raise imaging.BadImageError(imaging.GRAYSCALE, 'no colour')
    # encode_example serialises deterministically, so shards are
    # byte-identical across processes and a resumed conversion equals an
    # uninterrupted one.
    return records.encode_example(
        lab, key, loaded.original_height, loaded.original_width
    )


def plan_shards(
    sources: Sequence[shard_files.Source],
    config: convert_config.ConvertConfig,
) -> dict[str, list[shard_files.Shard]]:
    """Samples, shuffles and splits the inputs, then cuts shards.

    The order of `sources` does not matter: they are sorted by key first, so
    the plan depends only on the set of inputs and the configuration.

    Returns:
      {'train': [...], 'val': [...]}; a split with no inputs has no shards.
    """
    ordered = sorted(set(sources))
    rng = random.Random(config.seed)
    if 0 < config.max_images < len(ordered):
        ordered = rng.sample(ordered, config.max_images)
    else:
        rng.shuffle(ordered)
    if config.num_val is not None:
        num_val = min(config.num_val, len(ordered))
    else:
        num_val = int(round(config.val_fraction * len(ordered)))
    by_split = {'val': ordered[:num_val], 'train': ordered[num_val:]}
    if config.num_shards:
        per_shard = math.ceil(len(by_split['train']) / config.num_shards)
        train_shards = config.num_shards
    else:
        per_shard = config.images_per_shard
        train_shards = math.ceil(len(by_split['train']) / per_shard)
    plan = {}
    for split in records.SPLITS:
        items = by_split[split]
        if split == 'train':
            count = train_shards
        else:
            count = math.ceil(len(items) / max(per_shard, 1))
        count = min(max(count, 1), len(items))
        plan[split] = [
            shard_files.Shard(split, index, count, tuple(chunk))
            for index, chunk in enumerate(_balanced_chunks(items, count))
        ]
    return plan


def run(
    config: convert_config.ConvertConfig,
    sources: Sequence[shard_files.Source],
    listing_skips: Sequence[dict] = (),
    show_progress: bool = True,
) -> dict:
    """Converts `sources` into shards under `config.output_dir`.

    Args:
      config: The conversion.
      sources: The inputs found by listing.
      listing_skips: Inputs already rejected while listing (e.g. files named
        by the annotations but missing), as manifest entries.
      show_progress: Whether to draw a progress bar on stderr.

    Returns:
      The manifest, also written to OUTPUT/manifest.json.

    Raises:
      ConversionError: with --strict, on the first bad image; when the
        output folder holds a conversion with a different configuration;
        or when the output folder cannot be written.
    """
    with output_errors(config.output_dir):
        state = shard_files.ShardState(config.output_dir)
        all_shards, pending = start(config, sources, listing_skips, state)
        _convert_shards(pending, config, state, show_progress)
        return manifest_lib.write(
            config, sources, listing_skips, all_shards, state
        )


def list_inputs(
    config: convert_config.ConvertConfig,
) -> tuple[list[shard_files.Source], list[dict]]:
    """The inputs of a validated config, and those rejected while listing.

    Raises:
      errors.UsageError: if there is no photo to convert.
    """
    if config.image_dir is not None:
        sources, skipped = shard_files.list_image_dir(config.image_dir), []
    else:
        sources, skipped = coco.list_split(config.coco_dir, config.split)
    if not sources:
        raise errors.UsageError(f'no photos found in {config.input_root}')
    logging.info('Found %d photos in %s.', len(sources), config.input_root)
    return sources, skipped


@contextlib.contextmanager
def output_errors(output_dir: str) -> Iterator[None]:
    """Turns tf.io.gfile errors into a one-line OutputFolderError naming the
    output folder (make_tfrecords prints it instead of a traceback)."""
    try:
        yield
    except tf.errors.OpError as error:
        raise OutputFolderError(
            f'{output_dir}: {errors.one_line(error.message)}'
        ) from None


def start(
    config: convert_config.ConvertConfig,
    sources: Sequence[shard_files.Source],
    listing_skips: Sequence[dict],
    state: shard_files.ShardState,
) -> tuple[list[shard_files.Shard], list[shard_files.Shard]]:
    """Plans the shards and claims the output folder for them.

    Args:
      config: The conversion.
      sources: The inputs found by listing.
      listing_skips: Inputs already rejected while listing.
      state: The restart bookkeeping of the output folder.

    Returns:
      (all_shards, pending): every planned shard, and those not yet complete.

    Raises:
      ConversionError: with --strict, if listing rejected a broken input; or
        when the output folder holds a conversion with a different
        configuration.
    """
    plan = plan_shards(sources, config)
    all_shards = [shard for split in records.SPLITS for shard in plan[split]]
    mismatch = state.claim(convert_config.comparable_config(config))
    if mismatch:
        raise OutputFolderError(
            f'{config.output_dir} holds a conversion with a different '
            f'{mismatch}; use a new --output_dir or the same settings.'
        )
    if config.strict:
        for skip in listing_skips:
            if skip['reason'] not in imaging.FILTER_REASONS:
                raise ConversionError(
                    f'{skip["path"]}: {skip["reason"]} ({skip["detail"]})'
                )
    pending = [shard for shard in all_shards if not state.is_complete(shard)]
    done = len(all_shards) - len(pending)
    if done:
        logging.info(
            'Resuming: %d of %d shards are already complete.',
            done,
            len(all_shards),
        )
    return all_shards, pending


def _convert_shards(
    shards: Sequence[shard_files.Shard],
    config: convert_config.ConvertConfig,
    state: shard_files.ShardState,
    show_progress: bool,
) -> None:
    if not shards:
        return
    options = config.image_options
    jobs = ((shard, source) for shard in shards for source in shard.sources)
    total = sum(len(shard.sources) for shard in shards)
    bar = tqdm.tqdm(
        total=total, unit='images', desc='convert', disable=not show_progress
    )
    pool = None
    if config.num_processes > 0:
        # Not fork: this process has TensorFlow's threads running, and a
        # forked child can inherit a lock one of them held. Each spawned
        # worker imports TensorFlow again, once per run: 2.5-3 CPU-seconds
        # (make_tfrecords on 50 photos with 2 workers: 9.3 CPU-s, against
        # 3.8 when forked).
        pool = multiprocessing.get_context('spawn').Pool(config.num_processes)
    writer = None
    try:
        for (shard, source), result in _ordered_map(
            functools.partial(_convert_chunk, options),
            jobs,
            pool,
            config.num_processes,
        ):
            if writer is None or writer.shard is not shard:
                if writer is not None:
                    writer.commit()
                writer = state.open(shard)
            if isinstance(result, bytes):
                writer.write(result)
            else:
                reason, detail = result
                if config.strict and reason not in imaging.FILTER_REASONS:
                    raise ConversionError(f'{source.path}: {reason} ({detail})')
                writer.skip(
                    manifest_lib.skip_entry(
                        source, reason, detail, config, shard.split
                    )
                )
            bar.update(1)
        if writer is not None:
            writer.commit()
    finally:
        if writer is not None:
            writer.close()  # A no-op after commit; else --strict or Ctrl-C.
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()


def _ordered_map(
    function: Callable, jobs: Iterable, pool, num_processes: int
) -> Iterator[tuple[object, object]]:
    """Yields (job, function result) in job order, bounded in memory."""
    chunks = _chunked(jobs, _CHUNK_SIZE)
    if pool is None:
        for chunk in chunks:
            yield from zip(chunk, function([job[1] for job in chunk]))
        return
    window = collections.deque()
    limit = num_processes * _CHUNKS_IN_FLIGHT_PER_PROCESS
    for chunk in chunks:
        window.append(
            (chunk, pool.apply_async(function, ([job[1] for job in chunk],)))
        )
        if len(window) >= limit:
            done_chunk, result = window.popleft()
            yield from zip(done_chunk, result.get())
    while window:
        done_chunk, result = window.popleft()
        yield from zip(done_chunk, result.get())


def _convert_chunk(
    options: convert_config.ImageOptions, sources: Sequence[shard_files.Source]
) -> list:
    """Worker: converts a few photos; a failure becomes (reason, detail)."""
    return [try_convert(source.path, source.key, options) for source in sources]


def try_convert(
    path: imaging.Source, key: str, options: convert_config.ImageOptions
) -> bytes | tuple[str, str]:
    """`convert_image`, with a failure returned as (reason, detail)."""
    try:
        return convert_image(path, key, options)
    except imaging.BadImageError as error:
        return error.reason, error.detail
    except Exception as error:  # pylint: disable=broad-except
        return INTERNAL_ERROR, repr(error)[:200]


def _balanced_chunks(items: Sequence, count: int) -> list[Sequence]:
    """`count` consecutive runs of `items` whose sizes differ by at most 1."""
    size, extra = divmod(len(items), count)
    chunks, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks


def _chunked(iterable: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
