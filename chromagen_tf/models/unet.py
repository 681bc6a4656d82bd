"""The ResNet-encoder U-Net generator (`resnet18_unet`, `resnet34_unet`).

The network follows fastai's DynamicUnet, the generator of the colorization
tutorial this project follows (Shariatnia 2020: `DynamicUnet(create_body(
resnet18, n_in=1, cut=-2), 2, (256, 256))`):

  * encoder: a torchvision-layout ResNet-18/34 (`resnet.py`), kept as a
    nested model named 'encoder' so that its weights load and save alone;
  * middle: BatchNorm + ReLU on layer4, then two 3x3 conv blocks
    (8w -> 16w -> 8w channels, w = width);
  * four up-sampling blocks, one per encoder resolution (layer3, layer2,
    layer1, stem): pixel-shuffle up-sampling to half the channels, the skip
    through BatchNorm, concatenation, ReLU, two 3x3 conv blocks (the last
    block halves its channels, fastai's `final_div`);
  * a final block at full resolution: pixel shuffle, concatenation with the
    input L, a residual block, and a 1x1 convolution to the 2 ab channels,
    linear as in the tutorial (no tanh), computed in float32.

Every decoder convolution but the last is followed by BatchNorm and ReLU
(and has no bias); for a pixel-shuffle up-sampler the BatchNorm comes after
the shuffle.

Up-sampling choice: pixel shuffle with ICNR initialisation, not transposed
convolution. It is what DynamicUnet uses, so the parameter count and the
behaviour stay comparable to the tutorial's model; and ICNR makes each
up-sampler start as nearest-neighbour up-sampling, which avoids the
checkerboard artefacts of stride-2 transposed convolutions (Odena et al.
2016, Aitken et al. 2017) that show up as colour grids in flat regions.

Inputs: normalised L, [B, H, W, 1], with H and W multiples of 32 (the total
stride of the encoder); other sizes raise a clear ValueError.

Parameters (`model.count_params()`, width=64, any input size since the
network is fully convolutional):
  resnet18_unet: 31,123,998 (trainable 31,102,042)
  resnet34_unet: 41,239,582 (trainable 41,210,202)
The tutorial's resnet18 DynamicUnet has about 31.1M (PyTorch counts only
trainable tensors). fastai v2's DynamicUnet defaults to norm_type=None, i.e.
a bias instead of BatchNorm after each decoder convolution; with that choice
these layers would have 31,099,672 trainable parameters. Ours has 2,370 more
(BatchNorm scale and shift instead of biases), and Keras' count adds the
21,956 BatchNorm moving statistics.

FLOPs per 256x256 image (batch 1, inference, width=64), measured by
`tf.compat.v1.profiler` (float_operation) on the frozen concrete function of
the model call, which counts the convolutions only, at 2 FLOPs per
multiply-add; reproduce with `python -m bench.bench_models`:
  resnet18_unet: 56.9 GFLOPs (28.4 G multiply-adds in convolutions);
  resnet34_unet: 61.8 GFLOPs (30.8 G).
About 40% of resnet18_unet's FLOPs are in the full-resolution final block
(97 channels at 256x256), as in DynamicUnet.
"""

import keras

from chromagen_tf.models import layers as layers_lib
from chromagen_tf.models import resnet

# Total stride of a ResNet encoder (stem /2, maxpool /2, three stride-2
# stages).
SIZE_MULTIPLE = 32


def conv_block(
    x,
    filters: int,
    name: str,
    synchronized: bool,
    activation: bool = True,
    gamma_initializer: str = 'ones',
):
    # fastai initialises decoder convolutions with kaiming_normal_ (fan_in).
    x = keras.layers.Conv2D(
        filters,
        3,
        padding='same',
        use_bias=False,
        kernel_initializer='he_normal',
        name=f'{name}_conv',
    )(x)
    x = layers_lib.batch_norm(f'{name}_bn', synchronized, gamma_initializer)(x)
    if activation:
        x = keras.layers.ReLU(name=f'{name}_relu')(x)
    return x


def pixel_shuffle_up(x, filters: int, name: str, synchronized: bool):
    """Doubles the resolution: 1x1 conv (ICNR) to 4*filters, pixel shuffle."""
    x = keras.layers.Conv2D(
        filters * 4,
        1,
        use_bias=False,
        kernel_initializer=layers_lib.ICNR(2),
        name=f'{name}_conv',
    )(x)
    x = layers_lib.PixelShuffle(2, name=f'{name}_shuffle')(x)
    x = layers_lib.batch_norm(f'{name}_bn', synchronized)(x)
    return keras.layers.ReLU(name=f'{name}_relu')(x)


