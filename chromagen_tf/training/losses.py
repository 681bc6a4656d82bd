"""Per-example losses of the two training stages.

Every function returns one value per example ([B], float32), so that the
train step can reduce with `tf.nn.compute_average_loss` over the *global*
batch: summing those per-replica averages across replicas then gives the
same number as one device seeing the whole batch.

pix2pix (Isola et al. 2017, Sec. 3.1 and 3.3):
  discriminator loss = 0.5 * (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0))
      "we divide the objective by 2 while optimizing D";
  generator loss     = BCE(D(x, G(x)), 1) + lambda * L1(y, G(x)),
      the non-saturating form, with lambda = 100.
The LSGAN variant (Mao et al. 2017) replaces BCE on logits by the squared
error to the same targets. L1 is measured on normalised ab (ab / 110), as
in the tutorial this project follows.

With a colour-bins head (Zhang et al. 2016, Sec. 2.1) the reconstruction
term is instead the cross-entropy between the predicted bin distribution
and the soft-encoded true colours, at the logits' resolution.
"""

import tensorflow as tf

from chromagen_tf.models import color_bins

GAN_LOSSES = ('vanilla', 'lsgan')


def l1(ab_true: tf.Tensor, ab_pred: tf.Tensor) -> tf.Tensor:
    """Mean absolute error per example over pixels and both channels."""
    error = tf.abs(tf.cast(ab_true, tf.float32) - tf.cast(ab_pred, tf.float32))
    return tf.reduce_mean(error, axis=[1, 2, 3])


def color_bins_cross_entropy(
    ab_true: tf.Tensor, logits: tf.Tensor
) -> tf.Tensor:
    """Cross-entropy per example between soft-encoded ab and bin logits.

    ab_true [B, H, W, 2] is area-averaged to the logits' [B, h, w] first
    (the lite generators predict at 1/4 resolution), then soft-encoded.
    """
    logits = tf.cast(logits, tf.float32)
    ab_small = tf.image.resize(
        tf.cast(ab_true, tf.float32), tf.shape(logits)[1:3], method='area'
    )
    targets = color_bins.soft_encode(ab_small)
    per_pixel = tf.nn.softmax_cross_entropy_with_logits(
        labels=targets, logits=logits
    )
    return tf.reduce_mean(per_pixel, axis=[1, 2])


def _per_patch(logits: tf.Tensor, target: float, gan_loss: str) -> tf.Tensor:
    logits = tf.cast(logits, tf.float32)
    labels = tf.fill(tf.shape(logits), target)
    if gan_loss == 'vanilla':
        return tf.nn.sigmoid_cross_entropy_with_logits(
            labels=labels, logits=logits
        )
    if gan_loss == 'lsgan':
        return tf.square(logits - labels)
    raise ValueError(f'gan_loss must be one of {GAN_LOSSES}, got {gan_loss}')


def _mean_per_example(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))


def discriminator_loss(
    real_logits: tf.Tensor, fake_logits: tf.Tensor, gan_loss: str = 'vanilla'
) -> tf.Tensor:
    """0.5 * (loss(real -> 1) + loss(fake -> 0)), averaged over patches."""
    real = _mean_per_example(_per_patch(real_logits, 1.0, gan_loss))
    fake = _mean_per_example(_per_patch(fake_logits, 0.0, gan_loss))
    return 0.5 * (real + fake)


def generator_adversarial_loss(
    fake_logits: tf.Tensor, gan_loss: str = 'vanilla'
) -> tf.Tensor:
    """Non-saturating generator loss: loss(D(fake) -> 1) per example."""
    return _mean_per_example(_per_patch(fake_logits, 1.0, gan_loss))


def discriminator_score(logits: tf.Tensor, gan_loss: str = 'vanilla'):
    """Mean D output per example: a probability for vanilla, raw for LSGAN."""
    logits = tf.cast(logits, tf.float32)
    if gan_loss == 'vanilla':
        logits = tf.sigmoid(logits)
    return _mean_per_example(logits)
