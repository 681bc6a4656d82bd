"""Measures parameters and FLOPs of the ChromaGen networks.

FLOPs are counted by TensorFlow's graph profiler: each model's inference call
(training=False) on one image of the given size is traced into a concrete
function, its variables are frozen into constants, and
`tf.compat.v1.profiler.profile(..., ProfileOptionBuilder.float_operation())`
sums the FLOPs TensorFlow registers per op. In these graphs only the
convolutions carry a count (Conv2D, and Conv2DBackpropInput for transposed
convolutions), at 2 FLOPs per multiply-add; BatchNorm (which Keras 3 lowers
to element-wise ops), activations, additions and pooling add nothing. As a
cross-check the script also sums the multiply-adds of every convolution from
layer shapes.

Usage:
    python -m bench.bench_models                 # width 64, 256x256
    python -m bench.bench_models --image_size=512 --width=64

r18_unet_lite_bins is resnet18_unet_lite with color_head='bins' (the
annealed mean's softmax and sum add no count: only convolutions do).
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import convert_to_constants

from bench import common
from chromagen_tf import models

_IMAGE_SIZE = flags.DEFINE_integer(
    'image_size', 256, 'Square input size for the FLOPs count.'
)
_WIDTH = flags.DEFINE_integer('width', 64, 'Base channel width.')


def profiler_flops(model: keras.Model, input_shape) -> int:
    """Returns the profiler's FLOPs for one inference call on input_shape."""
    function = tf.function(lambda x: model(x, training=False))
    concrete = function.get_concrete_function(
        tf.TensorSpec(input_shape, tf.float32)
    )
    frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options['output'] = 'none'
    profile = tf.compat.v1.profiler.profile(
        graph=frozen.graph,
        run_meta=tf.compat.v1.RunMetadata(),
        cmd='op',
        options=options,
    )
    return profile.total_float_ops


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def conv_macs(model: keras.Model) -> int:
    """Sums the multiply-adds of every convolution of a fixed-size model."""
    total = 0
    for layer in _layers(model):
        conv = getattr(layer, 'layer', layer)  # Unwrap SpectralNormalization.
        if not isinstance(
            conv, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)
        ):
            continue
        kernel = int(np.prod(conv.kernel.shape))
        if isinstance(conv, keras.layers.Conv2DTranspose):
            # Every input pixel scatters one whole kernel.
            total += int(np.prod(layer.input.shape[1:3])) * kernel
        else:
            total += int(np.prod(layer.output.shape[1:3])) * kernel
    return total


def main(argv):
    common.check_no_arguments(argv)
    size, width = _IMAGE_SIZE.value, _WIDTH.value
    if size <= 0 or size % 256:
        raise app.UsageError(
            '--image_size must be a positive multiple of 256 '
            '(pix2pix_unet needs it).'
        )
    if width <= 0:
        raise app.UsageError('--width must be positive.')
    # Fixed sizes give every layer a static shape for the MAC count.
    built = [
        (name, models.build_generator(name, image_size=size, width=width), 1)
        for name in models.GENERATOR_NAMES
    ]
    built.append(
        (
            'r18_unet_lite_bins',
            models.build_generator(
                'resnet18_unet_lite',
                image_size=size,
                width=width,
                color_head='bins',
            ),
            1,
        )
    )
    for name, spectral_norm in (('patchgan', False), ('patchgan_sn', True)):
        built.append(
            (
                name,
                models.build_discriminator(
                    image_size=size, width=width, spectral_norm=spectral_norm
                ),
                3,
            )
        )
    print(f'width={width}, one {size}x{size} image, inference graph')
    print(
        f'{"model":<20}{"params":>13}{"trainable":>13}'
        f'{"GFLOPs":>10}{"conv GMACs":>12}'
    )
    for name, model, channels in built:
        shape = (1, size, size, channels)
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        flops = profiler_flops(model, shape)
        macs = conv_macs(model)
        print(
            f'{name:<20}{model.count_params():>13,}{trainable:>13,}'
            f'{flops / 1e9:>10.2f}{macs / 1e9:>12.2f}'
        )


if __name__ == '__main__':
    app.run(main)
