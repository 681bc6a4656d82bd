"""Tests for the 70x70 PatchGAN discriminator."""

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

from chromagen_tf.models import patchgan


def _random_lab(batch, height, width, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch, height, width, 3)).astype(np.float32)


class PatchGanTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        (256, 256, 30, 30), (64, 64, 6, 6), (128, 192, 14, 22)
    )
    def test_output_is_one_logit_per_patch(self, height, width, rows, cols):
        discriminator = patchgan.build_discriminator(width=8)
        logits = discriminator(_random_lab(2, height, width), training=False)
        self.assertEqual(logits.shape, (2, rows, cols, 1))
        self.assertEqual(logits.dtype, tf.float32)

    def test_full_width_gives_30x30_at_256(self):
        discriminator = patchgan.build_discriminator(image_size=256)
        self.assertEqual(discriminator.output_shape, (None, 30, 30, 1))
        layer_names = [layer.name for layer in discriminator.layers]
        self.assertNotIn('block1_bn', layer_names)  # No norm on C64.
        filters = [
            layer.filters
            for layer in discriminator.layers
            if isinstance(layer, keras.layers.Conv2D)
        ]
        self.assertEqual(filters, [64, 128, 256, 512, 1])

    @parameterized.parameters(False, True)
    def test_receptive_field_is_70x70_from_gradient(self, spectral_norm):
        """The input-gradient support of one interior logit is 70x70."""
        discriminator = patchgan.build_discriminator(
            width=8, spectral_norm=spectral_norm
        )
        inputs = tf.constant(_random_lab(1, 256, 256))
        row, col = 15, 12
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            logit = discriminator(inputs, training=False)[0, row, col, 0]
        gradient = tape.gradient(logit, inputs).numpy()[0]
        support = np.abs(gradient).sum(axis=-1) > 0
        rows = np.flatnonzero(support.any(axis=1))
        cols = np.flatnonzero(support.any(axis=0))
        self.assertEqual(rows[-1] - rows[0] + 1, patchgan.RECEPTIVE_FIELD)
        self.assertEqual(cols[-1] - cols[0] + 1, patchgan.RECEPTIVE_FIELD)
        # Every pixel inside the box contributes: the support is the box.
        self.assertEqual(support.sum(), patchgan.RECEPTIVE_FIELD**2)
        # Logit (i, j) sees rows 8*i - 23 ... 8*i + 46: total stride 8, and
        # the padding of 1 per layer shifts by 1 + 2 + 4 + 8 + 8 = 23.
        self.assertEqual(rows[0], 8 * row - 23)
        self.assertEqual(cols[0], 8 * col - 23)

    def test_spectral_norm_constrains_the_kernels(self):
        discriminator = patchgan.build_discriminator(
            width=8, spectral_norm=True
        )
        wrappers = [
            layer
            for layer in discriminator.layers
            if isinstance(layer, keras.layers.SpectralNormalization)
        ]
        self.assertLen(wrappers, 5)
        self.assertFalse(
            any(
                isinstance(layer, keras.layers.BatchNormalization)
                for layer in discriminator.layers
            )
        )

        # Keras' wrapper writes the normalised kernel back in training mode;
        # after some power iterations the top singular value is ~1.
        def top_singular_values():
            return [
                np.linalg.svd(
                    wrapper.layer.kernel.numpy().reshape(
                        -1, wrapper.layer.filters
                    ),
                    compute_uv=False,
                )[0]
                for wrapper in wrappers
            ]

        inputs = _random_lab(2, 64, 64)
        for wrapper in wrappers:
            wrapper.layer.kernel.assign(wrapper.layer.kernel * 500.0)
        self.assertGreater(min(top_singular_values()), 20.0)
        discriminator(inputs, training=False)
        self.assertGreater(min(top_singular_values()), 20.0)
        for _ in range(20):
            discriminator(inputs, training=True)
        self.assertAllClose(top_singular_values(), [1.0] * 5, atol=0.1)

    def test_spectral_norm_trains(self):
        discriminator = patchgan.build_discriminator(
            width=8, spectral_norm=True
        )
        optimizer = keras.optimizers.Adam(2e-3)
        real, fake = _random_lab(4, 32, 32, 1), _random_lab(4, 32, 32, 2)
        loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

        def loss():
            real_logits = discriminator(real, training=True)
            fake_logits = discriminator(fake, training=True)
            return loss_fn(tf.ones_like(real_logits), real_logits) + loss_fn(
                tf.zeros_like(fake_logits), fake_logits
            )

        first = float(loss())
        for _ in range(15):
            with tf.GradientTape() as tape:
                value = loss()
            variables = discriminator.trainable_variables
            optimizer.apply(tape.gradient(value, variables), variables)
        self.assertLess(float(loss()), first * 0.5)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, 'width must be positive'):
            patchgan.build_discriminator(width=0)
        with self.assertRaisesRegex(ValueError, 'multiple of 8'):
            patchgan.build_discriminator(image_size=100)


if __name__ == '__main__':
    tf.test.main()
