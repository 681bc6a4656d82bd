"""Configs: one set of defaults, stage recipes however a config is built."""

import dataclasses
import json
import subprocess
import sys

import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import errors
from tests import conftest


class StageRecipeTest(tf.test.TestCase):
    def test_every_way_of_building_a_gan_config_gets_the_gan_recipe(self):
        gan_recipe = configs.STAGE_DEFAULTS['gan']
        for config in (
            configs.TrainConfig(stage='gan'),
            configs.gan(),
            configs.for_stage('gan'),
            configs.tiny('gan'),
        ):
            for name, value in gan_recipe.items():
                self.assertEqual(getattr(config, name), value, name)
        self.assertEqual(configs.gan().lr_g, 2e-4)
        self.assertEqual(configs.gan().beta1, 0.5)
        self.assertEqual(configs.pretrain().lr_g, 1e-4)
        self.assertEqual(configs.pretrain().beta1, 0.9)

    def test_explicit_values_win_and_survive_json(self):
        config = configs.gan(lr_g=1e-3, epochs=3)
        self.assertEqual(config.lr_g, 1e-3)
        self.assertEqual(config.beta1, 0.5)
        again = configs.train_config_from_dict(
            json.loads(json.dumps(configs.to_dict(config)))
        )
        self.assertEqual(again, config)
        # Replacing the stage of a built config keeps its resolved values.
        self.assertEqual(
            dataclasses.replace(config, stage='pretrain').lr_g, 1e-3
        )

    def test_tiny_is_small_and_overridable(self):
        config = configs.tiny(image_size=64)
        self.assertEqual(config.model.width, 8)
        self.assertEqual(config.image_size, 64)
        self.assertEqual(config.train_steps, 2)

    def test_unknown_stage_is_a_usage_error(self):
        with self.assertRaisesRegex(errors.UsageError, 'stage must be'):
            configs.TrainConfig(stage='finetune')


class FlagsTest(tf.test.TestCase):
    def _configs_from(self, *argvs):
        # One process parses every command line: importing train.py costs
        # a TensorFlow start-up, and its flags live in absl's global FLAGS.
        script = (
            'import json, sys\n'
            'from absl import flags\n'
            'from chromagen_tf import configs, train\n'
            'for argv in json.loads(sys.argv[1]):\n'
            '    flags.FLAGS.unparse_flags()\n'
            '    flags.FLAGS([sys.argv[0], *argv])\n'
            '    print(json.dumps(configs.to_dict('
            'train.config_from_flags())))\n'
        )
        common = ['--data_dir=d', '--model_dir=m']
        result = subprocess.run(
            [
                sys.executable,
                '-c',
                script,
                json.dumps([common + list(argv) for argv in argvs]),
            ],
            cwd=conftest.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        lines = result.stdout.strip().splitlines()[-len(argvs) :]
        return [
            configs.train_config_from_dict(json.loads(line)) for line in lines
        ]

    def test_flags_override_only_what_was_passed(self):
        default, passed, baseline = self._configs_from(
            ['--stage=gan'],
            ['--stage=pretrain', '--width=16', '--epochs=3', '--lr_g=5e-4'],
            ['--stage=gan', '--init_from=none'],
        )
        self.assertEqual(default, configs.gan(data_dir='d', model_dir='m'))
        self.assertEqual(
            passed,
            configs.pretrain(
                data_dir='d',
                model_dir='m',
                epochs=3,
                lr_g=5e-4,
                model=configs.ModelConfig(width=16, discriminator_width=16),
            ),
        )
        self.assertEqual(baseline.model.generator, 'pix2pix_unet')


if __name__ == '__main__':
    tf.test.main()
