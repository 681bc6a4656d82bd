"""The configuration of one conversion: what make_tfrecords was asked to do.

Its own module so that the converter, the Beam pipeline and the manifest
writer can all depend on it without depending on each other.
"""

import dataclasses
import os

from chromagen_tf.data import imaging


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

    @property
    def image_options(self) -> ImageOptions:
        return ImageOptions(self.image_size, self.resize, self.min_size,
                            self.max_pixels)

    @property
    def input_root(self) -> str:
        if self.image_dir is not None:
            return self.image_dir
        return os.path.join(self.coco_dir, self.split)


# Fields that cannot change what is written, so a resumed run may differ
# (the output folder may also have been moved between runs).
RESUMABLE_FIELDS = frozenset({'num_processes', 'strict', 'output_dir'})


def comparable_config(config: ConvertConfig) -> dict:
    """The fields of `config` that a resumed run must not change."""
    return {name: value for name, value in dataclasses.asdict(config).items()
            if name not in RESUMABLE_FIELDS}
