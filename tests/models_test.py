"""Tests for the public model API: shapes, precision, serialisation, sizes."""

import functools
import os
import subprocess
import sys

from absl.testing import parameterized
import keras
import numpy as np
import pytest
import tensorflow as tf

from chromagen_tf import models
from chromagen_tf.models import unet_lite
from tests import conftest

_TINY = 8


@functools.lru_cache(maxsize=None)
def _tiny_generator(name):
    """One shared tiny model per name for the read-only shape checks."""
    return models.build_generator(name, width=_TINY)


def _random_l(height, width, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (batch, height, width, 1)).astype(np.float32)


class GeneratorShapeTest(tf.test.TestCase, parameterized.TestCase):
    def test_generator_names(self):
        self.assertEqual(
            models.GENERATOR_NAMES,
            (
                'resnet18_unet',
                'resnet34_unet',
                'pix2pix_unet',
                'resnet18_unet_lite',
                'resnet34_unet_lite',
            ),
        )

    def test_size_multiples(self):
        self.assertEqual(models.size_multiple('pix2pix_unet'), 256)
        for name in models.GENERATOR_NAMES[:2] + models.GENERATOR_NAMES[3:]:
            self.assertEqual(models.size_multiple(name), 32)
        with self.assertRaisesRegex(ValueError, 'Unknown generator'):
            models.size_multiple('resnet50_unet')

    @parameterized.named_parameters(
        ('resnet18_64', 'resnet18_unet', 64, 64),
        ('resnet18_128', 'resnet18_unet', 128, 128),
        ('resnet18_256', 'resnet18_unet', 256, 256),
        ('resnet18_non_square', 'resnet18_unet', 96, 160),
        ('resnet34_64', 'resnet34_unet', 64, 64),
        ('resnet34_non_square', 'resnet34_unet', 160, 96),
        ('pix2pix_256', 'pix2pix_unet', 256, 256),
        ('pix2pix_non_square', 'pix2pix_unet', 256, 512),
        ('lite_64', 'resnet18_unet_lite', 64, 64),
        ('lite_non_square', 'resnet18_unet_lite', 96, 160),
        ('lite34_non_square', 'resnet34_unet_lite', 160, 64),
    )
    def test_output_shape(self, name, height, width):
        # One model with unknown spatial sizes must serve every size.
        generator = _tiny_generator(name)
        self.assertEqual(generator.input_shape, (None, None, None, 1))
        ab = generator(_random_l(height, width), training=False)
        self.assertEqual(ab.shape, (2, height, width, 2))
        self.assertEqual(ab.dtype, tf.float32)
        self.assertTrue(np.all(np.isfinite(ab.numpy())))

    @parameterized.parameters(
        'resnet18_unet', 'pix2pix_unet', 'resnet18_unet_lite'
    )
    def test_fixed_image_size(self, name):
        generator = models.build_generator(name, image_size=256, width=_TINY)
        self.assertEqual(generator.input_shape, (None, 256, 256, 1))
        self.assertEqual(generator.output_shape, (None, 256, 256, 2))

    def test_pix2pix_output_is_bounded_by_tanh(self):
        generator = _tiny_generator('pix2pix_unet')
        ab = generator(_random_l(256, 256) * 50, training=False).numpy()
        self.assertLessEqual(np.abs(ab).max(), 1.0)


