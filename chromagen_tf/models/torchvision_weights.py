"""Converts torchvision ResNet-18/34 checkpoints into encoder weights.

The ResNet U-Net generators can start from an ImageNet-pretrained encoder.
This module reads torchvision's published state_dict (a `.pth` file) and writes
a Keras `.weights.h5` file for the one-channel encoder of
`chromagen_tf.models.resnet`:

  * every tensor maps one to one: conv kernels OIHW -> HWIO; BatchNorm weight,
    bias, running_mean and running_var -> gamma, beta, moving_mean,
    moving_variance;
  * conv1 is adapted to one input channel by summing its RGB kernels, as
    fastai's `create_body(..., n_in=1)` does, so a gray image gives the same
    stem features as that image replicated to RGB;
  * the classifier (fc.*) and num_batches_tracked are dropped; any other
    missing or unexpected tensor is an error that names it.

The command-line tool is `chromagen_tf.tools.import_torchvision_resnet`.

`--encoder_weights=imagenet` does the same automatically: it downloads
torchvision's file into the Keras cache (`~/.keras/models`, or under
`$KERAS_HOME`) with `torch.hub.load_state_dict_from_url`, which checks its
sha256 against the prefix in the file name, and converts it. Set
`CHROMAGEN_TORCHVISION_BASE_URL` to fetch from a mirror (or a `file://`
folder) instead of download.pytorch.org.

PyTorch is imported only when a checkpoint is read, never by training.
"""

import os
import re
import urllib.error

from absl import logging
import keras
import numpy as np

from chromagen_tf import errors
from chromagen_tf.models import resnet

# torchvision's ImageNet (IMAGENET1K_V1) checkpoints; the 8 hex digits in the
# name are the start of the file's sha256 (torchvision.models.resnet).
TORCHVISION_FILES = {
    'resnet18': 'resnet18-f37072fd.pth',
    'resnet34': 'resnet34-b627a593.pth',
}
DEFAULT_BASE_URL = 'https://download.pytorch.org/models/'
BASE_URL_ENV = 'CHROMAGEN_TORCHVISION_BASE_URL'
_IGNORED_SUFFIXES = ('num_batches_tracked',)
_IGNORED_PREFIXES = ('fc.',)


class WeightsError(errors.UsageError, ValueError):
    """A checkpoint does not match the encoder."""


class WeightsUnavailableError(WeightsError, RuntimeError):
    """The ImageNet weights cannot be had: no PyTorch, no network, bad file."""

    exit_code = errors.RUNTIME_EXIT_CODE


def _import_torch():
    try:
        import torch  # pylint: disable=g-import-not-at-top
    except ImportError as error:
        raise WeightsUnavailableError(
            'Converting torchvision weights needs PyTorch: '
            'pip install .[import] (training itself does not).'
        ) from error
    return torch


def _to_numpy(state, source: str) -> dict[str, np.ndarray]:
    """A loaded state_dict (or a dict holding one) as NumPy arrays."""
    torch = _import_torch()
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    if not isinstance(state, dict):
        raise WeightsError(f'{source} does not hold a state_dict.')
    not_tensors = sorted(
        key for key, value in state.items() if not torch.is_tensor(value)
    )
    if not_tensors:
        raise WeightsError(
            f'{source} holds non-tensor entries '
            f'{not_tensors}; expected a state_dict.'
        )
    return {key: value.detach().numpy() for key, value in state.items()}


def load_state_dict(checkpoint: str) -> dict[str, np.ndarray]:
    """Reads a torchvision `.pth` state_dict into NumPy arrays."""
    torch = _import_torch()
    try:
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    except Exception as error:  # pylint: disable=broad-except
        # torch.load raises pickle, zip and runtime errors alike.
        raise WeightsError(
            f'Could not read {checkpoint} as a PyTorch state_dict: {error}'
        ) from error
    return _to_numpy(state, checkpoint)


