"""The pix2pix U-Net generator (`pix2pix_unet`), the baseline model.

This is the U-Net-256 of pix2pix (Isola et al. 2017, Appendix 6.1.1) with 1
input channel (L) and 2 output channels (ab), laid out like the authors'
`UnetSkipConnectionBlock` code:

  * encoder C64-C128-C256-C512-C512-C512-C512-C512 (for width=64): 4x4
    convolutions with stride 2; every block but the first is
    LeakyReLU(0.2)-Conv-BatchNorm, the first is a bare convolution;
  * decoder CD512-CD512-CD512-C512-C256-C128-C64: ReLU-ConvTranspose(4x4,
    stride 2)-BatchNorm, dropout 0.5 on the 3 innermost blocks (paper), each
    output concatenated with the mirrored encoder activation;
  * output: ReLU-ConvTranspose to 2 channels-tanh, in float32.

Deviation from the letter of the paper's text, following the authors' code:
the innermost (1x1 at 256x256) encoder block has no BatchNorm. On a 1x1 map
batch statistics come from the batch alone, so at batch size 1 BatchNorm
would replace the bottleneck by its bias.

Kernels are drawn from N(0, 0.02) and BatchNorm scales from N(1, 0.02), as
in the paper (Sec. 6.2) and its code.

Inputs must have height and width that are multiples of 256 (eight stride-2
down-samplings to a 1x1 bottleneck); other sizes raise a clear ValueError.

Parameters (`model.count_params()`, width=64): 54,419,714 (trainable
54,409,858).

FLOPs per 256x256 image (batch 1, inference, width=64), measured by
`tf.compat.v1.profiler` (float_operation) on the frozen concrete function of
the model call, which counts the convolutions only, at 2 FLOPs per
multiply-add; reproduce with `python -m bench.bench_models`:
12.0 GFLOPs (6.0 G multiply-adds in convolutions, two thirds of them in
the decoder's transposed convolutions).
"""

import keras

from chromagen_tf.models import layers as layers_lib

# 2**8: eight stride-2 down-samplings.
SIZE_MULTIPLE = 256
# Encoder channel multipliers of U-Net-256 (Isola et al. 2017, App. 6.1.1).
_ENCODER_MULTIPLIERS = (1, 2, 4, 8, 8, 8, 8, 8)
# Decoder blocks with dropout 0.5, counted from the innermost (paper: CD512 x3).
_DROPOUT_BLOCKS = 3


def _strided(filters: int, name: str, **kwargs) -> dict:
    """The 4x4 stride-2 convolution settings every pix2pix layer shares."""
    return dict(
        filters=filters,
        kernel_size=4,
        strides=2,
        padding='same',
        kernel_initializer=_kernel_init(),
        name=name,
        **kwargs,
    )


def _kernel_init():
    return keras.initializers.RandomNormal(0.0, 0.02)


def _batch_norm(name: str, synchronized: bool):
    return layers_lib.batch_norm(
        name, synchronized, keras.initializers.RandomNormal(1.0, 0.02)
    )


def build_pix2pix_unet(
    *,
    image_size: int | None = None,
    width: int = 64,
    synchronized_batch_norm: bool = False,
    hints: bool = False,
    name: str = 'pix2pix_unet',
) -> keras.Model:
    """Builds the pix2pix U-Net-256 generator.

    Args:
        image_size: Fixed square input size (a multiple of 256), or None for
            any multiple of 256.
        width: Channels of the first encoder block (ngf, 64 in the paper).
        synchronized_batch_norm: Use cross-replica batch statistics.
        hints: Also take a hint a*b* map and mask (`hints.py`).
        name: Model name.

    Returns:
        A keras.Model mapping normalised L [B, H, W, 1] to normalised ab
        [B, H, W, 2] in float32, in [-1, 1].

    Raises:
        ValueError: On a bad width or image size.
    """
    layers_lib.check_image_size(image_size, SIZE_MULTIPLE, name)
    if width <= 0:
        raise ValueError(f'width must be positive, got {width}.')
    sync = synchronized_batch_norm
    inputs = keras.Input((image_size, image_size, 1), name='l_channel')
    x = layers_lib.SpatialMultipleCheck(
        SIZE_MULTIPLE, model_name=name, name='size_check'
    )(inputs)
    hint_channels = None
    if hints:
        inputs, hint_channels = layers_lib.hint_inputs(inputs, image_size)
    skips = []
    last = len(_ENCODER_MULTIPLIERS)
    for index, multiplier in enumerate(_ENCODER_MULTIPLIERS, start=1):
        if index > 1:
            x = keras.layers.LeakyReLU(0.2, name=f'down{index}_lrelu')(x)
        x = keras.layers.Conv2D(
            **_strided(width * multiplier, f'down{index}_conv', use_bias=False)
        )(x)
        if index == 1 and hint_channels is not None:
            # The hints' own weights of a first convolution over
            # concat(L, hints), starting at zero (resnet.hint_stem).
            settings = _strided(width, 'hint_conv', use_bias=False)
            settings['kernel_initializer'] = 'zeros'
            x = keras.layers.Add(name='down1_add_hints')(
                [x, keras.layers.Conv2D(**settings)(hint_channels)]
            )
        if 1 < index < last:
            x = _batch_norm(f'down{index}_bn', sync)(x)
        skips.append(x)

    # Decoder, innermost first; the innermost input is the bottleneck itself.
    skips.pop()
    for index, multiplier in enumerate(reversed(_ENCODER_MULTIPLIERS[:-1])):
        level = last - 1 - index
        x = keras.layers.ReLU(name=f'up{level}_relu')(x)
        x = keras.layers.Conv2DTranspose(
            **_strided(width * multiplier, f'up{level}_conv', use_bias=False)
        )(x)
        x = _batch_norm(f'up{level}_bn', sync)(x)
        if index < _DROPOUT_BLOCKS:
            x = keras.layers.Dropout(0.5, name=f'up{level}_dropout')(x)
        x = keras.layers.Concatenate(name=f'up{level}_concat')([skips.pop(), x])

    x = keras.layers.ReLU(name='output_relu')(x)
    x = keras.layers.Conv2DTranspose(
        **_strided(2, 'output_conv', dtype='float32')
    )(x)
    outputs = keras.layers.Activation('tanh', dtype='float32', name='ab')(x)
    return keras.Model(inputs, outputs, name=name)
