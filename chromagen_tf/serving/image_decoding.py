"""In-graph decoding of untrusted encoded images, for the serving graph.

A TF Serving client may send anything. The width and height are read from
the file header (JPEG SOF, PNG IHDR, GIF screen descriptor, BMP info
header) before anything is decoded, so an image over `max_pixels` is
refused without allocating it. Unknown or corrupt bytes raise
InvalidArgumentError with a message saying so.

Decoding matches the colorize tool, which reads files from disk with PIL
(`imaging.load_rgb`): the EXIF orientation of a JPEG is applied (tags 1-8,
as `PIL.ImageOps.exif_transpose`), and transparency is composited on white.
"""

import tensorflow as tf

from chromagen_tf.data import imaging


def _unsigned(data: tf.Tensor, offset: int, size: int, big_endian: bool):
    """An unsigned integer of `size` bytes at `offset`, as int64."""
    raw = tf.io.decode_raw(tf.strings.substr(data, offset, size), tf.uint8)
    raw = tf.cast(raw, tf.int64)
    shifts = (
        list(range(size)) if not big_endian else list(reversed(range(size)))
    )
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
        return tf.stack(
            [_unsigned(data, 20, 4, True), _unsigned(data, 16, 4, True)]
        )

    def gif():  # Logical screen: little-endian uint16 at 6 and 8.
        return tf.stack(
            [_unsigned(data, 8, 2, False), _unsigned(data, 6, 2, False)]
        )

    def bmp():
        header_size = _unsigned(data, 14, 4, False)
        # BITMAPCOREHEADER (12 bytes) has 16-bit sizes; the later headers
        # have signed 32-bit ones, negative height meaning top-down rows.
        return tf.cond(
            tf.equal(header_size, 12),
            lambda: tf.stack(
                [_unsigned(data, 20, 2, False), _unsigned(data, 18, 2, False)]
            ),
            lambda: tf.abs(
                tf.stack(
                    [
                        _signed32(_unsigned(data, 22, 4, False)),
                        _signed32(_unsigned(data, 18, 4, False)),
                    ]
                )
            ),
        )

    def unknown():
        check = tf.debugging.Assert(
            False,
            [
                'Cannot decode the image: it is not a JPEG, PNG, GIF or BMP '
                'file.'
            ],
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


# EXIF orientation tag (TIFF 6.0 / Exif 2.3, IFD0 tag 0x0112).
_ORIENTATION_TAG = 0x0112
# JPEG markers are walked up to this many segments looking for APP1/Exif
# (Exif must be within the first 64 KB; real files put it first or second).
_MAX_SEGMENTS = 32
# IFD0 entries read looking for the orientation tag.
_MAX_IFD_ENTRIES = 64


def exif_orientation(image_bytes: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (1-8) of a JPEG, or 1 when it has none.

    Walks the JPEG segments to APP1 "Exif", reads the TIFF byte order and
    the IFD0 entries, and returns the value of tag 0x0112. Anything that
    is not a well-formed JPEG Exif block gives 1 (leave as is).
    """
    data = tf.strings.join([image_bytes, tf.constant(b'\0' * 16)])
    length = tf.strings.length(image_bytes, unit='BYTE')

    def byte(offset):
        return _unsigned(data, offset, 1, True)

    def find_exif(offset, found, index):
        del index
        is_marker = tf.equal(byte(offset), 0xFF)
        marker = byte(offset + 1)
        segment = _unsigned(data, offset + 2, 2, True)
        is_exif = (
            is_marker
            & tf.equal(marker, 0xE1)
            & tf.equal(tf.strings.substr(data, offset + 4, 6), b'Exif\0\0')
        )
        found = tf.where(is_exif, offset + 10, found)
        return offset + 2 + segment, found

    def keep_walking(offset, found, index):
        return (
            (index < _MAX_SEGMENTS)
            & (found < 0)
            & (offset + 4 <= tf.cast(length, tf.int64))
            & tf.equal(byte(offset), 0xFF)
            & tf.not_equal(byte(offset + 1), 0xDA)
        )  # Start of scan.

    def walk(offset, found, index):
        offset, found = find_exif(offset, found, index)
        return offset, found, index + 1

    _, tiff, _ = tf.while_loop(
        keep_walking,
        walk,
        [tf.constant(2, tf.int64), tf.constant(-1, tf.int64), tf.constant(0)],
    )

    def from_tiff():
        big_endian = tf.equal(tf.strings.substr(data, tiff, 2), b'MM')

        def number(offset, size):
            return tf.cond(
                big_endian,
                lambda: _unsigned(data, offset, size, True),
                lambda: _unsigned(data, offset, size, False),
            )

        ifd = tiff + number(tiff + 4, 4)
        count = tf.minimum(number(ifd, 2), _MAX_IFD_ENTRIES)
        entries = ifd + 2 + 12 * tf.range(count)
        tags = tf.map_fn(
            lambda entry: number(entry, 2),
            entries,
            fn_output_signature=tf.int64,
        )
        values = tf.map_fn(
            lambda entry: number(entry + 8, 2),
            entries,
            fn_output_signature=tf.int64,
        )
        match = tf.where(tf.equal(tags, _ORIENTATION_TAG))[:, 0]
        value = tf.cond(
            tf.size(match) > 0,
            lambda: values[match[0]],
            lambda: tf.constant(1, tf.int64),
        )
        return tf.where((value >= 1) & (value <= 8), value, 1)

    is_jpeg = tf.equal(tf.strings.substr(image_bytes, 0, 3), b'\xff\xd8\xff')
    orientation = tf.cond(
        is_jpeg & (tiff >= 0), from_tiff, lambda: tf.constant(1, tf.int64)
    )
    return tf.cast(orientation, tf.int32)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turns [H, W, C] upright for an EXIF orientation, as exif_transpose."""
    transforms = [
        lambda: image,  # 1
        lambda: tf.image.flip_left_right(image),  # 2
        lambda: tf.image.rot90(image, 2),  # 3
        lambda: tf.image.flip_up_down(image),  # 4
        lambda: tf.image.transpose(image),  # 5
        lambda: tf.image.rot90(image, 3),  # 6
        lambda: tf.image.rot90(tf.image.transpose(image), 2),  # 7
        lambda: tf.image.rot90(image, 1),  # 8
    ]
    return tf.switch_case(orientation - 1, transforms)


def _composite_on_white(image: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 1-4] -> uint8 RGB, alpha composited on white as PIL."""
    channels = tf.shape(image)[-1]
    pixels = tf.cast(image, tf.float32)
    has_alpha = tf.equal(channels % 2, 0)  # LA or RGBA.
    alpha = tf.cond(
        has_alpha,
        lambda: pixels[..., -1:] / 255.0,
        lambda: tf.ones_like(pixels[..., :1]),
    )
    colour = tf.cond(
        channels >= 3,
        lambda: pixels[..., :3],
        lambda: tf.tile(pixels[..., :1], [1, 1, 3]),
    )
    composited = colour * alpha + 255.0 * (1.0 - alpha)
    return tf.cast(tf.round(composited), tf.uint8)


def decode_image(
    image_bytes: tf.Tensor, max_pixels: int = imaging.COLORIZE_MAX_PIXELS
) -> tf.Tensor:
    """Checks the header size, then decodes to uint8 RGB [H, W, 3].

    Gray images are expanded to three equal channels, transparency is
    composited on white, 16-bit PNGs are scaled to 8 bits, an animated GIF
    gives its first frame and a JPEG's EXIF orientation is applied.

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
            [
                'The image is too large: its header says (height, width) =',
                dimensions,
                f'which is over the limit of {max_pixels} pixels.',
            ],
        )
    with tf.control_dependencies([size_check]):
        image = tf.io.decode_image(
            image_bytes, channels=0, dtype=tf.uint8, expand_animations=False
        )
    image = _composite_on_white(image)
    image = apply_orientation(image, exif_orientation(image_bytes))
    return tf.ensure_shape(image, [None, None, 3])
