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
encoding was chosen over raw and float16 planes.
"""

import io

import numpy as np
import tensorflow as tf

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


def quantize_lab(lab: np.ndarray) -> np.ndarray:
    """Real-unit Lab [H, W, 3] -> the uint8 planes stored in a record."""
    lab = np.asarray(lab, dtype=np.float32)
    planes = np.empty(lab.shape, dtype=np.float32)
    planes[..., 0] = lab[..., 0] * _L_TO_UINT8
    planes[..., 1:] = lab[..., 1:] + _AB_OFFSET
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8)


def dequantize_lab(planes: tf.Tensor) -> tf.Tensor:
    """The uint8 planes of a record -> float32 Lab in real units."""
    planes = tf.cast(planes, tf.float32)
    l_channel = planes[..., :1] / _L_TO_UINT8
    ab = planes[..., 1:] - _AB_OFFSET
    return tf.concat([l_channel, ab], axis=-1)


def encode_lab_png(lab: np.ndarray, compress_level: int = 1) -> bytes:
    """Quantises real-unit Lab [H, W, 3] and encodes it as a lossless PNG.

    Level 1 is ~4x faster to write than PIL's default level 6 and decodes as
    fast; the size difference is a few percent on photos (BUILD_NOTES.md).
    """
    from PIL import Image  # pylint: disable=g-import-not-at-top

    buffer = io.BytesIO()
    Image.fromarray(quantize_lab(lab), mode='RGB').save(
        buffer, format='PNG', compress_level=compress_level
    )
    return buffer.getvalue()


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
    return example.SerializeToString()


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
