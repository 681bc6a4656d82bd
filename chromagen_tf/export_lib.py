"""The serving graph: full-resolution colorization and the SavedModel export.

`ColorizationModule` wraps a trained generator in a `tf.Module` whose
`tf.function` signatures hold all pre- and post-processing, so that a TF
Serving client needs nothing from this project:

  serving_default  image_bytes [B] string (JPEG, PNG, GIF, BMP; colour or
                   gray)                -> colorized_png_bytes [B] string
  colorize_image   image [B, H, W, 1 or 3] uint8
                                        -> colorized [B, H, W, 3] uint8
  predict_ab       l_channel [B, H, W, 1] float32, normalised L
                                        -> ab [B, H, W, 2], normalised ab

Full resolution. The network runs at a working size; each image's detail
comes from its own L channel (as DDColor and DeOldify do):
  1. L is resized so that its longer side is `render_size`, and padded
     (mirror padding, bottom and right) to a multiple of the generator's
     total stride; the padding is cut off the prediction.
  2. The predicted ab is resized back to the image's own size.
  3. The original full-resolution L is joined with that ab.
So the output's L equals the input's L up to uint8 rounding and to sRGB
gamut clipping of very saturated predictions.

Hostile input: the width and height are read from the file header (JPEG
SOF, PNG IHDR, GIF screen descriptor, BMP info header) before anything is
decoded, so an image over `max_pixels` is refused without allocating it.
Unknown or corrupt bytes raise InvalidArgumentError with a message saying
so. An empty batch gives an empty result.

The same pre- and post-processing functions are used by the colorize and
evaluation tools, so every path colorizes an image identically.
"""

from typing import Callable, Optional

import keras
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf.models import pix2pix
from chromagen_tf.models import unet

DEFAULT_RENDER_SIZE = 256
# 50 megapixels: larger than any phone or consumer camera photo (a 48 MP
# sensor), small enough that decoding it (150 MB as uint8 RGB) is safe.
DEFAULT_MAX_PIXELS = 50_000_000
# The ResNet U-Nets' total stride; pix2pix_unet needs its own.
DEFAULT_SIZE_MULTIPLE = unet.SIZE_MULTIPLE

IMAGE_BYTES = 'image_bytes'
# TF Serving's REST API base64-wraps a string output only when its name
# ends in '_bytes' (IsNamedTensorBytes in tensorflow_serving's json_tensor.cc);
# any other name would put raw PNG bytes into the JSON answer.
COLORIZED_PNG = 'colorized_png_bytes'
IMAGE = 'image'
COLORIZED = 'colorized'
L_CHANNEL = 'l_channel'
AB = 'ab'
SIGNATURES = ('serving_default', 'colorize_image', 'predict_ab')

PredictFn = Callable[[tf.Tensor], tf.Tensor]


def size_multiple_for(generator_name: str) -> int:
    """The spatial multiple a generator's input sizes must have."""
    if generator_name == 'pix2pix_unet':
        return pix2pix.SIZE_MULTIPLE
    return unet.SIZE_MULTIPLE


# --- Pre- and post-processing ----------------------------------------------


