"""Colour hints: sparse a*b* points that a hint generator follows.

After Zhang, Zhu et al. 2017, "Real-Time User-Guided Image Colorization
with Learned Deep Priors": the network reads, beside L, a hint map of a*b*
(normalised like the targets, `color.normalize_ab`) and a mask that is 1
where a hint is and 0 elsewhere. No hint at all is the automatic colorizer.

Training simulates hints from the ground truth (`sample`), per example:
  * no hint at all with probability `NO_HINT_PROBABILITY`, so that the model
    stays a good automatic colorizer;
  * otherwise a count from a geometric distribution on 1, 2, ... with
    p = 1/8 (Zhang et al. 2017, Sec. 3.3), at most `MAX_HINTS`;
  * each hint a square patch of random side 1 to 9 px at the training
    resolution (Sec. 3.3), whose value is the mean ground-truth a*b* under
    it; where patches overlap the later one wins;
  * positions uniform over the image. The paper draws them from a Gaussian
    around the image centre; our training images are random crops, whose
    centre is no more likely to hold the object a user corrects than their
    edge, and a user clicks wherever the colour is wrong.

A user's hint is a point and an sRGB colour, in one JSON format:

    {"hints": [{"x": 120, "y": 45, "color": "#d04020"}]}

x and y are pixels of the photo as displayed (after EXIF orientation),
origin at the top-left; the colour's a*b* is what the model gets, and the
photo keeps its own lightness. `rasterize` turns points into the model's
maps at its working size, as a `POINT_PATCH_SIZE` square each.
"""

from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf.hint_format import Hint

# Zhang et al. 2017, Sec. 3.3: hint counts ~ Geometric(p = 1/8), patches of
# 1x1 to 9x9 pixels.
GEOMETRIC_P = 1.0 / 8.0
MAX_PATCH_SIZE = 9
# The share of training examples without hints. The paper trains on hints
# always and gets its automatic mode from a separate global-hints branch;
# here one network serves both, and 0.3 of the steps keep it automatic.
NO_HINT_PROBABILITY = 0.3
# A cap for the geometric count: P(count > 48) = (7/8)**48 ~ 0.16%.
MAX_HINTS = 48
# The side of the square a clicked point covers at the model's working size:
# the middle of the training range.
POINT_PATCH_SIZE = 5


def as_arrays(hints: Sequence[Hint]) -> tuple[np.ndarray, np.ndarray]:
    """(points [N, 2] float32 x, y; colours [N, 3] uint8 sRGB)."""
    points = np.array([(hint.x, hint.y) for hint in hints], np.float32).reshape(
        -1, 2
    )
    colors = np.array([hint.rgb for hint in hints], np.uint8).reshape(-1, 3)
    return points, colors


def colors_to_ab(colors) -> tf.Tensor:
    """sRGB uint8 [..., 3] -> normalised a*b* [..., 2]."""
    rgb = tf.cast(colors, tf.float32) / 255.0
    return color.normalize_ab(color.rgb_to_lab(rgb)[..., 1:])


def rasterize(
    points, colors, image_size, working_size, patch_size: int = POINT_PATCH_SIZE
) -> tuple[tf.Tensor, tf.Tensor]:
    """The hint maps of a photo's points at the model's working size.

    Args:
      points: [N, 2] float32, x and y in pixels of the photo as displayed.
      colors: [N, 3] uint8 sRGB.
      image_size: (height, width) of the photo.
      working_size: (height, width) of the model's input.
      patch_size: Side of the square each point covers at working size.

    Returns:
      (hint_ab [h, w, 2] normalised, hint_mask [h, w, 1]); points outside
      the photo are ignored, so that a batch can be padded with them.
    """
    points = tf.reshape(tf.cast(points, tf.float32), [-1, 2])
    ab = tf.reshape(colors_to_ab(colors), [-1, 2])
    image_h = tf.cast(image_size[0], tf.float32)
    image_w = tf.cast(image_size[1], tf.float32)
    height, width = working_size[0], working_size[1]
    x, y = points[:, 0], points[:, 1]
    inside = (x >= 0) & (y >= 0) & (x < image_w) & (y < image_h)
    # The centre of the working pixel that holds the point.
    column = tf.cast(
        tf.floor(x * tf.cast(width, tf.float32) / image_w), tf.int32
    )
    row = tf.cast(tf.floor(y * tf.cast(height, tf.float32) / image_h), tf.int32)
    top = row - patch_size // 2
    left = column - patch_size // 2
    sizes = tf.fill(tf.shape(top), patch_size)
    return _paint(ab, top, left, sizes, inside, height, width)


def _paint(values, top, left, sizes, active, height, width):
    """Squares of `values` [K, 2] on an empty map; later squares win.

    Returns:
      (map [height, width, 2], mask [height, width, 1]), float32.
    """
    rows = tf.range(height)[tf.newaxis, :]
    columns = tf.range(width)[tf.newaxis, :]
    in_rows = (rows >= top[:, tf.newaxis]) & (
        rows < (top + sizes)[:, tf.newaxis]
    )
    in_columns = (columns >= left[:, tf.newaxis]) & (
        columns < (left + sizes)[:, tf.newaxis]
    )
    boxes = (
        in_rows[:, :, tf.newaxis]
        & in_columns[:, tf.newaxis, :]
        & active[:, tf.newaxis, tf.newaxis]
    )
    # Each pixel takes the last box over it: argmax of (index + 1) * inside.
    order = tf.range(1, tf.shape(boxes)[0] + 1)[:, tf.newaxis, tf.newaxis]
    # The maximum of no boxes is the smallest integer: no hint, rank 0.
    owner = tf.maximum(tf.reduce_max(tf.where(boxes, order, 0), axis=0), 0)
    # Rank 0 gathers a row of zeros put before the values.
    padded = tf.concat([tf.zeros([1, 2]), values], axis=0)
    hint_ab = tf.gather(padded, owner)
    mask = tf.cast(owner > 0, tf.float32)[..., tf.newaxis]
    return hint_ab * mask, mask


