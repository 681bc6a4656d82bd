"""The bundled-model format: float16 weights that restore a float32 model."""

import copy
import json
import os

import numpy as np
import tensorflow as tf

from chromagen_tf import bundled
from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import models
from chromagen_tf.inference import colorize_lib
from chromagen_tf.models import color_bins

_TINY = configs.ModelConfig(generator='resnet18_unet_lite', width=8)


class BundledFormatTest(tf.test.TestCase):
    def _saved(self, name='tiny'):
        generator = models.build_from_config(_TINY)
        # Non-trivial BatchNorm statistics, as a trained model has.
        for variable in generator.weights:
            if 'moving_variance' in variable.path:
                variable.assign(np.full(variable.shape, 2.5, np.float32))
        path = bundled.save(
            generator,
            _TINY,
            os.path.join(self.get_temp_dir(), name),
            render_size=96,
            info={'note': 'test'},
        )
        return generator, path

    def test_round_trip_restores_float32_to_half_precision(self):
        generator, path = self._saved()
        self.assertTrue(bundled.is_bundled_model(path))
        loaded, model_config, info = bundled.load_generator(path)
        self.assertEqual(model_config, _TINY)
        self.assertEqual(info['render_size'], 96)
        self.assertEqual(info['note'], 'test')
        for original, restored in zip(generator.weights, loaded.weights):
            self.assertEqual(restored.dtype, 'float32')
            self.assertAllClose(
                original.numpy(), restored.numpy(), rtol=1e-3, atol=1e-4
            )
        l_channel = (
            np.random.default_rng(0)
            .uniform(-1, 1, (1, 64, 96, 1))
            .astype(np.float32)
        )
        self.assertAllClose(
            generator(l_channel, training=False),
            loaded(l_channel, training=False),
            rtol=1e-2,
            atol=2e-3,
        )

    def test_colorizer_uses_the_recorded_render_size(self):
        _, path = self._saved('for_colorizer')
        colorizer = colorize_lib.load_colorizer(path)
        self.assertEqual(colorizer.render_size, 96)
        self.assertEqual(
            colorize_lib.load_colorizer(path, render_size=64).render_size, 64
        )
        gray = np.full((50, 70, 1), 120, np.uint8)
        (output,) = colorizer.colorize([gray])
        self.assertEqual(output.shape, (50, 70, 3))

    def test_wrong_architecture_is_one_clear_error(self):
        _, path = self._saved('wrong')
        with open(os.path.join(path, bundled.INFO_FILE)) as f:
            info = json.load(f)
        info['model']['width'] = 16
        with open(os.path.join(path, bundled.INFO_FILE), 'w') as f:
            json.dump(info, f)
        with self.assertRaisesRegex(
            bundled.BundledModelError, 'width 16.*shape'
        ):
            bundled.load_generator(path)

    def test_bad_colour_bins_fields_are_one_clear_error(self):
        bins = configs.ModelConfig(
            generator='resnet18_unet_lite',
            width=8,
            color_head='bins',
            prior_strength=0.25,
        )
        prior = [-6.0] * color_bins.NUM_BINS
        path = bundled.save(
            models.build_from_config(bins, prior),
            bins,
            os.path.join(self.get_temp_dir(), 'bins'),
            render_size=64,
            info={bundled.BIN_PRIOR_KEY: prior},
        )
        info_path = os.path.join(path, bundled.INFO_FILE)
        with open(info_path) as f:
            good = json.load(f)
        bundled.load_generator(path)  # Loads as written.
        for change, error, message in (
            (
                lambda info: info.update({bundled.BIN_PRIOR_KEY: prior[:300]}),
                bundled.BundledModelError,
                '300 values, not one per colour bin',
            ),
            (
                lambda info: info['model'].update(temperature=0.0),
                errors.UsageError,
                'temperature must be positive',
            ),
            (
                lambda info: info['model'].update(prior_strength=-1.0),
                errors.UsageError,
                r'prior_strength must be >= 0',
            ),
        ):
            info = copy.deepcopy(good)
            change(info)
            with open(info_path, 'w') as f:
                json.dump(info, f)
            with self.assertRaisesRegex(error, message):
                bundled.load_generator(path)

    def test_not_a_bundled_model(self):
        empty = self.get_temp_dir()
        self.assertFalse(bundled.is_bundled_model(empty))
        with self.assertRaisesRegex(bundled.BundledModelError, 'not a bundled'):
            bundled.load_generator(empty)


if __name__ == '__main__':
    tf.test.main()