class SizeErrorTest(tf.test.TestCase, parameterized.TestCase):
    def test_lite_output_is_smooth_at_its_stride(self):
        # ab is predicted at 1/4 and up-sampled bilinearly: inside each 4x4
        # cell the output is an interpolation, so second differences along
        # a row vanish between the cell centres.
        generator = _tiny_generator('resnet18_unet_lite')
        ab = generator(_random_l(64, 64), training=False).numpy()
        rows = ab[:, 2:-2, :, :]
        second = rows[:, :, 2:-2] - 2 * rows[:, :, 3:-1] + rows[:, :, 4:]
        self.assertLess(np.abs(second[:, :, 0::4]).max(), 1e-4)

    @parameterized.parameters(
        ('resnet18_unet', 100),
        ('resnet34_unet', 48),
        ('resnet18_unet_lite', 72),
        ('pix2pix_unet', 128),
        ('pix2pix_unet', 320),
    )
    def test_bad_image_size_at_build(self, name, size):
        with self.assertRaisesRegex(ValueError, 'multiple of'):
            models.build_generator(name, image_size=size, width=_TINY)

    @parameterized.parameters(
        ('resnet18_unet', 80, 64, '32'),
        ('pix2pix_unet', 200, 256, '256'),
        ('pix2pix_unet', 256, 384, '256'),
    )
    def test_bad_input_size_at_call(self, name, height, width, multiple):
        generator = _tiny_generator(name)
        with self.assertRaisesRegex(
            ValueError,
            f'{name} needs height and width that '
            f'are multiples of {multiple}, got '
            f'{height}x{width}',
        ):
            generator(_random_l(height, width, batch=1))

    def test_bad_input_size_with_unknown_shape_in_graph(self):
        generator = _tiny_generator('pix2pix_unet')
        run = tf.function(
            generator, input_signature=[tf.TensorSpec([None, None, None, 1])]
        )
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, 'multiples of 256'
        ):
            run(_random_l(256, 128, batch=1))

    def test_unknown_name_and_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, 'Unknown generator'):
            models.build_generator('resnet50_unet')
        with self.assertRaisesRegex(ValueError, 'width must be positive'):
            models.build_generator('resnet18_unet', width=0)
        with self.assertRaisesRegex(ValueError, 'no pretrained encoder'):
            models.build_generator(
                'pix2pix_unet', width=_TINY, encoder_weights='imagenet'
            )
        with self.assertRaisesRegex(ValueError, 'only for width=64'):
            models.build_generator(
                'resnet18_unet', width=_TINY, encoder_weights='imagenet'
            )


def _conv(
    size: int, channels_in: int, channels_out: int, bias: bool = False
) -> int:
    """Weights of a size x size convolution (or transposed convolution)."""
    return size * size * channels_in * channels_out + (
        channels_out if bias else 0
    )


