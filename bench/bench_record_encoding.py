r"""Benchmark: bytes per image and tf.data decode speed of Lab encodings.

Compares the record encoding of `chromagen_tf.data.records` (uint8 Lab planes
in a lossless PNG) with alternatives: raw uint8 planes, the same in a
GZIP-compressed TFRecord file, and raw float16 planes. Each is written for
the bundled photos at --image_size, then read back with a tf.data pipeline
(TFRecordDataset -> parse -> decode to float32 Lab) that is timed. The
chosen encoding is also timed with the standard library's zlib in place of
zlib-ng (the bytes are the same).

Usage:

  python -m bench.bench_record_encoding --image_size=256 --copies=20
"""

import io
import os
import shutil
import sys
import tempfile
import time
from unittest import mock
import zlib

from absl import app
from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

from bench import common
from chromagen_tf import color
from chromagen_tf.data import imaging
from chromagen_tf.data import records
from data_prep import allocator
from data_prep import shard_files

_IMAGE_SIZE = flags.DEFINE_integer('image_size', 256, 'Stored size.')
_COPIES = flags.DEFINE_integer('copies', 20, 'Records per photo in each file.')
_RUNS = flags.DEFINE_integer(
    'runs', 3, 'Timed passes; median reported.', lower_bound=1
)
_PARALLEL = flags.DEFINE_integer(
    'parallel_calls',
    1,
    'num_parallel_calls of the decoding map (1 measures one core).',
)

_RAW = 'lab/raw'
_RAW_SPEC = {_RAW: tf.io.FixedLenFeature([], tf.string)}


def _raw_example(payload: bytes) -> bytes:
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[payload]))
    return tf.train.Example(
        features=tf.train.Features(feature={_RAW: feature})
    ).SerializeToString()


def _pillow_png(planes: np.ndarray) -> bytes:
    """The same planes through Pillow's PNG writer (adaptive filters)."""
    buffer = io.BytesIO()
    Image.fromarray(planes, mode='RGB').save(
        buffer, format='PNG', compress_level=1
    )
    return buffer.getvalue()


def _encoders(size: int):
    """name -> (encode(lab) -> record, decode(record) -> lab, compression)."""

    def decode_png(serialized):
        l_channel, ab = records.decode_record(serialized)
        return tf.concat([l_channel, ab], axis=-1)

    def decode_uint8(serialized):
        payload = tf.io.parse_single_example(serialized, _RAW_SPEC)[_RAW]
        planes = tf.reshape(
            tf.io.decode_raw(payload, tf.uint8), [size, size, 3]
        )
        return records.dequantize_lab(planes)

    def decode_float16(serialized):
        payload = tf.io.parse_single_example(serialized, _RAW_SPEC)[_RAW]
        lab = tf.io.decode_raw(payload, tf.float16)
        return tf.cast(tf.reshape(lab, [size, size, 3]), tf.float32)

    def encode_png(lab):
        return records.encode_example(lab, 'key', size, size)

    def encode_png_stdlib_zlib(lab):
        with mock.patch.object(records, '_deflate', zlib):
            return records.encode_example(lab, 'key', size, size)

    def encode_png_pillow(lab):

        def feature(value):
            if isinstance(value, bytes):
                return tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[value])
                )
            return tf.train.Feature(
                int64_list=tf.train.Int64List(value=[value])
            )

        features = {
            records.KEY: feature(b'key'),
            records.HEIGHT: feature(size),
            records.WIDTH: feature(size),
            records.VERSION: feature(records.SCHEMA_VERSION),
            records.LAB_ENCODED: feature(
                _pillow_png(records.quantize_lab(lab))
            ),
        }
        return tf.train.Example(
            features=tf.train.Features(feature=features)
        ).SerializeToString()

    def encode_uint8(lab):
        return _raw_example(records.quantize_lab(lab).tobytes())

    def encode_float16(lab):
        return _raw_example(lab.astype(np.float16).tobytes())

    def float16_reference(lab):
        return lab.astype(np.float16).astype(np.float32)

    def uint8_reference(lab):
        return records.dequantize_lab(records.quantize_lab(lab)).numpy()

    return {
        'png uint8, Sub+Huffman (chosen)': (
            encode_png,
            decode_png,
            None,
            uint8_reference,
        ),
        'png uint8, Sub+Huffman, stdlib zlib': (
            encode_png_stdlib_zlib,
            decode_png,
            None,
            uint8_reference,
        ),
        'png uint8, Pillow level 1': (
            encode_png_pillow,
            decode_png,
            None,
            uint8_reference,
        ),
        'raw uint8': (encode_uint8, decode_uint8, None, uint8_reference),
        'raw uint8 + GZIP': (
            encode_uint8,
            decode_uint8,
            'GZIP',
            uint8_reference,
        ),
        'raw float16': (
            encode_float16,
            decode_float16,
            None,
            float16_reference,
        ),
    }


