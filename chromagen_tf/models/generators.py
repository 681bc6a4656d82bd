"""Building the generators by name, and their pretrained encoders."""

from absl import logging
import keras
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf.models import color_bins
from chromagen_tf.models import hint_branch as hint_branch_lib
from chromagen_tf.models import patchgan
from chromagen_tf.models import pix2pix
from chromagen_tf.models import resnet
from chromagen_tf.models import unet
from chromagen_tf.models import unet_lite

GENERATOR_NAMES = (
    'resnet18_unet',
    'resnet34_unet',
    'pix2pix_unet',
    'resnet18_unet_lite',
    'resnet34_unet_lite',
)
# The pix2pix baseline, which a GAN trained from scratch (--init_from=none)
# uses unless told otherwise. The default generator is ModelConfig's.
BASELINE_GENERATOR = 'pix2pix_unet'
_RESNET_GENERATORS = {
    'resnet18_unet': ('resnet18', unet.build_resnet_unet),
    'resnet34_unet': ('resnet34', unet.build_resnet_unet),
    'resnet18_unet_lite': ('resnet18', unet_lite.build_resnet_unet_lite),
    'resnet34_unet_lite': ('resnet34', unet_lite.build_resnet_unet_lite),
}
# The multiple every input height and width of a generator must have.
_SIZE_MULTIPLES = {
    'pix2pix_unet': pix2pix.SIZE_MULTIPLE,
    'resnet18_unet': unet.SIZE_MULTIPLE,
    'resnet34_unet': unet.SIZE_MULTIPLE,
    'resnet18_unet_lite': unet_lite.SIZE_MULTIPLE,
    'resnet34_unet_lite': unet_lite.SIZE_MULTIPLE,
}

build_discriminator = patchgan.build_discriminator
ENCODER_NAME = resnet.ENCODER_NAME


def size_multiple(generator_name: str) -> int:
    """The multiple that a generator's input height and width must have."""
    _check_name(generator_name)
    return _SIZE_MULTIPLES[generator_name]


def _check_name(name: str) -> None:
    if name not in GENERATOR_NAMES:
        raise ValueError(
            f'Unknown generator {name!r}; expected one of '
            f'{", ".join(GENERATOR_NAMES)}.'
        )


def _no_weights(encoder_weights: str | None) -> bool:
    return encoder_weights is None or encoder_weights.lower() in ('', 'none')


def get_encoder(generator: keras.Model) -> keras.Model:
    """Returns the ResNet encoder sub-model of a ResNet U-Net generator.

    Raises:
        ValueError: If the generator has no encoder (pix2pix_unet).
    """
    try:
        return generator.get_layer(ENCODER_NAME)
    except ValueError as error:
        raise ValueError(
            f'Generator {generator.name!r} has no {ENCODER_NAME!r} '
            'sub-model; only the ResNet U-Nets do.'
        ) from error


def load_encoder_weights(
    generator: keras.Model,
    encoder_weights: str | None,
    *,
    arch: str = 'resnet18',
) -> None:
    """Initialises a ResNet U-Net's encoder from pretrained weights.

    Args:
        generator: A model from `build_generator('resnet*_unet', ...)`.
        encoder_weights: None or 'none' (keep the random initialisation), a
            path to a `.weights.h5` file from
            `chromagen_tf.tools.import_torchvision_resnet`, or 'imagenet'
            (download torchvision's checkpoint into the Keras cache, verify
            its sha256 and convert it; needs PyTorch and the network).
        arch: 'resnet18' or 'resnet34', for 'imagenet'.

    Raises:
        ValueError: If the file does not fit the encoder.
        FileNotFoundError: If the file does not exist.
        RuntimeError: If 'imagenet' weights cannot be downloaded or
            converted.
    """
    if _no_weights(encoder_weights):
        return
    encoder = get_encoder(generator)
    if encoder_weights == 'imagenet':
        # Imported here: the conversion needs PyTorch, training does not.
        # pylint: disable-next=g-import-not-at-top
        from chromagen_tf.models import torchvision_weights

        width = encoder.get_layer('conv1').filters
        if width != 64:
            raise resnet.EncoderWeightsError(
                f'ImageNet weights exist only for width=64, got width={width}.'
            )
        encoder_weights = torchvision_weights.imagenet_encoder_weights(arch)
    resnet.load_encoder_weights(encoder, encoder_weights)
    logging.info('Loaded encoder weights from %s', encoder_weights)


