"""Tests for color.fit_to_srgb_gamut: out-of-gamut colours keep L and hue."""

import numpy as np
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf.serving import full_resolution


def _random_lab(count, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            rng.uniform(0, 100, count),
            rng.uniform(-128, 127, count),
            rng.uniform(-128, 127, count),
        ],
        -1,
    ).astype(np.float32)


class GamutTest(tf.test.TestCase):
    def test_random_lab_keeps_lightness_after_uint8_rounding(self):
        lab = _random_lab(40_000)
        l_channel = tf.constant(lab[None, None, :, :1])
        ab = tf.constant(lab[None, None, :, 1:])
        rgb = full_resolution.lab_to_uint8(l_channel, ab)
        back = color.rgb_to_lab(tf.cast(rgb, tf.float32) / 255.0)
        self.assertLessEqual(
            float(tf.reduce_max(tf.abs(back[..., 0] - l_channel[..., 0]))), 1.0
        )
        # Per-channel clipping, the old behaviour, moves L by far more.
        clipped = color.rgb_to_lab(color.lab_to_rgb(lab))
        self.assertGreater(float(np.abs(clipped[:, 0] - lab[:, 0]).max()), 10)

    def test_mapped_colours_are_in_gamut_with_the_same_hue(self):
        lab = _random_lab(20_000, seed=1)
        fitted = color.fit_to_srgb_gamut(lab).numpy()
        self.assertAllClose(fitted[:, 0], lab[:, 0])
        chroma_in = np.hypot(lab[:, 1], lab[:, 2])
        chroma_out = np.hypot(fitted[:, 1], fitted[:, 2])
        self.assertTrue(np.all(chroma_out <= chroma_in + 1e-4))
        moved = chroma_out > 1.0
        hue_in = np.arctan2(lab[moved, 2], lab[moved, 1])
        hue_out = np.arctan2(fitted[moved, 2], fitted[moved, 1])
        self.assertAllClose(
            np.cos(hue_in - hue_out), np.ones(moved.sum()), atol=1e-5
        )
        # In the gamut, and on its boundary (no chroma given away): the
        # round trip through sRGB reproduces the fitted colour.
        round_trip = color.rgb_to_lab(color.lab_to_rgb(fitted)).numpy()
        self.assertAllClose(round_trip, fitted, atol=0.05)

    def test_in_gamut_colours_are_unchanged(self):
        rgb = np.random.default_rng(2).uniform(0, 1, (64, 64, 3))
        lab = color.rgb_to_lab(rgb.astype(np.float32))
        self.assertAllClose(color.fit_to_srgb_gamut(lab), lab, atol=1e-4)
        self.assertAllClose(color.lab_to_rgb_in_gamut(lab), rgb, atol=1e-4)

    def test_same_in_tf_function_and_tf_data(self):
        lab = _random_lab(1000, seed=3)
        eager = color.fit_to_srgb_gamut(lab)
        graph = tf.function(color.fit_to_srgb_gamut)(tf.constant(lab))
        mapped = tf.data.Dataset.from_tensors(lab).map(color.fit_to_srgb_gamut)
        # Graph rewrites round differently, and a boundary decision of the
        # bisection can flip with the last bit: one step is 2^-14 of the
        # chroma, 0.011 ab units at a chroma of 180, which is invisible.
        self.assertAllClose(eager, graph, atol=0.02)
        self.assertAllClose(eager, next(iter(mapped)), atol=0.02)

    def test_gradients_are_finite(self):
        lab = tf.Variable(_random_lab(5000, seed=4))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(color.lab_to_rgb_in_gamut(lab))
        gradient = tape.gradient(loss, lab)
        self.assertTrue(bool(tf.reduce_all(tf.math.is_finite(gradient))))

    def test_half_precision_and_batched_shapes(self):
        lab = _random_lab(6 * 8, seed=5).reshape(2, 3, 8, 3)
        fitted = color.fit_to_srgb_gamut(tf.constant(lab, tf.bfloat16))
        self.assertEqual(fitted.dtype, tf.bfloat16)
        self.assertEqual(fitted.shape, (2, 3, 8, 3))


if __name__ == '__main__':
    tf.test.main()
