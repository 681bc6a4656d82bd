"""Test videos with known motion, and the flicker measure that uses it.

`ken_burns` moves a virtual camera over a photo (a pan and a zoom are a
crop rectangle that moves and shrinks), so every frame's ground truth
colour is the photo's, and the exact motion between frames is known:
`backward_flows` gives, for each frame, where its pixels were in the
previous frame. `warped_flicker` measures temporal instability with that
flow: the mean a*b* change along true motion, which a perfect colorizer
keeps at the ground truth's own (interpolation-only) value.

`write_video` encodes frames (and optionally a sine tone as AAC) with
PyAV, for the tests, the benchmark and the README's frame strip.
"""

import dataclasses
import fractions
import itertools
from typing import Iterable, Iterator, Optional, Sequence

import av
import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class Camera:
    """Where the virtual camera looks: centre and photo pixels per pixel."""

    center_x: float
    center_y: float
    scale: float


def _matrix(camera: Camera, width: int, height: int) -> np.ndarray:
    """2x3 affine map from output pixel (u, v, 1) to photo coordinates."""
    return np.array(
        [
            [
                camera.scale,
                0.0,
                camera.center_x - camera.scale * (width - 1) / 2,
            ],
            [
                0.0,
                camera.scale,
                camera.center_y - camera.scale * (height - 1) / 2,
            ],
        ]
    )


def camera_path(start: Camera, end: Camera, frames: int) -> list[Camera]:
    """Cameras moving linearly from start to end (inclusive)."""
    steps = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    return [
        Camera(
            *(
                a + t * (b - a)
                for a, b in zip(
                    dataclasses.astuple(start), dataclasses.astuple(end)
                )
            )
        )
        for t in steps
    ]


