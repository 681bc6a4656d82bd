"""The 70x70 PatchGAN discriminator of pix2pix.

C64-C128-C256-C512 then a 1-channel convolution (Isola et al. 2017, App.
6.1.2): 4x4 convolutions with stride 2, 2, 2, 1 and 1, each zero-padded by 1
on every side as in the authors' code, LeakyReLU(0.2), BatchNorm on all but
the first block. The input is concat(L, ab), normalised, [B, H, W, 3]; the
output is one float32 logit per patch, [B, H/8 - 2, W/8 - 2, 1] (30x30 at
256x256; H and W multiples of 8). Each logit sees a 70x70 input patch.

`spectral_norm=True` wraps every convolution in
`keras.layers.SpectralNormalization` (Miyato et al. 2018) and drops the
BatchNorm layers, as spectral-normalised discriminators do: BatchNorm would
rescale activations by batch statistics and undo the Lipschitz bound.

Parameters (`model.count_params()`, width=64): 2,767,425 (trainable
2,765,633); with spectral_norm 2,765,698 (trainable 2,764,737: no
BatchNorm, plus the non-trainable power-iteration vectors).

FLOPs per 256x256 image (batch 1, inference, width=64), measured by
`tf.compat.v1.profiler` (float_operation) on the frozen concrete function of
the model call, which counts the convolutions only, at 2 FLOPs per
multiply-add; reproduce with `python -m bench.bench_models`:
6.3 GFLOPs (3.15 G multiply-adds in convolutions), with or without
spectral normalisation.
"""

import keras

from chromagen_tf.models import layers as layers_lib

# (channel multiplier, stride) of C64-C128-C256-C512 (Isola et al. 2017).
_BLOCKS = ((1, 2), (2, 2), (4, 2), (8, 1))
RECEPTIVE_FIELD = 70


def _conv(
    x, filters: int, stride: int, name: str, spectral_norm: bool, dtype=None
):
    x = keras.layers.ZeroPadding2D(1, name=f'{name}_pad')(x)
    conv = keras.layers.Conv2D(
        filters,
        4,
        strides=stride,
        # Biases are redundant before BatchNorm.
        use_bias=spectral_norm or filters == 1 or name == 'block1',
        kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
        dtype=dtype,
        name=f'{name}_conv',
    )
    if spectral_norm:
        conv = keras.layers.SpectralNormalization(
            conv, dtype=dtype, name=f'{name}_sn'
        )
    return conv(x)


def build_discriminator(
    *,
    image_size: int | None = None,
    width: int = 64,
    spectral_norm: bool = False,
    synchronized_batch_norm: bool = False,
    name: str = 'patchgan',
) -> keras.Model:
    """Builds the 70x70 PatchGAN.

    Args:
        image_size: Fixed square input size (a multiple of 8), or None for
            any size.
        width: Channels of the first block (64 in the paper).
        spectral_norm: Spectral-normalise every convolution (no BatchNorm).
        synchronized_batch_norm: Use cross-replica batch statistics.
        name: Model name.

    Returns:
        A keras.Model mapping [B, H, W, 3] (L and ab, normalised) to float32
        logits [B, H/8 - 2, W/8 - 2, 1].

    Raises:
        ValueError: On a non-positive width or a bad image size.
    """
    if width <= 0:
        raise ValueError(f'width must be positive, got {width}.')
    layers_lib.check_image_size(image_size, 8, name)
    inputs = keras.Input((image_size, image_size, 3), name='lab')
    x = inputs
    for index, (multiplier, stride) in enumerate(_BLOCKS, start=1):
        block = f'block{index}'
        x = _conv(x, width * multiplier, stride, block, spectral_norm)
        if index > 1 and not spectral_norm:
            x = layers_lib.batch_norm(
                f'{block}_bn',
                synchronized_batch_norm,
                keras.initializers.RandomNormal(1.0, 0.02),
            )(x)
        x = keras.layers.LeakyReLU(0.2, name=f'{block}_lrelu')(x)
    outputs = _conv(x, 1, 1, 'logits', spectral_norm, dtype='float32')
    return keras.Model(inputs, outputs, name=name)
