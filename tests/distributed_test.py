"""Two replicas must compute what one device computes at the same batch.

This is the test that catches a wrong loss reduction: averaging per replica
instead of over the global batch would double every gradient here.
MirroredStrategy runs over the two logical CPUs configured in conftest.py.

The networks run in float64. In float32 the two computations agree on the
losses to ~1e-6 but on gradients only to ~1% (median 0.8% per variable for
the tiny ResNet U-Net): Keras' synchronized BatchNorm computes the variance
as E[x^2] - E[x]^2, whose cancellation the summation order changes, and a
randomly initialised deep network amplifies that. In float64 the same
comparison agrees to ~1e-13, which isolates the reduction logic under test.
"""

import contextlib
import dataclasses
import os
import threading
from unittest import mock

from absl.testing import parameterized
import numpy as np
import pytest
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records
from chromagen_tf.training import networks as networks_lib
from chromagen_tf.training import train_steps
from tests import shards

_GLOBAL_BATCH = 4


_LITE_MODEL = configs.ModelConfig(
    generator='resnet18_unet_lite', width=8, discriminator_width=8
)
_BINS_MODEL = configs.ModelConfig(
    generator='resnet18_unet_lite',
    width=8,
    discriminator_width=8,
    color_head='bins',
)


def _config(stage, sync_batch_norm, model=None):
    values = dict(
        stage=stage,
        model=model or configs.ModelConfig(width=8, discriminator_width=8),
        image_size=32,
        global_batch_size=_GLOBAL_BATCH,
        sync_batch_norm=sync_batch_norm,
    )
    return configs.TrainConfig(**values)


def _build(strategy, config, policy='float64'):
    # The same config.seed on both strategies: the same initial weights.
    with strategy.scope():
        networks = networks_lib.build_networks(config, policy)
        step = tf.Variable(0, dtype=tf.int64)
    return train_steps.StepFunctions(config, strategy, networks, step)


def _batches(strategy, pattern, training=False, **pipeline_args):
    """The distributed batches of the pipeline, repeated."""

    def dataset_fn(input_context):
        return input_pipeline.make_dataset(
            pattern,
            training=training,
            image_size=32,
            global_batch_size=_GLOBAL_BATCH,
            input_context=input_context,
            **pipeline_args,
        ).repeat()

    return iter(strategy.distribute_datasets_from_function(dataset_fn))


def _first_batch(strategy, pattern):
    return next(_batches(strategy, pattern))


def _run_one_step(steps, batch):
    """Runs the training step, as training runs it, once.

    The step is not changed for the test: each optimizer's `apply` is
    wrapped to record the gradients the step hands it (per replica, before
    the optimizer's all-reduce). MirroredStrategy traces each replica in a
    thread of its own, so the records are kept per thread.

    Returns:
      (metrics, {network: gradients}), each summed over the replicas.
    """
    handed = {}
    optimizers = {'generator': steps.networks.generator_optimizer}
    if steps.networks.discriminator_optimizer is not None:
        optimizers['discriminator'] = steps.networks.discriminator_optimizer

    def recording(name, apply):
        def recording_apply(gradients, variables):
            handed.setdefault(threading.get_ident(), {})[name] = list(gradients)
            return apply(gradients, variables)

        return recording_apply

    def replica_fn(batch):
        metrics = steps.replica_step(batch)
        return metrics, handed.pop(threading.get_ident())

    @tf.function
    def run(batch):
        return tf.nest.map_structure(
            lambda value: steps.strategy.reduce(
                tf.distribute.ReduceOp.SUM, value, axis=None
            ),
            steps.strategy.run(replica_fn, args=(batch,)),
        )

    with contextlib.ExitStack() as stack:
        for name, optimizer in optimizers.items():
            stack.enter_context(
                mock.patch.object(
                    optimizer, 'apply', recording(name, optimizer.apply)
                )
            )
        return run(batch)


def _trainable_weights(steps):
    networks = steps.networks
    return {
        name: [w.numpy() for w in model.trainable_variables]
        for name, model in (
            ('generator', networks.generator),
            ('discriminator', networks.discriminator),
        )
        if model is not None
    }


def _per_replica_average(self, per_example):
    """The bug the replica tests exist for: a mean over the replica's batch.

    Summed over N replicas, every loss and gradient comes out N times too
    large.
    """
    del self  # Unused.
    return tf.reduce_mean(per_example)