def build_generator(
    name: str = 'resnet18_unet',
    *,
    image_size: int | None = None,
    width: int = 64,
    encoder_weights: str | None = None,
    synchronized_batch_norm: bool = False,
    color_head: str = 'regression',
    temperature: float = color_bins.ZHANG_TEMPERATURE,
    log_prior=None,
    prior_strength: float = 0.0,
    hints: bool = False,
    hint_branch: bool = False,
    hint_correction: float = 1.0,
) -> keras.Model:
    """Builds a generator that maps normalised L to normalised ab.

    Args:
        name: One of GENERATOR_NAMES.
        image_size: Fixed square input size, or None (the default) for
            unknown spatial sizes; sizes must be multiples of 32 (ResNet
            U-Nets) or 256 (pix2pix_unet).
        width: Base channel width; 64 is the published architecture, small
            values (e.g. 8) give tiny models for tests and demos.
        encoder_weights: See `load_encoder_weights`; ResNet U-Nets only.
        synchronized_batch_norm: Use
            `keras.layers.BatchNormalization(synchronized=True)` for
            cross-replica batch statistics.
        color_head: 'regression' (every generator) or 'bins' (the
            *_unet_lite generators): ab as the annealed mean of colour-bin
            probabilities (`color_bins.py`).
        temperature: The annealed mean's temperature, for 'bins'.
        log_prior: The training set's log prior over the bins
            (`training/bin_prior.py`), for 'bins'.
        prior_strength: How much of log_prior to subtract from the logits
            before decoding (0: none), for 'bins'.
        hints: Also take a hint a*b* map [B, H, W, 2] and its mask
            [B, H, W, 1] (`hints.py`, Zhang et al. 2017): the model's inputs
            are then [L, hint_ab, hint_mask]; see `generator_inputs`.
        hint_branch: With hints, build them as a trained branch over the
            frozen automatic generator (*_unet_lite; `hint_branch.py`)
            instead of input channels of the whole network.

    Returns:
        A keras.Model: [B, H, W, 1] -> [B, H, W, 2], float32 output.

    Raises:
        ValueError: On an unknown name, a bad size or width, encoder
            weights for pix2pix_unet, or a colour-bins head on a generator
            without one.
    """
    _check_name(name)
    if color_head != 'regression' and name not in configs.BINS_GENERATORS:
        raise ValueError(
            f'color_head={color_head!r} needs one of '
            f'{", ".join(configs.BINS_GENERATORS)}; {name} predicts ab '
            'directly.'
        )
    if width <= 0:
        raise ValueError(f'width must be positive, got {width}.')
    if name == 'pix2pix_unet':
        if not _no_weights(encoder_weights):
            raise ValueError(
                'pix2pix_unet has no pretrained encoder; use '
                'encoder_weights=None.'
            )
        return pix2pix.build_pix2pix_unet(
            image_size=image_size,
            width=width,
            synchronized_batch_norm=synchronized_batch_norm,
            hints=hints,
        )
    arch, build = _RESNET_GENERATORS[name]
    kwargs = {'hints': hints}
    if hint_branch:
        if not hints or name not in configs.BINS_GENERATORS:
            raise ValueError(
                'hint_branch needs hints=True and one of '
                f'{", ".join(configs.BINS_GENERATORS)}, got {name}.'
            )
        # The branch brings its own hint inputs.
        build = hint_branch_lib.build_hint_branch
        kwargs = {'correction_scale': hint_correction}
    if name in configs.BINS_GENERATORS:
        kwargs.update(
            color_head=color_head,
            temperature=temperature,
            log_prior=log_prior,
            prior_strength=prior_strength,
        )
    generator = build(
        arch,
        image_size=image_size,
        width=width,
        synchronized_batch_norm=synchronized_batch_norm,
        **kwargs,
    )
    load_encoder_weights(generator, encoder_weights, arch=arch)
    return generator


def takes_hints(generator: keras.Model) -> bool:
    """Whether a generator takes hint inputs beside L."""
    return len(generator.inputs) > 1


def automatic_generator(generator: keras.Model) -> keras.Model | None:
    """The cheapest model giving `generator`'s output without hints: L -> ab.

    The generator itself for a model without hints; for a hint-branch model
    its frozen automatic generator (`hint_branch.automatic_model`: the same
    values, without running the branch). None for a hint model
    that reads hints at its input: call it with zero hint maps
    (`generator_inputs`).
    """
    if not takes_hints(generator):
        return generator
    return hint_branch_lib.automatic_model(generator)


def generator_inputs(
    generator: keras.Model, l_channel, hint_ab=None, hint_mask=None
):
    """What to call `generator` with: L, and for a hint model its hints.

    A hint model given no hints gets zero maps, which is how it is trained
    to colorize automatically.
    """
    if not takes_hints(generator):
        return l_channel
    if hint_ab is None:
        hint_mask = tf.zeros_like(l_channel)
        hint_ab = tf.concat([hint_mask, hint_mask], axis=-1)
    return [l_channel, hint_ab, hint_mask]
