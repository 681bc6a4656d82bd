"""The hand-picked hints benchmark: a*b* at the points, on the demo's photo."""

import os

import numpy as np
import pytest
import tensorflow as tf

from bench import bench_sidecar_hints
from chromagen_tf import color
from chromagen_tf.inference import colorize_lib
from tests import conftest


class AbAtPointsTest(tf.test.TestCase):
    def test_the_mean_of_the_three_by_three_pixels_around_each_point(self):
        rgb = np.zeros([6, 8, 3], np.uint8)
        rgb[:, :4] = (200, 40, 30)  # Left half red, right half black.
        red = color.rgb_to_lab(
            tf.constant([[[200, 40, 30]]], tf.float32) / 255.0
        ).numpy()[0, 0, 1:]
        values = bench_sidecar_hints.ab_at_points(
            rgb, [(1, 2), (0, 0), (7.9, 5.9), (4, 3)]
        )
        self.assertAllClose(values[0], red, atol=1e-3)
        # The window is clipped at the border.
        self.assertAllClose(values[1], red, atol=1e-3)
        self.assertAllClose(values[2], [0, 0], atol=1e-3)
        # Column 3 is red, 4 and 5 black: a third of the red.
        self.assertAllClose(values[3], red / 3, atol=1e-3)


@pytest.mark.slow  # The bundled model on a photo, twice.
class BundledModelTest(tf.test.TestCase):
    def test_the_sidecar_hints_bring_the_colours_nearer(self):
        image, hints = bench_sidecar_hints.load_photo(
            os.path.join(conftest.SAMPLE_PHOTOS, 'astronaut.jpg')
        )
        colorizer = colorize_lib.load_colorizer()
        distances = bench_sidecar_hints.hint_distances(colorizer, image, hints)
        for name in ('hints', 'automatic', 'colours_only', 'neutral'):
            self.assertLen(distances[name], len(hints), name)
        # BENCHMARKS.md "Hand-picked hints": medians 7.3 against 34.8.
        self.assertLess(
            np.median(distances['hints']),
            np.median(distances['automatic']) / 2,
        )
        # One light point is neutral; left out, the colours reach it.
        (index,) = np.flatnonzero(distances['neutral'])
        self.assertGreater(
            distances['colours_only'][index], distances['hints'][index] + 5
        )
        # Distances without hints, given, are taken as they are.
        again = bench_sidecar_hints.hint_distances(
            colorizer, image, hints, automatic=distances['automatic']
        )
        self.assertEqual(again, distances)
