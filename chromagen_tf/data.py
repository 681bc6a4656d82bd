"""The Lab TFRecord schema and the tf.data input pipeline.

This module is the single home of the record format: the feature keys, the
quantisation of Lab into bytes, the writer-side `encode_example` used by
`data_prep.make_tfrecords` and the reader-side `decode_record` used by
training, evaluation and the tests.

Record schema (version `SCHEMA_VERSION`), one `tf.train.Example` per image:

  image/key            bytes  source path relative to the input root, or the
                              COCO image id as a decimal string.
  image/height         int64  height of the original photo, in pixels.
  image/width          int64  width of the original photo, in pixels.
  lab/encoded          bytes  PNG, 3 channels, uint8, at the stored size:
                                channel 0: round(L * 255 / 100)
                                channel 1: round(a) + 128, clipped to [0, 255]
                                channel 2: round(b) + 128, clipped to [0, 255]
  lab/schema_version   int64  `SCHEMA_VERSION`.

Quantisation error: at most 0.196 L units and 0.5 a/b units (sRGB never
leaves [-108, 99] in a or b, so the clip never triggers on real photos).
PNG is lossless, so this is the only error. BUILD_NOTES.md records why this
encoding was chosen over raw, GZIP'd and float16 planes.
"""

import os
import struct
import zlib
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

try:
    # zlib-ng writes the same Huffman-only deflate stream as zlib, byte for
    # byte (tests/data_test.py checks this on the bundled photos), 1.8x
    # faster: 0.86 ms against 1.57 ms for a 256x256 record (BENCHMARKS.md).
    from zlib_ng import zlib_ng as _deflate
except ImportError:  # No wheel for this platform: the same bytes, slower.
    _deflate = zlib

from chromagen_tf import color

SCHEMA_VERSION = 1

KEY = 'image/key'
HEIGHT = 'image/height'
WIDTH = 'image/width'
LAB_ENCODED = 'lab/encoded'
VERSION = 'lab/schema_version'

# Quantisation of L: [0, 100] -> [0, 255].
_L_TO_UINT8 = 255.0 / 100.0
# Quantisation of a and b: offset so that 0 maps to 128.
_AB_OFFSET = 128.0

FEATURE_SPEC = {
    KEY: tf.io.FixedLenFeature([], tf.string),
    HEIGHT: tf.io.FixedLenFeature([], tf.int64),
    WIDTH: tf.io.FixedLenFeature([], tf.int64),
    LAB_ENCODED: tf.io.FixedLenFeature([], tf.string),
    VERSION: tf.io.FixedLenFeature([], tf.int64),
}


# quantize_lab computes round(lab * scale + offset) as floor(x + 0.5) on
# values clipped to [0, 255], one channel at a time: fused passes over
# contiguous planes, several times faster than rint + clip on [H, W, 3].
_QUANTIZE_SCALE = (_L_TO_UINT8, 1.0, 1.0)
_QUANTIZE_OFFSET = (0.5, _AB_OFFSET + 0.5, _AB_OFFSET + 0.5)


def quantize_lab(lab: np.ndarray) -> np.ndarray:
    """Real-unit Lab [H, W, 3] -> the uint8 planes stored in a record."""
    lab = np.asarray(lab, dtype=np.float32)
    planes = np.empty(lab.shape, np.uint8)
    plane = np.empty(lab.shape[:-1], np.float32)
    for channel, (scale, offset) in enumerate(
            zip(_QUANTIZE_SCALE, _QUANTIZE_OFFSET)):
        np.multiply(lab[..., channel], scale, out=plane)
        plane += offset
        np.clip(plane, 0.0, 255.0, out=plane)
        planes[..., channel] = plane
    return planes


def dequantize_lab(planes: tf.Tensor) -> tf.Tensor:
    """The uint8 planes of a record -> float32 Lab in real units."""
    planes = tf.cast(planes, tf.float32)
    l_channel = planes[..., :1] / _L_TO_UINT8
    ab = planes[..., 1:] - _AB_OFFSET
    return tf.concat([l_channel, ab], axis=-1)


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(tag)) & 0xFFFFFFFF
    return (struct.pack('>I', len(payload)) + tag + payload +
            struct.pack('>I', crc))


