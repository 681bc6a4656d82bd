"""float16 overflow on one replica of two: every replica skips the step.

Keras' LossScaleOptimizer decides from the gradients it is handed, which
inside `strategy.run` are one replica's own. These tests put Inf into one
replica's gradients only, on 2 logical CPU devices. Each case runs in its
own Python process: collective instance keys are per process, and another
test file's MirroredStrategy in the same pytest worker would collide with
this one's (a real multi-replica job has one strategy).
"""

import json
import subprocess
import sys

from absl.testing import parameterized
import pytest
import tensorflow as tf

from tests import conftest

_SCRIPT = r'''
import json, sys
import numpy as np
import tensorflow as tf
cpus = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from chromagen_tf.training import optimizers

bad_replica, plain = int(sys.argv[1]), sys.argv[2] == 'plain'
keras.mixed_precision.set_global_policy('mixed_float16')
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
with strategy.scope():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(1e-2))
    optimizer.build(model.trainable_variables)
variables = model.trainable_variables


def step(bad):
    def replica_fn():
        context = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(model(tf.ones([2, 3])), tf.float32))
            scaled = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, variables)
        is_bad = tf.equal(context.replica_id_in_sync_group, bad)
        gradients = [tf.where(is_bad, g * np.inf, g) for g in gradients]
        if plain:
            optimizer.apply(gradients, variables)
        else:
            optimizers.apply_gradients(optimizer, gradients, variables)
    tf.function(lambda: strategy.run(replica_fn))()


before = [v.numpy() for v in variables]
scale = float(optimizer.dynamic_scale.numpy())
result = {}
try:
    step(bad_replica)
except tf.errors.OpError as error:
    result['error'] = str(error).splitlines()[0]
else:
    after = [v.numpy() for v in variables]
    result.update(
        finite=all(bool(np.all(np.isfinite(w))) for w in after),
        unchanged=all(
            bool(np.array_equal(a, b)) for a, b in zip(before, after)
        ),
        scale_ratio=float(optimizer.dynamic_scale.numpy()) / scale,
        iterations=int(optimizer.iterations.numpy()))
    if not plain:
        step(-1)
        result.update(
            iterations_after_clean_step=int(optimizer.iterations.numpy()),
            moved_after_clean_step=not np.allclose(
                before[0], variables[0].numpy()),
            finite_after_clean_step=all(
                bool(np.all(np.isfinite(v.numpy()))) for v in variables))
print('RESULT ' + json.dumps(result))
'''


def _run(bad_replica: int, mode: str) -> dict:
    completed = subprocess.run(
        [sys.executable, '-c', _SCRIPT, str(bad_replica), mode],
        cwd=conftest.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT ') :])
    raise AssertionError(completed.stderr[-3000:])


@pytest.mark.slow  # A Python process per case.
class ReplicaOverflowTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(0, 1)
    def test_overflow_on_one_replica_skips_everywhere(self, bad_replica):
        result = _run(bad_replica, 'agreed')
        self.assertNotIn('error', result)
        self.assertTrue(result['finite'])
        self.assertTrue(result['unchanged'])
        self.assertEqual(result['scale_ratio'], 0.5)
        self.assertEqual(result['iterations'], 0)
        # The next clean step goes in on both replicas alike.
        self.assertEqual(result['iterations_after_clean_step'], 1)
        self.assertTrue(result['moved_after_clean_step'])
        self.assertTrue(result['finite_after_clean_step'])

    def test_plain_apply_does_not_skip_together(self):
        # Why apply_gradients exists. With Keras alone the replicas disagree:
        # replica 0 applies and all-reduces, replica 1 skips; here that is a
        # collective with mismatched members (elsewhere, Inf summed into the
        # weights). If a Keras release fixes this, the workaround can go.
        result = _run(1, 'plain')
        if 'error' in result:
            self.assertIn('collective', result['error'].lower())
        else:
            self.assertFalse(result['finite'])


if __name__ == '__main__':
    tf.test.main()