def _read_all(dataset: tf.data.Dataset) -> None:
    for _ in dataset:
        pass


def _labs(size: int) -> list[np.ndarray]:
    labs = []
    for source in shard_files.list_image_dir(common.SAMPLE_PHOTOS):
        image = imaging.load_for_storage(source.path, size).image
        labs.append(color.rgb_to_lab_numpy(np.asarray(image)))
    return labs


def main(argv):
    common.check_no_arguments(argv)
    if not allocator.WORKER_ENVIRONMENT.items() <= os.environ.items():
        # Encode as make_tfrecords' workers do. glibc reads these settings
        # only when a process starts, so start again with them.
        os.execve(
            sys.executable,
            sys.orig_argv,
            {**os.environ, **allocator.WORKER_ENVIRONMENT},
        )
    size = _IMAGE_SIZE.value
    labs = _labs(size)
    count = len(labs) * _COPIES.value
    workdir = tempfile.mkdtemp(prefix='bench_encoding_')
    print(f'load average {common.load_average():.2f}')
    print(
        f'{len(labs)} photos x {_COPIES.value} copies at {size}x{size}; '
        f'decode map num_parallel_calls={_PARALLEL.value}, median of '
        f'{_RUNS.value} passes'
    )
    try:
        for name, (encode, decode, compression, reference) in _encoders(
            size
        ).items():
            encode(labs[0])  # Warm-up.
            start = time.process_time()
            encoded = [encode(lab) for lab in labs]
            encode_ms = 1000 * (time.process_time() - start) / len(labs)
            path = os.path.join(workdir, name.replace(' ', '_') + '.tfrecord')
            options = tf.io.TFRecordOptions(compression_type=compression or '')
            with tf.io.TFRecordWriter(path, options) as writer:
                for _ in range(_COPIES.value):
                    for record in encoded:
                        writer.write(record)
            per_image = os.path.getsize(path) / count
            decoded = [
                decode(tf.constant(record)).numpy() for record in encoded
            ]
            error = max(
                np.abs(got - reference(lab)).max()
                for got, lab in zip(decoded, labs)
            )
            error_vs_float = max(
                np.abs(got - lab).max() for got, lab in zip(decoded, labs)
            )
            dataset = tf.data.TFRecordDataset(
                path, compression_type=compression or ''
            ).map(decode, num_parallel_calls=_PARALLEL.value)
            _read_all(dataset.take(20))  # Warm-up: tracing, page cache.
            rate, cpu_rate, _ = common.median_rates(
                lambda d=dataset: _read_all(d), count, _RUNS.value
            )
            print(
                f'{name:20s} {per_image / 1024:7.1f} KiB/image  '
                f'encode {encode_ms:5.2f} CPU-ms/image  decode '
                f'{rate:5.0f} images/s ({cpu_rate:5.0f} per CPU-second)  '
                f'max error '
                f'{error_vs_float:.3f} Lab units (decoder exact: '
                f'{error < 1e-4})'
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    app.run(main)
