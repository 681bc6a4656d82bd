"""a*b* as a distribution over colour bins (Zhang et al. 2016).

Regression with L1 predicts the median colour, which on an uncertain photo
is a muddy compromise; Zhang, Isola and Efros ("Colorful Image
Colorization", ECCV 2016) instead classify each position into one of Q
quantised a*b* bins and decode the distribution with an *annealed mean*:

    ab = sum_q softmax(logits / T)_q * centre_q

T = 1 is the distribution's mean (the best guess for squared error, and
gray where the model is unsure); T -> 0 is its mode; Zhang et al. chose
T = 0.38 for a model trained with class rebalancing, whose modes are
vivid. Trained without rebalancing, as here, the mode is gray on most
pixels, so lowering T alone makes the output paler (BENCHMARKS.md); the
rebalancing is applied at decoding instead (`prior_strength`,
`training/bin_prior.py`). The gray bin (0, 0) is a bin centre, so "this is
a neutral object" is a class of its own.

This module holds the one definition of the bins and their soft-encoded
targets; `unet_lite` builds the head, `training.losses` the cross-entropy.

  * Bins: a square grid of spacing 10 (Zhang's grid size) over
    [-110, 110]^2, 23 x 23 = 529 centres in normalised units (ab / 110).
    Zhang keep only the 313 in the sRGB gamut; here the bins more than
    about two grid steps outside it receive next to no target mass (the
    soft encoding reaches the bins just outside the gamut's edge), so the
    network learns to give them none, at the price of a wider 1x1
    convolution (measured in BENCHMARKS.md).
  * Soft encoding: each true colour spreads over nearby centres with a
    Gaussian of sigma 5 (Zhang Sec. 2.1; they truncate to 5 neighbours,
    here weights beyond ~2 bins are below 1e-3 of the nearest).
"""

import keras
import numpy as np
import tensorflow as tf

from chromagen_tf import color

_PACKAGE = 'chromagen'