def _unet_block(x, skip, final_div: bool, name: str, synchronized: bool):
    up = pixel_shuffle_up(x, x.shape[-1] // 2, f'{name}_up', synchronized)
    skip = layers_lib.batch_norm(f'{name}_skip_bn', synchronized)(skip)
    x = keras.layers.Concatenate(name=f'{name}_concat')([up, skip])
    x = keras.layers.ReLU(name=f'{name}_relu')(x)
    filters = x.shape[-1] if final_div else x.shape[-1] // 2
    x = conv_block(x, filters, f'{name}_1', synchronized)
    return conv_block(x, filters, f'{name}_2', synchronized)


def encode(
    arch: str,
    *,
    image_size: int | None,
    width: int,
    synchronized: bool,
    name: str,
    hints: bool = False,
):
    """The inputs, size check and encoder that the ResNet U-Nets share.

    With hints, the inputs are [L, hint_ab, hint_mask] (`hints.py`), and the
    hints enter through `resnet.hint_stem` beside conv1.

    Returns:
      (inputs, checked L, stem, layer1, layer2, layer3, and layer4 through
      BatchNorm and ReLU).
    """
    layers_lib.check_image_size(image_size, SIZE_MULTIPLE, name)
    encoder = resnet.build_resnet_encoder(
        arch,
        width=width,
        image_size=image_size,
        synchronized_batch_norm=synchronized,
        stem_offset=hints,
    )
    inputs = keras.Input((image_size, image_size, 1), name='l_channel')
    checked = layers_lib.SpatialMultipleCheck(
        SIZE_MULTIPLE, model_name=name, name='size_check'
    )(inputs)
    if hints:
        inputs, hint_channels = layers_lib.hint_inputs(inputs, image_size)
        encoded = encoder([checked, resnet.hint_stem(hint_channels, width)])
    else:
        encoded = encoder(checked)
    stem, layer1, layer2, layer3, layer4 = encoded
    x = layers_lib.batch_norm('encoder_bn', synchronized)(layer4)
    x = keras.layers.ReLU(name='encoder_relu')(x)
    return inputs, checked, stem, layer1, layer2, layer3, x


def build_resnet_unet(
    arch: str = 'resnet18',
    *,
    image_size: int | None = None,
    width: int = 64,
    synchronized_batch_norm: bool = False,
    hints: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds the ResNet-encoder U-Net generator.

    Args:
        arch: 'resnet18' or 'resnet34'.
        image_size: Fixed square input size (a multiple of 32), or None for
            any multiple of 32.
        width: Base channel width; 64 is the real ResNet.
        synchronized_batch_norm: Use cross-replica batch statistics.
        hints: Also take a hint a*b* map and mask (`hints.py`).
        name: Model name; defaults to f'{arch}_unet'.

    Returns:
        A keras.Model mapping normalised L [B, H, W, 1] to normalised ab
        [B, H, W, 2] in float32.

    Raises:
        ValueError: On a bad arch, width or image size.
    """
    name = name or f'{arch}_unet'
    sync = synchronized_batch_norm
    inputs, checked, stem, layer1, layer2, layer3, x = encode(
        arch,
        image_size=image_size,
        width=width,
        synchronized=sync,
        name=name,
        hints=hints,
    )
    channels = x.shape[-1]
    x = conv_block(x, channels * 2, 'middle_1', sync)
    x = conv_block(x, channels, 'middle_2', sync)

    skips = (layer3, layer2, layer1, stem)
    for index, skip in enumerate(skips):
        x = _unet_block(
            x,
            skip,
            final_div=index != len(skips) - 1,
            name=f'up{index + 1}',
            synchronized=sync,
        )

    x = pixel_shuffle_up(x, x.shape[-1], 'final_up', sync)
    x = keras.layers.Concatenate(name='final_concat')([x, checked])
    # fastai's ResBlock: conv-bn-relu, conv-bn (zero gamma), add, relu.
    residual = conv_block(x, x.shape[-1], 'final_res_1', sync)
    residual = conv_block(
        residual,
        x.shape[-1],
        'final_res_2',
        sync,
        activation=False,
        gamma_initializer='zeros',
    )
    x = keras.layers.Add(name='final_res_add')([x, residual])
    x = keras.layers.ReLU(name='final_res_relu')(x)
    # float32 output layer keeps mixed-precision training numerically safe.
    outputs = keras.layers.Conv2D(2, 1, dtype='float32', name='ab')(x)
    return keras.Model(inputs, outputs, name=name)