def infer_arch(state_dict: dict[str, np.ndarray]) -> str:
    """Returns 'resnet18' or 'resnet34' from the number of blocks."""
    blocks = tuple(
        len(
            {
                key.split('.')[1]
                for key in state_dict
                if key.startswith(f'layer{stage}.')
            }
        )
        for stage in range(1, 5)
    )
    for arch, expected in resnet.BLOCKS_PER_STAGE.items():
        if blocks == expected:
            return arch
    raise WeightsError(
        f'Checkpoint has {blocks} blocks per stage; expected a torchvision '
        'ResNet-18 (2, 2, 2, 2) or ResNet-34 (3, 4, 6, 3).'
    )


def _expected_tensors(encoder: keras.Model) -> dict[str, keras.Variable]:
    """Maps torchvision tensor names to the encoder variables they fill."""
    targets = {}
    for layer in encoder.layers:
        prefix = re.sub(r'_(\d+)_', r'.\1.', layer.name)
        prefix = re.sub(r'downsample_(\d)$', r'downsample.\1', prefix)
        if isinstance(layer, keras.layers.Conv2D):
            targets[f'{prefix}.weight'] = layer.kernel
        elif isinstance(layer, keras.layers.BatchNormalization):
            targets[f'{prefix}.weight'] = layer.gamma
            targets[f'{prefix}.bias'] = layer.beta
            targets[f'{prefix}.running_mean'] = layer.moving_mean
            targets[f'{prefix}.running_var'] = layer.moving_variance
    return targets


def convert_state_dict(
    state_dict: dict[str, np.ndarray], arch: str | None = None
) -> keras.Model:
    """Builds a one-channel encoder holding the checkpoint's weights.

    Args:
        state_dict: torchvision ResNet tensors by name, as NumPy arrays.
        arch: 'resnet18' or 'resnet34'; inferred when None.

    Returns:
        The encoder (`chromagen_tf.models.resnet.build_resnet_encoder`), with
        the width read from conv1 (64 for torchvision's models).

    Raises:
        WeightsError: On missing, unexpected or mis-shaped tensors.
    """
    arch = arch or infer_arch(state_dict)
    if 'conv1.weight' not in state_dict:
        raise WeightsError(
            'Checkpoint has no conv1.weight; is it a '
            'torchvision ResNet state_dict?'
        )
    width = state_dict['conv1.weight'].shape[0]
    encoder = resnet.build_resnet_encoder(arch, width=width)
    targets = _expected_tensors(encoder)
    ignored = {
        key
        for key in state_dict
        if key.endswith(_IGNORED_SUFFIXES) or key.startswith(_IGNORED_PREFIXES)
    }
    missing = sorted(set(targets) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(targets) - ignored)
    if missing or unexpected:
        raise WeightsError(
            f'Checkpoint does not match torchvision {arch}: '
            f'missing tensors {missing or "none"}; '
            f'unexpected tensors {unexpected or "none"}.'
        )
    for key, variable in targets.items():
        value = state_dict[key].astype(np.float32)
        if value.ndim == 4:
            if key == 'conv1.weight':
                # RGB -> L: conv is linear, so summing the kernels over the
                # input channels equals feeding the gray image as R=G=B.
                value = value.sum(axis=1, keepdims=True)
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO.
        if tuple(value.shape) != tuple(variable.shape):
            raise WeightsError(
                f'Tensor {key} has shape {value.shape}, expected '
                f'{tuple(variable.shape)}.'
            )
        variable.assign(value)
    return encoder


