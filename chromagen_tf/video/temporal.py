"""Temporal consistency of colorized video: flow-guided smoothing of a*b*.

A per-frame colorizer flickers: the same wall gets a slightly different
a*b* in every frame. `TemporalSmoother` is a recursive filter along the
motion (docs/video.md):

  1. The optical flow from frame t back to frame t-1 is estimated on their
     L channels with DIS (Kroeger et al., "Fast Optical Flow using Dense
     Inverse Search", ECCV 2016), at a reduced resolution.
  2. The previous *output* a*b* is warped into frame t along that flow, the
     way Bonneel et al. ("Blind Video Temporal Consistency", SIGGRAPH Asia
     2015) and Lai et al. ("Learning Blind Video Temporal Consistency",
     ECCV 2018) carry the previous output forward.
  3. A per-pixel confidence says where the warp can be trusted: the warped
     L must match the current L (Lai et al.'s photometric occlusion test),
     the forward and backward flows must agree (Sundaram et al., "Dense
     Point Trajectories by GPU-accelerated Large Displacement Optical
     Flow", ECCV 2010), and the source must lie inside frame t-1.
  4. The output is the current prediction blended towards the warped
     previous output by `strength * confidence` (at the flow resolution;
     the change is resized to the prediction's own size, which
     colorize_video keeps at the model's working size): an exponential moving
     average along motion trajectories, which falls back to the
     prediction at occlusions, at new content and at scene cuts.
  5. A scene cut (most pixels unreliable, or a large change of the L
     histogram as in Zhang, Kankanhalli and Smoliar, "Automatic
     partitioning of full-motion video", 1993) resets the filter.

Everything here works on NumPy arrays, so the filter can be tested and
measured without a model or a video file.
"""

import dataclasses
from typing import Optional, Sequence

import cv2
import numpy as np

from chromagen_tf import video

# L in [0, 100] to the uint8 images DIS reads.
_L_TO_UINT8 = 255.0 / 100.0
# OpenCV 5's DIS fails, or crashes the process, on images that are small
# or wide for its pyramid (10x10, 16x128 and 31x256 do; 32x256 does not).
# Its input is padded to at least this size, and to 1/8 of its longer
# side, which 228 sizes from 1x1 to 256x512 passed.
_DIS_MIN_SIDE = 32
_HISTOGRAM_BINS = 32


@dataclasses.dataclass(frozen=True)
class TemporalConfig:
    """The smoother's parameters (docs/video.md explains each choice).

    Attributes:
      strength: Weight of the warped previous output where the warp is fully
        trusted. The filter remembers about 1 / (1 - strength) frames (20
        at the default 0.95); for independent per-frame noise it keeps
        sqrt((1 - s) / (1 + s)) of its amplitude (0.16 at 0.95).
      flow_size: Longer side of the frames the flow, the confidence and the
        filter run at; smaller frames are used at their own size. The
        filter's change to a*b* is resized to the prediction's size and
        added to it.
      error_low, error_high: Photometric test, in L units: a warped L within
        error_low of the current L is fully trusted, beyond error_high not
        at all, linearly in between. Video coding noise is about 1-2 L.
      consistency_alpha, consistency_beta: Forward-backward test of
        Sundaram et al. 2010 (their values): trusted where
        |b + f(x + b)|^2 < alpha (|b|^2 + |f(x + b)|^2) + beta, in pixels of
        the flow resolution.
      forward_backward_check: Also run the forward flow for that test (a
        second DIS call per frame).
      cut_unreliable_fraction: A frame where more than this fraction of the
        pixels has confidence below 0.5 starts a new shot.
      cut_histogram_distance: So does a total-variation distance (0..1)
        between consecutive L histograms above this.
      detect_cuts: Reset at cuts; only a benchmark turns it off.
      preset: DIS operating point, `cv2.DISOPTICAL_FLOW_PRESET_*`.
    """

    strength: float = video.DEFAULT_TEMPORAL_STRENGTH
    flow_size: int = 256
    error_low: float = 3.0
    error_high: float = 10.0
    consistency_alpha: float = 0.01
    consistency_beta: float = 0.5
    forward_backward_check: bool = True
    cut_unreliable_fraction: float = 0.5
    cut_histogram_distance: float = 0.5
    detect_cuts: bool = True
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST

    def __post_init__(self):
        if not 0.0 <= self.strength < 1.0:
            raise ValueError(f'strength must be in [0, 1), not {self.strength}')
        if self.flow_size < 8:
            raise ValueError(f'flow_size must be >= 8, not {self.flow_size}')
        if not 0.0 <= self.error_low < self.error_high:
            raise ValueError('Need 0 <= error_low < error_high.')


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """What the smoother did with one frame.

    Attributes:
      cut: The frame starts a new shot (the first frame does too): its
        output is the prediction itself.
      mean_weight: Mean blending weight of the warped previous output
        (0 at a cut, at most `strength`).
      unreliable_fraction: Share of pixels whose confidence is below 0.5.
      histogram_distance: Total-variation distance of the L histograms.
    """

    cut: bool
    mean_weight: float
    unreliable_fraction: float = 1.0
    histogram_distance: float = 1.0


