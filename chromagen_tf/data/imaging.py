"""Photo loading and the resize policy: the one home for both.

The TFRecord converter and the colorize tool read photos through this module,
so both see the same pixels: EXIF orientation applied, CMYK and palette
images converted to sRGB, transparency composited on white, 16-bit images
reduced to 8 bits, and the same resize to the stored size.

Loading is defensive because one bad file among 118k must not stop a
conversion: every failure is a `BadImageError` whose `reason` is a short
machine-readable code (the constants below) used to count skipped inputs.
The pixel count is checked from the header, before anything is decoded, so
decompression bombs cost neither memory nor time.

Example:

  image = imaging.load_for_storage('photo.jpg', size=256)
  rgb = np.asarray(image.image)  # uint8 [256, 256, 3]
"""

import dataclasses
import io
import math
import os
from typing import BinaryIO, Union
import warnings

import numpy as np
from PIL import Image
from PIL import ImageCms
from PIL import ImageOps

from chromagen_tf import color
from chromagen_tf import errors

# Reason codes carried by BadImageError (and counted in manifest.json).
EMPTY_FILE = 'empty_file'
MISSING_FILE = 'missing_file'
UNREADABLE = 'unreadable'
NOT_AN_IMAGE = 'not_an_image'
DECODE_ERROR = 'decode_error'
UNSUPPORTED_MODE = 'unsupported_mode'
TOO_LARGE = 'too_large'
TOO_SMALL = 'too_small'
GRAYSCALE = 'grayscale'

# Reasons that describe an image that is fine but unwanted for training, as
# opposed to a broken or hostile file.
FILTER_REASONS = frozenset({TOO_SMALL, GRAYSCALE})

# Pixel limits, judged from the header before decoding (decompression bombs).
# The one policy, in two named values:
#  * converting a data set (make_tfrecords) holds one photo per worker at a
#    time and should not drop rare large scans: 100 megapixels, four times
#    the largest COCO photo and above any consumer camera of 2024 except a
#    few medium-format backs;
#  * colorizing (the colorize tool, evaluate and the serving graph) holds
#    the photo's full-resolution L, ab and RGB at once (about 20 bytes a
#    pixel, 1 GB at 50 MP), and a server may run several requests at once:
#    50 megapixels, above any phone or consumer camera photo (48 MP).
CONVERT_MAX_PIXELS = 100_000_000
COLORIZE_MAX_PIXELS = 50_000_000

# Grayscale test: an image is grayscale when at most 1% of its pixels have a
# Lab chroma sqrt(a^2 + b^2) above 5. Measured on the bundled photos: a
# gray image with +-1 noise per sRGB channel reaches a chroma of 1.8, a gray
# photo re-encoded as a colour JPEG 0.01, while the least colourful colour
# photo (friends.jpg) has a 99th-percentile chroma of 26. 5 is about two
# just-noticeable differences (Delta E*ab ~ 2.3, Sharma 2003), so only colour
# a viewer could not see is treated as absent. The 1% allowance ignores
# specks such as a coloured watermark or JPEG ringing.
GRAYSCALE_MAX_CHROMA = 5.0
GRAYSCALE_MAX_COLOURED_FRACTION = 0.01

RESIZE_POLICIES = ('crop', 'stretch')

# Bicubic, as in the tutorial this project follows; Pillow widens the kernel
# by the downscale factor, so it is antialiased when shrinking.
_RESAMPLE = Image.Resampling.BICUBIC

_WHITE = (255, 255, 255, 255)
_ALPHA_MODES = frozenset({'RGBA', 'LA', 'PA', 'RGBa', 'La'})
_ORIENTATION_TAG = 0x0112
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})

Source = Union[str, os.PathLike, BinaryIO]