def encode_planes_png(planes: np.ndarray) -> bytes:
    """Encodes uint8 [H, W, 3] planes as a standard 8-bit RGB PNG.

    Every row uses PNG filter type 1 (Sub), computed in NumPy, and the
    stream is deflated with Huffman coding only (no LZ77 matching): on
    Sub-filtered photos that is both faster and smaller than zlib level 1
    (1.6 ms and 89 KiB against 2.6 ms and 105 KiB at 256x256), and less
    than half the CPU of Pillow's PNG writer. Any PNG decoder reads it
    (bench/bench_record_encoding.py measures the alternatives).
    """
    height, width, _ = planes.shape
    rows = planes.reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), np.uint8)
    filtered[:, 0] = 1  # Filter type 1: Sub.
    filtered[:, 1:4] = rows[:, :3]
    np.subtract(rows[:, 3:], rows[:, :-3], out=filtered[:, 4:])
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    compressor = _deflate.compressobj(1, _deflate.DEFLATED, 15, 8,
                                      _deflate.Z_HUFFMAN_ONLY)
    stream = compressor.compress(filtered) + compressor.flush()
    return (b'\x89PNG\r\n\x1a\n' + _png_chunk(b'IHDR', header) +
            _png_chunk(b'IDAT', stream) + _png_chunk(b'IEND', b''))