class _Frame:
    """The reduced-resolution L of one frame, as DIS and the tests need it."""

    def __init__(self, l_channel: np.ndarray, flow_size: int):
        height, width = l_channel.shape
        scale = min(1.0, flow_size / max(height, width))
        self.full_shape = (height, width)
        self.small_size = None  # (width, height) when reduced.
        self.small = l_channel
        if scale < 1.0:
            self.small_size = (
                max(1, round(width * scale)),
                max(1, round(height * scale)),
            )
            self.small = cv2.resize(
                l_channel, self.small_size, interpolation=cv2.INTER_AREA
            )
        self.small_uint8 = np.clip(
            np.rint(self.small * _L_TO_UINT8), 0, 255
        ).astype(np.uint8)
        small_height, small_width = self.small.shape
        least = max(_DIS_MIN_SIDE, -(-max(small_height, small_width) // 8))
        # Padded at the bottom and right, so the flow of the frame's own
        # pixels is the top-left crop of the padded image's.
        self.flow_input = cv2.copyMakeBorder(
            self.small_uint8,
            0,
            max(0, least - small_height),
            0,
            max(0, least - small_width),
            cv2.BORDER_REPLICATE,
        )
        histogram = np.bincount(
            (self.small_uint8 >> 3).ravel(), minlength=_HISTOGRAM_BINS
        )
        self.histogram = histogram / max(histogram.sum(), 1)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    columns, rows = np.meshgrid(
        np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    )
    return columns, rows


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resizes to shape (height, width): area-averaged when shrinking."""
    shrinking = shape[0] <= image.shape[0] and shape[1] <= image.shape[1]
    return cv2.resize(
        image,
        (shape[1], shape[0]),
        interpolation=(cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR),
    )


def _remap(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray):
    return cv2.remap(
        image,
        map_x,
        map_y,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


class TemporalSmoother:
    """Smooths a stream of (L, a*b*) frames; holds only the previous one.

    Usage:
      smoother = TemporalSmoother()
      for l_channel, ab in frames:          # [H, W] and [h, w, 2] float32
          ab_out, info = smoother.step(l_channel, ab)
    """

    def __init__(self, config: Optional[TemporalConfig] = None):
        self.config = config or TemporalConfig()
        self._backward = cv2.DISOpticalFlow_create(self.config.preset)
        self._forward = cv2.DISOpticalFlow_create(self.config.preset)
        self._grids = {}
        self.reset()

    def reset(self) -> None:
        """Forgets the previous frame: the next one starts a new shot."""
        self._previous: Optional[_Frame] = None
        self._previous_ab: Optional[np.ndarray] = None

    def _cached_grid(self, height: int, width: int):
        if (height, width) not in self._grids:
            self._grids[(height, width)] = _grid(height, width)
        return self._grids[(height, width)]

    def confidence(self, current: '_Frame', previous: '_Frame'):
        """Warp maps and per-pixel confidence at the flow resolution.

        Returns:
          (map_x, map_y, confidence), [h, w] float32 each: pixel x of frame
          t comes from (map_x, map_y) = x + backward flow in frame t-1, and
          confidence in [0, 1] says how far that can be trusted.
        """
        config = self.config
        height, width = current.small.shape
        backward = self._backward.calc(
            current.flow_input, previous.flow_input, None
        )[:height, :width]
        columns, rows = self._cached_grid(height, width)
        map_x = columns + backward[..., 0]
        map_y = rows + backward[..., 1]
        warped_l = _remap(previous.small.astype(np.float32), map_x, map_y)
        error = np.abs(current.small - warped_l)
        confidence = np.clip(
            (config.error_high - error)
            / (config.error_high - config.error_low),
            0.0,
            1.0,
        )
        inside = (
            (map_x >= 0)
            & (map_x <= width - 1)
            & (map_y >= 0)
            & (map_y <= height - 1)
        )
        confidence *= inside
        if config.forward_backward_check:
            forward = self._forward.calc(
                previous.flow_input, current.flow_input, None
            )[:height, :width]
            forward_there = _remap(np.ascontiguousarray(forward), map_x, map_y)
            mismatch = np.sum(np.square(backward + forward_there), axis=-1)
            bound = (
                config.consistency_alpha
                * (
                    np.sum(np.square(backward), axis=-1)
                    + np.sum(np.square(forward_there), axis=-1)
                )
                + config.consistency_beta
            )
            confidence *= mismatch <= bound
        return map_x, map_y, confidence.astype(np.float32)

    def step(self, l_channel: np.ndarray, ab: np.ndarray):
        """Smooths one frame.

        Args:
          l_channel: [H, W] float32 L in [0, 100] of frame t.
          ab: [h, w, 2] float32 predicted a*b* of frame t, at the frame's
            size or any other (colorize_video passes the model's working
            size, where the filter's work costs the same for any frame
            size).

        Returns:
          (ab_out [h, w, 2] float32, the size of `ab`; StepInfo).
        """
        l_channel = np.asarray(l_channel, np.float32)
        ab = np.asarray(ab, np.float32)
        current = _Frame(l_channel, self.config.flow_size)
        small_shape = current.small.shape
        ab_small = ab
        if ab.shape[:2] != small_shape:
            ab_small = _resize(ab, small_shape)
        previous, previous_ab = self._previous, self._previous_ab
        self._previous = current
        self._previous_ab = ab_small
        if previous is None or previous.full_shape != current.full_shape:
            return ab, StepInfo(cut=True, mean_weight=0.0)
        histogram_distance = 0.5 * float(
            np.abs(current.histogram - previous.histogram).sum()
        )
        map_x, map_y, confidence = self.confidence(current, previous)
        unreliable = float(np.mean(confidence < 0.5))
        if self.config.detect_cuts and (
            unreliable > self.config.cut_unreliable_fraction
            or histogram_distance > self.config.cut_histogram_distance
        ):
            return ab, StepInfo(True, 0.0, unreliable, histogram_distance)
        weight = self.config.strength * confidence
        change = _remap(previous_ab, map_x, map_y)
        change -= ab_small
        change *= weight[..., np.newaxis]
        self._previous_ab = ab_small + change
        if ab.shape[:2] != small_shape:
            # Only when the prediction is not at the flow size (a render
            # size other than the flow size, or a caller's full-resolution
            # a*b*): a*b* is smooth, and so is the change.
            change = _resize(change, ab.shape[:2])
        return ab + change, StepInfo(
            False, float(weight.mean()), unreliable, histogram_distance
        )


def smooth_sequence(
    l_channels: Sequence[np.ndarray],
    abs_: Sequence[np.ndarray],
    config: Optional[TemporalConfig] = None,
) -> tuple[list[np.ndarray], list[StepInfo]]:
    """Runs a TemporalSmoother over whole in-memory sequences (for tests)."""
    smoother = TemporalSmoother(config)
    outputs, infos = [], []
    for l_channel, ab in zip(l_channels, abs_):
        output, info = smoother.step(l_channel, ab)
        outputs.append(output)
        infos.append(info)
    return outputs, infos
