"""Shared check that a generator can overfit one batch of real photos."""

import keras
import numpy as np
from PIL import Image
from PIL import ImageOps
import tensorflow as tf

from chromagen_tf import color
from tests import conftest

PHOTOS = ('astronaut.jpg', 'coffee.jpg', 'chelsea.jpg', 'rocket.jpg')


def photo_batch(size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns normalised (L, ab) of the four photos, centre-cropped."""
    images = []
    for name in PHOTOS:
        with Image.open(conftest.SAMPLE_PHOTOS / name) as image:
            image = ImageOps.fit(image.convert('RGB'), (size, size))
            images.append(np.asarray(image, dtype=np.float32) / 255.0)
    return color.rgb_to_normalized(tf.constant(np.stack(images)))


def fit_one_batch(
    generator: keras.Model,
    l_channel: tf.Tensor,
    ab: tf.Tensor,
    steps: int,
    learning_rate: float,
) -> list[float]:
    """Trains on one batch with an L1 loss; returns the loss of every step."""
    optimizer = keras.optimizers.Adam(learning_rate)
    # Building the slots first avoids tracing the step twice.
    optimizer.build(generator.trainable_variables)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            predicted = generator(l_channel, training=True)
            loss = tf.reduce_mean(tf.abs(predicted - ab))
        variables = generator.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return [float(train_step()) for _ in range(steps)]
