"""The tf.data input pipeline over the Lab TFRecords of make_tfrecords.

`make_dataset` is what training, evaluation and the tests read records
with: shuffled, sharded per worker, decoded with `records.decode_record`,
cropped and flipped, normalised to the networks' scale (L/50-1, ab/110)
and batched per replica. It follows the tf.data guide's order: shard files
before reading them, shuffle before augmenting, batch, then prefetch.

Example:

  dataset = input_pipeline.make_dataset(
      input_pipeline.records.shard_pattern('data/coco10k', 'train'),
      training=True, image_size=256, global_batch_size=16)
"""

from typing import Optional

from absl import logging
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf import errors
from chromagen_tf import hints as hints_lib
from chromagen_tf.data import records


def list_files(file_pattern: str) -> list[str]:
    """Sorted files matching a pattern; raises errors.NotFoundError if none."""
    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise errors.NotFoundError(
            f'No TFRecord files match {file_pattern}. Create them with '
            'python -m data_prep.make_tfrecords.'
        )
    return files


def count_records(data_dir: str, split: str) -> int:
    """Number of records of a split: from manifest.json, else by reading."""
    manifest = records.read_manifest(data_dir) or {}
    count = manifest.get('splits', {}).get(split, {}).get('records')
    if isinstance(count, int):
        return count
    files = list_files(records.shard_pattern(data_dir, split))
    return int(
        tf.data.TFRecordDataset(files).reduce(
            tf.constant(0, tf.int64), lambda total, _: total + 1
        )
    )


def record_keys(data_dir: str, split: str) -> list[str]:
    """The keys of a split's records, in file order (relative photo paths
    for a converted folder, image ids for COCO)."""
    files = list_files(records.shard_pattern(data_dir, split))
    return [
        records.parse_record(serialized)[records.KEY].numpy().decode('utf-8')
        for serialized in tf.data.TFRecordDataset(files)
    ]


