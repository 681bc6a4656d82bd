"""Building blocks shared by the ChromaGen networks.

Standard Keras layers do almost everything; the only custom objects are the
ones Keras 3 lacks:

  * `PixelShuffle`, a weightless wrapper around `keras.ops.depth_to_space`
    (sub-pixel convolution, Shi et al. 2016);
  * `ICNR`, the initializer that makes a pixel-shuffle up-sampler start as a
    nearest-neighbour up-sampler (Aitken et al. 2017, "Checkerboard artifact
    free sub-pixel convolution");
  * `BilinearUpsampling`, bilinear up-sampling that works with unknown
    spatial sizes (Keras 3's UpSampling2D does not);
  * `SpatialMultipleCheck`, which turns an input whose height or width is not
    a multiple of the network's total stride into one clear error instead of
    a shape mismatch deep inside a concatenation.

All are registered with `keras.saving.register_keras_serializable`, so
models that use them save to and load from `.keras` files.

Batch normalisation everywhere uses PyTorch's defaults (epsilon 1e-5,
momentum 0.1, i.e. Keras momentum 0.9): the ResNet encoder must match
torchvision's numerics exactly for imported weights, and the decoder follows
the fastai/PyTorch models it is modelled on.
"""

from typing import Any

import keras
import tensorflow as tf

_PACKAGE = 'chromagen'

# torch.nn.BatchNorm2d defaults: eps=1e-5, momentum=0.1 (Keras counts
# momentum the other way round).
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9


def batch_norm(
    name: str, synchronized: bool, gamma_initializer: Any = 'ones'
) -> keras.layers.Layer:
    """Returns a BatchNormalization layer with PyTorch's numerics.

    Args:
        name: Layer name.
        synchronized: Whether to synchronise batch statistics across replicas
            (`keras.layers.BatchNormalization(synchronized=True)`).
        gamma_initializer: Initializer of the scale; 'zeros' makes a residual
            branch start as the identity (Goyal et al. 2017).

    Returns:
        The layer.
    """
    return keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        synchronized=synchronized,
        gamma_initializer=gamma_initializer,
        name=name,
    )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PixelShuffle(keras.layers.Layer):
    """Rearranges [B, H, W, C*r*r] into [B, H*r, W*r, C] (depth to space).

    Channel order follows `tf.nn.depth_to_space`: sub-pixel (i, j) of each
    r x r output block takes channels [(i*r + j)*C, (i*r + j + 1)*C). `ICNR`
    relies on that order.
    """

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = block_size

    def call(self, inputs):
        return keras.ops.depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        r = self.block_size

        def _scale(size):
            return None if size is None else size * r

        return (batch, _scale(height), _scale(width), channels // (r * r))

    def get_config(self):
        config = super().get_config()
        config['block_size'] = self.block_size
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ICNR(keras.initializers.Initializer):
    """ICNR initialisation for a convolution followed by `PixelShuffle`.

    A kernel for C output channels is drawn from `base` and repeated for each
    of the r*r sub-pixels, so that right after initialisation the convolution
    plus pixel shuffle equals a convolution plus nearest-neighbour
    up-sampling, which has no checkerboard artefacts (Aitken et al. 2017).
    """

    def __init__(self, block_size: int = 2, base: Any = 'he_normal'):
        self.block_size = block_size
        self.base = keras.initializers.get(base)

    def __call__(self, shape, dtype=None):
        *kernel_shape, channels_out = shape
        subpixels = self.block_size**2
        if channels_out % subpixels:
            raise ValueError(
                f'ICNR needs output channels divisible by {subpixels}, '
                f'got {channels_out}.'
            )
        kernel = self.base((*kernel_shape, channels_out // subpixels), dtype)
        return keras.ops.tile(kernel, [1] * len(kernel_shape) + [subpixels])

    def get_config(self):
        return {
            'block_size': self.block_size,
            'base': keras.initializers.serialize(self.base),
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpatialMultipleCheck(keras.layers.Layer):
    """Identity that rejects heights or widths not divisible by `multiple`.

    Raises a ValueError when the spatial size is known while tracing (eager
    calls and fixed-shape graphs); in graphs with unknown sizes it adds a
    runtime assertion with the same message.
    """

    def __init__(self, multiple: int, model_name: str = 'model', **kwargs):
        super().__init__(**kwargs)
        self.multiple = multiple
        self.model_name = model_name

    def _message(self, height, width) -> str:
        return (
            f'{self.model_name} needs height and width that are multiples '
            f'of {self.multiple}, got {height}x{width}; resize or pad '
            'the input first.'
        )

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if height is not None and width is not None:
            if height % self.multiple or width % self.multiple:
                raise ValueError(self._message(height, width))
            return inputs
        shape = tf.shape(inputs)
        remainder = tf.math.floormod(shape[1:3], self.multiple)
        check = tf.debugging.assert_equal(
            remainder, tf.zeros_like(remainder), message=self._message('?', '?')
        )
        with tf.control_dependencies([check]):
            return tf.identity(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(multiple=self.multiple, model_name=self.model_name)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BilinearUpsampling(keras.layers.Layer):
    """Up-samples height and width by an integer factor, bilinearly.

    `keras.layers.UpSampling2D(interpolation='bilinear')` needs static
    spatial sizes in Keras 3, and the generators must serve any size.
    """

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        size = tf.shape(inputs)[1:3] * self.factor
        return tf.cast(
            tf.image.resize(inputs, size, method='bilinear'), inputs.dtype
        )

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape

        def scale(n):
            return None if n is None else n * self.factor

        return (batch, scale(height), scale(width), channels)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor)
        return config


def hint_inputs(l_input, image_size: int | None):
    """The inputs of a hint generator, and the hints as one tensor.

    Zhang et al. 2017 give the network the hints beside L: an a*b* map
    normalised like the targets and a mask, 1 where a hint is (`hints.py`).

    Returns:
      ([l_input, hint_ab, hint_mask], concat(hint_ab, hint_mask)).
    """
    hint_ab = keras.Input((image_size, image_size, 2), name='hint_ab')
    hint_mask = keras.Input((image_size, image_size, 1), name='hint_mask')
    hints = keras.layers.Concatenate(name='hint_concat')([hint_ab, hint_mask])
    return [l_input, hint_ab, hint_mask], hints


def check_image_size(
    image_size: int | None, multiple: int, model_name: str
) -> None:
    """Raises ValueError unless image_size is None or a positive multiple."""
    if image_size is None:
        return
    if image_size <= 0 or image_size % multiple:
        raise ValueError(
            f'{model_name} needs an image size that is a '
            f'multiple of {multiple}, got {image_size}.'
        )