def convert_checkpoint(
    checkpoint: str, output: str, arch: str | None = None
) -> keras.Model:
    """Converts a `.pth` file into an encoder `.weights.h5` file.

    Returns:
        The converted encoder.

    Raises:
        WeightsError: If the checkpoint does not match.
        ValueError: If output does not end in .weights.h5.
    """
    if not output.endswith('.weights.h5'):
        raise ValueError(f'--output must end in .weights.h5, got {output!r}.')
    encoder = convert_state_dict(load_state_dict(checkpoint), arch)
    directory = os.path.dirname(output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    encoder.save_weights(output)
    logging.info('Wrote %s encoder weights to %s', encoder.name, output)
    return encoder


def _keras_cache_dir() -> str:
    """The directory `keras.utils.get_file` caches models in."""
    keras_home = os.environ.get('KERAS_HOME') or os.path.join(
        os.path.expanduser('~'), '.keras'
    )
    return os.path.join(keras_home, 'models')


def download_state_dict(
    arch: str, *, base_url: str | None = None, cache_dir: str | None = None
) -> dict[str, np.ndarray]:
    """Downloads torchvision's ImageNet checkpoint, checked by torch.hub.

    `torch.hub.load_state_dict_from_url(..., check_hash=True)` writes to a
    partial file, compares its sha256 with the hex digits after the last
    '-' of the file name, and only then moves it into the cache; a file
    already in the cache is not checked again. It sets no network timeout.

    Args:
        arch: 'resnet18' or 'resnet34'.
        base_url: Where the files are (http(s):// or file://); default
            $CHROMAGEN_TORCHVISION_BASE_URL or download.pytorch.org.
        cache_dir: Directory for the file; default the Keras model cache.

    Returns:
        The checkpoint's tensors by name, as NumPy arrays.

    Raises:
        WeightsUnavailableError: If PyTorch is missing, the download fails
            (e.g. offline) or the file's sha256 does not start with the
            prefix in its name.
    """
    if arch not in TORCHVISION_FILES:
        raise ValueError(f'No ImageNet checkpoint for {arch!r}.')
    torch = _import_torch()
    base_url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    url = base_url.rstrip('/') + '/' + TORCHVISION_FILES[arch]
    cache_dir = cache_dir or _keras_cache_dir()
    try:
        state = torch.hub.load_state_dict_from_url(
            url,
            model_dir=cache_dir,
            map_location='cpu',
            progress=False,
            check_hash=True,
            weights_only=True,
        )
    except (urllib.error.URLError, OSError) as error:
        raise WeightsUnavailableError(
            f'Could not download ImageNet weights from {url} ({error}). '
            'Without network access, download the file elsewhere, '
            'convert it with python -m '
            'chromagen_tf.tools.import_torchvision_resnet and pass '
            '--encoder_weights=PATH.'
        ) from error
    except RuntimeError as error:  # torch.hub's hash check; torch.load.
        raise WeightsUnavailableError(
            f'{url} is corrupt or not torchvision\'s file: {error}'
        ) from error
    return _to_numpy(state, url)


def imagenet_encoder_weights(
    arch: str = 'resnet18',
    *,
    base_url: str | None = None,
    cache_dir: str | None = None,
) -> str:
    """Returns a converted `.weights.h5` of torchvision's ImageNet encoder.

    Downloads, verifies and converts once; later calls reuse the converted
    file and need neither the network nor PyTorch.

    Args:
        arch: 'resnet18' or 'resnet34'.
        base_url: See `download_state_dict`.
        cache_dir: See `download_state_dict`.

    Returns:
        The path of the converted weights.

    Raises:
        RuntimeError: If PyTorch is missing, or the download fails or does
            not verify.
    """
    if arch not in TORCHVISION_FILES:
        raise ValueError(f'No ImageNet checkpoint for {arch!r}.')
    cache_dir = cache_dir or _keras_cache_dir()
    output = os.path.join(
        cache_dir, TORCHVISION_FILES[arch][: -len('.pth')] + '_gray.weights.h5'
    )
    if os.path.exists(output):
        return output
    state_dict = download_state_dict(
        arch, base_url=base_url, cache_dir=cache_dir
    )
    convert_state_dict(state_dict, arch).save_weights(output)
    logging.info('Wrote %s ImageNet encoder weights to %s', arch, output)
    return output