def encode_lab_png(lab: np.ndarray) -> bytes:
    """Quantises real-unit Lab [H, W, 3] and encodes it as a lossless PNG."""
    return encode_planes_png(quantize_lab(lab))


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def encode_example(
    lab: np.ndarray, key: str, original_height: int, original_width: int
) -> bytes:
    """Serialises one image's Lab planes and metadata as a tf.train.Example.

    Args:
      lab: float Lab image [H, W, 3] in real units (L in [0, 100]).
      key: The source path relative to the input root, or the COCO id.
      original_height: Height of the photo before resizing.
      original_width: Width of the photo before resizing.

    Returns:
      The serialised `tf.train.Example`.
    """
    features = {
        KEY: _bytes_feature(key.encode('utf-8')),
        HEIGHT: _int64_feature(original_height),
        WIDTH: _int64_feature(original_width),
        LAB_ENCODED: _bytes_feature(encode_lab_png(lab)),
        VERSION: _int64_feature(SCHEMA_VERSION),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    # Deterministic: the same image gives the same bytes in every process
    # (protobuf map order otherwise follows the process's hash seed).
    return example.SerializeToString(deterministic=True)


def parse_record(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one serialised record into its raw features."""
    return tf.io.parse_single_example(serialized, FEATURE_SPEC)


def decode_record(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Decodes one serialised record into Lab in real units.

    Args:
      serialized: A scalar string tensor holding a `tf.train.Example`.

    Returns:
      (l_channel, ab): float32 tensors [H, W, 1] with L in [0, 100], and
      [H, W, 2] with a and b in real Lab units.
    """
    features = parse_record(serialized)
    planes = tf.io.decode_png(features[LAB_ENCODED], channels=3)
    lab = dequantize_lab(planes)
    return lab[..., :1], lab[..., 1:]


# --- Input pipeline ----------------------------------------------------------


class CorruptRecordError(RuntimeError):
    """A TFRecord file holds a record that cannot be read or decoded."""


def split_file_pattern(data_dir: str, split: str) -> str:
    """The shard pattern `make_tfrecords` writes for a split."""
    return os.path.join(data_dir, f'{split}-*.tfrecord')


def list_files(file_pattern: str) -> list[str]:
    """Sorted files matching a pattern; raises FileNotFoundError if none."""
    files = sorted(tf.io.gfile.glob(file_pattern))
    if not files:
        raise FileNotFoundError(
            f'No TFRecord files match {file_pattern}. Create them with '
            'python -m data_prep.make_tfrecords.'
        )
    return files


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
        lab = lab[offset_h:offset_h + image_size,
                  offset_w:offset_w + image_size]
    else:
        crop = [tf.minimum(height, image_size), tf.minimum(width, image_size), 3]
        lab = tf.image.stateless_random_crop(lab, crop, seed=seed)
    # Records stored smaller than the training size are scaled up; this only
    # happens when make_tfrecords ran with a smaller --image_size.
    lab = tf.image.resize(lab, [image_size, image_size], method='bilinear')
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

    Returns:
      A dataset of (l_normalized [b, S, S, 1], ab_normalized [b, S, S, 2]),
      float32, where b is the per-replica batch size.
    """
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(
            global_batch_size
        ) if global_batch_size else None
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
    dataset = tf.data.Dataset.from_tensor_slices(files)
    # Shard whole files when there are enough of them, so that each worker
    # reads disjoint files; otherwise shard records after reading.
    shard_files = num_pipelines > 1 and len(files) >= num_pipelines
    files_read = files[pipeline_id::num_pipelines] if shard_files else files
    if shard_files:
        dataset = dataset.shard(num_pipelines, pipeline_id)
        logging.info('Input pipeline %d of %d reads files %s', pipeline_id,
                     num_pipelines, files_read)
    if training:
        # Same seed on every worker: a consistent order of disjoint shards.
        dataset = dataset.shuffle(len(files), seed=seed)
        dataset = dataset.repeat()

    def _read(filename):
        records = tf.data.TFRecordDataset(filename)
        if skip_corrupt_records:
            records = records.ignore_errors(log_warning=True)
        return records

    dataset = dataset.interleave(
        _read,
        # More open files than this pipeline has would read the same file
        # twice at once and put one photo twice in a batch.
        cycle_length=min(len(files_read), 16),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if num_pipelines > 1 and not shard_files:
        dataset = dataset.shard(num_pipelines, pipeline_id)
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed)
        # One stateless seed pair per example keeps augmentation reproducible
        # for a given seed, whatever the parallelism.
        seeds = tf.data.Dataset.random(seed=seed).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds))

        def _decode_train(serialized, example_seed):
            l_channel, ab = decode_record(serialized)
            if not augment:
                return _normalize(
                    *_crop_or_resize(l_channel, ab, image_size, None)
                )
            l_channel, ab = _crop_or_resize(
                l_channel, ab, image_size, example_seed
            )
            flip_seed = example_seed + tf.constant([0, 1], tf.int64)
            flip = tf.random.stateless_uniform([], flip_seed) < 0.5
            l_channel = tf.cond(flip, lambda: l_channel[:, ::-1], lambda: l_channel)
            ab = tf.cond(flip, lambda: ab[:, ::-1], lambda: ab)
            return _normalize(l_channel, ab)

        dataset = dataset.map(
            _decode_train,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    else:

        def _decode_eval(serialized):
            l_channel, ab = decode_record(serialized)
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


def find_corrupt_records(files: list[str]) -> list[tuple[str, int, str]]:
    """Reads and decodes every record of `files` on the host.

    Used to name the culprit after the pipeline failed (tf.data's own error
    does not say which file), and to count what --skip_corrupt_records drops.

    Returns:
      (file, record index, error message) for each bad record. A file whose
      framing is broken stops being readable at the first bad record, which
      is then the last one reported for it.
    """
    problems = []
    for filename in files:
        index = 0
        iterator = iter(tf.data.TFRecordDataset(filename))
        while True:
            try:
                serialized = next(iterator)
            except StopIteration:
                break
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError,
                    tf.errors.OutOfRangeError) as error:
                problems.append((filename, index, error.message))
                break
            try:
                decode_record(serialized)
            except (tf.errors.InvalidArgumentError,
                    tf.errors.DataLossError) as error:
                problems.append((filename, index, error.message))
            index += 1
    return problems
