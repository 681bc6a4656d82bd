"""A U-Net built for cost: `resnet18_unet_lite`.

Colour is low-frequency: Zhang et al. (2016, "Colorful Image
Colorization") predict a*b* at a quarter of the input resolution, and the
full-resolution L, which every output path of ChromaGen joins back in,
carries the detail. This generator therefore keeps the ResNet-18 encoder of
`resnet18_unet` but stops its decoder at 1/4 resolution:

  * encoder: the same torchvision-layout ResNet (`resnet.py`), so imported
    ImageNet weights load into it exactly as into `resnet18_unet`;
  * middle: BatchNorm + ReLU on layer4 and one 3x3 conv block (8w);
  * three up-sampling blocks, to layer3 (1/16), layer2 (1/8) and layer1
    (1/4): pixel shuffle with ICNR to the skip's width, the skip through
    BatchNorm, concatenation, ReLU and two 3x3 conv blocks as wide as the
    skip (4w, 2w, w), i.e. a decoder half as wide as DynamicUnet's;
  * a head at 1/4 resolution that also sees the input L average-pooled to
    1/4 (a cheap cue for edges), a 3x3 conv block and a linear 1x1 conv to
    ab in float32;
  * or, with color_head='bins', a linear 1x1 conv to the logits of
    `color_bins.NUM_BINS` colour bins, decoded to ab by their annealed
    mean (Zhang et al. 2016; `color_bins.py`);
  * bilinear up-sampling x4 back to the input size, in float32, so the
    network's output has the input's size like every other generator and
    trains with the same full-resolution L1 loss.

There is no full-resolution block, which is about 40% of resnet18_unet's
cost. FLOPs per 256x256 image (width=64, counted as in `unet.py` by
`bench/bench_models.py`) and training speed are in BENCHMARKS.md.
"""

import keras

from chromagen_tf import configs
from chromagen_tf.models import color_bins
from chromagen_tf.models import layers as layers_lib
from chromagen_tf.models import unet

SIZE_MULTIPLE = unet.SIZE_MULTIPLE
# a*b* are predicted at 1/OUTPUT_STRIDE of the input and up-sampled.
OUTPUT_STRIDE = 4
# The layer whose output is the colour-bin logits (color_head='bins'); the
# training loss reads it through `logits_and_ab_model`.
LOGITS_LAYER = 'ab_logits'
# A hint-branch model's (`hint_branch.py`) gated hint correction to ab_small.
HINT_SHIFT_LAYER = 'hint_shift'


def _up_block(x, skip, name: str, synchronized: bool):
    filters = skip.shape[-1]
    up = unet.pixel_shuffle_up(x, filters, f'{name}_up', synchronized)
    skip = layers_lib.batch_norm(f'{name}_skip_bn', synchronized)(skip)
    x = keras.layers.Concatenate(name=f'{name}_concat')([up, skip])
    x = keras.layers.ReLU(name=f'{name}_relu')(x)
    x = unet.conv_block(x, filters, f'{name}_1', synchronized)
    return unet.conv_block(x, filters, f'{name}_2', synchronized)


def build_resnet_unet_lite(
    arch: str = 'resnet18',
    *,
    image_size: int | None = None,
    width: int = 64,
    synchronized_batch_norm: bool = False,
    color_head: str = 'regression',
    temperature: float = color_bins.ZHANG_TEMPERATURE,
    log_prior=None,
    prior_strength: float = 0.0,
    hints: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds the low-cost ResNet-encoder U-Net generator.

    Takes the arguments of `unet.build_resnet_unet` and returns the same
    kind of model (normalised L -> normalised ab, float32); the name
    defaults to f'{arch}_unet_lite'. color_head: 'regression' (ab
    directly) or 'bins' (colour-bin logits decoded by their annealed mean
    at `temperature`, after subtracting prior_strength * log_prior from
    them; see `color_bins.AnnealedMean`).
    """
    if color_head not in configs.COLOR_HEADS:
        raise ValueError(
            f'color_head must be one of {configs.COLOR_HEADS}, '
            f'got {color_head!r}'
        )
    name = name or f'{arch}_unet_lite'
    sync = synchronized_batch_norm
    inputs, checked, _, layer1, layer2, layer3, x = unet.encode(
        arch,
        image_size=image_size,
        width=width,
        synchronized=sync,
        name=name,
        hints=hints,
    )
    x = unet.conv_block(x, x.shape[-1], 'middle', sync)
    for index, skip in enumerate((layer3, layer2, layer1)):
        x = _up_block(x, skip, f'up{index + 1}', sync)

    small_l = keras.layers.AveragePooling2D(OUTPUT_STRIDE, name='l_pool')(
        checked
    )
    x = keras.layers.Concatenate(name='head_concat')([x, small_l])
    x = unet.conv_block(x, layer1.shape[-1], 'head', sync)
    # float32 output layers keep mixed-precision training numerically safe.
    if color_head == 'bins':
        logits = keras.layers.Conv2D(
            color_bins.NUM_BINS, 1, dtype='float32', name=LOGITS_LAYER
        )(x)
        ab = color_bins.AnnealedMean(
            temperature,
            log_prior,
            prior_strength,
            dtype='float32',
            name='ab_small',
        )(logits)
    else:
        ab = keras.layers.Conv2D(2, 1, dtype='float32', name='ab_small')(x)
    outputs = layers_lib.BilinearUpsampling(
        OUTPUT_STRIDE, dtype='float32', name='ab'
    )(ab)
    return keras.Model(inputs, outputs, name=name)


def logits_and_ab_model(generator: keras.Model) -> keras.Model | None:
    """A model sharing `generator`'s layers: L -> (bin logits, ab).

    None for a generator without a colour-bins head. Training uses it so
    that one forward pass gives both the logits the cross-entropy needs and
    the ab the discriminator sees. For a hint-branch model the logits are
    the automatic ones moved on the a*b* grid by the hint correction.
    """
    try:
        logits = generator.get_layer(LOGITS_LAYER).output
    except ValueError:
        return None
    names = {layer.name for layer in generator.layers}
    if HINT_SHIFT_LAYER in names:
        logits = color_bins.ShiftLogits(dtype='float32', name='hint_logits')(
            [logits, generator.get_layer(HINT_SHIFT_LAYER).output]
        )
    return keras.Model(
        generator.inputs,
        [logits, generator.output],
        name=f'{generator.name}_logits_and_ab',
    )
