"""The app's colorize jobs: admission, the running limit, and the work.

`JobLimiter` bounds memory. A request is admitted when it arrives, before
its body is read, and holds its place until its answer is ready; at most
`max_running` photos are decoded and colorized at once, and at most
`max_waiting` more wait their turn with only their compressed bytes in
memory. A request beyond both is refused at once with 503, so a burst of
uploads costs at most (max_running + max_waiting) uploads of bytes and
max_running photos of decoded pixels.

`ColorizeService` turns a photo's bytes (and its colour hints) into a
colorized PNG with a `colorizer.Colorizer` (the same code as the
colorize tool, so the photo's own L is kept), suggests colours at a point,
and maps every bad input to an `UploadError`. A preview, the page's answer
to each hint change, is the photo shrunk to at most `PREVIEW_MAX_SIDE`
before it is colorized, sent as JPEG: the network sees the same working
size, and the full-resolution steps and the encoding, which dominate for a
large photo, shrink with it.
"""

import dataclasses
import io
import threading
from typing import Optional, Sequence
import warnings

from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

from chromagen_tf import errors
from chromagen_tf import hint_format
from chromagen_tf.data import imaging
from chromagen_tf.inference import colorizer
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
# The longer side of a preview: about what a page shows a photo at.
PREVIEW_MAX_SIDE = 1024
_PREVIEW_JPEG_QUALITY = 90
# Colours a suggestion lists.
SUGGESTIONS = 6

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


@dataclasses.dataclass(frozen=True)
class Result:
    """A colorized photo, encoded, and the size of the photo it came from
    (a preview is smaller)."""

    data: bytes
    media_type: str
    width: int
    height: int


