"""Writing a colorized video with PyAV: H.264, the input's timing, its audio.

`VideoWriter` writes to a temporary file beside the output (same folder,
so the final rename is atomic) and renames it only in `commit()`; `abort()`
and leaving the `with` block on an exception delete it. A partial video is
never left under the output name.

What is kept from the input:
  * every frame's timestamp, in the input's own time base, so variable
    frame rate and the start offset survive; the nominal rate is the
    input's average rate;
  * the size of the upright frames (see reader.py on rotation);
  * every audio stream, packet for packet, without re-encoding (a codec the
    output container cannot hold is a UsageError that suggests .mkv).

Odd sizes: 4:2:0 chroma needs even sizes, so by default (`pixel_format`
'auto') even-sized videos are written as yuv420p (what every player takes),
odd-sized ones as yuv444p at their exact size (H.264 High 4:4:4; some
hardware players and browsers refuse it). 'yuv444p' asks for full-resolution
chroma at any size: the colour is the only thing this tool changes, and
4:2:0 halves its resolution. No pixel is padded or cropped. Frames are
converted to YCbCr with the BT.709 matrix, limited range (`to_ycbcr`), and
tagged as such.
"""

import fractions
import os
import tempfile
from typing import Sequence

import av
import numpy as np

from chromagen_tf import errors
from chromagen_tf import video
from chromagen_tf.video import reader

# Containers that take H.264 and the usual audio codecs.
OUTPUT_EXTENSIONS = ('.mp4', '.mov', '.mkv')
DEFAULT_CRF = video.DEFAULT_CRF
_PRESET = 'medium'
_FALLBACK_RATE = fractions.Fraction(25)


class VideoWriteError(errors.ChromaGenError):
    """The output could not be written."""


def check_output_path(
    output_path: str, input_path: str, overwrite: bool
) -> None:
    """Fails early on an output that cannot or must not be written.

    Raises:
      errors.UsageError: wrong extension, same file as the input, an
        existing file without overwrite, or a folder that does not exist.
    """
    extension = os.path.splitext(output_path)[1].lower()
    if extension not in OUTPUT_EXTENSIONS:
        raise errors.UsageError(
            f'--output={output_path}: the extension must be one of '
            f'{", ".join(OUTPUT_EXTENSIONS)}.'
        )
    if os.path.abspath(output_path) == os.path.abspath(input_path):
        raise errors.UsageError('--output must not be the input file.')
    if os.path.isdir(output_path):
        raise errors.UsageError(f'--output={output_path} is a folder.')
    if os.path.exists(output_path) and not overwrite:
        raise errors.UsageError(
            f'{output_path} exists; pass --overwrite to replace it.'
        )
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder):
        raise errors.UsageError(f'The folder {folder} does not exist.')