class ReplicaAgreementTest(tf.test.TestCase, parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        directory = shards.write_shards(
            os.path.join(tf.compat.v1.test.get_temp_dir(), 'replicas'),
            image_size=32,
            num_train=1,
            num_val=_GLOBAL_BATCH,
        )
        cls.pattern = records.shard_pattern(directory, 'val')
        cls.one = tf.distribute.OneDeviceStrategy('/cpu:0')
        # The steps run in float64, but every generator's output layer in
        # float32; the default CollectiveAllReduce concatenates a step's
        # gradients into one all-reduce, which needs a single dtype. This
        # sums each on its own (the same sum, by another implementation).
        cls.two = tf.distribute.MirroredStrategy(
            ['/cpu:0', '/cpu:1'],
            cross_device_ops=tf.distribute.ReductionToOneDevice(),
        )

    def _one_step_each(self, stage, sync_batch_norm, model=None):
        """One step on one device and on two replicas, from the same start.

        Returns:
          Per strategy: (metrics, gradients handed to each optimizer, the
          trainable weights after the step).
        """
        config = _config(stage, sync_batch_norm, model)
        results = []
        for strategy in (self.one, self.two):
            steps = _build(strategy, config)
            metrics, gradients = _run_one_step(
                steps, _first_batch(strategy, self.pattern)
            )
            results.append((metrics, gradients, _trainable_weights(steps)))
        self.assertEqual(self.two.num_replicas_in_sync, 2)
        return results

    def _assert_gradients_close(self, first, second):
        self.assertEqual(set(first), set(second))
        for name in first:
            for a, b in zip(first[name], second[name], strict=True):
                scale = float(tf.reduce_max(tf.abs(a))) + 1e-12
                self.assertAllClose(a, b, rtol=1e-5, atol=1e-5 * scale)

    def _assert_steps_agree(self, one, two):
        (metrics_1, grads_1, weights_1), (metrics_2, grads_2, weights_2) = (
            one,
            two,
        )
        self.assertEqual(set(metrics_1), set(metrics_2))
        for name in metrics_1:
            self.assertAllClose(
                metrics_1[name], metrics_2[name], rtol=1e-5, msg=name
            )
        self._assert_gradients_close(grads_1, grads_2)
        for name in weights_1:
            for a, b in zip(weights_1[name], weights_2[name], strict=True):
                self.assertAllClose(a, b, rtol=1e-6, atol=1e-7, msg=name)

    # The GAN step on the COCO generator (resnet18_unet); the pretraining
    # step on the lite one, whose synchronized BatchNorm layers are the
    # same but fewer (tracing them on two replicas is most of the time).
    @parameterized.parameters(('pretrain', _LITE_MODEL), ('gan', None))
    @pytest.mark.slow  # Builds and traces a step on 1 and 2 replicas.
    def test_two_replicas_match_one_with_sync_batch_norm(self, stage, model):
        # The GAN step updates the discriminator, then computes the
        # generator's loss against the updated discriminator: the
        # generator's gradients agree only if both updates did.
        one, two = self._one_step_each(stage, sync_batch_norm=True, model=model)
        self.assertEqual(
            set(one[1]),
            {'generator'}
            if stage == 'pretrain'
            else {'generator', 'discriminator'},
        )
        self._assert_steps_agree(one, two)

    @pytest.mark.slow  # A step on 1 and 2 replicas.
    def test_averaging_per_replica_is_caught(self):
        # The negative control of the pretraining case above, on the same
        # model.
        with mock.patch.object(
            train_steps.StepFunctions, '_average', _per_replica_average
        ):
            one, two = self._one_step_each(
                'pretrain', sync_batch_norm=True, model=_LITE_MODEL
            )
        self.assertAllClose(two[0]['l1'], 2 * one[0]['l1'], rtol=1e-5)
        with self.assertRaises(AssertionError):
            self._assert_steps_agree(one, two)

    @pytest.mark.slow  # A step on 1 and 2 replicas.
    def test_two_replicas_match_one_on_the_colour_bins_cross_entropy(self):
        # The cross-entropy is averaged over the global batch as the L1 is;
        # its head (logits and annealed mean) runs in float32 whatever the
        # policy, which the tolerance allows.
        one, two = self._one_step_each(
            'pretrain', sync_batch_norm=True, model=_BINS_MODEL
        )
        self.assertEqual(set(one[0]), {'l1', 'ce'})
        self._assert_steps_agree(one, two)

    @pytest.mark.slow  # A step on 1 and 2 replicas.
    def test_plain_batch_norm_differs_per_replica(self):
        # Each replica normalises by its own half of the batch: a real,
        # documented difference, and proof that the check above can fail.
        (metrics_1, grads_1, _), (metrics_2, grads_2, _) = self._one_step_each(
            'pretrain', sync_batch_norm=False
        )
        self.assertNotAllClose(metrics_1['l1'], metrics_2['l1'], rtol=1e-9)
        with self.assertRaises(AssertionError):
            self._assert_gradients_close(grads_1, grads_2)

    @pytest.mark.slow  # A training loop on 2 replicas.
    def test_two_replicas_update_both_copies_of_the_average(self):
        # The moving average (--ema_decay) is assigned in cross-replica
        # context after the step; both replicas' copies must hold it. Here,
        # in the shared strategy: a second MirroredStrategy in this process
        # would reuse its collectives' instance keys.
        config = dataclasses.replace(
            _config('pretrain', False, _LITE_MODEL), ema_decay=0.9
        )
        steps = _build(self.two, config, 'float32')
        networks = steps.networks
        # Trainable weights: the same on both replicas after a step (plain
        # BatchNorm's statistics are not).
        trainable = networks.generator.trainable_variables
        position = {id(w): i for i, w in enumerate(networks.generator.weights)}
        averages = [
            networks.ema_generator.weights[position[id(v)]] for v in trainable
        ]
        initial = [w.numpy() for w in trainable]

        steps.train_loop(
            _batches(self.two, self.pattern), tf.constant(1, tf.int32)
        )
        decay = min(0.9, (1 + 1) / (10 + 1))
        changed = 0
        for average, weight, start in zip(
            averages, trainable, initial, strict=True
        ):
            expected = decay * start + (1 - decay) * weight.numpy()
            copies = self.two.experimental_local_results(average.value)
            self.assertLen(copies, 2)
            for copy in copies:
                self.assertAllClose(
                    copy.numpy(),
                    expected,
                    rtol=1e-5,
                    atol=1e-6,
                    msg=average.path,
                )
            changed += not np.allclose(expected, start)
        self.assertGreater(changed, 20)

    @parameterized.parameters(
        ('pretrain', 'mixed_bfloat16'), ('gan', 'mixed_float16')
    )
    @pytest.mark.slow  # A training loop on 2 replicas.
    def test_a_hint_model_trains_on_two_replicas(self, stage, policy):
        # Hints drawn per replica in the pipeline (--hints=local), mixed
        # precision (float16 with its loss scale in the GAN stage), in the
        # shared strategy. The hint inputs' kernel starts at zero: it moves
        # only if the hints reach the step, and alike on both replicas.
        config = dataclasses.replace(
            _config(
                stage,
                False,
                dataclasses.replace(_LITE_MODEL, hints=True),
            ),
            hints='local',
        )
        steps = _build(self.two, config, policy)
        kernel = steps.networks.generator.get_layer('hint_conv').kernel
        self.assertEqual(float(tf.reduce_max(tf.abs(kernel))), 0.0)

        iterator = _batches(
            self.two,
            self.pattern,
            training=True,
            hints='local',
            no_hint_probability=0.0,
        )
        # float16's loss scale starts at 2**15 and halves on each overflow,
        # skipping that step: the first steps may apply nothing.
        means, first_bad_step, _ = steps.train_loop(
            iterator, tf.constant(8, tf.int32)
        )
        applied = steps.networks.generator_optimizer.iterations
        self.assertGreater(int(applied.numpy()), 0)
        self.assertEqual(int(first_bad_step), -1)
        for name, value in means.items():
            self.assertTrue(np.isfinite(float(value)), name)
        copies = self.two.experimental_local_results(kernel.value)
        self.assertLen(copies, 2)
        self.assertGreater(float(tf.reduce_max(tf.abs(copies[0]))), 0.0)
        self.assertAllEqual(copies[0], copies[1])
        # Each replica's half of a batch carries hints of its own.
        masks = self.two.experimental_local_results(next(iterator)[3])
        self.assertLen(masks, 2)
        for mask in masks:
            self.assertGreater(float(tf.reduce_sum(mask)), 0.0)
        self.assertNotAllEqual(masks[0], masks[1])


if __name__ == '__main__':
    tf.test.main()
