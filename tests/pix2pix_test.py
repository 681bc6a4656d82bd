"""Tests for the pix2pix U-Net-256 baseline generator."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from chromagen_tf import models
from tests import overfit


class Pix2PixUnetTest(tf.test.TestCase):
    @pytest.mark.slow  # 250 steps at 256x256; unet_test's is the fast one.
    def test_overfits_one_batch_of_photos(self):
        # 256 is the smallest size this network accepts.
        keras.utils.set_random_seed(0)
        l_channel, ab = overfit.photo_batch(256)
        generator = models.build_generator('pix2pix_unet', width=8)
        losses = overfit.fit_one_batch(
            generator, l_channel, ab, steps=250, learning_rate=3e-3
        )
        self.assertLess(np.mean(losses[-5:]), 0.1 * losses[0])

    def test_architecture(self):
        generator = models.build_generator('pix2pix_unet', width=64)
        layers = {layer.name: layer for layer in generator.layers}
        down = [layers[f'down{i}_conv'].filters for i in range(1, 9)]
        self.assertEqual(down, [64, 128, 256, 512, 512, 512, 512, 512])
        up = [layers[f'up{i}_conv'].filters for i in range(7, 0, -1)]
        self.assertEqual(up, [512, 512, 512, 512, 256, 128, 64])
        norms = sorted(
            name
            for name, layer in layers.items()
            if isinstance(layer, keras.layers.BatchNormalization)
        )
        # No BatchNorm on the first and the innermost encoder blocks.
        self.assertNotIn('down1_bn', norms)
        self.assertNotIn('down8_bn', norms)
        self.assertLen(norms, 6 + 7)
        dropouts = [
            layer
            for layer in generator.layers
            if isinstance(layer, keras.layers.Dropout)
        ]
        self.assertEqual(
            [layer.name for layer in dropouts],
            ['up7_dropout', 'up6_dropout', 'up5_dropout'],
        )
        self.assertTrue(all(layer.rate == 0.5 for layer in dropouts))
        self.assertEqual(layers['ab'].activation.__name__, 'tanh')

    def test_initialisation_is_normal_0_02(self):
        keras.utils.set_random_seed(2)
        generator = models.build_generator('pix2pix_unet', width=64)
        layers = {layer.name: layer for layer in generator.layers}
        kernel = layers['down5_conv'].kernel.numpy()
        self.assertAllClose(kernel.mean(), 0.0, atol=1e-3)
        self.assertAllClose(kernel.std(), 0.02, rtol=0.02)
        gamma = layers['up4_bn'].gamma.numpy()
        self.assertAllClose(gamma.mean(), 1.0, atol=0.01)
        self.assertAllClose(gamma.std(), 0.02, rtol=0.2)

    def test_dropout_only_in_training(self):
        generator = models.build_generator('pix2pix_unet', width=8)
        l_channel = (
            np.random.default_rng(0)
            .uniform(-1, 1, (1, 256, 256, 1))
            .astype(np.float32)
        )
        self.assertAllEqual(
            generator(l_channel, training=False),
            generator(l_channel, training=False),
        )
        keras.utils.set_random_seed(3)
        first = generator(l_channel, training=True)
        second = generator(l_channel, training=True)
        self.assertNotAllClose(first, second)


if __name__ == '__main__':
    tf.test.main()
