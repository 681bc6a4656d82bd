r"""Converts a torchvision ResNet-18/34 checkpoint into encoder weights.

A one-time step for starting the ResNet U-Net generators from ImageNet
weights without needing PyTorch during training. See
`chromagen_tf.models.torchvision_weights` for the mapping (kernels to HWIO,
BatchNorm statistics, conv1 summed over RGB for one-channel input).

Usage:
    pip install .[import]    # PyTorch, for this tool only
    python -m chromagen_tf.tools.import_torchvision_resnet \
        --checkpoint=resnet18-f37072fd.pth \
        --output=resnet18_imagenet.weights.h5
    # then train with --encoder_weights=resnet18_imagenet.weights.h5
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
import os

from absl import app
from absl import flags

from chromagen_tf import errors
from chromagen_tf.models import resnet
from chromagen_tf.models import torchvision_weights

_CHECKPOINT = flags.DEFINE_string(
    'checkpoint',
    None,
    'torchvision ResNet-18/34 state_dict (.pth), e.g. resnet18-f37072fd.pth.',
)
_OUTPUT = flags.DEFINE_string(
    'output', None, 'Keras encoder weights to write; must end in .weights.h5.'
)
_ARCH = flags.DEFINE_enum(
    'arch',
    None,
    sorted(resnet.BLOCKS_PER_STAGE),
    'ResNet depth; inferred from the checkpoint if unset.',
)


def _check_flags(argv) -> None:
    if len(argv) > 1:
        raise errors.UsageError(f'unexpected arguments: {argv[1:]}')
    if not _CHECKPOINT.value or not _OUTPUT.value:
        raise errors.UsageError('--checkpoint and --output are required.')
    if not os.path.isfile(_CHECKPOINT.value):
        raise errors.NotFoundError(f'checkpoint not found: {_CHECKPOINT.value}')
    if not _OUTPUT.value.endswith('.weights.h5'):
        raise errors.UsageError(
            f'--output must end in .weights.h5, got {_OUTPUT.value!r}.'
        )


def main(argv):
    try:
        _check_flags(argv)
        encoder = torchvision_weights.convert_checkpoint(
            _CHECKPOINT.value, _OUTPUT.value, _ARCH.value
        )
    except errors.ChromaGenError as error:
        errors.fail('import_torchvision_resnet', error)
    print(f'Wrote {encoder.count_params()} encoder values to {_OUTPUT.value}')


if __name__ == '__main__':
    app.run(main)
