"""The app's colorize jobs: admission, the running limit, and the work.

`JobLimiter` bounds memory. A request is admitted when it arrives, before
its body is read, and holds its place until its answer is ready; at most
`max_running` photos are decoded and colorized at once, and at most
`max_waiting` more wait their turn with only their compressed bytes in
memory. A request beyond both is refused at once with 503, so a burst of
uploads costs at most (max_running + max_waiting) uploads of bytes and
max_running photos of decoded pixels.

`ColorizeService` turns a photo's bytes into a colorized PNG with a
`colorize_lib.Colorizer` (the same code as the colorize tool, so the
photo's own L is kept), and maps every bad input to an `UploadError`.
"""

import asyncio
import contextlib
import io
import threading
from typing import AsyncIterator, Optional
import warnings

from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

from chromagen_tf.data import imaging
from chromagen_tf.inference import colorize_lib
from chromagen_tf.webapp import uploads

# The decoders an upload may reach. Pillow also opens formats that run
# external programs (EPS through Ghostscript) or are rarely photos; they
# are refused as not images.
ACCEPTED_FORMATS = ('JPEG', 'MPO', 'PNG', 'WEBP', 'GIF', 'BMP', 'TIFF')
# The plugins that open them: Pillow opens MPO files with its JPEG plugin.
_OPENING_FORMATS = tuple(name for name in ACCEPTED_FORMATS if name != 'MPO')
# The largest working size a request may ask for: the network's cost grows
# with its square, and 1024 is 16 times the bundled model's 256.
MAX_RENDER_SIZE = 1024
MIN_RENDER_SIZE = 32
# Working sizes whose Colorizer (and traced graphs) are kept.
_CACHED_RENDER_SIZES = 4
# Deflate level of the result PNGs: level 1 writes a 12 MP result several
# times faster than the default 6, for files about 15% larger.
_PNG_COMPRESS_LEVEL = 1

_STATUS_FOR_REASON = {
    imaging.NOT_AN_IMAGE: 415,
    imaging.UNSUPPORTED_MODE: 415,
    imaging.EMPTY_FILE: 400,
    imaging.TOO_LARGE: 413,
    imaging.DECODE_ERROR: 422,
}
_MESSAGE_FOR_REASON = {
    imaging.NOT_AN_IMAGE: 'This file is not a photo the app can read '
                          f'({", ".join(ACCEPTED_FORMATS)})',
    imaging.UNSUPPORTED_MODE: 'This image\'s colour mode is not supported',
    imaging.EMPTY_FILE: 'The uploaded file is empty',
    imaging.TOO_LARGE: 'The photo has too many pixels',
    imaging.DECODE_ERROR: 'The photo could not be decoded (truncated or '
                          'corrupt file?)',
}

# The API's reason for a pixel count over the limit, as opposed to a body
# over the byte limit ('upload_too_large').
_REASON_NAMES = {imaging.TOO_LARGE: 'too_many_pixels'}


class Busy(Exception):
    """The limiter has no room for another request."""


class JobLimiter:
    """Admission at arrival, and a limit on the jobs that run at once."""

    def __init__(self, max_running: int, max_waiting: int):
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.admitted = 0
        self.running = 0
        self.refused = 0
        self._slots = asyncio.Semaphore(max_running)

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Holds a place for one request.

        Raises:
          Busy: max_running + max_waiting requests hold places already.
        """
        if self.admitted >= self.max_running + self.max_waiting:
            self.refused += 1
            raise Busy()
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Waits for one of the max_running slots (inside `admit`)."""
        async with self._slots:
            self.running += 1
            try:
                yield
            finally:
                self.running -= 1


