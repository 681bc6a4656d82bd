"""ResNet-18/34 encoders laid out like torchvision's, for one-channel input.

The encoder is the body of torchvision's `resnet18`/`resnet34` (He et al.
2016, BasicBlocks, no average pool and no classifier) as a Keras functional
model. Layer names are torchvision's parameter prefixes with dots replaced by
underscores (`conv1`, `bn1`, `layer1_0_conv1`, `layer2_0_downsample_0`, ...),
so `chromagen_tf.tools.import_torchvision_resnet` maps every tensor one to
one. The numerics match torchvision too: explicit symmetric zero padding
(Keras' 'same' pads asymmetrically for stride 2), BatchNorm epsilon 1e-5.

The model outputs the feature maps a U-Net taps, in order:
  stem   (after conv1-bn1-relu) at 1/2 resolution, `width` channels;
  layer1 at 1/4, `width`; layer2 at 1/8, 2*width; layer3 at 1/16, 4*width;
  layer4 at 1/32, 8*width.
`width=64` is the real network; smaller widths give proportionally thinner
encoders for tests and demos.

Its weights save and load on their own with
`encoder.save_weights('x.weights.h5')` / `encoder.load_weights(...)`.
"""

import warnings

import keras
import tensorflow as tf

from chromagen_tf import errors
from chromagen_tf.models import layers as layers_lib

# Number of BasicBlocks per stage (He et al. 2016, Table 1).
BLOCKS_PER_STAGE = {
    'resnet18': (2, 2, 2, 2),
    'resnet34': (3, 4, 6, 3),
}
STAGE_NAMES = ('stem', 'layer1', 'layer2', 'layer3', 'layer4')
ENCODER_NAME = 'encoder'


class EncoderWeightsError(errors.UsageError, ValueError):
    """An --encoder_weights file does not fit the encoder."""


def _conv(
    filters: int,
    kernel_size: int,
    stride: int,
    name: str,
    kernel_initializer=None,
):
    # torchvision initialises convolutions with kaiming_normal_(fan_out).
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=stride,
        padding='valid',
        use_bias=False,
        kernel_initializer=kernel_initializer
        or keras.initializers.VarianceScaling(
            2.0, 'fan_out', 'untruncated_normal'
        ),
        name=name,
    )


def _padded_conv(
    x,
    filters: int,
    kernel_size: int,
    stride: int,
    name: str,
    kernel_initializer=None,
):
    padding = kernel_size // 2
    if padding:
        x = keras.layers.ZeroPadding2D(padding, name=f'{name}_pad')(x)
    return _conv(filters, kernel_size, stride, name, kernel_initializer)(x)


def hint_stem(hints, width: int):
    """conv1's counterpart over the hint channels, starting at zero.

    Zhang et al. 2017 concatenate the hints to L at the input. A convolution
    over concat(L, hints) is conv1(L) plus a convolution over the hints, so
    this is that second term, with conv1's kernel, stride and padding. Its
    kernel starts at zero: a hint generator built on trained weights
    computes exactly what they computed until training moves it.
    """
    return _padded_conv(
        hints, width, 7, 2, 'hint_conv', kernel_initializer='zeros'
    )


def _basic_block(x, filters: int, stride: int, prefix: str, synchronized: bool):
    shortcut = x
    y = _padded_conv(x, filters, 3, stride, f'{prefix}_conv1')
    y = layers_lib.batch_norm(f'{prefix}_bn1', synchronized)(y)
    y = keras.layers.ReLU(name=f'{prefix}_relu1')(y)
    y = _padded_conv(y, filters, 3, 1, f'{prefix}_conv2')
    y = layers_lib.batch_norm(f'{prefix}_bn2', synchronized)(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, stride, f'{prefix}_downsample_0')(x)
        shortcut = layers_lib.batch_norm(
            f'{prefix}_downsample_1', synchronized
        )(shortcut)
    y = keras.layers.Add(name=f'{prefix}_add')([y, shortcut])
    return keras.layers.ReLU(name=f'{prefix}_relu2')(y)


