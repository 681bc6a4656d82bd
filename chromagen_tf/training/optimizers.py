"""The optimizers of both networks and their learning-rate schedule.

Both networks train with Adam. For float16 the optimizers are wrapped in
`keras.optimizers.LossScaleOptimizer`: a step scales its loss with
`optimizer.scale_loss()`, and `optimizer.apply()` unscales the gradients
and skips the update (halving the scale) when they are not finite;
`apply_gradients` makes every replica agree on that skip.
"""

import keras
import tensorflow as tf

from chromagen_tf import configs


class LinearDecayToZero(keras.optimizers.schedules.LearningRateSchedule):
    """Constant, then linearly down to zero over the last `decay_steps`.

    pix2pix's schedule (Isola et al. 2017, and its reference code's
    `n_epochs` / `n_epochs_decay`): the learning rate stays at its initial
    value, then falls linearly to zero by `total_steps`. A fixed budget is
    best spent with a rate that reaches zero at its end (Li et al. 2020,
    "Budgeted training").
    """

    def __init__(
        self, initial_learning_rate: float, total_steps: int, decay_steps: int
    ):
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.decay_steps = max(int(decay_steps), 1)

    def __call__(self, step):
        remaining = tf.cast(self.total_steps, tf.float32) - tf.cast(
            step, tf.float32
        )
        fraction = tf.clip_by_value(remaining / self.decay_steps, 0.0, 1.0)
        return self.initial_learning_rate * fraction

    def get_config(self):
        return dict(
            initial_learning_rate=self.initial_learning_rate,
            total_steps=self.total_steps,
            decay_steps=self.decay_steps,
        )


def learning_rate(
    initial: float, config: configs.TrainConfig, total_steps: int
):
    """initial, or its LinearDecayToZero if config.lr_decay_fraction > 0."""
    if config.lr_decay_fraction <= 0:
        return initial
    if total_steps < 1:  # A decay to nowhere would train at rate 0.
        raise ValueError('lr_decay_fraction needs the stage\'s total_steps.')
    return LinearDecayToZero(
        initial, total_steps, round(config.lr_decay_fraction * total_steps)
    )


def make_optimizer(
    learning_rate, config: configs.TrainConfig, policy: str, name: str
) -> keras.optimizers.Optimizer:
    """Adam with config's betas; loss-scaled under 'mixed_float16'."""
    optimizer = keras.optimizers.Adam(
        learning_rate=learning_rate,
        beta_1=config.beta1,
        beta_2=config.beta2,
        name=name,
    )
    if policy == 'mixed_float16':
        optimizer = keras.optimizers.LossScaleOptimizer(
            optimizer, name=name + '_loss_scale'
        )
    return optimizer


def apply_gradients(optimizer, gradients, variables) -> None:
    """optimizer.apply, with float16 overflow agreed across replicas.

    Keras' LossScaleOptimizer decides to skip a step from the gradients it
    is given, which in a replica context are that replica's own, before the
    all-reduce; under MirroredStrategy it acts on replica 0's verdict, so an
    overflow on replica 1 alone would be summed into every weight. Here the
    replicas first all-reduce a count of those that overflowed; if any did,
    every replica's gradients are made non-finite, so that all of them skip
    the step and halve the loss scale together.
    """
    context = tf.distribute.get_replica_context()
    if (
        isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        and context is not None
        and context.num_replicas_in_sync > 1
    ):
        finite = tf.reduce_all(
            [
                tf.reduce_all(tf.math.is_finite(gradient))
                for gradient in gradients
                if gradient is not None
            ]
        )
        overflowed = context.all_reduce(
            tf.distribute.ReduceOp.SUM,
            tf.cast(tf.logical_not(finite), tf.float32),
        )
        poison = tf.where(overflowed > 0, float('nan'), 0.0)
        gradients = [
            None
            if gradient is None
            else gradient + tf.cast(poison, gradient.dtype)
            for gradient in gradients
        ]
    optimizer.apply(gradients, variables)