class ParameterCountTest(tf.test.TestCase, parameterized.TestCase):
    """Counts at width=64, derived from the architectures' descriptions.

    A BatchNorm layer holds 4 values per channel: a trainable scale and
    shift, and the moving mean and variance, which Keras counts but does
    not train.
    """

    def _assert_counts(self, model, weights, norm_channels):
        self.assertEqual(_trainable_count(model), weights + 2 * norm_channels)
        self.assertEqual(model.count_params(), weights + 4 * norm_channels)

    def test_pix2pix_unet(self):
        # U-Net-256 (Isola et al. 2017, App. 6.1.1), L in and ab out: 4x4
        # kernels without bias except the output's; each decoder block but
        # the innermost also reads the mirrored encoder activation.
        encoder = [64, 128, 256, 512, 512, 512, 512, 512]
        decoder = encoder[-2::-1]  # Innermost first: 512 x4, 256, 128, 64.
        weights = sum(
            _conv(4, channels_in, channels_out)
            for channels_in, channels_out in zip([1] + encoder[:-1], encoder)
        )
        weights += sum(
            _conv(4, channels_in, channels_out)
            for channels_in, channels_out in zip(
                [encoder[-1]] + [2 * c for c in decoder[:-1]], decoder
            )
        )
        weights += _conv(4, 2 * decoder[-1], 2, bias=True)
        # BatchNorm on every decoder block and on the encoder's, except the
        # outermost (pix2pix) and the 1x1 innermost (the authors' code).
        norm_channels = sum(encoder[1:-1]) + sum(decoder)
        self._assert_counts(
            models.build_generator('pix2pix_unet'), weights, norm_channels
        )

    @parameterized.parameters(False, True)
    def test_discriminator(self, spectral_norm):
        # 70x70 PatchGAN C64-C128-C256-C512 then 1 channel (Isola et al.
        # 2017, App. 6.1.2) over concat(L, ab): 4x4 kernels; biases on the
        # first and last convolutions (the others feed BatchNorm).
        channels = [3, 64, 128, 256, 512, 1]
        pairs = list(zip(channels[:-1], channels[1:]))
        weights = sum(_conv(4, *pair) for pair in pairs)
        discriminator = models.build_discriminator(spectral_norm=spectral_norm)
        if not spectral_norm:
            self._assert_counts(
                discriminator, weights + 64 + 1, norm_channels=128 + 256 + 512
            )
        else:
            # No BatchNorm, a bias on every convolution, and per
            # convolution one power-iteration vector u, as long as its
            # output channels, which is not trained (Miyato et al. 2018).
            outputs = sum(channels[1:])
            self.assertEqual(_trainable_count(discriminator), weights + outputs)
            self.assertEqual(
                discriminator.count_params(), weights + 2 * outputs
            )

    @parameterized.parameters(
        ('resnet18_unet', 11_689_512), ('resnet34_unet', 21_797_672)
    )
    def test_resnet_encoder_is_torchvisions_without_fc(self, name, torchvision):
        # torchvision's resnet18 and resnet34 (num_params of their
        # IMAGENET1K_V1 weights) minus fc (512 * 1000 + 1000) and conv1's
        # kernels for two of its three input channels (2 * 64 * 7 * 7).
        encoder = models.get_encoder(models.build_generator(name))
        self.assertEqual(
            _trainable_count(encoder),
            torchvision - _conv(1, 512, 1000, bias=True) - 2 * _conv(7, 1, 64),
        )

    def test_resnet18_unet_is_the_size_of_the_tutorials_dynamic_unet(self):
        # fastai's DynamicUnet over resnet18 has about 31.1M.
        total = models.build_generator('resnet18_unet').count_params()
        self.assertAllClose(total / 1e6, 31.1, atol=0.2)

    @parameterized.parameters(
        ('resnet18_unet', 31_123_998, 31_102_042),
        ('resnet34_unet', 41_239_582, 41_210_202),
        ('resnet18_unet_lite', 16_598_786, 16_583_426),
    )
    def test_regression_pin_of_resnet_generator_sizes(
        self, name, total, trainable
    ):
        # Regression pins: copied from the code's output (and stated in the
        # module docstrings); they catch unintended changes to a decoder.
        generator = models.build_generator(name)
        self.assertEqual(generator.count_params(), total)
        self.assertEqual(_trainable_count(generator), trainable)


class PrecisionTest(tf.test.TestCase, parameterized.TestCase):
    def tearDown(self):
        keras.mixed_precision.set_global_policy('float32')
        super().tearDown()

    # float32 outputs under the default float32 policy are checked by the
    # shape tests above.
    @parameterized.product(
        policy=('mixed_float16', 'mixed_bfloat16'),
        name=(
            'resnet18_unet',
            'pix2pix_unet',
            'discriminator',
            'discriminator_sn',
            'resnet18_unet_lite_bins',
        ),
    )
    def test_builds_runs_and_outputs_float32(self, policy, name):
        keras.mixed_precision.set_global_policy(policy)
        if name.startswith('discriminator'):
            model = models.build_discriminator(
                width=_TINY, spectral_norm=name.endswith('_sn')
            )
            inputs = np.concatenate(
                [_random_l(64, 64, seed=seed) for seed in range(3)], -1
            )
        elif name.endswith('_bins'):
            model = models.build_generator(
                name[: -len('_bins')], width=_TINY, color_head='bins'
            )
            # The logits, their softmax and the annealed mean in float32.
            for layer in (unet_lite.LOGITS_LAYER, 'ab_small', 'ab'):
                self.assertEqual(
                    model.get_layer(layer).compute_dtype, 'float32', layer
                )
            inputs = _random_l(64, 64)
        else:
            model = models.build_generator(name, width=_TINY)
            size = 256 if name == 'pix2pix_unet' else 64
            inputs = _random_l(size, size)
        for training in (False, True):
            outputs = model(inputs, training=training)
            self.assertEqual(outputs.dtype, tf.float32)
            self.assertTrue(np.all(np.isfinite(outputs.numpy())))
        compute_dtype = policy[len('mixed_') :]
        conv = next(
            getattr(layer, 'layer', layer)  # Inside SpectralNormalization.
            for layer in _all_layers(model)
            if isinstance(getattr(layer, 'layer', layer), keras.layers.Conv2D)
        )
        self.assertEqual(conv.compute_dtype, compute_dtype)
        for variable in model.weights:
            self.assertEqual(variable.dtype, 'float32', variable.path)