def build_resnet_encoder(
    arch: str = 'resnet18',
    *,
    width: int = 64,
    input_channels: int = 1,
    image_size: int | None = None,
    synchronized_batch_norm: bool = False,
    stem_offset: bool = False,
    name: str = ENCODER_NAME,
) -> keras.Model:
    """Builds a torchvision-compatible ResNet body.

    Args:
        arch: 'resnet18' or 'resnet34'.
        width: Channels of the stem and layer1 (64 in torchvision).
        input_channels: Channels of the input image (1 for L).
        image_size: Fixed square input size, or None for any size.
        synchronized_batch_norm: Use cross-replica batch statistics.
        stem_offset: Take a second input, [B, H/2, W/2, width], added to
            conv1's output before bn1. A hint generator feeds its hint
            convolution through it, which is a convolution over
            concat(L, hints) whose hint channels are separate weights; the
            encoder itself keeps torchvision's layers, so its weight files
            load into either form.
        name: Model name.

    Returns:
        A keras.Model mapping [B, H, W, input_channels] (and, with
        stem_offset, the offset) to the five feature maps listed in the
        module docstring.

    Raises:
        ValueError: On an unknown arch or a non-positive width.
    """
    if arch not in BLOCKS_PER_STAGE:
        raise ValueError(
            f'Unknown ResNet {arch!r}; expected one of '
            f'{sorted(BLOCKS_PER_STAGE)}.'
        )
    if width <= 0:
        raise ValueError(f'width must be positive, got {width}.')
    inputs = keras.Input(
        (image_size, image_size, input_channels), name='l_channel'
    )
    x = _padded_conv(inputs, width, 7, 2, 'conv1')
    if stem_offset:
        offset = keras.Input((None, None, width), name='stem_offset')
        x = keras.layers.Add(name='conv1_add_offset')([x, offset])
        inputs = [inputs, offset]
    x = layers_lib.batch_norm('bn1', synchronized_batch_norm)(x)
    stem = keras.layers.ReLU(name='relu')(x)
    # Zero padding equals torch's -inf padding here: inputs are >= 0 (ReLU).
    x = keras.layers.ZeroPadding2D(1, name='maxpool_pad')(stem)
    x = keras.layers.MaxPooling2D(3, strides=2, name='maxpool')(x)
    outputs = [stem]
    for stage, blocks in enumerate(BLOCKS_PER_STAGE[arch]):
        filters = width * 2**stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(
                x,
                filters,
                stride,
                f'layer{stage + 1}_{block}',
                synchronized_batch_norm,
            )
        outputs.append(x)
    return keras.Model(inputs, outputs, name=name)


def _summarise(error: Exception) -> str:
    """Keeps the lines of a Keras loading error that name layers and shapes."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    kept = [
        line
        for line in lines
        if ('shape' in line or 'could not be loaded.' in line)
        and not line.startswith('List of')
    ]
    return ' '.join(line.split(' Target variable:')[0] for line in kept[:3])


def load_encoder_weights(encoder: keras.Model, path: str) -> None:
    """Loads a `.weights.h5` file written from an encoder of the same shape.

    Args:
        encoder: The encoder (of a generator: `models.get_encoder(generator)`).
        path: The file, e.g. from `import_torchvision_resnet`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file does not fit this encoder (other depth or
            width).
    """
    if not str(path).endswith('.weights.h5'):
        raise EncoderWeightsError(
            f'Encoder weights must be a .weights.h5 file, got {path!r}.'
        )
    if not tf.io.gfile.exists(path):
        raise errors.NotFoundError(f'Encoder weights file not found: {path}')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            encoder.load_weights(path)
        except (ValueError, KeyError) as error:
            # The error says it all; Keras' per-layer warnings would bury it.
            raise EncoderWeightsError(
                f'Encoder weights {path} do not fit encoder {encoder.name!r} '
                f'({encoder.count_params()} values; another depth or width?): '
                f'{_summarise(error)}'
            ) from error
    for warning in caught:
        warnings.warn_explicit(
            warning.message, warning.category, warning.filename, warning.lineno
        )