def draw(
    seed,
    height,
    width,
    num_hints=None,
    no_hint_probability: float = NO_HINT_PROBABILITY,
    max_hints: int = MAX_HINTS,
):
    """The random part of `sample`: which hints, where and how large.

    Returns:
      (active [K] bool, sizes [K], top [K], left [K]) int32, K = max_hints
      for a drawn count, num_hints for a given one; hint i exists if
      active[i], and the active ones come first.
    """
    seed = tf.cast(seed, tf.int64)
    count_seed, none_seed, size_seed, row_seed, column_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 5)
    )
    if num_hints is None:
        slots = max_hints
        uniform = tf.random.stateless_uniform(
            [], count_seed, minval=np.finfo(np.float32).tiny, maxval=1.0
        )
        # Inverse transform: P(count > n) = (1 - p)**n for n >= 1.
        count = tf.floor(tf.math.log(uniform) / np.log1p(-GEOMETRIC_P)) + 1
        count = tf.cast(tf.minimum(count, float(max_hints)), tf.int32)
        hintless = tf.random.stateless_uniform([], none_seed) < (
            no_hint_probability
        )
        count = tf.where(hintless, 0, count)
    else:
        slots = int(num_hints)
        count = tf.constant(slots, tf.int32)
    sizes = tf.random.stateless_uniform(
        [slots], size_seed, 1, MAX_PATCH_SIZE + 1, tf.int32
    )
    sizes = tf.minimum(sizes, tf.minimum(height, width))
    top = _uniform_start(row_seed, slots, height - sizes + 1)
    left = _uniform_start(column_seed, slots, width - sizes + 1)
    return tf.range(slots) < count, sizes, top, left


class Patches(NamedTuple):
    """Simulated hints: their maps, and each patch with its value."""

    hint_ab: tf.Tensor  # [H, W, 2]
    hint_mask: tf.Tensor  # [H, W, 1]
    values: tf.Tensor  # [K, 2] the mean under each patch
    active: tf.Tensor  # [K] bool; the active ones come first
    sizes: tf.Tensor  # [K] int32
    top: tf.Tensor  # [K] int32
    left: tf.Tensor  # [K] int32


def sample_patches(
    ab,
    seed,
    num_hints=None,
    no_hint_probability: float = NO_HINT_PROBABILITY,
    max_hints: int = MAX_HINTS,
) -> Patches:
    """`sample`, with the patches it drew (for evaluation)."""
    ab = tf.convert_to_tensor(ab, tf.float32)
    height, width = tf.shape(ab)[0], tf.shape(ab)[1]
    active, sizes, top, left = draw(
        seed, height, width, num_hints, no_hint_probability, max_hints
    )
    rows = tf.range(height)[tf.newaxis, :]
    columns = tf.range(width)[tf.newaxis, :]
    in_rows = tf.cast(
        (rows >= top[:, tf.newaxis]) & (rows < (top + sizes)[:, tf.newaxis]),
        tf.float32,
    )
    in_columns = tf.cast(
        (columns >= left[:, tf.newaxis])
        & (columns < (left + sizes)[:, tf.newaxis]),
        tf.float32,
    )
    # The mean under each patch, as separable sums over rows and columns.
    sums = tf.einsum('kh,hwc,kw->kc', in_rows, ab, in_columns)
    values = sums / tf.cast(sizes * sizes, tf.float32)[:, tf.newaxis]
    hint_ab, hint_mask = _paint(values, top, left, sizes, active, height, width)
    return Patches(hint_ab, hint_mask, values, active, sizes, top, left)


def sample(
    ab,
    seed,
    num_hints=None,
    no_hint_probability: float = NO_HINT_PROBABILITY,
    max_hints: int = MAX_HINTS,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Simulated hints of one example, from its ground-truth a*b*.

    Args:
      ab: [H, W, 2] ground truth (normalised or not: values are its means).
      seed: [2] int32 or int64 stateless seed; same seed, same hints.
      num_hints: None draws the count (no hints with no_hint_probability,
        else geometric); an int gives exactly that many (evaluation).
      no_hint_probability: For a drawn count.
      max_hints: The cap of a drawn count.

    Returns:
      (hint_ab [H, W, 2], hint_mask [H, W, 1]), float32.
    """
    patches = sample_patches(
        ab, seed, num_hints, no_hint_probability, max_hints
    )
    return patches.hint_ab, patches.hint_mask


def _uniform_start(seed, slots, limit):
    """Integers uniform in [0, limit) per slot, limit [slots] >= 1."""
    uniform = tf.random.stateless_uniform([slots], seed)
    start = tf.floor(uniform * tf.cast(limit, tf.float32))
    return tf.minimum(tf.cast(start, tf.int32), limit - 1)


def fold_seed(seed, value) -> tf.Tensor:
    """A stateless seed made distinct by `value` (an example or worker)."""
    return tf.random.experimental.stateless_fold_in(
        tf.cast(seed, tf.int64), tf.cast(value, tf.int64)
    )
