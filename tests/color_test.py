"""Tests for chromagen_tf.color against CIE references and tensorflow-io."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_io as tfio

from chromagen_tf import color

# CIE reference values (D65, 2-degree observer), computed from the CIE
# definitions with the IEC 61966-2-1 sRGB matrix; they agree with
# Bruce Lindbloom's calculator and scikit-image to 0.01.
_REFERENCES = {
    'red': ([1.0, 0.0, 0.0], [53.2408, 80.0925, 67.2032]),
    'green': ([0.0, 1.0, 0.0], [87.7347, -86.1827, 83.1793]),
    'blue': ([0.0, 0.0, 1.0], [32.2970, 79.1875, -107.8602]),
    'white': ([1.0, 1.0, 1.0], [100.0, 0.0, 0.0]),
    'black': ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
    # sRGB 0.5 is linear 0.2140, so L* = 116 * 0.2140^(1/3) - 16.
    'mid_gray': ([0.5] * 3, [53.3890, 0.0, 0.0]),
}


class RgbToLabReferenceTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(
        (name, rgb, lab) for name, (rgb, lab) in _REFERENCES.items()
    )
    def test_reference_colour(self, rgb, lab):
        got = color.rgb_to_lab(tf.constant([rgb], tf.float32))[0]
        self.assertAllClose(got, lab, atol=0.02)
        got_numpy = color.rgb_to_lab_numpy(np.array([rgb]))[0]
        self.assertAllClose(got_numpy, lab, atol=0.02)

    @parameterized.named_parameters(
        (name, rgb, lab) for name, (rgb, lab) in _REFERENCES.items()
    )
    def test_reference_colour_back_to_rgb(self, rgb, lab):
        got = color.lab_to_rgb(tf.constant([lab], tf.float32))[0]
        self.assertAllClose(got, rgb, atol=1e-3)


class AgreementWithTensorflowIoTest(tf.test.TestCase):
    """tensorflow-io's pure-TF colour ops are an independent implementation."""

    def setUp(self):
        super().setUp()
        self.rgb = tf.random.stateless_uniform([4, 32, 48, 3], seed=[1, 2])

    def test_rgb_to_lab_matches(self):
        self.assertAllClose(
            color.rgb_to_lab(self.rgb),
            tfio.experimental.color.rgb_to_lab(self.rgb),
            atol=1e-3,
            rtol=0,
        )

    def test_lab_to_rgb_matches(self):
        lab = tfio.experimental.color.rgb_to_lab(self.rgb)
        self.assertAllClose(
            color.lab_to_rgb(lab),
            tfio.experimental.color.lab_to_rgb(lab),
            atol=1e-3,
            rtol=0,
        )

    def test_numpy_twin_matches_tensorflow(self):
        rgb_uint8 = tf.cast(tf.round(self.rgb * 255.0), tf.uint8).numpy()
        from_tf = color.rgb_to_lab(tf.cast(rgb_uint8, tf.float32) / 255.0)
        self.assertAllClose(
            color.rgb_to_lab_numpy(rgb_uint8), from_tf, atol=2e-4, rtol=0
        )
        self.assertAllClose(
            color.rgb_to_lab_numpy(self.rgb.numpy()),
            color.rgb_to_lab(self.rgb),
            atol=2e-4,
            rtol=0,
        )
        lab = color.rgb_to_lab(self.rgb)
        self.assertAllClose(
            color.lab_to_rgb_numpy(lab.numpy()),
            color.lab_to_rgb(lab),
            atol=1e-5,
            rtol=0,
        )


