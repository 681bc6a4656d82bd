"""A hint branch over a frozen automatic colorizer (`hint_branch=True`).

Fine-tuning a whole automatic generator to take hints drifts its automatic
colours, and a network that sees hints only at its input must learn to
carry them across the photo. This model is built the other way round:

  * the automatic generator (`unet_lite`, either head) runs unchanged and
    frozen; its 1/4-resolution a*b* and the features its head reads are
    the branch's inputs;
  * each hint's a*b* difference from the automatic result is spread over
    the photo by normalised Gaussian averages at three widths (0.15, 0.05
    and 0.02 x the diagonal; `HintSpread`): the widest is the edge-blind
    baseline of `inference/hint_evaluation.py`, computed per cell of the
    1/4 grid (a hint counts once per cell it touches, so a hint over
    several cells weighs more there than in the baseline, which counts
    each hint once);
  * a small U-Net at 1/4 .. 1/32 resolution (`hint_*` layers) reads those
    with L and the automatic features and predicts a correction to the
    widest spread; its last convolution starts at zero;
  * the correction is applied only to photos that have hints:

        ab = automatic_ab + has_hints * (spread_0.15 + s * correction)

So without hints the model *is* the automatic generator, bit for bit, and
at step 0 it is that edge-blind spread; training teaches it where objects
end. The branch trains on L1 of its a*b* (`train_steps`) at s = 1;
s (`ModelConfig.hint_correction`) is a decoding setting, below 1 a
shrinkage of the learned correction towards the edge-blind spread. A
photo without hints need not run the branch at all: `automatic_model` is
the trunk alone, which inference calls for such photos.

For a colour-bins trunk, `unet_lite.logits_and_ab_model` gives the
automatic distribution at each position moved on the a*b* grid by the
correction there (`color_bins.ShiftLogits`): what colour suggestions read,
the likely colours at a point given the hints so far.

Weights are keyed by path as in every generator: the trunk's are those of
the automatic generator (an automatic checkpoint or bundled model copies
into them, `loading.copy_weights_by_path`), the branch's start with
`hint_`.
"""

import keras
import tensorflow as tf

from chromagen_tf.models import layers as layers_lib
from chromagen_tf.models import unet_lite

_PACKAGE = 'chromagen'
# Gaussian widths of the spreads, as fractions of the image diagonal; the
# first is the edge-blind baseline's (`hint_evaluation.SPREAD_SIGMA`).
SPREAD_SIGMAS = (0.15, 0.05, 0.02)
PREFIX = 'hint_'
# The layer whose output is the gated correction at 1/4 resolution: the
# automatic a*b* plus it is the result (`unet_lite.logits_and_ab_model`
# moves the automatic bin logits by it).
SHIFT_LAYER = unet_lite.HINT_SHIFT_LAYER
_STRIDE = unet_lite.OUTPUT_STRIDE


@keras.saving.register_keras_serializable(package=_PACKAGE)
class HintSpread(keras.layers.Layer):
    """Normalised Gaussian averages of hint differences over the grid.

    Input: `HintCells`' [B, h, w, 3], a mask (1 at grid cells with a hint)
    and the differences there. For each sigma (x the diagonal, in
    cells), with G the Gaussian of distance with peak 1:

        spread = sum_cells G * mask * difference / max(sum_cells G * mask, 1)
        weight = sum_cells G * mask / (1 + sum_cells G * mask)

    Output [B, h, w, 3 * len(sigmas)]: (spread, weight) per sigma. The
    Gaussian is separable, so each sum is two small matrix products.
    """

    def __init__(self, sigmas=SPREAD_SIGMAS, **kwargs):
        super().__init__(**kwargs)
        self.sigmas = tuple(float(sigma) for sigma in sigmas)

    @staticmethod
    def _gaussian(size, sigma):
        position = tf.range(size, dtype=tf.float32)
        squared = tf.square(position[:, None] - position[None, :])
        return tf.exp(-squared / (2.0 * sigma * sigma))

    def call(self, inputs):
        cells = tf.cast(inputs, tf.float32)
        mask, difference = cells[..., :1], cells[..., 1:]
        height, width = tf.shape(mask)[1], tf.shape(mask)[2]
        diagonal = tf.sqrt(tf.cast(height * height + width * width, tf.float32))
        both = tf.concat([mask * difference, mask], axis=-1)
        outputs = []
        for sigma in self.sigmas:
            rows = self._gaussian(height, sigma * diagonal)
            columns = self._gaussian(width, sigma * diagonal)
            total = tf.einsum('ij,bjkc,lk->bilc', rows, both, columns)
            weight = total[..., 2:]
            outputs += [
                total[..., :2] / tf.maximum(weight, 1.0),
                weight / (1.0 + weight),
            ]
        return tf.concat(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3 * len(self.sigmas))

    def get_config(self):
        config = super().get_config()
        config.update(sigmas=list(self.sigmas))
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpreadOf(keras.layers.Layer):
    """The a*b* spread at one of `HintSpread`'s sigmas (by index)."""

    def __init__(self, index: int, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, inputs):
        return inputs[..., 3 * self.index : 3 * self.index + 2]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)

    def get_config(self):
        config = super().get_config()
        config.update(index=self.index)
        return config


def _conv(x, filters: int, name: str, strides: int = 1):
    x = keras.layers.Conv2D(
        filters, 3, strides, padding='same', name=f'{PREFIX}{name}'
    )(x)
    return keras.layers.ReLU(name=f'{PREFIX}{name}_relu')(x)


