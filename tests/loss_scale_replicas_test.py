"""float16 overflow on one replica of two: every replica skips the step.

Keras' LossScaleOptimizer decides from the gradients it is handed, which
inside `strategy.run` are one replica's own. These tests put Inf into one
replica's gradients only, on 2 logical CPU devices.
"""

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from chromagen_tf import train_steps


class ReplicaOverflowTest(tf.test.TestCase, parameterized.TestCase):

    def setUp(self):
        super().setUp()
        keras.mixed_precision.set_global_policy('mixed_float16')
        self.strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
        with self.strategy.scope():
            self.model = keras.Sequential(
                [keras.Input((3,)), keras.layers.Dense(2)])
            self.optimizer = keras.optimizers.LossScaleOptimizer(
                keras.optimizers.Adam(1e-2))
            self.optimizer.build(self.model.trainable_variables)

    def tearDown(self):
        keras.mixed_precision.set_global_policy('float32')
        super().tearDown()

    def _step(self, bad_replica, apply_fn):
        variables = self.model.trainable_variables

        def replica_fn():
            context = tf.distribute.get_replica_context()
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.cast(
                    self.model(tf.ones([2, 3])), tf.float32))
                scaled = self.optimizer.scale_loss(loss)
            gradients = tape.gradient(scaled, variables)
            bad = tf.equal(context.replica_id_in_sync_group, bad_replica)
            gradients = [tf.where(bad, gradient * np.inf, gradient)
                         for gradient in gradients]
            apply_fn(self.optimizer, gradients, variables)

        tf.function(lambda: self.strategy.run(replica_fn))()

    def _weights(self):
        return [variable.numpy() for variable in
                self.model.trainable_variables]

    @parameterized.parameters(0, 1)
    def test_overflow_on_one_replica_skips_everywhere(self, bad_replica):
        before = self._weights()
        scale = float(self.optimizer.dynamic_scale.numpy())
        self._step(bad_replica, train_steps.apply_gradients)
        for old, new in zip(before, self._weights()):
            self.assertTrue(np.all(np.isfinite(new)))
            self.assertAllEqual(old, new)
        self.assertEqual(float(self.optimizer.dynamic_scale.numpy()),
                         scale / 2)
        self.assertEqual(int(self.optimizer.iterations.numpy()), 0)
        # The next clean step goes in on both replicas alike.
        self._step(-1, train_steps.apply_gradients)
        self.assertEqual(int(self.optimizer.iterations.numpy()), 1)
        self.assertTrue(all(np.all(np.isfinite(w)) for w in self._weights()))
        self.assertNotAllClose(before[0], self._weights()[0])

    def test_plain_apply_does_not_skip_together(self):
        # Why apply_gradients exists. With Keras alone the replicas disagree:
        # replica 0 applies and all-reduces, replica 1 skips; here that is a
        # collective with mismatched members (elsewhere, Inf summed into the
        # weights). If a Keras release fixes this, the workaround can go.
        try:
            self._step(1, lambda optimizer, gradients, variables:
                       optimizer.apply(gradients, variables))
        except tf.errors.InvalidArgumentError as error:
            self.assertIn('collective', str(error).lower())
            return
        self.assertFalse(all(np.all(np.isfinite(w)) for w in self._weights()))


if __name__ == '__main__':
    tf.test.main()
