"""float16 dynamic loss scaling under an injected gradient overflow.

The generator's LossScaleOptimizer is given a loss scale of 2**60, so the
float16 backward pass overflows to Inf. Such a step must be skipped (no
weight moves), halve the scale and still count as a step; from a scale that
is too large, the scale falls by itself and the updates resume. The same
holds for the colour-bins head, whose cross-entropy is computed in float32
from float32 logits while the rest of the generator runs in float16.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records
from chromagen_tf.training import distribute
from chromagen_tf.training import state
from tests import shards
from tests import utils

_HUGE_SCALE = 2.0**60


class _LossScaleChecks:
    """The checks, for a model and the losses its step reports."""

    model: configs.ModelConfig
    loss_names: set[str]

    def setUp(self):
        super().setUp()
        data_dir = shards.write_shards(
            os.path.join(self.get_temp_dir(), 'data'),
            image_size=32,
            num_train=4,
            num_val=1,
            train_shards=1,
        )
        config = utils.tiny_config(
            data_dir,
            os.path.join(self.get_temp_dir(), 'run'),
            mixed_precision='float16',
            model=self.model,
        )
        strategy, policy = distribute.setup('one_device', 'float16')
        self.assertEqual(policy, 'mixed_float16')
        self.trainer = state.Trainer(config, strategy, policy)
        pattern = records.shard_pattern(data_dir, 'train')
        self.iterator = iter(
            strategy.distribute_datasets_from_function(
                lambda context: input_pipeline.make_dataset(
                    pattern,
                    training=True,
                    image_size=32,
                    global_batch_size=4,
                    input_context=context,
                )
            )
        )
        self.optimizer = self.trainer.networks.generator_optimizer
        self.assertIsInstance(
            self.optimizer, keras.optimizers.LossScaleOptimizer
        )

    def _weights(self):
        return [
            variable.numpy()
            for variable in self.trainer.networks.generator.trainable_variables
        ]

    def _run(self, num_steps):
        means, first_bad_step, _ = self.trainer.steps.train_loop(
            self.iterator, tf.constant(num_steps, tf.int32)
        )
        # The loss itself is unscaled and finite: the loop must not stop.
        self.assertEqual(int(first_bad_step), -1)
        self.assertEqual(set(means), self.loss_names)
        for value in means.values():
            self.assertTrue(np.isfinite(float(value)))

    def _scale(self) -> float:
        return float(self.optimizer.dynamic_scale.numpy())

    def test_overflow_skips_the_step_halves_the_scale_and_training_goes_on(
        self,
    ):
        # A random network's first float16 gradients may overflow even at
        # Keras's initial scale of 2**15: train until one update went in.
        for _ in range(20):
            self._run(1)
            if int(self.optimizer.iterations.numpy()):
                break
        applied_before = int(self.optimizer.iterations.numpy())
        self.assertGreater(applied_before, 0)
        step_before = int(self.trainer.global_step.numpy())
        working_scale = self._scale()
        self.optimizer.dynamic_scale.assign(_HUGE_SCALE)
        before = self._weights()

        self._run(1)
        self.assertEqual(int(self.trainer.global_step.numpy()), step_before + 1)
        self.assertEqual(self._scale(), _HUGE_SCALE / 2)
        # Skipped: Adam did not count the step and no weight moved.
        self.assertEqual(int(self.optimizer.iterations.numpy()), applied_before)
        for after, old in zip(self._weights(), before):
            self.assertAllEqual(after, old)

        # Left alone, the scale halves until the float16 gradients fit, then
        # the updates resume. The descent starts 2**2 above the scale that
        # worked, not at 2**59 (45 halvings of slow CPU float16 steps).
        start_scale = working_scale * 2**2
        self.optimizer.dynamic_scale.assign(start_scale)
        num_steps = 6
        self._run(num_steps)
        self.assertEqual(
            int(self.trainer.global_step.numpy()), step_before + 1 + num_steps
        )
        skipped = int(round(np.log2(start_scale / self._scale())))
        applied = int(self.optimizer.iterations.numpy()) - applied_before
        self.assertGreater(applied, 0)
        # Every step was either skipped (halving the scale) or applied.
        self.assertEqual(skipped + applied, num_steps)
        changed = [
            not np.array_equal(after, old)
            for after, old in zip(self._weights(), before)
        ]
        self.assertTrue(all(changed))
        for weight in self._weights():
            self.assertTrue(np.all(np.isfinite(weight)))


@pytest.mark.slow  # The colour-bins case below runs the same checks.
class LossScaleTest(_LossScaleChecks, tf.test.TestCase):
    model = configs.TINY['model']
    loss_names = {'l1'}


class ColorBinsLossScaleTest(_LossScaleChecks, tf.test.TestCase):
    """The bundled model's kind: the fast tier's float16 training steps."""

    model = configs.ModelConfig(
        generator='resnet18_unet_lite',
        width=8,
        discriminator_width=8,
        color_head='bins',
    )
    loss_names = {'l1', 'ce'}


if __name__ == '__main__':
    tf.test.main()
