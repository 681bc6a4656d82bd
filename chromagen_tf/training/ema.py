"""The exponential moving average of the generator's weights.

With `ema_decay > 0` a second generator holds an exponential moving average
of the trained one's weights, updated after every step in cross-replica
context; evaluation, export and the GAN stage's start use it.
"""

import keras
import tensorflow as tf


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies every weight (BatchNorm statistics too) of one generator."""
    for to, value in zip(target.weights, source.weights, strict=True):
        to.assign(value)


def ema_decay_at(decay: float, step):
    """The decay of the update after `step` steps: min(decay, (1+n)/(10+n)).

    The warm-up of tf.train.ExponentialMovingAverage(num_updates=...): the
    average follows the first steps closely instead of holding on to the
    initial weights for ~1 / (1 - decay) steps.
    """
    step = tf.cast(step, tf.float32)
    return tf.minimum(
        tf.constant(decay, tf.float32), (1.0 + step) / (10.0 + step)
    )


def update_ema(
    ema_generator: keras.Model, generator: keras.Model, decay, step
) -> None:
    """ema <- d * ema + (1 - d) * weights, for every weight, d at `step`.

    Called in cross-replica context, after the optimizers have applied the
    all-reduced gradients: the trainable weights are then the same on every
    replica, and the assignment writes every replica's copy of the average.
    BatchNorm's moving statistics are averaged alike (replica 0's, as a
    checkpoint saves them). Weights of frozen layers (a hint branch's
    automatic generator) are left alone: their average is the weight itself,
    and d * w + (1 - d) * w need not round back to w.
    """
    d = ema_decay_at(decay, step)
    frozen = {
        variable.path
        for layer in generator.layers
        if not layer.trainable
        for variable in layer.weights
    }
    for average, value in zip(
        ema_generator.weights, generator.weights, strict=True
    ):
        if value.path in frozen:
            continue
        average.assign(
            tf.cast(d, average.dtype) * average
            + tf.cast(1.0 - d, average.dtype) * tf.cast(value, average.dtype)
        )