class ColorizeService:
    """One loaded model behind the app, at any working size."""

    def __init__(self, colorizer: colorizer.Colorizer, max_pixels: int):
        self.colorizer = colorizer
        self.max_pixels = max_pixels
        self._by_render_size = {colorizer.render_size: colorizer}
        self._lock = threading.Lock()
        self._suggests = None

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
            MIN_RENDER_SIZE <= int(text) <= MAX_RENDER_SIZE
        ):
            raise uploads.UploadError(
                400,
                'bad_render_size',
                f'render_size must be a whole number from {MIN_RENDER_SIZE} '
                f'to {MAX_RENDER_SIZE} (the model\'s default: '
                f'{self.render_size}).',
            )
        return int(text)

    def _colorizer_for(self, render_size: int) -> colorizer.Colorizer:
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
            loaded = imaging.load_rgb(
                io.BytesIO(data), max_pixels=self.max_pixels
            )
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
                message + '.',
            ) from None
        return np.asarray(loaded.image)

    def parse_hints(self, text: Optional[str]) -> list[hint_format.Hint]:
        """A hints field's hint list; absent or empty means none.

        Raises:
          UploadError: 400 for text that is not the hint format, 422 for
            hints to a model that takes none.
        """
        if text is None or not text.strip():
            return []
        try:
            hint_list = hint_format.parse(text, 'hints')
        except hint_format.HintFormatError as error:
            raise uploads.UploadError(400, 'bad_hints', f'{error}.') from None
        if hint_list and not self.colorizer.takes_hints:
            raise uploads.UploadError(
                422,
                'hints_not_supported',
                f'This model ({self.colorizer.description}) does not take '
                'colour hints; serve a hint model (--model).',
            )
        return hint_list

    @staticmethod
    def parse_point(x: Optional[str], y: Optional[str]) -> tuple[float, float]:
        """The x and y fields of a suggestion request, in pixels.

        Raises:
          UploadError: 400 unless both are finite numbers.
        """
        try:
            point = float(x), float(y)
        except (TypeError, ValueError):
            point = (float('nan'),) * 2
        if not all(np.isfinite(point)):
            raise uploads.UploadError(
                400,
                'bad_point',
                'Send the point as numbers in the "x" and '
                '"y" fields (pixels of the photo as displayed).',
            )
        return point

    @property
    def suggests_colors(self) -> bool:
        """Whether the model has a colour distribution to suggest from."""
        if self._suggests is None:
            try:
                self.colorizer.suggest_colors(
                    np.full((32, 32, 3), 128, np.uint8), 16, 16, k=1
                )
                self._suggests = True
            except errors.UsageError:
                self._suggests = False
        return self._suggests

    def colorize(
        self,
        data: bytes,
        render_size: int,
        hint_list: Sequence[hint_format.Hint] = (),
        preview: bool = False,
    ) -> Result:
        """A photo's bytes -> the colorized photo.

        Args:
          data: The uploaded file.
          render_size: The working size.
          hint_list: Points in pixels of the photo as displayed.
          preview: Shrink the photo to at most PREVIEW_MAX_SIDE first and
            answer with a JPEG; else a PNG at the photo's own size.

        Raises:
          UploadError: for a bad photo or a hint outside it (4xx) or a
            failed colorization (500).
        """
        rgb, hint_list, (height, width) = self._decode_with_hints(
            data, hint_list, preview
        )
        try:
            colorized = self._colorizer_for(render_size).colorize(
                [rgb], [list(hint_list)]
            )[0]
        except (tf.errors.OpError, ValueError) as error:
            logging.exception('Colorizing a %s photo failed', rgb.shape)
            raise uploads.UploadError(
                500,
                'colorize_failed',
                f'Colorizing failed: {type(error).__name__}.',
            ) from None
        del rgb
        buffer = io.BytesIO()
        if preview:
            Image.fromarray(colorized).save(
                buffer, format='JPEG', quality=_PREVIEW_JPEG_QUALITY
            )
            return Result(buffer.getvalue(), 'image/jpeg', width, height)
        Image.fromarray(colorized).save(
            buffer, format='PNG', compress_level=_PNG_COMPRESS_LEVEL
        )
        return Result(buffer.getvalue(), 'image/png', width, height)

    def colorize_png(self, data: bytes, render_size: int) -> bytes:
        """A photo's bytes -> the colorized photo as PNG, at its own size."""
        return self.colorize(data, render_size).data

    def suggest(
        self,
        data: bytes,
        render_size: int,
        x: float,
        y: float,
        hint_list: Sequence[hint_format.Hint] = (),
    ) -> list[tuple[str, float]]:
        """The model's likeliest colours at (x, y), given the hints so far.

        The photo is shrunk as for a preview: the network sees the same
        working size, and the colours come at the lightness there.

        Returns:
          [(hex sRGB, probability)], SUGGESTIONS of them, likeliest first.

        Raises:
          UploadError: 422 for a model without a colour distribution, 400
            for a point or hint outside the photo, 4xx for a bad photo.
        """
        if not self.suggests_colors:
            raise uploads.UploadError(
                422,
                'suggestions_not_supported',
                f'This model ({self.colorizer.description}) has no colour '
                'distribution to suggest colours from (it needs the '
                'colour-bins head).',
            )
        point = hint_format.Hint(x, y, (0, 0, 0))
        rgb, scaled, _ = self._decode_with_hints(
            data, [point, *hint_list], preview=True
        )
        point, hint_list = scaled[0], scaled[1:]
        return self._colorizer_for(render_size).suggest_colors(
            rgb, point.x, point.y, hint_list, k=SUGGESTIONS
        )

    def _decode_with_hints(
        self, data: bytes, hint_list: Sequence[hint_format.Hint], preview: bool
    ):
        """(uint8 RGB, hints in its pixels, the photo's (height, width)),
        shrunk for a preview.

        Raises:
          UploadError: for a bad photo, or a hint outside it (400).
        """
        rgb = self.decode(data)
        height, width = rgb.shape[:2]
        try:
            hint_format.check_inside(hint_list, width, height, 'hints')
        except hint_format.HintFormatError as error:
            raise uploads.UploadError(
                400, 'hint_outside', f'{error}.'
            ) from None
        scale = PREVIEW_MAX_SIDE / max(height, width)
        if not preview or scale >= 1:
            return rgb, list(hint_list), (height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(
            Image.fromarray(rgb).resize(
                size, Image.Resampling.BILINEAR, reducing_gap=2.0
            )
        )
        x_scale, y_scale = size[0] / width, size[1] / height
        return (
            small,
            [
                hint_format.Hint(
                    min(hint.x * x_scale, size[0] - 0.5),
                    min(hint.y * y_scale, size[1] - 0.5),
                    hint.rgb,
                )
                for hint in hint_list
            ],
            (height, width),
        )

    def warm_up(self) -> None:
        """Traces the default working size's graphs before the first user:
        with and without hints, and the suggestions."""
        gray = np.full((48, 64, 3), 128, np.uint8)
        self.colorizer.colorize([gray])
        if self.colorizer.takes_hints:
            self.colorizer.colorize(
                [gray], [[hint_format.Hint(10, 10, (200, 40, 30))]]
            )
        if self.suggests_colors:
            self.colorizer.suggest_colors(gray, 20, 20, k=SUGGESTIONS)


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
