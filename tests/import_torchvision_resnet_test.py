"""Tests importing torchvision ResNet weights against a PyTorch forward pass.

The reference network is written with torch.nn.functional in eval mode
(torchvision is not needed), from a real `.pth` state_dict written with
torch.save, holding random weights and non-trivial BatchNorm statistics so
that a wrongly transposed kernel or swapped mean and variance cannot pass.
"""

import contextlib
import functools
import hashlib
import os
import pathlib
import socket
import subprocess
import sys
from unittest import mock

from absl.testing import parameterized
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import torch
import torch.nn.functional as F

from chromagen_tf import color
from chromagen_tf import models
from chromagen_tf.models import resnet
from chromagen_tf.models import torchvision_weights
from tests import conftest


def _random_state_dict(arch: str, width: int, seed: int = 0):
    """Returns torchvision-named tensors for a ResNet with random values."""
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=generator) * std + mean

    def uniform(*shape, low, high):
        return torch.rand(*shape, generator=generator) * (high - low) + low

    state = {}

    def conv(name, out_channels, in_channels, size):
        fan_in = in_channels * size * size
        state[f'{name}.weight'] = normal(
            out_channels, in_channels, size, size, std=(2.0 / fan_in) ** 0.5
        )

    def norm(name, channels, scale=1.0):
        # Small scales on residual branches keep deep features O(1).
        state[f'{name}.weight'] = uniform(channels, low=0.5, high=1.5) * scale
        state[f'{name}.bias'] = normal(channels, std=0.2)
        state[f'{name}.running_mean'] = normal(channels, std=0.3)
        state[f'{name}.running_var'] = uniform(channels, low=0.5, high=2.0)
        state[f'{name}.num_batches_tracked'] = torch.tensor(1000)

    conv('conv1', width, 3, 7)
    norm('bn1', width)
    in_channels = width
    for stage, blocks in enumerate(resnet.BLOCKS_PER_STAGE[arch]):
        channels = width * 2**stage
        for block in range(blocks):
            prefix = f'layer{stage + 1}.{block}'
            conv(f'{prefix}.conv1', channels, in_channels, 3)
            norm(f'{prefix}.bn1', channels)
            conv(f'{prefix}.conv2', channels, channels, 3)
            norm(f'{prefix}.bn2', channels, scale=0.3)
            if in_channels != channels:
                conv(f'{prefix}.downsample.0', channels, in_channels, 1)
                norm(f'{prefix}.downsample.1', channels)
            in_channels = channels
    state['fc.weight'] = normal(1000, in_channels, std=0.01)
    state['fc.bias'] = torch.zeros(1000)
    return state


def _torch_features(state, arch, images):
    """torchvision's ResNet forward pass in eval mode, per stage (NCHW)."""

    def norm(x, name):
        return F.batch_norm(
            x,
            state[f'{name}.running_mean'],
            state[f'{name}.running_var'],
            state[f'{name}.weight'],
            state[f'{name}.bias'],
            training=False,
            eps=1e-5,
        )

    with torch.no_grad():
        x = F.conv2d(images, state['conv1.weight'], stride=2, padding=3)
        x = F.relu(norm(x, 'bn1'))
        features = [x]
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        for stage, blocks in enumerate(resnet.BLOCKS_PER_STAGE[arch]):
            for block in range(blocks):
                prefix = f'layer{stage + 1}.{block}'
                stride = 2 if stage > 0 and block == 0 else 1
                out = F.conv2d(
                    x, state[f'{prefix}.conv1.weight'], stride=stride, padding=1
                )
                out = F.relu(norm(out, f'{prefix}.bn1'))
                out = F.conv2d(out, state[f'{prefix}.conv2.weight'], padding=1)
                out = norm(out, f'{prefix}.bn2')
                shortcut = x
                if f'{prefix}.downsample.0.weight' in state:
                    shortcut = F.conv2d(
                        x, state[f'{prefix}.downsample.0.weight'], stride=stride
                    )
                    shortcut = norm(shortcut, f'{prefix}.downsample.1')
                x = F.relu(out + shortcut)
            features.append(x)
    return [feature.permute(0, 2, 3, 1).numpy() for feature in features]


@functools.lru_cache(maxsize=None)
def _gray_photos(height=96, width=128):
    """Normalised L of two real photos, [2, H, W, 1]."""
    images = []
    for name in ('astronaut.jpg', 'coffee.jpg'):
        with Image.open(conftest.SAMPLE_PHOTOS / name) as image:
            rgb = (
                np.asarray(
                    image.convert('RGB').resize((width, height)),
                    dtype=np.float32,
                )
                / 255.0
            )
        l_channel = color.rgb_to_lab_numpy(rgb)[..., :1]
        images.append(color.normalize_l(l_channel).numpy())
    return np.stack(images).astype(np.float32)


class ImportTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.parameters(('resnet18', 64, True), ('resnet34', 8, False))
    def test_every_stage_matches_pytorch(self, arch, width, as_imagenet):
        state = _random_state_dict(arch, width)
        keras_home = os.path.join(self.get_temp_dir(), 'keras_home')
        if as_imagenet:
            # Through the download path: torch.hub fetches the file from a
            # file:// URL, checks its hash prefix, and it is converted.
            served = os.path.join(self.get_temp_dir(), 'served')
            name = _save_with_hash_prefix(state, served, arch)
            environment = {
                'KERAS_HOME': keras_home,
                torchvision_weights.BASE_URL_ENV: pathlib.Path(served).as_uri(),
            }
            with (
                _patched_environment(environment),
                mock.patch.dict(
                    torchvision_weights.TORCHVISION_FILES, {arch: name}
                ),
            ):
                generator = models.build_generator(
                    f'{arch}_unet', width=width, encoder_weights='imagenet'
                )
            self.assertTrue(
                os.path.exists(os.path.join(keras_home, 'models', name))
            )
        else:
            checkpoint = os.path.join(self.get_temp_dir(), f'{arch}.pth')
            torch.save(state, checkpoint)
            output = os.path.join(self.get_temp_dir(), f'{arch}.weights.h5')
            torchvision_weights.convert_checkpoint(checkpoint, output)
            generator = models.build_generator(
                f'{arch}_unet', width=width, encoder_weights=output
            )
        encoder = models.get_encoder(generator)
        l_channel = _gray_photos()
        keras_features = encoder(l_channel, training=False)
        # PyTorch sees the gray image as R = G = B with the RGB conv1, so this
        # also checks that summing conv1 over RGB is exact.
        rgb = torch.from_numpy(l_channel).permute(0, 3, 1, 2).repeat(1, 3, 1, 1)
        torch_features = _torch_features(state, arch, rgb)
        self.assertLen(keras_features, len(resnet.STAGE_NAMES))
        for stage, ours, theirs in zip(
            resnet.STAGE_NAMES, keras_features, torch_features
        ):
            self.assertEqual(ours.shape, theirs.shape, stage)
            # Features are O(1); this bound catches any mis-mapped tensor.
            self.assertGreater(np.abs(theirs).mean(), 0.1, stage)
            self.assertAllClose(ours, theirs, atol=1e-4, rtol=1e-4, msg=stage)

    def test_infers_depth_and_width(self):
        state = {
            k: v.numpy() for k, v in _random_state_dict('resnet34', 8).items()
        }
        self.assertEqual(torchvision_weights.infer_arch(state), 'resnet34')
        encoder = torchvision_weights.convert_state_dict(state)
        self.assertEqual(encoder.get_layer('layer4_2_conv2').filters, 64)

    def test_missing_and_unexpected_tensors_are_named(self):
        state = {
            k: v.numpy() for k, v in _random_state_dict('resnet18', 8).items()
        }
        del state['layer3.1.bn2.running_var']
        state['layer3.1.conv3.weight'] = np.zeros((32, 32, 1, 1), np.float32)
        with self.assertRaisesRegex(
            torchvision_weights.WeightsError,
            r"missing tensors \['layer3.1.bn2.running_var'\]; "
            r"unexpected tensors \['layer3.1.conv3.weight'\]",
        ):
            torchvision_weights.convert_state_dict(state, 'resnet18')

    def test_wrong_shape_and_wrong_depth_are_named(self):
        state = {
            k: v.numpy() for k, v in _random_state_dict('resnet18', 8).items()
        }
        state['layer2.0.conv2.weight'] = state['layer2.0.conv2.weight'][:, :8]
        with self.assertRaisesRegex(
            torchvision_weights.WeightsError, 'layer2.0.conv2.weight has shape'
        ):
            torchvision_weights.convert_state_dict(state)
        with self.assertRaisesRegex(
            torchvision_weights.WeightsError, 'missing tensors'
        ):
            torchvision_weights.convert_state_dict(state, 'resnet34')

    def test_weights_of_another_width_give_a_clear_error(self):
        state = _random_state_dict('resnet18', 16)
        checkpoint = os.path.join(self.get_temp_dir(), 'narrow.pth')
        torch.save(state, checkpoint)
        output = os.path.join(self.get_temp_dir(), 'narrow.weights.h5')
        torchvision_weights.convert_checkpoint(checkpoint, output)
        with self.assertRaisesRegex(ValueError, 'do not fit encoder'):
            models.build_generator(
                'resnet18_unet', width=8, encoder_weights=output
            )
        with self.assertRaisesRegex(FileNotFoundError, 'not found'):
            models.build_generator(
                'resnet18_unet',
                width=8,
                encoder_weights=os.path.join(
                    self.get_temp_dir(), 'missing.weights.h5'
                ),
            )

    @pytest.mark.slow  # Two processes that load TensorFlow and PyTorch.
    def test_command_line(self):
        state = _random_state_dict('resnet18', 8)
        checkpoint = os.path.join(self.get_temp_dir(), 'cli.pth')
        torch.save(state, checkpoint)
        output = os.path.join(self.get_temp_dir(), 'out', 'cli.weights.h5')
        command = [
            sys.executable,
            '-m',
            'chromagen_tf.tools.import_torchvision_resnet',
            f'--checkpoint={checkpoint}',
            f'--output={output}',
        ]
        result = subprocess.run(
            command,
            cwd=conftest.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn('encoder values', result.stdout)
        encoder = resnet.build_resnet_encoder('resnet18', width=8)
        resnet.load_encoder_weights(encoder, output)
        self.assertAllClose(
            encoder.get_layer('layer1_0_bn1').moving_variance,
            state['layer1.0.bn1.running_var'].numpy(),
        )

        # A file that is no checkpoint: one clear line, no traceback.
        with open(checkpoint, 'w') as file:
            file.write('not a checkpoint')
        result = subprocess.run(
            command,
            cwd=conftest.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(result.returncode, 2)
        self.assertIn(
            f'error: Could not read {checkpoint} as a PyTorch', result.stderr
        )
        self.assertNotIn('Traceback', result.stderr)


@contextlib.contextmanager
def _patched_environment(values):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value


def _save_with_hash_prefix(state, folder, arch) -> str:
    """Saves a state_dict as torchvision names its files: ARCH-<sha256[:8]>.

    Returns:
        The file name.
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, 'unnamed.pth')
    torch.save(state, path)
    with open(path, 'rb') as file:
        digest = hashlib.sha256(file.read()).hexdigest()
    name = f'{arch}-{digest[:8]}.pth'
    os.replace(path, os.path.join(folder, name))
    return name


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class ImagenetDownloadTest(tf.test.TestCase):
    def test_offline_fails_fast_with_a_clear_message(self):
        base_url = f'http://127.0.0.1:{_closed_port()}/models/'
        with self.assertRaisesRegex(
            RuntimeError,
            'Could not download ImageNet weights.*import_torchvision_resnet',
        ):
            torchvision_weights.download_state_dict(
                'resnet18', base_url=base_url, cache_dir=self.get_temp_dir()
            )

    def test_generator_imagenet_option_fails_clearly_offline(self):
        environment = {
            'KERAS_HOME': self.get_temp_dir(),
            torchvision_weights.BASE_URL_ENV: f'http://127.0.0.1:{_closed_port()}/',
        }
        with _patched_environment(environment):
            with self.assertRaisesRegex(
                RuntimeError, 'Could not download ImageNet'
            ):
                models.build_generator(
                    'resnet18_unet', encoder_weights='imagenet'
                )

    def test_a_file_that_fails_its_hash_prefix_is_rejected(self):
        served = pathlib.Path(self.get_temp_dir()) / 'served'
        state = _random_state_dict('resnet18', 8)
        name = _save_with_hash_prefix(state, served, 'resnet18')
        cache = pathlib.Path(self.get_temp_dir()) / 'cache'
        with mock.patch.dict(
            torchvision_weights.TORCHVISION_FILES, {'resnet18': name}
        ):
            loaded = torchvision_weights.download_state_dict(
                'resnet18', base_url=served.as_uri(), cache_dir=str(cache)
            )
            self.assertAllEqual(
                loaded['conv1.weight'], state['conv1.weight'].numpy()
            )
            # One byte changed after the name was given: a corrupt download.
            data = bytearray((served / name).read_bytes())
            data[len(data) // 2] ^= 0xFF
            (served / name).write_bytes(bytes(data))
            other_cache = pathlib.Path(self.get_temp_dir()) / 'other_cache'
            with self.assertRaisesRegex(
                torchvision_weights.WeightsUnavailableError,
                f'invalid hash value .*{name[len("resnet18-") : -4]}',
            ):
                torchvision_weights.imagenet_encoder_weights(
                    'resnet18',
                    base_url=served.as_uri(),
                    cache_dir=str(other_cache),
                )
        # Rejected before it reached the cache, and nothing was converted.
        self.assertEqual(list(other_cache.iterdir()), [])


if __name__ == '__main__':
    tf.test.main()
