"""Colorizing a whole video: read, predict a*b* in batches, smooth, write.

The model side is the photo tool's: `colorizer.Colorizer` takes each
frame's L (`lightness`) and predicts full-resolution a*b* (`predict_ab`) at
its working size, frames of a batch sharing one network call. The output
joins the frame's own full-resolution L with that a*b* through the same
gamut mapping (`Colorizer.to_uint8`, or `to_uint16` for a 10-bit output).
With `--temporal=flow`, `temporal.TemporalSmoother` makes a*b* consistent
over time in between: at the working size (`predict_working_ab`), before
the resize to the frame (`ab_to_full_resolution`), so that of the
smoother's work only the downscaling of L grows with the frame size.

Only one batch of frames (and the smoother's previous frame) is in memory
at any time, whatever the length of the video.
"""

import dataclasses
import time
from typing import Optional

from absl import logging
import numpy as np
import tqdm

from chromagen_tf import video
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import colorizer
from chromagen_tf.video import reader
from chromagen_tf.video import temporal
from chromagen_tf.video import writer

TEMPORAL_MODES = video.TEMPORAL_MODES


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    """One colorize_video run."""

    input_path: str
    output_path: str
    temporal_mode: str = 'flow'
    batch_size: int = colorize_lib.DEFAULT_BATCH_SIZE
    max_pixels: int = reader.MAX_PIXELS
    overwrite: bool = False
    crf: int = writer.DEFAULT_CRF
    pixel_format: str = 'auto'
    temporal_config: temporal.TemporalConfig = temporal.TemporalConfig()
    show_progress: bool = True

    def __post_init__(self):
        if self.temporal_mode not in TEMPORAL_MODES:
            raise ValueError(f'temporal_mode must be one of {TEMPORAL_MODES}.')
        if self.batch_size < 1:
            raise ValueError('batch_size must be >= 1.')
        if self.pixel_format not in video.PIXEL_FORMATS:
            raise ValueError(
                f'pixel_format must be one of {video.PIXEL_FORMATS}.'
            )


@dataclasses.dataclass
class Summary:
    """What a run did, with where its time went."""

    frames: int = 0
    width: int = 0
    height: int = 0
    pixel_format: str = ''
    audio_streams: int = 0
    cuts: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    # Colorizer.predict_ab, or predict_working_ab and ab_to_full_resolution.
    network_seconds: float = 0.0
    temporal_seconds: float = 0.0  # TemporalSmoother.step.
    mean_weight: float = 0.0  # Mean blending weight of the warped output.

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        text = (
            f'{self.frames} frames {self.width}x{self.height} '
            f'({self.pixel_format}, {self.audio_streams} audio stream(s) '
            f'copied) in {self.seconds:.1f} s, '
            f'{self.frames_per_second:.2f} frames/s'
        )
        if self.temporal_seconds:
            text += (
                f'; {len(self.cuts)} shot(s), temporal smoothing '
                f'{1000 * self.temporal_seconds / self.frames:.1f} ms '
                f'per frame against the network\'s '
                f'{1000 * self.network_seconds / self.frames:.1f} ms, '
                f'mean weight of the previous colours '
                f'{self.mean_weight:.2f}'
            )
        return text


class _Run:
    """The per-batch work of one colorize_video call."""

    def __init__(self, colorizer, config, output, summary):
        self._colorizer = colorizer
        self._output = output
        self._summary = summary
        self._smoother = None
        if config.temporal_mode == 'flow':
            self._smoother = temporal.TemporalSmoother(config.temporal_config)
        self._weights = 0.0

    def colorize(self, batch: list) -> None:
        l_channels = [self._colorizer.lightness(frame.rgb) for frame in batch]
        start = time.perf_counter()
        if self._smoother is None:
            abs_ = self._colorizer.predict_ab(l_channels)
        else:
            # Smoothed at the working size, then resized as predict_ab would.
            abs_ = self._colorizer.predict_working_ab(l_channels)
        self._summary.network_seconds += time.perf_counter() - start
        for frame, l_channel, ab in zip(batch, l_channels, abs_):
            if self._smoother is not None:
                start = time.perf_counter()
                ab, info = self._smoother.step(
                    l_channel.numpy()[0, ..., 0], ab.numpy()[0]
                )
                self._summary.temporal_seconds += time.perf_counter() - start
                self._weights += info.mean_weight
                if info.cut:
                    self._summary.cuts.append(frame.index)
                start = time.perf_counter()
                ab = self._colorizer.ab_to_full_resolution(
                    ab[np.newaxis], l_channel
                )
                self._summary.network_seconds += time.perf_counter() - start
            # 16-bit RGB keeps a*b* finer than 8 bits where the output can.
            to_rgb = (
                self._colorizer.to_uint16
                if self._output.ten_bit
                else self._colorizer.to_uint8
            )
            self._output.write_frame(to_rgb(l_channel, ab), frame.pts)
            self._summary.frames += 1
        self._summary.mean_weight = self._weights / self._summary.frames


def _expected_frames(info: reader.VideoInfo) -> Optional[int]:
    if info.frames:
        return info.frames
    if info.duration_seconds and info.average_rate:
        return max(1, round(info.duration_seconds * float(info.average_rate)))
    return None


def check_input(config: VideoConfig) -> reader.VideoInfo:
    """The checks colorize_video starts with, without a model (fail fast)."""
    writer.check_output_path(
        config.output_path, config.input_path, config.overwrite
    )
    with reader.VideoReader(config.input_path, config.max_pixels) as source:
        info = source.info
    # Rotation swaps width and height, which keeps both parities.
    writer.output_pixel_format(info.width, info.height, config.pixel_format)
    return info


def colorize_video(
    colorizer: colorizer.Colorizer, config: VideoConfig
) -> Summary:
    """Colorizes config.input_path into config.output_path.

    Raises:
      errors.UsageError: a bad output path, an input that is not a video or
        too large, an audio codec the output container cannot hold.
      errors.ChromaGenError: a truncated or corrupt input, a failed write.
      In every case no file is left under the output name.
    """
    writer.check_output_path(
        config.output_path, config.input_path, config.overwrite
    )
    start = time.perf_counter()
    summary = Summary()
    with reader.VideoReader(config.input_path, config.max_pixels) as source:
        info = source.info
        summary.audio_streams = info.audio_streams
        logging.info(
            '%s: %s %dx%d, %s frames, %s audio stream(s)',
            info.path,
            info.codec,
            info.width,
            info.height,
            info.frames or 'unknown',
            info.audio_streams,
        )
        with writer.VideoWriter(
            config.output_path,
            info,
            source.audio_streams,
            crf=config.crf,
            pixel_format=config.pixel_format,
        ) as output:
            run = _Run(colorizer, config, output, summary)
            bar = tqdm.tqdm(
                total=_expected_frames(info),
                unit='frames',
                desc='colorize_video',
                disable=not config.show_progress,
            )
            batch = []
            for item in source.items():
                if not isinstance(item, reader.Frame):
                    output.write_audio(item)
                    continue
                if output.pixel_format is None:
                    output.start(item.rgb.shape[1], item.rgb.shape[0])
                batch.append(item)
                if len(batch) == config.batch_size:
                    run.colorize(batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                run.colorize(batch)
                bar.update(len(batch))
            bar.close()
            output.commit()
            summary.pixel_format = output.pixel_format
            summary.width, summary.height = output.width, output.height
    summary.seconds = time.perf_counter() - start
    return summary
