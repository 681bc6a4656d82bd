"""The Lab TFRecord schema: feature keys, quantisation, encode and decode.

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

It is also the home of a data directory's layout, which the converter
writes and every reader globs:

  DATA_DIR/{train,val}-NNNNN-of-NNNNN.tfrecord   the shards (`shard_name`)
  DATA_DIR/manifest.json                         what was written and skipped
"""

import struct
from typing import Optional
import zlib

import numpy as np
import tensorflow as tf

try:
    # zlib-ng writes the same Huffman-only deflate stream as zlib, byte for
    # byte (tests/data_test.py checks this on the bundled photos), and a
    # 256x256 record costs 1.26 CPU-ms instead of 2.00 (BENCHMARKS.md).
    from zlib_ng import zlib_ng as _deflate
except ImportError:  # No wheel for this platform: the same bytes, slower.
    _deflate = zlib


from chromagen_tf import errors
from chromagen_tf import files

SCHEMA_VERSION = 1

SPLITS = ('train', 'val')
MANIFEST_NAME = 'manifest.json'
_SHARD_SUFFIX = '.tfrecord'


def shard_name(split: str, index: int, count: int) -> str:
    """The file name of shard `index` of `count` of a split."""
    return f'{split}-{index:05d}-of-{count:05d}{_SHARD_SUFFIX}'


def shard_pattern(data_dir: str, split: str) -> str:
    """The glob pattern of a split's shards in a data directory."""
    return files.join(data_dir, f'{split}-*{_SHARD_SUFFIX}')


def manifest_path(data_dir: str) -> str:
    return files.join(data_dir, MANIFEST_NAME)


def read_manifest(data_dir: str) -> Optional[dict]:
    """A data directory's manifest, or None if it has none."""
    return files.read_json(manifest_path(data_dir))


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
        zip(_QUANTIZE_SCALE, _QUANTIZE_OFFSET)
    ):
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
    return (
        struct.pack('>I', len(payload)) + tag + payload + struct.pack('>I', crc)
    )


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
    compressor = _deflate.compressobj(
        1, _deflate.DEFLATED, 15, 8, _deflate.Z_HUFFMAN_ONLY
    )
    stream = compressor.compress(filtered) + compressor.flush()
    return (
        b'\x89PNG\r\n\x1a\n'
        + _png_chunk(b'IHDR', header)
        + _png_chunk(b'IDAT', stream)
        + _png_chunk(b'IEND', b'')
    )


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
            except (
                tf.errors.DataLossError,
                tf.errors.InvalidArgumentError,
                tf.errors.OutOfRangeError,
            ) as error:
                problems.append((filename, index, error.message))
                break
            try:
                decode_record(serialized)
            except (
                tf.errors.InvalidArgumentError,
                tf.errors.DataLossError,
            ) as error:
                problems.append((filename, index, error.message))
            index += 1
    return problems


class CorruptRecordError(errors.ChromaGenError, RuntimeError):
    """A TFRecord file holds a record that cannot be read or decoded."""
