"""The configuration of one conversion: what make_tfrecords was asked to do.

Its own module so that the converter, the Beam pipeline and the manifest
writer can all depend on it without depending on each other.
"""

import dataclasses
import os
import shlex

from chromagen_tf import errors
from chromagen_tf import files
from chromagen_tf.data import imaging

# The runners the Beam path is documented for; Beam itself knows others.
RUNNERS = ('DirectRunner', 'DataflowRunner', 'FlinkRunner', 'SparkRunner')


@dataclasses.dataclass(frozen=True)
class ImageOptions:
    """What `convert_image` needs to know, and nothing else."""

    image_size: int = 256
    resize: str = 'crop'
    min_size: int = 128
    max_pixels: int = imaging.CONVERT_MAX_PIXELS


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """The full configuration of one conversion, written to the manifest.

    Exactly one of `image_dir` and `coco_dir` is set. `num_val` overrides
    `val_fraction` and `num_shards` overrides `images_per_shard` when set.
    """

    output_dir: str
    image_dir: str | None = None
    coco_dir: str | None = None
    split: str = 'train2017'
    image_size: int = 256
    resize: str = 'crop'
    min_size: int = 128
    max_pixels: int = imaging.CONVERT_MAX_PIXELS
    max_images: int = 0
    seed: int = 0
    val_fraction: float = 0.1
    num_val: int | None = None
    num_shards: int | None = None
    images_per_shard: int = 1000
    strict: bool = False
    num_processes: int = 0
    # Empty: convert in this process's pool. Else an Apache Beam runner, and
    # its pipeline options as one shell-quoted string.
    runner: str = ''
    beam_options: str = ''

    @property
    def image_options(self) -> ImageOptions:
        return ImageOptions(
            self.image_size, self.resize, self.min_size, self.max_pixels
        )

    @property
    def input_root(self) -> str:
        if self.image_dir is not None:
            return self.image_dir
        return os.path.join(self.coco_dir, self.split)

    @property
    def beam_argv(self) -> list[str]:
        return shlex.split(self.beam_options)


# Fields that cannot change what is written, so a resumed run may differ
# (the output folder may also have been moved between runs).
# How a conversion runs (runner, options) does not change its shards.
RESUMABLE_FIELDS = frozenset(
    {'num_processes', 'strict', 'output_dir', 'runner', 'beam_options'}
)


def validate(config: ConvertConfig, download: bool = False) -> None:
    """Checks a configuration before anything is read or written.

    Args:
      config: The conversion.
      download: COCO will be downloaded into config.coco_dir first, so the
        folder need not exist yet.

    Raises:
      errors.UsageError: with one line naming the flag at fault.
      errors.NotFoundError: an input folder does not exist.
    """
    if (config.image_dir is None) == (config.coco_dir is None):
        raise errors.UsageError(
            'give exactly one of --image_dir and --coco_dir'
        )
    if not config.output_dir:
        raise errors.UsageError('--output_dir is required')
    if download and config.coco_dir is None:
        raise errors.UsageError('--download needs --coco_dir')
    _validate_runner(config)
    if (
        config.image_dir is not None
        and not files.is_remote(config.image_dir)
        and not os.path.isdir(config.image_dir)
    ):
        raise errors.NotFoundError(
            f'--image_dir: no such folder: {config.image_dir}'
        )
    if (
        config.coco_dir is not None
        and not download
        and not os.path.isdir(config.coco_dir)
    ):
        raise errors.NotFoundError(
            f'--coco_dir: no such folder: {config.coco_dir}'
        )
    checks = [
        (config.image_size >= 8, '--image_size must be at least 8'),
        (config.min_size >= 0, '--min_size must be >= 0'),
        (config.max_pixels > 0, '--max_pixels must be positive'),
        (config.max_images >= 0, '--max_images must be >= 0'),
        (0.0 <= config.val_fraction < 1.0, '--val_fraction must be in [0, 1)'),
        (
            config.num_val is None or config.num_val >= 0,
            '--num_val must be >= 0',
        ),
        (
            config.num_shards is None or config.num_shards >= 1,
            '--num_shards must be >= 1',
        ),
        (config.images_per_shard >= 1, '--images_per_shard must be >= 1'),
        (config.num_processes >= 0, '--num_processes must be >= 0'),
    ]
    for passed, message in checks:
        if not passed:
            raise errors.UsageError(message)


def _validate_runner(config: ConvertConfig) -> None:
    """Remote folders need Beam; Beam options need a runner."""
    if config.runner and config.runner not in RUNNERS:
        raise errors.UsageError(
            f'--runner must be one of {", ".join(RUNNERS)}, not {config.runner}'
        )
    if config.beam_options and not config.runner:
        raise errors.UsageError('--beam_options needs --runner')
    try:
        shlex.split(config.beam_options)
    except ValueError as error:
        raise errors.UsageError(f'--beam_options: {error}') from None
    if config.coco_dir and files.is_remote(config.coco_dir):
        raise errors.UsageError(
            '--coco_dir must be a local folder; give a remote split '
            'folder as --image_dir'
        )
    for name in ('output_dir', 'image_dir'):
        value = getattr(config, name)
        if value and files.is_remote(value) and not config.runner:
            raise errors.UsageError(f'--{name}={value} needs --runner')


def comparable_config(config: ConvertConfig) -> dict:
    """The fields of `config` that a resumed run must not change."""
    return {
        name: value
        for name, value in dataclasses.asdict(config).items()
        if name not in RESUMABLE_FIELDS
    }
