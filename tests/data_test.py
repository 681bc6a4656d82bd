"""Tests for the Lab record schema (chromagen_tf/data/records.py)."""

import hashlib
import io
from unittest import mock
import zlib

import numpy as np
from PIL import Image
import tensorflow as tf
from zlib_ng import zlib_ng

from chromagen_tf.data import records
from tests import shards

# Regression pin: the sha256 of `encode_example(*_pinned_record_inputs())`,
# copied from the output of the record schema at commit 1177248. Shards
# written before a change that moves it no longer match those written
# after: bump SCHEMA_VERSION, or find what changed the bytes.
_PINNED_RECORD_SHA256 = (
    '90f002ca46abd4b6cd38807cef15734cffb844f87bc8a9525b562eff4663b819'
)


def _known_planes() -> np.ndarray:
    """uint8 planes [6, 5, 3] from a fixed generator, with the extremes."""
    planes = np.random.default_rng(31).integers(0, 256, (6, 5, 3), np.uint8)
    planes[0, 0] = [0, 0, 0]
    planes[0, 1] = [255, 255, 255]
    return planes


def _pinned_record_inputs():
    """Lab whose quantisation is `_known_planes()`, found independently of
    records.quantize_lab: each value is a plane value mapped back to Lab
    units and moved by less than half a quantisation step."""
    planes = _known_planes().astype(np.float64)
    nudge = np.random.default_rng(32).uniform(-0.4, 0.4, planes.shape)
    lab = np.stack(
        [
            (planes[..., 0] + nudge[..., 0]) * 100 / 255,
            planes[..., 1] + nudge[..., 1] - 128,
            planes[..., 2] + nudge[..., 2] - 128,
        ],
        axis=-1,
    )
    return lab.astype(np.float32), 'pin/photo.jpg', 480, 640


class RecordSchemaTest(tf.test.TestCase):
    def test_encode_decode_round_trip_within_quantisation(self):
        lab = shards.lab_from_photo(shards.sample_photo_paths()[0], 48)
        serialized = records.encode_example(lab, 'a/b.jpg', 480, 640)
        l_channel, ab = records.decode_record(tf.constant(serialized))
        self.assertEqual(l_channel.shape, (48, 48, 1))
        self.assertEqual(ab.shape, (48, 48, 2))
        self.assertLessEqual(
            float(tf.reduce_max(tf.abs(l_channel[..., 0] - lab[..., 0]))),
            0.5 * 100 / 255 + 1e-4,
        )
        self.assertLessEqual(
            float(tf.reduce_max(tf.abs(ab - lab[..., 1:]))), 0.5 + 1e-4
        )
        features = records.parse_record(tf.constant(serialized))
        self.assertEqual(features[records.KEY].numpy(), b'a/b.jpg')
        self.assertEqual(int(features[records.HEIGHT]), 480)
        self.assertEqual(int(features[records.WIDTH]), 640)
        self.assertEqual(int(features[records.VERSION]), records.SCHEMA_VERSION)

    def test_quantisation_rounds_to_nearest(self):
        lab = shards.lab_from_photo(shards.sample_photo_paths()[1], 64)
        expected = np.clip(
            np.rint(lab * [255 / 100, 1, 1] + [0, 128, 128]), 0, 255
        )
        planes = records.quantize_lab(lab)
        self.assertEqual(planes.dtype, np.uint8)
        # floor(x + 0.5) and rint differ only at exact halves (ties to even).
        self.assertLessEqual(np.abs(planes - expected).max(), 1)
        self.assertLess(np.mean(planes != expected), 1e-4)

    def test_png_bytes_do_not_depend_on_the_deflate_library(self):
        # The converter deflates with zlib-ng when it is installed and with
        # zlib otherwise; shards must not depend on which one a machine has.
        # pylint: disable-next=protected-access
        self.assertIs(records._deflate, zlib_ng)
        for path in shards.sample_photo_paths():
            planes = records.quantize_lab(shards.lab_from_photo(path, 256))
            with_zlib_ng = records.encode_planes_png(planes)
            with mock.patch.object(records, '_deflate', zlib):
                with_zlib = records.encode_planes_png(planes)
            self.assertEqual(with_zlib_ng, with_zlib, path)
            self.assertAllEqual(tf.io.decode_png(with_zlib_ng), planes)

    def test_regression_pin_of_the_record_bytes(self):
        serialized = records.encode_example(*_pinned_record_inputs())
        self.assertEqual(
            hashlib.sha256(serialized).hexdigest(), _PINNED_RECORD_SHA256
        )

    def test_stored_png_decodes_with_pillow_to_the_quantised_planes(self):
        serialized = records.encode_example(*_pinned_record_inputs())
        # Read with protobuf and Pillow, not with the schema's own reader.
        feature = tf.train.Example.FromString(serialized).features.feature
        png = feature[records.LAB_ENCODED].bytes_list.value[0]
        with Image.open(io.BytesIO(png), formats=['PNG']) as image:
            self.assertEqual((image.mode, image.size), ('RGB', (5, 6)))
            self.assertAllEqual(np.asarray(image), _known_planes())
        self.assertEqual(
            feature[records.KEY].bytes_list.value, [b'pin/photo.jpg']
        )
        self.assertEqual(feature[records.HEIGHT].int64_list.value, [480])
        self.assertEqual(feature[records.WIDTH].int64_list.value, [640])

    def test_extreme_lab_values_are_clipped_not_wrapped(self):
        lab = np.array([[[100.0, 130.0, -140.0]]], np.float32)
        planes = records.quantize_lab(lab)
        self.assertAllEqual(planes[0, 0], [255, 255, 0])


if __name__ == '__main__':
    tf.test.main()