def ken_burns(
    photo: np.ndarray, cameras: Sequence[Camera], width: int, height: int
) -> Iterator[np.ndarray]:
    """Frames [height, width, C] of the photo seen by the cameras.

    The photo is usually uint8 RGB; any array OpenCV warps works (float32
    a*b*, for one), and the frames have its type and channels.

    The photo should be no more than about 1.5 cameras' scale larger than
    the frame (resize it first) so that bilinear sampling does not alias.
    """
    for camera in cameras:
        yield cv2.warpAffine(
            photo,
            _matrix(camera, width, height),
            (width, height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT,
        )


def backward_flows(
    cameras: Sequence[Camera], width: int, height: int
) -> list[Optional[np.ndarray]]:
    """Exact flow from each frame to the previous one (None for the first).

    flow[t][v, u] = (x, y) - (u, v), where pixel (u, v) of frame t shows the
    photo point that pixel (x, y) of frame t-1 showed.
    """
    columns, rows = np.meshgrid(
        np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    )
    flows = [None]
    for previous, current in zip(cameras, cameras[1:]):
        m_current = _matrix(current, width, height)
        m_previous = _matrix(previous, width, height)
        photo_x = m_current[0, 0] * columns + m_current[0, 2]
        photo_y = m_current[1, 1] * rows + m_current[1, 2]
        previous_x = (photo_x - m_previous[0, 2]) / m_previous[0, 0]
        previous_y = (photo_y - m_previous[1, 2]) / m_previous[1, 1]
        flows.append(
            np.stack([previous_x - columns, previous_y - rows], axis=-1).astype(
                np.float32
            )
        )
    return flows


def warped_flicker(
    abs_: Sequence[np.ndarray],
    flows: Sequence[Optional[np.ndarray]],
    margin: int = 2,
) -> float:
    """Mean |a*b*(t) - warped a*b*(t-1)| along the given flows.

    |.| is the Euclidean length in the ab plane, averaged over the pixels
    whose source lies at least `margin` pixels inside the previous frame,
    then over the frame pairs whose flow is not None (a cut has none).
    """
    values = []
    for t in range(1, len(abs_)):
        flow = flows[t]
        if flow is None:
            continue
        height, width = flow.shape[:2]
        columns, rows = np.meshgrid(
            np.arange(width, dtype=np.float32),
            np.arange(height, dtype=np.float32),
        )
        map_x = columns + flow[..., 0]
        map_y = rows + flow[..., 1]
        warped = cv2.remap(
            np.asarray(abs_[t - 1], np.float32),
            map_x,
            map_y,
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        valid = (
            (map_x >= margin)
            & (map_x <= width - 1 - margin)
            & (map_y >= margin)
            & (map_y <= height - 1 - margin)
        )
        change = np.sqrt(np.sum(np.square(abs_[t] - warped), axis=-1))
        values.append(float(change[valid].mean()))
    return float(np.mean(values)) if values else 0.0


def gray(rgb: np.ndarray) -> np.ndarray:
    """An RGB frame reduced to equal R, G, B (its Rec. 601 luma)."""
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.repeat(luma[..., np.newaxis], 3, axis=-1)


def write_video(
    path: str,
    frames: Iterable[np.ndarray],
    rate: int = 12,
    audio_seconds: float = 0.0,
    codec: str = 'libx264',
    pixel_format: str = 'yuv420p',
    rotation: int = 0,
    timestamps_ms: Optional[Sequence[int]] = None,
    options: Optional[dict] = None,
    crf: int = 18,
    audio_codec: str = 'aac',
) -> None:
    """Encodes uint8 RGB frames, optionally with a 440 Hz tone.

    Args:
      path: Output file; the container follows the extension.
      frames: uint8 RGB [H, W, 3] frames, all of one size; none gives a
        64x48 video stream without a frame (with audio: a valid file).
      rate: Nominal frame rate.
      audio_seconds: Length of the mono 16 kHz tone; 0: no audio.
      codec, pixel_format: The video encoder and its pixel format.
      rotation: Display rotation to store, counter-clockwise degrees.
      timestamps_ms: Frame times in ms (variable frame rate); default
        1 / rate apart.
      options: Container options (e.g. {'movflags': 'faststart'}).
      crf: x264's constant-rate factor (ignored by other encoders).
      audio_codec: The tone's encoder ('aac' or 'flac').
    """
    time_base = fractions.Fraction(1, 1000 if timestamps_ms else rate)
    frames = iter(frames)
    first = next(frames, None)
    height, width = (48, 64) if first is None else first.shape[:2]
    with av.open(path, 'w', options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = height, width
        stream.pix_fmt = pixel_format
        stream.codec_context.time_base = time_base
        if codec == 'libx264':
            stream.codec_context.options = {'crf': str(crf)}
        if rotation:
            stream.set_display_rotation(rotation)
        audio = None
        if audio_seconds:
            audio = container.add_stream(audio_codec, rate=16000)
            audio.layout = 'mono'
        if first is not None:
            for index, rgb in enumerate(itertools.chain([first], frames)):
                frame = av.VideoFrame.from_ndarray(rgb, format='rgb24')
                frame.pts = timestamps_ms[index] if timestamps_ms else index
                frame.time_base = time_base
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        if audio is not None:
            time = np.arange(round(16000 * audio_seconds)) / 16000
            samples = 0.3 * np.sin(2 * np.pi * 440 * time)
            sample_format = audio.codec_context.codec.audio_formats[0].name
            if sample_format.startswith('s16'):
                samples = (samples * 32767).astype(np.int16)
            else:
                samples = samples.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(
                samples[np.newaxis], format=sample_format, layout='mono'
            )
            frame.sample_rate = 16000
            frame.pts = 0
            container.mux(audio.encode(frame))
            container.mux(audio.encode(None))


def read_video(path: str, bits: int = 8) -> list[np.ndarray]:
    """Every frame of a video as RGB (for tests and benchmarks): uint8, or
    uint16 with bits=16 (to read a 10-bit video without rounding to 8)."""
    rgb_format = {8: 'rgb24', 16: 'rgb48le'}[bits]
    with av.open(path) as container:
        return [
            frame.to_ndarray(format=rgb_format)
            for frame in container.decode(video=0)
        ]