class BadImageError(errors.ChromaGenError, ValueError):
    """An input that cannot, or should not, be used.

    Attributes:
      reason: One of the reason codes of this module, e.g. 'decode_error'.
      detail: A short human-readable explanation.
    """

    def __init__(self, reason: str, detail: str = ''):
        super().__init__(f'{reason}: {detail}' if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class LoadedImage:
    """An 8-bit sRGB photo and the size of the original, after orientation."""

    image: Image.Image
    original_height: int
    original_width: int


def open_image(
    source: Source, max_pixels: int = CONVERT_MAX_PIXELS
) -> Image.Image:
    """Opens a photo lazily, reading only its header.

    Args:
      source: A path or a binary file object.
      max_pixels: Larger images are rejected before any decoding.

    Returns:
      A lazily loaded PIL image; the caller should close it.

    Raises:
      BadImageError: with reason MISSING_FILE, UNREADABLE, EMPTY_FILE,
        NOT_AN_IMAGE, DECODE_ERROR or TOO_LARGE.
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            if os.path.getsize(source) == 0:
                raise BadImageError(EMPTY_FILE, 'zero-byte file')
        except FileNotFoundError as error:
            raise BadImageError(MISSING_FILE, str(error)) from None
        except OSError as error:
            raise BadImageError(UNREADABLE, str(error)) from None
    try:
        with warnings.catch_warnings():
            # Our own limit below replaces Pillow's warning threshold.
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.DecompressionBombError as error:
        raise BadImageError(TOO_LARGE, str(error)) from None
    except Image.UnidentifiedImageError:
        raise BadImageError(NOT_AN_IMAGE, 'not a recognised image') from None
    except PermissionError as error:
        raise BadImageError(UNREADABLE, str(error)) from None
    except Exception as error:  # pylint: disable=broad-except
        # A corrupt header can raise nearly anything inside a plugin.
        raise BadImageError(
            DECODE_ERROR, errors.first_line(error, 200)
        ) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise BadImageError(DECODE_ERROR, f'invalid size {width}x{height}')
    if width * height > max_pixels:
        image.close()
        raise BadImageError(
            TOO_LARGE, f'{width}x{height} exceeds {max_pixels} pixels'
        )
    return image


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(height, width) of an opened image once its EXIF orientation applies."""
    width, height = image.size
    if _orientation(image) in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return height, width


def draft_size(
    width: int, height: int, size: int, policy: str = 'crop'
) -> tuple[int, int]:
    """The smallest decode size from which `resize_for_storage` loses nothing.

    Args:
      width: Width of the photo.
      height: Height of the photo.
      size: The stored size.
      policy: 'crop' or 'stretch', as in `resize_for_storage`.

    Returns:
      (width, height) to pass to PIL's `Image.draft`. The request is symmetric
      under a 90-degree rotation, so it may be computed before the EXIF
      orientation is applied.
    """
    if policy == 'stretch':
        return size, size
    scale = size / min(width, height)
    return math.ceil(width * scale), math.ceil(height * scale)


def load_rgb(
    source: Source, max_pixels: int = CONVERT_MAX_PIXELS, min_size: int = 0
) -> LoadedImage:
    """Loads a photo at full resolution as 8-bit sRGB, EXIF orientation applied.

    Args:
      source: A path or a binary file object.
      max_pixels: Larger images are rejected from the header alone.
      min_size: Images whose shorter side is smaller are rejected before
        decoding.

    Returns:
      The loaded RGB image and the original (oriented) size.

    Raises:
      BadImageError: for any input that cannot be loaded.
    """
    return _load(source, max_pixels, min_size, draft_for=None)


def _load(
    source: Source,
    max_pixels: int,
    min_size: int,
    draft_for: tuple[int, str] | None,
) -> LoadedImage:
    image = open_image(source, max_pixels)
    rgb = None
    try:
        orientation = _orientation(image)
        original_width, original_height = image.size
        if orientation in _TRANSPOSED_ORIENTATIONS:
            original_width, original_height = original_height, original_width
        if min(original_height, original_width) < min_size:
            raise BadImageError(
                TOO_SMALL,
                f'{original_width}x{original_height} is smaller '
                f'than {min_size} pixels',
            )
        try:
            with warnings.catch_warnings():
                # Pillow warns about odd EXIF or metadata in many real photos.
                warnings.simplefilter('ignore')
                if draft_for is not None and image.format == 'JPEG':
                    image.draft(None, draft_size(*image.size, *draft_for))
                image.load()
                # exif_transpose copies even an upright image: skip it then.
                oriented = (
                    image
                    if orientation == 1
                    else ImageOps.exif_transpose(image)
                )
                rgb = to_rgb(oriented)
                if rgb is image and getattr(image, 'is_animated', False):
                    # Multi-frame files (MPO, animated WebP) keep their file
                    # open after load; a copy lets us close it now.
                    rgb = image.copy()
        except BadImageError:
            raise
        except Exception as error:  # pylint: disable=broad-except
            raise BadImageError(
                DECODE_ERROR, errors.first_line(error, 200)
            ) from None
    finally:
        if rgb is not image:
            image.close()
    return LoadedImage(rgb, original_height, original_width)


def to_rgb(image: Image.Image) -> Image.Image:
    """Converts a decoded image of any Pillow mode to 8-bit sRGB.

    CMYK goes through its embedded ICC profile when it has one; alpha and
    palette transparency are composited on white; 16-bit and 32-bit gray
    images are scaled to 8 bits rather than clipped.

    Raises:
      BadImageError: UNSUPPORTED_MODE for modes with no sRGB meaning.
    """
    mode = image.mode
    if mode == 'RGB' and 'transparency' not in image.info:
        return image
    if mode == 'CMYK':
        return _cmyk_to_rgb(image)
    if mode in _ALPHA_MODES or 'transparency' in image.info:
        rgba = image.convert('RGBA')
        background = Image.new('RGBA', rgba.size, _WHITE)
        return Image.alpha_composite(background, rgba).convert('RGB')
    if mode.startswith('I') or mode == 'F':
        return _wide_gray_to_rgb(image)
    if mode in ('1', 'L', 'P', 'YCbCr', 'HSV'):
        return image.convert('RGB')
    raise BadImageError(UNSUPPORTED_MODE, f'mode {mode}')


def resize_for_storage(
    image: Image.Image, size: int, policy: str = 'crop'
) -> Image.Image:
    """Resizes a photo to the stored size x size.

    Args:
      image: A PIL image.
      size: The side of the square result.
      policy: 'crop' (default) scales the shorter side to `size` and takes
        the centre, so nothing is distorted; 'stretch' resizes both sides to
        `size`, as the tutorial this project follows does.

    Returns:
      The resized image.

    Raises:
      ValueError: for an unknown policy.
    """
    if policy == 'stretch':
        return image.resize((size, size), _RESAMPLE)
    if policy != 'crop':
        raise ValueError(
            f'Unknown resize policy {policy!r}; expected one of '
            f'{RESIZE_POLICIES}.'
        )
    width, height = image.size
    side = min(width, height)
    # Resizing only the centre square (a sub-pixel box) is the same as
    # resizing everything and cropping, for a fraction of the work.
    left = (width - side) / 2.0
    top = (height - side) / 2.0
    return image.resize(
        (size, size), _RESAMPLE, box=(left, top, left + side, top + side)
    )


def load_for_storage(
    source: Source,
    size: int,
    policy: str = 'crop',
    max_pixels: int = CONVERT_MAX_PIXELS,
    min_size: int = 0,
) -> LoadedImage:
    """Loads a photo and resizes it with the storage policy.

    JPEGs are decoded at the smallest DCT scale that is still at least as
    large as the resize needs, which is several times faster for photos much
    larger than `size`.

    Returns:
      The size x size RGB image and the original (oriented) size.

    Raises:
      BadImageError: for any input that cannot be loaded.
    """
    if policy not in RESIZE_POLICIES:
        raise ValueError(
            f'Unknown resize policy {policy!r}; expected one of '
            f'{RESIZE_POLICIES}.'
        )
    loaded = _load(source, max_pixels, min_size, draft_for=(size, policy))
    return dataclasses.replace(
        loaded, image=resize_for_storage(loaded.image, size, policy)
    )


def is_grayscale_lab(lab: np.ndarray) -> bool:
    """True when a Lab image [..., 3] has essentially no colour."""
    lab = np.asarray(lab)
    chroma_squared = np.square(lab[..., 1]) + np.square(lab[..., 2])
    coloured = np.count_nonzero(chroma_squared > GRAYSCALE_MAX_CHROMA**2)
    return coloured <= GRAYSCALE_MAX_COLOURED_FRACTION * chroma_squared.size


def is_grayscale(rgb: np.ndarray) -> bool:
    """True when an sRGB image [..., 3] (uint8, or float in [0, 1]) has
    essentially no colour: see GRAYSCALE_MAX_CHROMA for the criterion."""
    return is_grayscale_lab(color.rgb_to_lab_numpy(rgb))


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # pylint: disable=broad-except
        return 1  # Corrupt EXIF: exif_transpose will not rotate either.


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    icc = image.info.get('icc_profile')
    if icc:
        try:
            return ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile('sRGB'),
                outputMode='RGB',
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # A broken profile: fall back to the device conversion.
    # Without a profile, Pillow's R = (255 - C)(255 - K) / 255 is the
    # standard device CMYK conversion. Adobe's inverted CMYK JPEGs are
    # already un-inverted by the JPEG decoder.
    return image.convert('RGB')


def _wide_gray_to_rgb(image: Image.Image) -> Image.Image:
    values = np.asarray(image).astype(np.float64)
    if image.mode.startswith('I;16'):
        peak = 65535.0
    elif image.mode == 'F':
        peak = 1.0 if values.size and values.max() <= 1.0 else 255.0
    else:
        # 'I': 16-bit PNGs and TIFFs also open in this 32-bit mode.
        peak = 65535.0 if values.size and values.max() > 255 else 255.0
    gray = np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert('RGB')
