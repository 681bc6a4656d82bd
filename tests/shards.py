"""Writes small Lab TFRecord shards from the bundled photos, for tests.

This takes a direct route (PIL resize, `color.rgb_to_lab_numpy`,
`records.encode_example`) so that the pipeline and trainer tests do not depend
on the converter's flags; the converter has its own tests.
"""

import os

import numpy as np
from PIL import Image
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf.data import records
from tests import conftest


def sample_photo_paths() -> list[str]:
    return sorted(str(path) for path in conftest.SAMPLE_PHOTOS.glob('*.jpg'))


def lab_from_photo(path: str, image_size: int) -> np.ndarray:
    image = Image.open(path).convert('RGB')
    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return color.rgb_to_lab_numpy(np.asarray(image))


def write_shards(
    directory: str,
    *,
    image_size: int = 64,
    num_train: int = 8,
    num_val: int = 4,
    train_shards: int = 2,
) -> str:
    """Writes train-*-of-* and val-*-of-* shards; returns `directory`."""
    os.makedirs(directory, exist_ok=True)
    paths = sample_photo_paths()
    assert num_train + num_val <= len(paths), 'not enough bundled photos'
    splits = {
        'train': (paths[:num_train], train_shards),
        'val': (paths[num_train : num_train + num_val], 1),
    }
    for split, (split_paths, num_shards) in splits.items():
        for shard in range(num_shards):
            name = f'{split}-{shard:05d}-of-{num_shards:05d}.tfrecord'
            with tf.io.TFRecordWriter(os.path.join(directory, name)) as writer:
                for path in split_paths[shard::num_shards]:
                    width, height = Image.open(path).size
                    writer.write(
                        records.encode_example(
                            lab_from_photo(path, image_size),
                            os.path.basename(path),
                            height,
                            width,
                        )
                    )
    return directory