class ColorizeService:
    """One loaded model behind the app, at any working size."""

    def __init__(self, colorizer: colorize_lib.Colorizer, max_pixels: int):
        self.colorizer = colorizer
        self.max_pixels = max_pixels
        self._by_render_size = {colorizer.render_size: colorizer}
        self._lock = threading.Lock()

    @property
    def render_size(self) -> int:
        return self.colorizer.render_size

    def parse_render_size(self, text: Optional[str]) -> int:
        """A render_size field's value; empty means the model's own.

        Raises:
          UploadError: 400 for anything but a whole number in range.
        """
        text = (text or '').strip()
        if not text:
            return self.render_size
        if not text.isdigit() or not (
                MIN_RENDER_SIZE <= int(text) <= MAX_RENDER_SIZE):
            raise uploads.UploadError(
                400, 'bad_render_size',
                f'render_size must be a whole number from {MIN_RENDER_SIZE} '
                f'to {MAX_RENDER_SIZE} (the model\'s default: '
                f'{self.render_size}).')
        return int(text)

    def _colorizer_for(self, render_size: int) -> colorize_lib.Colorizer:
        with self._lock:
            colorizer = self._by_render_size.pop(render_size, None)
            if colorizer is None:
                colorizer = self.colorizer.with_render_size(render_size)
            self._by_render_size[render_size] = colorizer  # Newest last.
            while len(self._by_render_size) > _CACHED_RENDER_SIZES:
                oldest = next(iter(self._by_render_size))
                if oldest == self.render_size:  # The default stays.
                    oldest = list(self._by_render_size)[1]
                del self._by_render_size[oldest]
            return colorizer

    def decode(self, data: bytes) -> np.ndarray:
        """A photo's bytes -> uint8 RGB, EXIF orientation applied.

        Raises:
          UploadError: 4xx for anything that is not a usable photo.
        """
        try:
            _check_format(data)
            loaded = imaging.load_rgb(io.BytesIO(data),
                                      max_pixels=self.max_pixels)
        except imaging.BadImageError as error:
            message = _MESSAGE_FOR_REASON.get(error.reason, error.reason)
            detail = error.detail.rstrip('.')
            if error.reason == imaging.TOO_LARGE:
                message += f' (the limit is {self.max_pixels:,}): {detail}'
            elif detail and error.reason != imaging.NOT_AN_IMAGE:
                message += f': {detail}'
            raise uploads.UploadError(
                _STATUS_FOR_REASON.get(error.reason, 422),
                _REASON_NAMES.get(error.reason, error.reason),
                message + '.') from None
        return np.asarray(loaded.image)

    def colorize_png(self, data: bytes, render_size: int) -> bytes:
        """A photo's bytes -> the colorized photo as PNG, at its own size.

        Raises:
          UploadError: for a bad photo (4xx) or a failed colorization (500).
        """
        rgb = self.decode(data)
        try:
            colorized = self._colorizer_for(render_size).colorize([rgb])[0]
        except (tf.errors.OpError, ValueError) as error:
            logging.exception('Colorizing a %s photo failed', rgb.shape)
            raise uploads.UploadError(
                500, 'colorize_failed',
                f'Colorizing failed: {type(error).__name__}.') from None
        del rgb
        buffer = io.BytesIO()
        Image.fromarray(colorized).save(buffer, format='PNG',
                                        compress_level=_PNG_COMPRESS_LEVEL)
        return buffer.getvalue()

    def warm_up(self) -> None:
        """Traces the default working size's graphs before the first user."""
        self.colorizer.colorize([np.full((48, 64, 3), 128, np.uint8)])


def _check_format(data: bytes) -> None:
    """Refuses, from the header alone, formats outside ACCEPTED_FORMATS.

    Only the accepted formats' plugins are tried, so a file of any other
    format is never parsed by Pillow.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            Image.open(io.BytesIO(data), formats=_OPENING_FORMATS).close()
    except Image.UnidentifiedImageError:
        raise imaging.BadImageError(imaging.NOT_AN_IMAGE, '') from None
    except Exception:  # pylint: disable=broad-except
        return  # An accepted format with a bad header: load_rgb tells why.