class VideoWriter:
    """The output video; opened on the first frame's size."""

    def __init__(
        self,
        output_path: str,
        info: reader.VideoInfo,
        audio_streams: Sequence[av.AudioStream] = (),
        crf: int = DEFAULT_CRF,
        pixel_format: str = 'auto',
    ):
        self.output_path = output_path
        self._requested_format = pixel_format
        self._info = info
        self._audio_templates = list(audio_streams)
        self._crf = crf
        folder, name = os.path.split(os.path.abspath(output_path))
        stem, extension = os.path.splitext(name)
        handle, self.temporary_path = tempfile.mkstemp(
            prefix=f'.{stem}.', suffix=f'.partial{extension}', dir=folder
        )
        os.close(handle)
        self._container = None
        self._video = None
        self._audio = {}
        self._pending_audio = []
        self.frames_written = 0
        self.pixel_format = None
        self.width = self.height = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, unused_exc, unused_traceback):
        if exc_type is not None:
            self.abort()

    def start(self, width: int, height: int) -> None:
        """Creates the streams and writes the header (first frame's size)."""
        try:
            self._container = av.open(self.temporary_path, 'w')
            rate = self._info.average_rate or _FALLBACK_RATE
            stream = self._container.add_stream('libx264', rate=rate)
            stream.width, stream.height = width, height
            self.width, self.height = width, height
            self.pixel_format = output_pixel_format(
                width, height, self._requested_format
            )
            stream.pix_fmt = self.pixel_format
            stream.time_base = self._info.time_base
            context = stream.codec_context
            context.time_base = self._info.time_base
            # x264's CRF 0 is lossless in 8 bits only; QP 0 is in any.
            rate_control = (
                {'qp': '0'} if self._crf == 0 else {'crf': str(self._crf)}
            )
            context.options = {**rate_control, 'preset': _PRESET}
            context.colorspace = 1  # AVCOL_SPC_BT709
            context.color_primaries = 1  # AVCOL_PRI_BT709
            context.color_trc = 1  # AVCOL_TRC_BT709
            context.color_range = 1  # AVCOL_RANGE_MPEG (limited)
            self._video = stream
            for template in self._audio_templates:
                self._audio[template.index] = (
                    self._container.add_stream_from_template(template)
                )
            self._container.start_encoding()
        except av.FFmpegError as error:
            reason = getattr(error, 'strerror', None) or errors.first_line(
                error
            )
            audio = ', '.join(
                t.codec_context.name for t in self._audio_templates
            )
            extension = os.path.splitext(self.output_path)[1]
            hint = (
                (
                    f'; the {extension} container may not hold the audio '
                    f'codec ({audio}): try --output=NAME.mkv'
                )
                if audio
                else ''
            )
            raise errors.UsageError(
                f'Cannot write {self.output_path} ({reason}){hint}.'
            ) from error
        for packet in self._pending_audio:
            self.write_audio(packet)
        self._pending_audio = []

    def write_audio(self, packet: av.Packet) -> None:
        """Copies one audio packet of the input, untouched."""
        if self._container is None:
            self._pending_audio.append(packet)
            return
        packet.stream = self._audio[packet.stream.index]
        self._mux(packet)

    @property
    def ten_bit(self) -> bool:
        """The output holds 10 bits: write_frame should get uint16 RGB."""
        return bool(self.pixel_format) and self.pixel_format.endswith('10le')

    def write_frame(self, rgb: np.ndarray, pts: int) -> None:
        """Encodes one RGB frame [H, W, 3] at its input timestamp.

        uint8, or uint16 to keep more than 8 bits in a 10-bit output.
        """
        if self._container is None:
            self.start(rgb.shape[1], rgb.shape[0])
        if (rgb.shape[1], rgb.shape[0]) != (self.width, self.height):
            raise VideoWriteError(
                f'The frame size changes from {self.width}x'
                f'{self.height} to {rgb.shape[1]}x{rgb.shape[0]} at '
                f'frame {self.frames_written}; that is not supported.'
            )
        frame = to_ycbcr(rgb, self.pixel_format)
        frame.pts = pts
        frame.time_base = self._info.time_base
        self._mux(self._video.encode(frame))
        self.frames_written += 1

    def _mux(self, packets) -> None:
        try:
            self._container.mux(packets)
        except av.FFmpegError as error:
            raise VideoWriteError(
                f'Writing {self.output_path} failed: '
                f'{errors.first_line(error)}.'
            ) from error

    def commit(self) -> None:
        """Flushes the encoder and renames the file to its final name."""
        if self._container is None:
            raise VideoWriteError('No frame was written.')
        self._mux(self._video.encode(None))
        self._container.close()
        self._container = None
        os.replace(self.temporary_path, self.output_path)

    def abort(self) -> None:
        """Closes and deletes the temporary file; safe to call twice."""
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError:
                pass  # The file goes anyway.
            self._container = None
        if os.path.exists(self.temporary_path):
            os.remove(self.temporary_path)


def output_pixel_format(
    width: int, height: int, requested: str = 'auto'
) -> str:
    """The pixel format `VideoWriter` writes a frame size in.

    Raises:
      errors.UsageError: an unknown format, or a 4:2:0 one at an odd size.
    """
    if requested not in video.PIXEL_FORMATS:
        raise errors.UsageError(
            f'pixel_format must be one of {video.PIXEL_FORMATS}, got '
            f'{requested!r}.'
        )
    even = width % 2 == 0 and height % 2 == 0
    if requested.startswith('yuv420') and not even:
        raise errors.UsageError(
            f'{requested} needs an even width and height; this video is '
            f'{width}x{height}. Use --pixel_format=auto or a yuv444p one.'
        )
    if requested != 'auto':
        return requested
    return 'yuv420p' if even else 'yuv444p'


def to_ycbcr(rgb: np.ndarray, pixel_format: str) -> av.VideoFrame:
    """A uint8 or uint16 RGB frame [H, W, 3] as the writer codes it: BT.709
    YCbCr."""
    rgb_format = 'rgb24'
    if rgb.dtype == np.uint16:
        rgb_format = 'rgb48le'
        # swscale reads rgb48le with 65280 (255 * 256) as white, not 65535:
        # unscaled, every level codes about 0.4% high (white as Y=943 of
        # 940 in 10 bits). 256/257 maps 65535 to 65280, exact to rounding.
        rgb = ((rgb.astype(np.uint32) * 256 + 128) // 257).astype(np.uint16)
    return av.VideoFrame.from_ndarray(
        np.ascontiguousarray(rgb), format=rgb_format
    ).reformat(format=pixel_format, dst_colorspace='ITU709')