# Zhang et al. 2016, Sec. 2.1: grid size 10, soft-encoding sigma 5 (Lab
# units); T = 0.38 in Sec. 2.3.
BIN_SPACING = 10.0
SOFT_ENCODING_SIGMA = 5.0
ZHANG_TEMPERATURE = 0.38
# Suggested colours lie at least this many bins (of 10 a*b* units) apart.
SUGGESTION_SPACING = 2.0
_BINS_PER_AXIS = 2 * int(color.AB_SCALE // BIN_SPACING) + 1  # 23


def bin_centres() -> np.ndarray:
    """[Q, 2] bin centres (a, b) in normalised units, row-major in a."""
    axis = (np.arange(_BINS_PER_AXIS) - _BINS_PER_AXIS // 2) * BIN_SPACING
    a, b = np.meshgrid(axis, axis, indexing='ij')
    return (np.stack([a.ravel(), b.ravel()], -1) / color.AB_SCALE).astype(
        np.float32
    )


NUM_BINS = _BINS_PER_AXIS**2


def soft_encode(ab: tf.Tensor) -> tf.Tensor:
    """Soft one-hot targets [..., Q] for normalised ab [..., 2].

    The Gaussian of the distance to a centre of the square grid factorises
    into one Gaussian along a and one along b, so the weights are the outer
    product of two [..., 23] vectors: no [..., Q, 2] tensor of differences
    is built (at 256x256 and batch 16 that tensor alone was 277 MB).
    """
    ab = tf.cast(ab, tf.float32)
    axis = tf.constant(bin_centres()[::_BINS_PER_AXIS, 0])  # The a values.
    sigma = SOFT_ENCODING_SIGMA / color.AB_SCALE
    squared = tf.square(ab[..., tf.newaxis] - axis)  # [..., 2, 23]
    # Subtracting the minimum keeps exp() away from underflow everywhere.
    squared -= tf.reduce_min(squared, axis=-1, keepdims=True)
    weights = tf.exp(-squared / (2.0 * sigma * sigma))
    weights /= tf.reduce_sum(weights, axis=-1, keepdims=True)
    # Centres are row-major in a: bin (i, j) has a = axis[i], b = axis[j].
    outer = weights[..., 0, :, tf.newaxis] * weights[..., 1, tf.newaxis, :]
    return tf.reshape(outer, tf.concat([tf.shape(ab)[:-1], [NUM_BINS]], 0))


def annealed_mean(
    logits: tf.Tensor,
    temperature: float,
    log_prior=None,
    prior_strength: float = 0.0,
) -> tf.Tensor:
    """sum_q softmax(logits / T)_q * centre_q: [..., Q] -> [..., 2].

    With a log prior [Q] and prior_strength tau > 0, the logits are first
    adjusted to logits - tau * log_prior (`training/bin_prior.py`).
    """
    logits = tf.cast(logits, tf.float32)
    if prior_strength:
        logits -= prior_strength * tf.constant(log_prior, tf.float32)
    probabilities = tf.nn.softmax(logits / temperature, axis=-1)
    return tf.einsum('...q,qc->...c', probabilities, tf.constant(bin_centres()))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AnnealedMean(keras.layers.Layer):
    """Decodes colour-bin logits [B, h, w, Q] to normalised ab [B, h, w, 2].

    The temperature and the prior adjustment are settings, not weights
    (`ModelConfig.temperature`, `ModelConfig.prior_strength`): the same
    trained weights can be decoded at any of them.
    """

    def __init__(
        self,
        temperature: float = ZHANG_TEMPERATURE,
        log_prior=None,
        prior_strength: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f'temperature must be positive, got {temperature}')
        if prior_strength and log_prior is None:
            raise ValueError(
                f'prior_strength={prior_strength} needs the training set\'s '
                'colour-bin prior (bin_prior.json of the training directory '
                'or bin_log_prior of a bundled model).'
            )
        if log_prior is not None and len(log_prior) != NUM_BINS:
            raise ValueError(
                f'log_prior has {len(log_prior)} values, not {NUM_BINS}.'
            )
        self.temperature = float(temperature)
        self.log_prior = (
            None if log_prior is None else [float(value) for value in log_prior]
        )
        self.prior_strength = float(prior_strength)

    def call(self, inputs):
        return annealed_mean(
            inputs, self.temperature, self.log_prior, self.prior_strength
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)

    def get_config(self):
        config = super().get_config()
        config.update(
            temperature=self.temperature,
            log_prior=self.log_prior,
            prior_strength=self.prior_strength,
        )
        return config


def suggest(logits: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The k most likely distinct colours of colour-bin logits [Q].

    The colour suggestions of Zhang et al. 2017 (Sec. 3.4): the network's
    own distribution at a point. Neighbouring bins are nearly the same
    colour, so suggestions are picked greedily: the bin whose 3x3
    neighbourhood on the a*b* grid holds the most probability, which that
    suggestion then claims; then the best bin among the rest, at least
    `SUGGESTION_SPACING` grid steps from those already picked; and so on.

    Returns:
      (ab [k, 2] normalised bin centres, probabilities [k]: the mass each
      one claimed, so they sum to at most 1), most likely first.
    """
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
    centres = tf.constant(bin_centres())
    steps = centres * (color.AB_SCALE / BIN_SPACING)  # In grid steps.
    kernel = tf.ones([3, 3, 1, 1])
    picked, claimed = [], []
    available = tf.ones([NUM_BINS], tf.bool)
    for _ in range(k):
        grid = tf.reshape(probabilities, [1, _BINS_PER_AXIS, _BINS_PER_AXIS, 1])
        mass = tf.reshape(
            tf.nn.depthwise_conv2d(grid, kernel, [1, 1, 1, 1], 'SAME'),
            [NUM_BINS],
        )
        # Bins whose neighbourhoods hold the same mode tie: the likelier
        # bin itself wins.
        score = mass + 1e-3 * probabilities
        index = tf.argmax(tf.where(available, score, -1.0))
        picked.append(index)
        claimed.append(mass[index])
        distance = tf.norm(steps - steps[index], axis=-1)
        probabilities = tf.where(distance < 1.5, 0.0, probabilities)
        available &= distance >= SUGGESTION_SPACING
    return tf.gather(centres, tf.stack(picked)), tf.stack(claimed)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ShiftLogits(keras.layers.Layer):
    """Moves bin logits [B, h, w, Q] on the a*b* grid by ab [B, h, w, 2].

    The result at bin c is the input at c - shift (normalised units),
    interpolated bilinearly between bins and clamped at the grid's edge:
    the same distribution, translated. A hint-branch model
    (`hint_branch.py`) moves its automatic distribution by its hint
    correction this way, for colour suggestions.
    """

    def call(self, inputs):
        logits, shift = (tf.cast(x, tf.float32) for x in inputs)
        grid = tf.reshape(
            logits,
            tf.concat([tf.shape(logits)[:3], [_BINS_PER_AXIS] * 2], 0),
        )
        steps = shift * (color.AB_SCALE / BIN_SPACING)
        index = tf.range(_BINS_PER_AXIS, dtype=tf.float32)
        for axis in (0, 1):
            source = index - steps[..., axis : axis + 1]  # [B, h, w, 23]
            low = tf.floor(source)
            fraction = source - low
            low = tf.cast(low, tf.int32)
            taken = [
                tf.gather(
                    grid,
                    tf.clip_by_value(low + offset, 0, _BINS_PER_AXIS - 1),
                    axis=3 + axis,
                    batch_dims=3,
                )
                for offset in (0, 1)
            ]
            # a runs along grid axis 3, b along axis 4.
            fraction = (
                fraction[..., :, None] if axis == 0 else fraction[..., None, :]
            )
            grid = (1.0 - fraction) * taken[0] + fraction * taken[1]
        return tf.reshape(grid, tf.shape(logits))

    def compute_output_shape(self, input_shape):
        return input_shape[0]