class RoundTripTest(tf.test.TestCase, parameterized.TestCase):
    def test_round_trip_float32(self):
        rgb = tf.random.stateless_uniform([2, 64, 64, 3], seed=[3, 4])
        back = color.lab_to_rgb(color.rgb_to_lab(rgb))
        self.assertLess(float(tf.reduce_max(tf.abs(back - rgb))), 1e-4)

    def test_round_trip_every_uint8_grey_and_primary(self):
        # Every sRGB level on each axis, including the linear toe near black.
        levels = tf.range(256, dtype=tf.float32) / 255.0
        zeros = tf.zeros_like(levels)
        rgb = tf.stack(
            [
                tf.stack([levels] * 3, -1),
                tf.stack([levels, zeros, zeros], -1),
                tf.stack([zeros, levels, zeros], -1),
                tf.stack([zeros, zeros, levels], -1),
            ]
        )
        back = color.lab_to_rgb(color.rgb_to_lab(rgb))
        self.assertLess(float(tf.reduce_max(tf.abs(back - rgb))), 1e-4)

    def test_normalisation_round_trip_and_ranges(self):
        rgb = tf.random.stateless_uniform([8, 8, 3], seed=[5, 6])
        l_normalized, ab_normalized = color.rgb_to_normalized(rgb)
        self.assertAllInRange(l_normalized, -1.0, 1.0)
        self.assertAllInRange(ab_normalized, -1.0, 1.0)
        self.assertAllClose(
            color.normalized_to_rgb(l_normalized, ab_normalized), rgb, atol=1e-4
        )
        self.assertAllClose(color.normalize_l(50.0), 0.0)
        self.assertAllClose(color.normalize_l(100.0), 1.0)
        self.assertAllClose(color.normalize_ab(-110.0), -1.0)

    def test_unbatched_and_batched_agree(self):
        rgb = tf.random.stateless_uniform([3, 5, 7, 3], seed=[7, 8])
        batched = color.rgb_to_lab(rgb)
        for i in range(3):
            self.assertAllClose(
                color.rgb_to_lab(rgb[i]), batched[i], atol=1e-4, rtol=0
            )
        self.assertAllClose(
            color.rgb_to_lab(rgb[0, 0, 0]), batched[0, 0, 0], atol=1e-4, rtol=0
        )

    @parameterized.parameters(tf.float16, tf.bfloat16)
    def test_half_precision_inputs(self, dtype):
        rgb = tf.random.stateless_uniform([2, 8, 8, 3], seed=[9, 10])
        lab = color.rgb_to_lab(tf.cast(rgb, dtype))
        self.assertEqual(lab.dtype, dtype)
        # Computed in float32; only the input and output rounding remain.
        tolerance = 0.5 if dtype == tf.float16 else 2.0
        self.assertAllClose(
            tf.cast(lab, tf.float32), color.rgb_to_lab(rgb), atol=tolerance
        )
        back = color.lab_to_rgb(lab)
        self.assertEqual(back.dtype, dtype)
        back_tolerance = 0.02 if dtype == tf.float16 else 0.06
        self.assertAllClose(tf.cast(back, tf.float32), rgb, atol=back_tolerance)

    def test_integer_input_is_rejected(self):
        with self.assertRaisesRegex(TypeError, 'floating-point'):
            color.rgb_to_lab(tf.zeros([2, 2, 3], tf.uint8))


class GradientTest(tf.test.TestCase):
    def _assert_finite_gradients(self, function, value):
        value = tf.constant(value, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(value)
            output = function(value)
        gradient = tape.gradient(output, value)
        self.assertAllEqual(
            tf.math.is_finite(gradient), tf.ones_like(gradient, tf.bool)
        )
        return gradient

    def test_rgb_to_lab_gradient_finite_at_black(self):
        self._assert_finite_gradients(
            color.rgb_to_lab, [[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [1.0, 1, 1]]
        )

    def test_lab_to_rgb_gradient_finite_at_l_zero(self):
        self._assert_finite_gradients(
            color.lab_to_rgb,
            [[0.0, 0.0, 0.0], [0.0, 20.0, -30.0], [100.0, 0.0, 0.0]],
        )

    def test_tensorflow_io_is_not_finite_at_black(self):
        # The reason this module exists instead of calling tensorflow-io: its
        # gradient at a black pixel is NaN. If this ever starts failing,
        # tensorflow-io was fixed and this note can go.
        value = tf.zeros([1, 3])
        with tf.GradientTape() as tape:
            tape.watch(value)
            output = tfio.experimental.color.rgb_to_lab(value)
        gradient = tape.gradient(output, value)
        self.assertFalse(bool(tf.reduce_all(tf.math.is_finite(gradient))))

    def test_gradient_matches_finite_differences(self):
        value = tf.constant([[0.2, 0.5, 0.8]], tf.float64)
        theoretical, numerical = tf.test.compute_gradient(
            color.rgb_to_lab, [value]
        )
        self.assertAllClose(theoretical, numerical, atol=1e-3)


class GraphModesTest(tf.test.TestCase):
    """Eager, tf.function and tf.data must give the same numbers.

    The tolerance is float32 rounding at L=100 (about 1e-5) with headroom:
    graph mode may fuse the matrix product differently.
    """

    def test_tf_function_and_tf_data_match_eager(self):
        rgb = tf.random.stateless_uniform([4, 16, 16, 3], seed=[11, 12])
        eager = color.rgb_to_lab(rgb)
        in_function = tf.function(color.rgb_to_lab)(rgb)
        dataset = tf.data.Dataset.from_tensor_slices(rgb).map(color.rgb_to_lab)
        in_dataset = tf.stack(list(dataset))
        self.assertAllClose(in_function, eager, atol=1e-4, rtol=0)
        self.assertAllClose(in_dataset, eager, atol=1e-4, rtol=0)

        back_eager = color.lab_to_rgb(eager)
        back_dataset = tf.stack(
            list(
                tf.data.Dataset.from_tensor_slices(eager).map(color.lab_to_rgb)
            )
        )
        self.assertAllClose(back_dataset, back_eager, atol=1e-4, rtol=0)


if __name__ == '__main__':
    tf.test.main()
