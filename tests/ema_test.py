"""The moving average of the generator's weights (--ema_decay)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import models
from chromagen_tf.training import checkpoints
from chromagen_tf.training import state
from chromagen_tf.training import trainer
from tests import shards
from tests import utils

_DECAY = 0.9


def _decay(step):
    return min(_DECAY, (1 + step) / (10 + step))


def _weights(model_dir, step, average):
    """A pretrain checkpoint's averaged or trained weights, in model order."""
    generator = models.build_from_config(configs.read_model_config(model_dir))
    models.loading.read_generator(
        generator,
        checkpoints.checkpoint_prefix(model_dir, 'pretrain', step),
        average,
    )
    return [weight.numpy() for weight in generator.weights]


class EmaTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = shards.write_shards(
            os.path.join(tf.compat.v1.test.get_temp_dir(), 'ema_data'),
            image_size=32,
            num_train=8,
            num_val=2,
        )

    def _train(self, model_dir, stage='pretrain', **overrides):
        return trainer.train(
            utils.tiny_config(
                self.data_dir,
                model_dir,
                stage=stage,
                train_steps=3,
                eval_every=1000,
                **overrides,
            )
        )

    @pytest.mark.slow  # A training run, then two trainers that restore it.
    def test_average_follows_its_update_rule_and_is_what_restores(self):
        model_dir = os.path.join(self.get_temp_dir(), 'ema')
        self._train(model_dir, ema_decay=_DECAY)
        raw = {
            step: _weights(model_dir, step, average=False) for step in (2, 3)
        }
        average = {
            step: _weights(model_dir, step, average=True) for step in (1, 2, 3)
        }
        self.assertGreater(len(raw[3]), 20)
        moved = 0
        for index, value in enumerate(raw[3]):
            for step in (2, 3):
                expected = (
                    _decay(step) * average[step - 1][index]
                    + (1 - _decay(step)) * raw[step][index]
                )
                self.assertAllClose(
                    average[step][index],
                    expected,
                    atol=1e-6,
                    rtol=1e-5,
                    msg=str(index),
                )
            moved += not np.allclose(average[3][index], value)
        # The average lags the weights: most of them differ from it.
        self.assertGreater(moved, len(raw[3]) // 2)

        generator, _, path = models.restore_generator(model_dir, 'pretrain')
        self.assertEqual(
            path, checkpoints.checkpoint_prefix(model_dir, 'pretrain', 3)
        )
        self.assertEqual(
            models.loading.generator_key(path), checkpoints.EMA_GENERATOR
        )
        for mine, theirs in zip(generator.weights, average[3], strict=True):
            self.assertAllEqual(mine.numpy(), theirs, msg=mine.path)

        trained, _, _ = models.restore_generator(
            model_dir, 'pretrain', average=False
        )
        for mine, theirs in zip(trained.weights, raw[3], strict=True):
            self.assertAllEqual(mine.numpy(), theirs, msg=mine.path)

        # A resumed stage gets its average back.
        resumed = state.Trainer(
            utils.tiny_config(
                self.data_dir, model_dir, train_steps=4, ema_decay=_DECAY
            ),
            tf.distribute.OneDeviceStrategy('/cpu:0'),
            'float32',
        )
        self.assertIn('resumed', resumed.restore_or_initialise())
        for mine, theirs in zip(
            resumed.networks.ema_generator.weights, average[3], strict=True
        ):
            self.assertAllEqual(mine.numpy(), theirs, msg=mine.path)
        resumed.close()

        # The GAN stage starts from the pretrained average, and so does its
        # own average.
        gan = state.Trainer(
            utils.tiny_config(
                self.data_dir, model_dir, stage='gan', ema_decay=_DECAY
            ),
            tf.distribute.OneDeviceStrategy('/cpu:0'),
            'float32',
        )
        self.assertIn('pretrain/ckpt-3', gan.restore_or_initialise())
        for network in (gan.networks.generator, gan.networks.ema_generator):
            for mine, theirs in zip(
                network.weights, generator.weights, strict=True
            ):
                self.assertAllClose(mine.numpy(), theirs.numpy(), msg=mine.path)
        gan.close()

    def test_a_checkpoint_without_an_average_restores_its_generator(self):
        model_dir = os.path.join(self.get_temp_dir(), 'plain')
        saved = utils.make_model_dir(model_dir)
        path = models.loading.latest_checkpoint(model_dir, 'gan')
        self.assertEqual(models.loading.generator_key(path), 'generator')
        generator, _, restored_path = models.restore_generator(model_dir)
        self.assertEqual(restored_path, path)
        for mine, theirs in zip(generator.weights, saved.weights, strict=True):
            self.assertAllEqual(mine.numpy(), theirs.numpy(), msg=mine.path)

    def test_decay_out_of_range_is_a_clear_error(self):
        with self.assertRaisesRegex(errors.UsageError, 'ema_decay'):
            utils.tiny_config(self.data_dir, 'unused', ema_decay=1.0)


if __name__ == '__main__':
    tf.test.main()