def eval_steps(
    num_examples: int, global_batch_size: int, num_pipelines: int = 1
) -> int:
    """Batches per replica that `make_eval_dataset` yields, on every replica.

    Each of the `num_pipelines` pipelines reads every num_pipelines-th
    record, so it holds at most ceil(num_examples / num_pipelines) of them.
    """
    per_pipeline = -(-num_examples // num_pipelines)
    pipeline_batch = global_batch_size // num_pipelines
    return max(1, -(-per_pipeline // pipeline_batch))


def make_eval_dataset(
    file_pattern: str,
    *,
    image_size: int,
    global_batch_size: int,
    num_examples: int,
    input_context: Optional[tf.distribute.InputContext] = None,
    skip_corrupt_records: bool = False,
) -> tf.data.Dataset:
    """Every record exactly once, in equal full batches on every replica.

    Each input pipeline takes every num_pipelines-th record (so a split of
    one file serves any number of workers), then zero examples of weight 0
    fill its batches up to `eval_steps(...)` per replica. Every replica
    thus runs the same number of steps on non-empty batches, and no worker
    waits in a collective that another skipped; metrics weighted by the
    third element count each real example once.

    Returns:
      A dataset of (l_normalized [b, S, S, 1], ab_normalized [b, S, S, 2],
      weight [b]), b the per-replica batch size, with drop_remainder.
    """
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(global_batch_size)
        num_pipelines = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
        replicas_per_pipeline = (
            input_context.num_replicas_in_sync // num_pipelines
        )
    else:
        batch_size, num_pipelines, pipeline_id = global_batch_size, 1, 0
        replicas_per_pipeline = 1
    steps = eval_steps(num_examples, global_batch_size, num_pipelines)
    serialized_records = tf.data.TFRecordDataset(list_files(file_pattern))
    if skip_corrupt_records:
        serialized_records = serialized_records.ignore_errors(log_warning=True)
    serialized_records = serialized_records.shard(num_pipelines, pipeline_id)

    def _decode(serialized):
        l_channel, ab = records.decode_record(serialized)
        l_channel, ab = _normalize(
            *_crop_or_resize(l_channel, ab, image_size, None)
        )
        return l_channel, ab, tf.constant(1.0)

    examples = serialized_records.map(
        _decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if skip_corrupt_records:
        examples = examples.ignore_errors(log_warning=True)
    padding = tf.data.Dataset.from_tensors(
        (
            tf.fill([image_size, image_size, 1], -1.0),
            tf.zeros([image_size, image_size, 2]),
            tf.constant(0.0),
        )
    ).repeat()
    total = steps * replicas_per_pipeline * batch_size
    examples = examples.concatenate(padding).take(total)
    return examples.batch(batch_size, drop_remainder=True).prefetch(
        tf.data.AUTOTUNE
    )


def _crop_or_resize(
    l_channel: tf.Tensor, ab: tf.Tensor, image_size: int, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Random crop (training) when the stored image is larger, else resize."""
    lab = tf.concat([l_channel, ab], axis=-1)
    height, width = tf.shape(lab)[0], tf.shape(lab)[1]
    if seed is None:
        # Evaluation: a deterministic centre crop.
        offset_h = tf.maximum(height - image_size, 0) // 2
        offset_w = tf.maximum(width - image_size, 0) // 2
        lab = lab[
            offset_h : offset_h + image_size, offset_w : offset_w + image_size
        ]
    else:
        crop = [
            tf.minimum(height, image_size),
            tf.minimum(width, image_size),
            3,
        ]
        lab = tf.image.stateless_random_crop(lab, crop, seed=seed)
    # Records stored smaller than the training size are scaled up; this only
    # happens when make_tfrecords ran with a smaller --image_size.
    lab = tf.image.resize(lab, [image_size, image_size], method='bilinear')
    lab = tf.ensure_shape(lab, [image_size, image_size, 3])
    return lab[..., :1], lab[..., 1:]


def _random_scale_crop(
    l_channel: tf.Tensor,
    ab: tf.Tensor,
    image_size: int,
    min_crop_scale: float,
    seed: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor]:
    """A random square of side scale * the shorter side, resized.

    scale is uniform in [min_crop_scale, 1]: objects reach the network at
    1x to 1/min_crop_scale of their stored size, which multiplies the
    distinct views of a small photo set (the scale augmentation of
    Szegedy et al. 2015, on squares).
    """
    lab = tf.concat([l_channel, ab], axis=-1)
    shape = tf.shape(lab)
    shorter = tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)
    scale = tf.random.stateless_uniform(
        [], seed + tf.constant([0, 2], tf.int64), min_crop_scale, 1.0
    )
    side = tf.cast(tf.maximum(tf.round(scale * shorter), 1.0), tf.int32)
    lab = tf.image.stateless_random_crop(lab, [side, side, 3], seed=seed)
    lab = tf.image.resize(
        lab, [image_size, image_size], method='bilinear', antialias=True
    )
    lab = tf.ensure_shape(lab, [image_size, image_size, 3])
    return lab[..., :1], lab[..., 1:]


def _normalize(l_channel, ab):
    return color.normalize_l(l_channel), color.normalize_ab(ab)


def make_dataset(
    file_pattern: str,
    *,
    training: bool,
    image_size: int,
    global_batch_size: Optional[int] = None,
    input_context: Optional[tf.distribute.InputContext] = None,
    seed: int = 0,
    shuffle_buffer: int = 1000,
    skip_corrupt_records: bool = False,
    deterministic: Optional[bool] = None,
    drop_remainder: Optional[bool] = None,
    augment: bool = True,
    min_crop_scale: float = 1.0,
    hints: str = 'none',
    no_hint_probability: float = hints_lib.NO_HINT_PROBABILITY,
) -> tf.data.Dataset:
    """Builds the training or evaluation pipeline over Lab TFRecords.

    Args:
      file_pattern: Glob of TFRecord shards, e.g. `DATA_DIR/train-*.tfrecord`.
      training: Shuffle, augment (random flip and crop) and repeat forever.
        Otherwise every record is read exactly once, in file order, and the
        final partial batch is kept.
      image_size: Output height and width.
      global_batch_size: Batch size over all replicas; required unless
        `input_context` is given (it then supplies the per-replica size).
      input_context: From `strategy.distribute_datasets_from_function`.
      seed: Seed for the file order, the shuffle and the augmentation.
      shuffle_buffer: Records held by the shuffle buffer (training only).
      skip_corrupt_records: Drop unreadable or undecodable records instead of
        failing; TF logs a warning for each one.
      deterministic: Passed to `interleave`; defaults to `not training`.
      drop_remainder: Defaults to `training`.
      augment: With `training`, apply the random crop and flip; otherwise a
        centre crop.
      min_crop_scale: Below 1, training crops are random squares of a
        random fraction in [min_crop_scale, 1] of the stored image's shorter
        side, resized to image_size (scale augmentation); 1 keeps crops of
        image_size pixels.
      hints: 'local' (training only) adds hints simulated from each
        example's ground truth (`hints.sample`); 'none' adds none.
      no_hint_probability: With hints='local', the share of examples that
        get no hint at all.

    Returns:
      A dataset of (l_normalized [b, S, S, 1], ab_normalized [b, S, S, 2]),
      float32, where b is the per-replica batch size; with hints='local'
      also (hint_ab [b, S, S, 2], hint_mask [b, S, S, 1]).

    Every example draws its crop, flip and hints from its own stateless
    seed: the seed sequence of `seed` with the input pipeline's id folded
    in, so that workers differ from each other and a rerun repeats itself.
    Replicas fed by one pipeline take different examples, hence different
    seeds.
    """
    if hints not in ('none', 'local'):
        raise ValueError(f"hints must be 'none' or 'local', got {hints!r}")
    if input_context is not None:
        batch_size = (
            input_context.get_per_replica_batch_size(global_batch_size)
            if global_batch_size
            else None
        )
        num_pipelines = input_context.num_input_pipelines
        pipeline_id = input_context.input_pipeline_id
    else:
        batch_size = global_batch_size
        num_pipelines, pipeline_id = 1, 0
    if not batch_size:
        raise ValueError('make_dataset needs global_batch_size.')
    if deterministic is None:
        deterministic = not training
    if drop_remainder is None:
        drop_remainder = training

    files = list_files(file_pattern)

    def _read(filename):
        file_records = tf.data.TFRecordDataset(filename)
        if skip_corrupt_records:
            file_records = file_records.ignore_errors(log_warning=True)
        return file_records

    if num_pipelines > 1 and len(files) < num_pipelines:
        # Fewer files than workers: every worker reads all of them in file
        # order and keeps every num_pipelines-th record, before anything
        # non-deterministic, so each record goes to exactly one worker.
        dataset = _read(files).shard(num_pipelines, pipeline_id)
        if training:
            dataset = dataset.repeat()
    else:
        # Whole files per worker: each reads a disjoint set of them.
        files_read = files[pipeline_id::num_pipelines]
        dataset = tf.data.Dataset.from_tensor_slices(files).shard(
            num_pipelines, pipeline_id
        )
        if num_pipelines > 1:
            logging.info(
                'Input pipeline %d of %d reads files %s',
                pipeline_id,
                num_pipelines,
                files_read,
            )
        if training:
            dataset = dataset.shuffle(len(files), seed=seed).repeat()
        dataset = dataset.interleave(
            _read,
            # More open files than this pipeline has would read the same
            # file twice at once and put one photo twice in a batch.
            cycle_length=min(len(files_read), 16),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
        # One stateless seed pair per example keeps augmentation reproducible
        # for a given seed, whatever the parallelism.
        seeds = (
            tf.data.Dataset.random(seed=seed)
            .batch(2)
            .map(lambda pair: hints_lib.fold_seed(pair, pipeline_id))
        )
        dataset = tf.data.Dataset.zip((dataset, seeds))

        def _decode_train(serialized, example_seed):
            l_channel, ab = _augment(serialized, example_seed)
            if hints == 'none':
                return l_channel, ab
            hint_ab, hint_mask = hints_lib.sample(
                ab,
                example_seed + tf.constant([0, 3], tf.int64),
                no_hint_probability=no_hint_probability,
            )
            return l_channel, ab, hint_ab, hint_mask

        def _augment(serialized, example_seed):
            l_channel, ab = records.decode_record(serialized)
            if not augment:
                return _normalize(
                    *_crop_or_resize(l_channel, ab, image_size, None)
                )
            if min_crop_scale < 1.0:
                l_channel, ab = _random_scale_crop(
                    l_channel, ab, image_size, min_crop_scale, example_seed
                )
            else:
                l_channel, ab = _crop_or_resize(
                    l_channel, ab, image_size, example_seed
                )
            flip_seed = example_seed + tf.constant([0, 1], tf.int64)
            flip = tf.random.stateless_uniform([], flip_seed) < 0.5
            l_channel = tf.cond(
                flip, lambda: l_channel[:, ::-1], lambda: l_channel
            )
            ab = tf.cond(flip, lambda: ab[:, ::-1], lambda: ab)
            return _normalize(l_channel, ab)

        dataset = dataset.map(
            _decode_train,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    else:

        def _decode_eval(serialized):
            l_channel, ab = records.decode_record(serialized)
            l_channel, ab = _crop_or_resize(l_channel, ab, image_size, None)
            return _normalize(l_channel, ab)

        dataset = dataset.map(
            _decode_eval,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    if skip_corrupt_records:
        dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
