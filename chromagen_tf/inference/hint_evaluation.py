"""Evaluating a hint model with hints simulated from the ground truth.

For a photo and a hint count N, `simulate` draws N hints with the training
sampler (`hints.sample`, fixed seed) from the true a*b* at the model's
working size, which is the resolution the network is trained and run at.
Three things are then measured against the truth:

  * the model given those hints;
  * the baseline that learns nothing: the automatic result (no hints) plus
    each hint's a*b* difference from it, spread over the photo with a
    Gaussian of sigma = `SPREAD_SIGMA` x the image diagonal, blind to
    edges. Where several hints overlap, their Gaussians are weights of a
    normalised average (each hint is met exactly where it lies alone, and
    nowhere is the sum of differences overshot);
  * how well the model meets the hints: |delta a*b*| (Euclidean, Lab units)
    between its output and each hint's value, averaged under the hint.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf import hints

SPREAD_SIGMA = 0.15


@dataclasses.dataclass(frozen=True)
class Simulated:
    """A photo's simulated hints at the working size, in normalised units."""

    maps: tuple[tf.Tensor, tf.Tensor]  # hint_ab [h, w, 2], mask [h, w, 1]
    centres: np.ndarray  # [N, 2] row, column of each hint's centre
    values: np.ndarray  # [N, 2] each hint's value (normalised a*b*)
    boxes: list  # [(top, left, size)] per hint


def simulate(
    ab_true: tf.Tensor, working_size, num_hints: int, seed: int
) -> Simulated:
    """N hints from the true ab [1, H, W, 2] (Lab units) at working size."""
    height, width = working_size
    working = tf.image.resize(
        color.normalize_ab(ab_true)[0], [height, width], method='area'
    )
    patches = hints.sample_patches(
        working, tf.constant([seed, 0], tf.int64), num_hints=num_hints
    )
    boxes = list(
        zip(
            patches.top.numpy().tolist(),
            patches.left.numpy().tolist(),
            patches.sizes.numpy().tolist(),
        )
    )
    values = patches.values.numpy().astype(np.float32).reshape(-1, 2)
    centres = np.array(
        [(t + (s - 1) / 2, l + (s - 1) / 2) for t, l, s in boxes], np.float32
    ).reshape(-1, 2)
    maps = (patches.hint_ab, patches.hint_mask)
    return Simulated(maps, centres, values, boxes)


def spread_baseline(
    automatic_ab: np.ndarray, simulated: Simulated
) -> np.ndarray:
    """The edge-blind baseline at working size.

    Args:
      automatic_ab: [h, w, 2] the model's result without hints, Lab units.
      simulated: The hints.

    Returns:
      [h, w, 2] ab, Lab units.
    """
    height, width = automatic_ab.shape[:2]
    if not simulated.boxes:
        return automatic_ab
    sigma = SPREAD_SIGMA * np.hypot(height, width)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    weights, differences = [], []
    for (top, left, size), (row, column), value in zip(
        simulated.boxes, simulated.centres, simulated.values
    ):
        at_hint = (
            automatic_ab[top : top + size, left : left + size]
            .reshape(-1, 2)
            .mean(0)
        )
        differences.append(value * color.AB_SCALE - at_hint)
        weights.append(
            np.exp(
                -((rows - row) ** 2 + (columns - column) ** 2)
                / (2 * sigma * sigma)
            )
        )
    weights = np.stack(weights)  # [N, h, w]
    spread = np.einsum('nhw,nc->hwc', weights, np.stack(differences))
    return automatic_ab + spread / np.maximum(weights.sum(0), 1.0)[..., None]


def hint_errors(predicted_ab: np.ndarray, simulated: Simulated) -> list[float]:
    """|delta a*b*| in Lab units at each hint, predicted_ab [h, w, 2] Lab."""
    errors = []
    for (top, left, size), value in zip(simulated.boxes, simulated.values):
        mean = (
            predicted_ab[top : top + size, left : left + size]
            .reshape(-1, 2)
            .mean(0)
        )
        errors.append(float(np.hypot(*(mean - value * color.AB_SCALE))))
    return errors