def _correction_net(features, width: int):
    """A small U-Net at 1/4 (of the photo) down to 1/32 -> [B, h, w, 2]."""
    widths = (width, width * 3 // 2, width * 2, width * 2)
    skips = []
    x = features
    for level, filters in enumerate(widths):
        strides = 1 if level == 0 else 2
        x = _conv(x, filters, f'down{level}_a', strides)
        x = _conv(x, filters, f'down{level}_b')
        skips.append(x)
    for level in range(len(widths) - 2, -1, -1):
        x = keras.layers.UpSampling2D(2, name=f'{PREFIX}up{level}_resize')(x)
        x = keras.layers.Concatenate(name=f'{PREFIX}up{level}_concat')(
            [x, skips[level]]
        )
        x = _conv(x, widths[level], f'up{level}_a')
        x = _conv(x, widths[level], f'up{level}_b')
    return keras.layers.Conv2D(
        2,
        3,
        padding='same',
        kernel_initializer='zeros',
        dtype='float32',
        name=f'{PREFIX}correction',
    )(x)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class HintCells(keras.layers.Layer):
    """The hints on the 1/4 grid: [mask, hint - automatic] [B, h, w, 3].

    Inputs: hint_ab [B, H, W, 2], hint_mask [B, H, W, 1] and the automatic
    ab [B, H/4, W/4, 2]. A cell holds a hint where any of its pixels does;
    its value is the mean of the hint pixels in it.
    """

    def call(self, inputs):
        hint_ab, hint_mask, automatic_ab = (
            tf.cast(x, tf.float32) for x in inputs
        )
        size = [1, _STRIDE, _STRIDE, 1]
        mask = tf.nn.max_pool2d(hint_mask, size, size, 'VALID')
        sums = tf.nn.avg_pool2d(
            tf.concat([hint_ab * hint_mask, hint_mask], -1), size, size, 'VALID'
        )
        mean = sums[..., :2] / tf.maximum(sums[..., 2:], 1e-6)
        return tf.concat([mask, mask * (mean - automatic_ab)], -1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[2][:-1], 3)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class HintGate(keras.layers.Layer):
    """x [B, h, w, C] where the image has a hint, else exactly 0."""

    def call(self, inputs):
        hint_mask, x = inputs
        present = tf.reduce_max(hint_mask, axis=[1, 2, 3], keepdims=True) > 0
        return tf.where(present, x, tf.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape[1]


def build_hint_branch(
    arch: str = 'resnet18',
    *,
    image_size: int | None = None,
    branch_width: int | None = None,
    correction_scale: float = 1.0,
    **automatic_kwargs,
) -> keras.Model:
    """A frozen `*_unet_lite` generator with a hint branch (module doc).

    automatic_kwargs are `unet_lite.build_resnet_unet_lite`'s (width,
    color_head, ...; not hints); branch_width is the correction net's base
    width (default: the generator's, the width of the features its head
    reads); correction_scale multiplies the correction (a weightless
    layer, so any branch's weights load at any scale). Returns a model
    [L, hint_ab, hint_mask] -> ab, like every hint generator.
    """
    automatic = unet_lite.build_resnet_unet_lite(
        arch, image_size=image_size, **automatic_kwargs
    )
    for layer in automatic.layers:
        layer.trainable = False
    l_input = automatic.input
    inputs, _ = layers_lib.hint_inputs(l_input, image_size)
    _, hint_ab, hint_mask = inputs
    automatic_ab = automatic.get_layer('ab_small').output
    names = {layer.name for layer in automatic.layers}
    head = (
        unet_lite.LOGITS_LAYER
        if unet_lite.LOGITS_LAYER in names
        else 'ab_small'
    )
    head_features = automatic.get_layer(head).input

    cells = HintCells(dtype='float32', name=f'{PREFIX}cells')(
        [hint_ab, hint_mask, automatic_ab]
    )
    spreads = HintSpread(dtype='float32', name=f'{PREFIX}spread')(cells)
    small_l = keras.layers.AveragePooling2D(_STRIDE, name=f'{PREFIX}l_pool')(
        l_input
    )
    features = keras.layers.Concatenate(name=f'{PREFIX}features')(
        [head_features, small_l, automatic_ab, cells, spreads]
    )
    correction = _correction_net(
        features, branch_width or head_features.shape[-1]
    )
    if correction_scale != 1.0:
        correction = keras.layers.Rescaling(
            correction_scale, dtype='float32', name=f'{PREFIX}correction_scale'
        )(correction)
    baseline = SpreadOf(0, dtype='float32', name=f'{PREFIX}baseline')(spreads)
    shift = HintGate(dtype='float32', name=SHIFT_LAYER)(
        [
            hint_mask,
            keras.layers.Add(dtype='float32', name=f'{PREFIX}sum')(
                [baseline, correction]
            ),
        ]
    )
    ab_small = keras.layers.Add(dtype='float32', name=f'{PREFIX}ab_small')(
        [automatic_ab, shift]
    )
    outputs = layers_lib.BilinearUpsampling(
        _STRIDE, dtype='float32', name=f'{PREFIX}output'
    )(ab_small)
    return keras.Model(inputs, outputs, name=f'{automatic.name}_hint_branch')


def automatic_model(generator: keras.Model) -> keras.Model | None:
    """A hint-branch model's frozen automatic generator: L -> ab.

    It shares `generator`'s layers and gives the same values as
    `generator` without hints (the gated correction adds exact zeros),
    without computing the spreads or the correction net. None for a
    generator without a hint branch.
    """
    if SHIFT_LAYER not in {layer.name for layer in generator.layers}:
        return None
    # The branch's up-sampling has no weights; on the automatic ab_small it
    # is the automatic generator's own output layer.
    outputs = generator.get_layer(f'{PREFIX}output')(
        generator.get_layer('ab_small').output
    )
    return keras.Model(
        generator.inputs[0], outputs, name=f'{generator.name}_automatic'
    )
