"""Reading a video for colorization, frame by frame, with PyAV.

`VideoReader` opens a file, checks it before any decoding (a video stream,
a size within the limit) and then yields, in file order, the decoded video
frames as upright RGB arrays with their own timestamps, and the audio
packets untouched, for the writer to copy. Nothing is held beyond the frame
being decoded, so memory does not grow with the length of the video.

Checks, each a one-line error:
  * not a file FFmpeg can open, or one without a video stream: NotAVideoError;
  * more than `max_pixels` pixels per frame (default MAX_PIXELS):
    VideoTooLargeError, from the header, before decoding;
  * no frame at all: NotAVideoError;
  * a decoding or demuxing error, fewer frames than the header counts, or
    packets that stop well before the duration the header states:
    TruncatedVideoError (the output is then discarded by the caller).
A stream without a stated frame count or duration (MPEG-TS, raw H.264)
that was cut cleanly between packets cannot be told from a short one.

Rotation: phones store portrait video as landscape frames plus a display
matrix. The frames are turned upright here (multiples of 90 degrees), so the
model sees the scene the right way up, and the output is written upright
without a display matrix.
"""

import dataclasses
import fractions
import os
from typing import Iterator, Optional, Union

import av
import numpy as np

from chromagen_tf import errors
from chromagen_tf import video

MAX_PIXELS = video.MAX_PIXELS

# A file whose packets end more than this before its stated duration (plus
# two frame intervals) is treated as truncated.
_DURATION_TOLERANCE_SECONDS = 0.1


class NotAVideoError(errors.UsageError):
    """The input is not a video that can be colorized."""


class VideoTooLargeError(errors.UsageError):
    """The frames are larger than the pixel limit."""


class TruncatedVideoError(errors.ChromaGenError):
    """The stream ends early or is corrupt; the output would be partial."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What the header says about the video stream."""

    path: str
    codec: str
    width: int  # Coded size; see `Frame.rgb` for the upright size.
    height: int
    time_base: fractions.Fraction
    average_rate: Optional[fractions.Fraction]
    frames: int  # 0: the header does not say.
    duration_seconds: Optional[float]
    audio_streams: int


@dataclasses.dataclass
class Frame:
    """One decoded frame: upright uint8 RGB [H, W, 3] and its timestamp."""

    rgb: np.ndarray
    pts: int  # In VideoInfo.time_base units.
    index: int


def _rotation_turns(rotation: float, path: str) -> int:
    """Counter-clockwise quarter turns that make a frame upright."""
    turns = round(rotation / 90.0)
    if abs(rotation - 90.0 * turns) > 1.0:
        raise NotAVideoError(
            f'{path}: rotation of {rotation} degrees is not a multiple of 90; '
            'only those are supported.'
        )
    return turns % 4


class VideoReader:
    """One input video. Use as a context manager; iterate `items()`."""

    def __init__(self, path: str, max_pixels: int = MAX_PIXELS):
        self.path = path
        if not os.path.isfile(path):
            raise errors.NotFoundError(f'{path}: no such file.')
        try:
            self._container = av.open(path)
        except (av.FFmpegError, UnicodeDecodeError) as error:
            raise NotAVideoError(
                f'{path} is not a video FFmpeg can read '
                f'({errors.first_line(error)}).'
            ) from error
        try:
            self._check(max_pixels)
        except errors.ChromaGenError:
            self._container.close()
            raise

    def _check(self, max_pixels: int) -> None:
        container = self._container
        if not container.streams.video:
            raise NotAVideoError(f'{self.path} has no video stream.')
        self.video_stream = container.streams.video[0]
        self.audio_streams = list(container.streams.audio)
        stream = self.video_stream
        context = stream.codec_context
        width, height = int(context.width or 0), int(context.height or 0)
        if width <= 0 or height <= 0:
            raise NotAVideoError(
                f'{self.path}: its video stream states no frame size.'
            )
        if width * height > max_pixels:
            raise VideoTooLargeError(
                f'{self.path}: {width}x{height} frames are larger than the '
                f'limit of {max_pixels} pixels (--max_pixels).'
            )
        # Multi-threaded decoding of whole frames at once.
        stream.thread_type = 'AUTO'
        duration = None
        if container.duration:
            duration = container.duration / av.time_base
        self._start_seconds = (container.start_time or 0) / av.time_base
        self.info = VideoInfo(
            path=self.path,
            codec=context.name,
            width=width,
            height=height,
            time_base=stream.time_base,
            average_rate=stream.average_rate,
            frames=int(stream.frames or 0),
            duration_seconds=duration,
            audio_streams=len(self.audio_streams),
        )

    def __enter__(self):
        return self

    def __exit__(self, *unused_exc_info):
        self.close()

    def close(self) -> None:
        self._container.close()

    def items(self) -> Iterator[Union[Frame, av.Packet]]:
        """Decoded video frames and audio packets, in file order.

        Raises:
          NotAVideoError: the stream holds no frame.
          TruncatedVideoError: see the module docstring.
        """
        stream = self.video_stream
        time_base = self.info.time_base
        frame_ticks = 1
        if self.info.average_rate:
            frame_ticks = max(
                1, round(1 / (self.info.average_rate * time_base))
            )
        index = 0
        last_pts = None
        end_seconds = 0.0
        try:
            for packet in self._container.demux(stream, *self.audio_streams):
                if packet.pts is not None and packet.time_base is not None:
                    end = packet.pts + (packet.duration or 0)
                    end_seconds = max(
                        end_seconds, float(end * packet.time_base)
                    )
                if packet.stream is not stream:
                    if packet.dts is not None:  # Not a flush packet.
                        yield packet
                    continue
                for decoded in packet.decode():
                    pts = decoded.pts
                    if pts is None or (
                        last_pts is not None and pts <= last_pts
                    ):
                        # No or repeated timestamps (raw streams): the
                        # nominal frame interval after the previous one.
                        pts = 0 if last_pts is None else last_pts + frame_ticks
                    last_pts = pts
                    rgb = decoded.to_ndarray(format='rgb24')
                    turns = _rotation_turns(decoded.rotation, self.path)
                    if turns:
                        rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                    yield Frame(rgb=rgb, pts=pts, index=index)
                    index += 1
        except av.FFmpegError as error:
            raise TruncatedVideoError(
                f'{self.path} is truncated or corrupt after {index} frames '
                f'({errors.first_line(error)}).'
            ) from error
        if index == 0:
            raise NotAVideoError(f'{self.path} holds no video frames.')
        if self.info.frames and index < self.info.frames:
            raise TruncatedVideoError(
                f'{self.path} is truncated: {index} of the '
                f'{self.info.frames} frames its header lists could be read.'
            )
        duration = self.info.duration_seconds
        if duration and self.info.average_rate:
            slack = _DURATION_TOLERANCE_SECONDS + 2 / float(
                self.info.average_rate
            )
            if end_seconds - self._start_seconds + slack < duration:
                raise TruncatedVideoError(
                    f'{self.path} is truncated: its packets end at '
                    f'{end_seconds:.2f} s of the {duration:.2f} s its header '
                    'states.'
                )
