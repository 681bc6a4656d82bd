"""The ChromaGen networks: generators and the PatchGAN discriminator.

    from chromagen_tf.models import build_generator, build_discriminator

    generator = build_generator('resnet18_unet', encoder_weights=None)
    ab = generator(l_channel)                  # [B, H, W, 1] -> [B, H, W, 2]
    discriminator = build_discriminator()
    logits = discriminator(tf.concat([l_channel, ab], -1))  # 30x30 at 256

Generators (`GENERATOR_NAMES`):
  resnet18_unet  ResNet-18 encoder U-Net after fastai's DynamicUnet
                 (`unet.py`), the default; 31.1M parameters, 56.9 GFLOPs
                 per 256x256 image.
  resnet34_unet  The same with a ResNet-34 encoder; 41.2M, 61.8 GFLOPs.
  resnet18_unet_lite
                 The same encoder with a decoder that stops at 1/4
                 resolution and up-samples ab bilinearly (`unet_lite.py`),
                 built for CPU training and inference; the bundled model.
                 With color_head='bins' it predicts a distribution over
                 a*b* bins and decodes its annealed mean (`color_bins.py`,
                 Zhang et al. 2016).
  resnet34_unet_lite
                 The same with a ResNet-34 encoder.
  pix2pix_unet   The pix2pix U-Net-256 baseline (`pix2pix.py`); 54.4M,
                 12.0 GFLOPs; needs sizes that are multiples of 256.
Discriminator: the 70x70 PatchGAN (`patchgan.py`); 2.77M, 6.3 GFLOPs.
Counts are for width=64; each module says how they were measured
(`bench/bench_models.py` reproduces them).

All models take normalised inputs (see `chromagen_tf.color`), build with
unknown spatial sizes, are safe under the 'mixed_float16' and
'mixed_bfloat16' policies (their last layer computes in float32, so outputs
are always float32) and save to `.keras` files. Import this package before
`keras.models.load_model`: importing it registers the custom layers
(`PixelShuffle`, `ICNR`, `SpatialMultipleCheck`,
`BilinearUpsampling`, `AnnealedMean`).
"""

from chromagen_tf.models import color_bins
from chromagen_tf.models import layers as layers_lib
from chromagen_tf.models import loading
from chromagen_tf.models.generators import automatic_generator
from chromagen_tf.models.generators import BASELINE_GENERATOR
from chromagen_tf.models.generators import build_discriminator
from chromagen_tf.models.generators import build_generator
from chromagen_tf.models.generators import ENCODER_NAME
from chromagen_tf.models.generators import generator_inputs
from chromagen_tf.models.generators import GENERATOR_NAMES
from chromagen_tf.models.generators import get_encoder
from chromagen_tf.models.generators import load_encoder_weights
from chromagen_tf.models.generators import size_multiple
from chromagen_tf.models.generators import takes_hints
from chromagen_tf.models.loading import build_from_config
from chromagen_tf.models.loading import restore_generator

__all__ = [
    'AnnealedMean',
    'BASELINE_GENERATOR',
    'BilinearUpsampling',
    'ENCODER_NAME',
    'GENERATOR_NAMES',
    'ICNR',
    'PixelShuffle',
    'SpatialMultipleCheck',
    'automatic_generator',
    'build_discriminator',
    'build_from_config',
    'build_generator',
    'generator_inputs',
    'get_encoder',
    'load_encoder_weights',
    'loading',
    'restore_generator',
    'size_multiple',
    'takes_hints',
]

# Keep the custom layers importable from the package for `custom_objects`.
PixelShuffle = layers_lib.PixelShuffle
ICNR = layers_lib.ICNR
SpatialMultipleCheck = layers_lib.SpatialMultipleCheck
BilinearUpsampling = layers_lib.BilinearUpsampling
AnnealedMean = color_bins.AnnealedMean