def working_shape(
    height: tf.Tensor, width: tf.Tensor, render_size: int, size_multiple: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Working size of an image, without and with padding.

    The longer side becomes `render_size`, the aspect ratio is kept. Each
    side is at least half the multiple, so that mirror padding (which can
    add at most the side's own length) always reaches the multiple; only
    panoramas beyond 16:1 (at 256) are stretched by that floor.

    Returns:
      (height, width, padded_height, padded_width), int32 scalars.
    """
    height = tf.cast(height, tf.float64)
    width = tf.cast(width, tf.float64)
    scale = render_size / tf.maximum(tf.maximum(height, width), 1.0)
    floor = float(max(size_multiple // 2, 1))
    new_height = tf.maximum(tf.round(height * scale), floor)
    new_width = tf.maximum(tf.round(width * scale), floor)
    padded_height = tf.math.ceil(new_height / size_multiple) * size_multiple
    padded_width = tf.math.ceil(new_width / size_multiple) * size_multiple
    return tuple(
        tf.cast(x, tf.int32)
        for x in (new_height, new_width, padded_height, padded_width)
    )


def _gray_lightness_table() -> tf.Tensor:
    """L of the 256 uint8 gray levels, computed by `color.rgb_to_lab`."""
    levels = tf.range(256, dtype=tf.float32) / 255.0
    gray = tf.stack([levels, levels, levels], axis=-1)
    return color.split_lab(color.rgb_to_lab(gray))[0]  # [256, 1]


def l_channel_from_uint8(image: tf.Tensor) -> tf.Tensor:
    """L in [0, 100] of a uint8 gray or RGB image [..., 1 or 3] -> [..., 1].

    A colour image is reduced to its lightness, which is what the model
    sees: colour inputs are colorized as if they were black and white.
    Gray images (one channel, or three equal ones) take a 256-entry table
    of the same values, which is ~30x faster on a 12 MP photo.
    """
    image = tf.convert_to_tensor(image)
    first = image[..., :1]
    is_gray = tf.reduce_all(tf.equal(image, first))

    def from_gray():
        return tf.gather(_gray_lightness_table(), tf.cast(first, tf.int32)
                         )[..., 0, :]

    def from_rgb():
        rgb = tf.cast(image, tf.float32) / 255.0
        rgb = tf.broadcast_to(rgb, tf.concat([tf.shape(rgb)[:-1], [3]], 0))
        return color.split_lab(color.rgb_to_lab(rgb))[0]

    return tf.cond(is_gray, from_gray, from_rgb)


def to_working_l(
    l_channel: tf.Tensor, render_size: int, size_multiple: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Full-size L [B, H, W, 1] -> padded normalised working L.

    Returns:
      (l_normalized [B, padded_height, padded_width, 1], working_size [2]):
      working_size is the unpadded (height, width) to crop the output to.
    """
    shape = tf.shape(l_channel)
    new_height, new_width, padded_height, padded_width = working_shape(
        shape[1], shape[2], render_size, size_multiple
    )
    # Antialiasing matters when shrinking a 12 MP photo 16x: without it the
    # working L aliases and the predicted colours shimmer on fine texture.
    small = tf.image.resize(
        color.normalize_l(l_channel),
        [new_height, new_width],
        method='bilinear',
        antialias=True,
    )
    paddings = [
        [0, 0],
        [0, padded_height - new_height],
        [0, padded_width - new_width],
        [0, 0],
    ]
    padded = tf.pad(small, paddings, mode='SYMMETRIC')
    return padded, tf.stack([new_height, new_width])


def from_working_ab(
    ab_normalized: tf.Tensor, working_size: tf.Tensor, output_size: tf.Tensor
) -> tf.Tensor:
    """Crops the padding off a prediction and resizes it to output_size.

    Returns:
      ab in real Lab units, [B, output_height, output_width, 2].
    """
    cropped = ab_normalized[:, : working_size[0], : working_size[1], :]
    ab = tf.image.resize(
        tf.cast(cropped, tf.float32), output_size, method='bilinear'
    )
    return color.denormalize_ab(ab)


def lab_to_uint8(l_channel: tf.Tensor, ab: tf.Tensor) -> tf.Tensor:
    """Real-unit L [..., 1] and ab [..., 2] -> uint8 sRGB [..., 3]."""
    rgb = color.lab_to_rgb(tf.concat([l_channel, ab], axis=-1))
    return tf.cast(tf.round(rgb * 255.0), tf.uint8)


def predict_full_resolution_ab(
    predict_fn: PredictFn,
    l_channel: tf.Tensor,
    render_size: int,
    size_multiple: int,
) -> tf.Tensor:
    """Runs the model at the working size; returns ab at L's own size.

    Args:
      predict_fn: normalised L [B, h, w, 1] -> normalised ab [B, h, w, 2].
      l_channel: [B, H, W, 1] L in [0, 100], one size for the whole batch.
      render_size: Longer side of the working size.
      size_multiple: Multiple the generator's input sizes must have.

    Returns:
      ab [B, H, W, 2] in real Lab units.
    """
    working_l, working_size = to_working_l(
        l_channel, render_size, size_multiple
    )
    ab_normalized = predict_fn(working_l)
    return from_working_ab(
        ab_normalized, working_size, tf.shape(l_channel)[1:3]
    )


# --- Header parsing and decoding ---------------------------------------------


def _unsigned(data: tf.Tensor, offset: int, size: int, big_endian: bool):
    """An unsigned integer of `size` bytes at `offset`, as int64."""
    raw = tf.io.decode_raw(tf.strings.substr(data, offset, size), tf.uint8)
    raw = tf.cast(raw, tf.int64)
    shifts = list(range(size)) if not big_endian else list(
        reversed(range(size)))
    return tf.reduce_sum(
        raw * tf.constant([1 << (8 * s) for s in shifts], tf.int64)
    )


def _signed32(value: tf.Tensor) -> tf.Tensor:
    return tf.where(value >= 2**31, value - 2**32, value)


def image_dimensions(image_bytes: tf.Tensor) -> tf.Tensor:
    """(height, width) of an encoded image, read from its header only.

    Args:
      image_bytes: A scalar string.

    Returns:
      int64 [2].

    Raises:
      tf.errors.InvalidArgumentError: the bytes are not a JPEG, PNG, GIF or
        BMP file, or a JPEG header is corrupt.
    """
    # Zero padding lets every fixed-offset read below succeed on short or
    # truncated input; the decoder then rejects such input.
    data = tf.strings.join([image_bytes, tf.constant(b'\0' * 32)])
    prefix = tf.strings.substr(image_bytes, 0, 8)

    def jpeg():
        shape = tf.io.extract_jpeg_shape(image_bytes, output_type=tf.int64)
        return shape[:2]

    def png():  # IHDR: width, height as big-endian uint32 at 16 and 20.
        return tf.stack([_unsigned(data, 20, 4, True),
                         _unsigned(data, 16, 4, True)])

    def gif():  # Logical screen: little-endian uint16 at 6 and 8.
        return tf.stack([_unsigned(data, 8, 2, False),
                         _unsigned(data, 6, 2, False)])

    def bmp():
        header_size = _unsigned(data, 14, 4, False)
        # BITMAPCOREHEADER (12 bytes) has 16-bit sizes; the later headers
        # have signed 32-bit ones, negative height meaning top-down rows.
        return tf.cond(
            tf.equal(header_size, 12),
            lambda: tf.stack([_unsigned(data, 20, 2, False),
                              _unsigned(data, 18, 2, False)]),
            lambda: tf.abs(tf.stack([
                _signed32(_unsigned(data, 22, 4, False)),
                _signed32(_unsigned(data, 18, 4, False)),
            ])),
        )

    def unknown():
        check = tf.debugging.Assert(
            False,
            ['Cannot decode the image: it is not a JPEG, PNG, GIF or BMP '
             'file.'],
        )
        with tf.control_dependencies([check]):
            return tf.zeros([2], tf.int64)

    def starts_with(magic: bytes) -> tf.Tensor:
        return tf.equal(tf.strings.substr(prefix, 0, len(magic)), magic)

    return tf.case(
        [
            (starts_with(b'\xff\xd8\xff'), jpeg),
            (starts_with(b'\x89PNG\r\n\x1a\n'), png),
            (starts_with(b'GIF87a') | starts_with(b'GIF89a'), gif),
            (starts_with(b'BM'), bmp),
        ],
        default=unknown,
    )


def decode_image(
    image_bytes: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tf.Tensor:
    """Checks the header size, then decodes to uint8 RGB [H, W, 3].

    Gray images are expanded to three equal channels, alpha is dropped,
    16-bit PNGs are scaled to 8 bits and an animated GIF gives its first
    frame.

    Raises:
      tf.errors.InvalidArgumentError: undecodable bytes, or more than
        max_pixels pixels.
    """
    dimensions = image_dimensions(image_bytes)
    # float64: two 32-bit header fields can overflow an int64 product.
    pixels = tf.reduce_prod(tf.cast(dimensions, tf.float64))
    corrupt_check = tf.debugging.Assert(
        pixels > 0, ['Cannot decode the image: its header is corrupt.']
    )
    with tf.control_dependencies([corrupt_check]):
        size_check = tf.debugging.Assert(
            pixels <= max_pixels,
            ['The image is too large: its header says (height, width) =',
             dimensions, f'which is over the limit of {max_pixels} pixels.'],
        )
    with tf.control_dependencies([size_check]):
        image = tf.io.decode_image(
            image_bytes, channels=3, dtype=tf.uint8, expand_animations=False
        )
    return tf.ensure_shape(image, [None, None, 3])


# --- The exported module --------------------------------------------------


class ColorizationModule(tf.Module):
    """A generator plus the serving pre- and post-processing.

    Attributes:
      generator: The Keras generator (normalised L -> normalised ab).
      render_size, size_multiple, max_pixels: See the module docstring.
    """

    def __init__(
        self,
        generator: tf.Module,
        render_size: int = DEFAULT_RENDER_SIZE,
        size_multiple: int = DEFAULT_SIZE_MULTIPLE,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        super().__init__(name='chromagen')
        if render_size < 1 or size_multiple < 1 or max_pixels < 1:
            raise ValueError(
                'render_size, size_multiple and max_pixels must be positive.'
            )
        self.generator = generator
        self.render_size = render_size
        self.size_multiple = size_multiple
        self.max_pixels = max_pixels
        # One traced network, called by all three signatures: tracing the
        # Keras model once instead of three times halves the export time.
        self._generate = tf.function(
            self._generate_once,
            input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
        )
        self.predict_ab = tf.function(
            self._predict_ab,
            input_signature=[
                tf.TensorSpec([None, None, None, 1], tf.float32, L_CHANNEL)
            ],
        )
        self.colorize_image = tf.function(
            self._colorize_image,
            input_signature=[
                tf.TensorSpec([None, None, None, None], tf.uint8, IMAGE)
            ],
        )
        self.serving_default = tf.function(
            self._serving_default,
            input_signature=[tf.TensorSpec([None], tf.string, IMAGE_BYTES)],
        )

    def _generate_once(self, l_normalized: tf.Tensor) -> tf.Tensor:
        ab = self.generator(l_normalized, training=False)
        return tf.cast(ab, tf.float32)

    def _predict_ab(self, l_channel: tf.Tensor) -> dict[str, tf.Tensor]:
        return {AB: self._generate(l_channel)}

    def _colorize_rgb(self, images: tf.Tensor) -> tf.Tensor:
        """uint8 [B, H, W, 1 or 3] -> uint8 RGB, full resolution."""
        l_channel = l_channel_from_uint8(images)
        ab = predict_full_resolution_ab(
            self._generate, l_channel, self.render_size, self.size_multiple
        )
        return lab_to_uint8(l_channel, ab)

    def _colorize_image(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        channels = tf.shape(image)[-1]
        check = tf.debugging.Assert(
            (channels == 1) | (channels == 3),
            ['colorize_image takes 1 (gray) or 3 (RGB) channels, got',
             channels],
        )
        with tf.control_dependencies([check]):
            shape = tf.shape(image)
        empty = tf.equal(tf.reduce_prod(shape[:3]), 0)
        colorized = tf.cond(
            empty,
            lambda: tf.zeros(tf.concat([shape[:3], [3]], 0), tf.uint8),
            lambda: self._colorize_rgb(image),
        )
        return {COLORIZED: tf.ensure_shape(colorized, [None, None, None, 3])}

    def _colorize_encoded(self, image_bytes: tf.Tensor) -> tf.Tensor:
        image = decode_image(image_bytes, self.max_pixels)
        colorized = self._colorize_rgb(image[tf.newaxis])
        return tf.io.encode_png(colorized[0])

    def _serving_default(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        # Images in a batch have different sizes: one at a time.
        pngs = tf.map_fn(
            self._colorize_encoded,
            image_bytes,
            fn_output_signature=tf.TensorSpec([], tf.string),
        )
        return {COLORIZED_PNG: pngs}

    def endpoints(self) -> dict[str, tf.types.experimental.PolymorphicFunction]:
        """The exported signatures by name (each a tf.function)."""
        return {
            'serving_default': self.serving_default,
            'colorize_image': self.colorize_image,
            'predict_ab': self.predict_ab,
        }


# --- Versioned, atomic export -----------------------------------------------

METADATA_FILE = 'chromagen.json'  # In <version>/assets.extra/.


def _versions(export_base: str) -> list[int]:
    if not tf.io.gfile.isdir(export_base):
        return []
    return sorted(
        int(name.rstrip('/'))
        for name in tf.io.gfile.listdir(export_base)
        if name.rstrip('/').isdigit()
    )


def next_version(export_base: str) -> int:
    """One more than the largest integer version in export_base, or 1."""
    versions = _versions(export_base)
    return versions[-1] + 1 if versions else 1


def latest_version_dir(export_base: str) -> Optional[str]:
    """The newest <export_base>/<version> holding a SavedModel, or None."""
    for version in reversed(_versions(export_base)):
        path = _join(export_base, str(version))
        if tf.saved_model.contains_saved_model(path):
            return path
    return None


def _join(*parts: str) -> str:
    return '/'.join(p.rstrip('/') for p in parts)


def read_metadata(version_dir: str) -> dict:
    """The export's settings (render_size, ...) or {} if there are none."""
    import json  # pylint: disable=g-import-not-at-top

    path = _join(version_dir, 'assets.extra', METADATA_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _write_atomically(
    export_base: str, version: Optional[int], write: Callable[[str], None]
) -> str:
    """Writes a version into a hidden temporary folder, then renames it.

    TF Serving only loads integer-named children of the base path, so the
    temporary folder (not a number) is never seen half-written.
    """
    import uuid  # pylint: disable=g-import-not-at-top

    tf.io.gfile.makedirs(export_base)
    if version is None:
        version = next_version(export_base)
    if version < 0:
        raise ValueError(f'version must be >= 0, got {version}')
    final = _join(export_base, str(version))
    if tf.io.gfile.exists(final):
        raise FileExistsError(
            f'{final} already exists; pick another --version or leave it '
            'out to use the next one.'
        )
    temporary = _join(export_base, f'.tmp-{version}-{uuid.uuid4().hex}')
    try:
        write(temporary)
        tf.io.gfile.rename(temporary, final)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.rmtree(temporary)
        raise
    return final


def export_saved_model(
    module: ColorizationModule,
    export_base: str,
    version: Optional[int] = None,
    metadata: Optional[dict] = None,
) -> str:
    """Exports a ColorizationModule as <export_base>/<version>/.

    Args:
      module: The module to export.
      export_base: TF Serving's --model_base_path.
      version: The version number; default: the next integer.
      metadata: Extra facts (checkpoint, model config) written with the
        module's settings into assets.extra/chromagen.json.

    Returns:
      The version directory.

    Raises:
      FileExistsError: the version already exists.
    """
    import json  # pylint: disable=g-import-not-at-top

    settings = dict(metadata or {})
    settings.update(
        render_size=module.render_size,
        size_multiple=module.size_multiple,
        max_pixels=module.max_pixels,
    )

    def write(path: str) -> None:
        # keras.export.ExportArchive rather than tf.saved_model.save: Keras 3
        # variables saved straight from a tf.Module are not found by the
        # session-based loader that TF Serving and saved_model_cli use.
        archive = keras.export.ExportArchive()
        archive.track(module.generator)
        for name, function in module.endpoints().items():
            archive.add_endpoint(name, function)
        archive.write_out(path, verbose=False)
        extra = _join(path, 'assets.extra')
        tf.io.gfile.makedirs(extra)
        with tf.io.gfile.GFile(_join(extra, METADATA_FILE), 'w') as f:
            json.dump(settings, f, indent=2, sort_keys=True)

    return _write_atomically(export_base, version, write)


def export_tflite(
    module: ColorizationModule,
    export_base: str,
    version: Optional[int] = None,
) -> str:
    """Exports the raw model for TFLite at a fixed square working size.

    The interpreter has static shapes: the file takes normalised L
    [1, S, S, 1], S = render_size rounded up to the size multiple, and
    returns normalised ab [1, S, S, 2]. Pre- and post-processing (resize,
    padding, joining with full-resolution L) are left to the app, as
    described for `predict_ab`.

    Returns:
      The path of <export_base>/<version>/model.tflite.
    """
    side = -(-module.render_size // module.size_multiple) * module.size_multiple
    l_channel = keras.Input([side, side, 1], batch_size=1, name=L_CHANNEL)
    fixed = keras.Model(l_channel, module.generator(l_channel))
    # from_keras_model freezes the weights into the flatbuffer; converting a
    # concrete function instead keeps them as resource variables that the
    # interpreter never initialises (all-NaN outputs with TF 2.21).
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(fixed).convert()

    def write(path: str) -> None:
        tf.io.gfile.makedirs(path)
        with tf.io.gfile.GFile(_join(path, 'model.tflite'), 'wb') as f:
            f.write(flatbuffer)

    return _join(_write_atomically(export_base, version, write),
                 'model.tflite')
