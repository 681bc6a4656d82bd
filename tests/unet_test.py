"""Tests for the ResNet U-Net generator and its encoder sub-model."""

import os

import keras
import numpy as np
import tensorflow as tf

from chromagen_tf import models
from chromagen_tf.models import layers as layers_lib
from tests import overfit


class ResnetUnetTest(tf.test.TestCase):
    def test_overfits_one_batch_of_photos(self):
        keras.utils.set_random_seed(0)
        l_channel, ab = overfit.photo_batch(64)
        generator = models.build_generator('resnet18_unet', width=8)
        losses = overfit.fit_one_batch(
            generator, l_channel, ab, steps=60, learning_rate=1e-2
        )
        final = np.mean(losses[-5:])
        self.assertLess(final, 0.1 * losses[0])
        # Also far better than predicting grey (ab = 0) everywhere.
        self.assertLess(final, 0.3 * float(tf.reduce_mean(tf.abs(ab))))

    def test_pixel_shuffle_with_icnr_starts_as_nearest_neighbour(self):
        inputs = keras.Input((None, None, 6))
        conv = keras.layers.Conv2D(
            3 * 4, 1, use_bias=False, kernel_initializer=layers_lib.ICNR(2)
        )
        model = keras.Model(inputs, layers_lib.PixelShuffle(2)(conv(inputs)))
        x = np.random.default_rng(0).normal(size=(2, 5, 7, 6))
        upsampled = model(x.astype(np.float32)).numpy()
        self.assertEqual(upsampled.shape, (2, 10, 14, 3))
        # Every 2x2 output block is constant: no checkerboard at start.
        low_res = upsampled[:, ::2, ::2]
        nearest = np.repeat(np.repeat(low_res, 2, axis=1), 2, axis=2)
        self.assertAllClose(upsampled, nearest, atol=1e-6)
        self.assertGreater(np.abs(upsampled).mean(), 0.1)

    def test_pixel_shuffle_matches_depth_to_space(self):
        x = np.arange(2 * 3 * 4 * 8, dtype=np.float32).reshape(2, 3, 4, 8)
        self.assertAllEqual(
            layers_lib.PixelShuffle(2)(x), tf.nn.depth_to_space(x, 2)
        )

    def test_encoder_layers_are_named_like_torchvision(self):
        generator = models.build_generator('resnet34_unet', width=8)
        encoder = models.get_encoder(generator)
        names = {layer.name for layer in encoder.layers}
        for name in (
            'conv1',
            'bn1',
            'layer1_0_conv1',
            'layer1_2_bn2',
            'layer2_0_downsample_0',
            'layer2_0_downsample_1',
            'layer3_5_conv2',
            'layer4_2_bn2',
        ):
            self.assertIn(name, names)
        self.assertNotIn('layer1_0_downsample_0', names)
        self.assertEqual(
            [output.shape[-1] for output in encoder.outputs], [8, 8, 16, 32, 64]
        )

    def test_encoder_weights_save_and_load_alone(self):
        keras.utils.set_random_seed(1)
        l_channel = (
            np.random.default_rng(0)
            .uniform(-1, 1, (2, 64, 64, 1))
            .astype(np.float32)
        )
        source = models.build_generator('resnet18_unet', width=8)
        source(l_channel, training=True)  # Moves the BatchNorm statistics.
        encoder = models.get_encoder(source)
        path = os.path.join(self.get_temp_dir(), 'encoder.weights.h5')
        encoder.save_weights(path)

        target = models.build_generator(
            'resnet18_unet', width=8, encoder_weights=path
        )
        expected = encoder(l_channel, training=False)
        restored = models.get_encoder(target)(l_channel, training=False)
        for ours, theirs in zip(restored, expected):
            self.assertAllEqual(ours, theirs)
        # Only the encoder was loaded; the decoders still differ.
        self.assertNotAllClose(
            target(l_channel, training=False), source(l_channel, training=False)
        )

    def test_pix2pix_has_no_encoder(self):
        with self.assertRaisesRegex(ValueError, 'only the ResNet U-Nets'):
            models.get_encoder(models.build_generator('pix2pix_unet', width=8))

    def test_encoder_weights_must_be_a_weights_file(self):
        with self.assertRaisesRegex(ValueError, r'\.weights\.h5'):
            models.build_generator(
                'resnet18_unet', width=8, encoder_weights='encoder.pth'
            )


if __name__ == '__main__':
    tf.test.main()
