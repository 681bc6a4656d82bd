"""Tests for the Lab record schema (chromagen_tf/data/records.py)."""

from unittest import mock
import zlib

import numpy as np
import tensorflow as tf
from zlib_ng import zlib_ng

from chromagen_tf.data import records
from tests import shards


class RecordSchemaTest(tf.test.TestCase):

    def test_encode_decode_round_trip_within_quantisation(self):
        lab = shards.lab_from_photo(shards.sample_photo_paths()[0], 48)
        serialized = records.encode_example(lab, 'a/b.jpg', 480, 640)
        l_channel, ab = records.decode_record(tf.constant(serialized))
        self.assertEqual(l_channel.shape, (48, 48, 1))
        self.assertEqual(ab.shape, (48, 48, 2))
        self.assertLessEqual(
            float(tf.reduce_max(tf.abs(l_channel[..., 0] - lab[..., 0]))),
            0.5 * 100 / 255 + 1e-4)
        self.assertLessEqual(
            float(tf.reduce_max(tf.abs(ab - lab[..., 1:]))), 0.5 + 1e-4)
        features = records.parse_record(tf.constant(serialized))
        self.assertEqual(features[records.KEY].numpy(), b'a/b.jpg')
        self.assertEqual(int(features[records.HEIGHT]), 480)
        self.assertEqual(int(features[records.WIDTH]), 640)
        self.assertEqual(int(features[records.VERSION]), records.SCHEMA_VERSION)

    def test_quantisation_rounds_to_nearest(self):
        lab = shards.lab_from_photo(shards.sample_photo_paths()[1], 64)
        expected = np.clip(
            np.rint(lab * [255 / 100, 1, 1] + [0, 128, 128]), 0, 255)
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

    def test_extreme_lab_values_are_clipped_not_wrapped(self):
        lab = np.array([[[100.0, 130.0, -140.0]]], np.float32)
        planes = records.quantize_lab(lab)
        self.assertAllEqual(planes[0, 0], [255, 255, 0])


if __name__ == '__main__':
    tf.test.main()