def _trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


class SerialisationTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(
        'resnet18_unet', 'pix2pix_unet', 'discriminator', 'discriminator_sn'
    )
    def test_keras_file_and_weights_round_trip(self, name):
        if name.startswith('discriminator'):
            model = models.build_discriminator(
                width=_TINY, spectral_norm=name.endswith('_sn')
            )
            inputs = np.concatenate(
                [_random_l(64, 64, seed=s) for s in range(3)], -1
            )
        else:
            model = models.build_generator(name, width=_TINY)
            size = 256 if name == 'pix2pix_unet' else 64
            inputs = _random_l(size, size)
        # One training-mode call moves BatchNorm statistics and spectral-norm
        # vectors away from their initial values, so they must round-trip.
        model(inputs, training=True)
        expected = model(inputs, training=False)

        path = os.path.join(self.get_temp_dir(), f'{name}.keras')
        model.save(path)
        restored = keras.models.load_model(path)
        self.assertAllEqual(restored(inputs, training=False), expected)

        weights = os.path.join(self.get_temp_dir(), f'{name}.weights.h5')
        model.save_weights(weights)
        if name.startswith('discriminator'):
            fresh = models.build_discriminator(
                width=_TINY, spectral_norm=name.endswith('_sn')
            )
        else:
            fresh = models.build_generator(name, width=_TINY)
        self.assertNotAllClose(fresh(inputs, training=False), expected)
        fresh.load_weights(weights)
        self.assertAllEqual(fresh(inputs, training=False), expected)


class SynchronizedBatchNormTest(tf.test.TestCase):
    def _batch_norms(self, model):
        norms = [
            layer
            for layer in _all_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        self.assertNotEmpty(norms)
        return norms

    def test_flag_reaches_every_batch_norm(self):
        for model in (
            models.build_generator(
                'resnet18_unet', width=_TINY, synchronized_batch_norm=True
            ),
            models.build_generator(
                'pix2pix_unet', width=_TINY, synchronized_batch_norm=True
            ),
            models.build_discriminator(
                width=_TINY, synchronized_batch_norm=True
            ),
        ):
            for layer in self._batch_norms(model):
                self.assertTrue(layer.synchronized, layer.name)

    def test_off_by_default(self):
        for name in ('resnet18_unet', 'pix2pix_unet'):
            for layer in self._batch_norms(_tiny_generator(name)):
                self.assertFalse(layer.synchronized, layer.name)


class TrainingPathTest(tf.test.TestCase):
    @pytest.mark.slow  # A process that starts TensorFlow.
    def test_building_models_does_not_import_torch(self):
        code = (
            'import sys; from chromagen_tf import models; '
            'models.build_generator(width=8); '
            'models.build_discriminator(width=8); '
            'print("torch" in sys.modules)'
        )
        result = subprocess.run(
            [sys.executable, '-c', code],
            cwd=conftest.REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        self.assertEqual(result.stdout.strip().splitlines()[-1], 'False')


if __name__ == '__main__':
    tf.test.main()
