"""In-graph decoding of untrusted encoded images, for the serving graph.

A TF Serving client may send anything. The width and height are read from
the file header (JPEG SOF, PNG IHDR, GIF screen descriptor, BMP info
header) before anything is decoded, so an image over `max_pixels` is
refused without allocating it. Unknown or corrupt bytes raise
InvalidArgumentError with a message saying so.

The colorize tool reads files from disk with PIL instead
(`imaging.load_rgb`), which checks its pixel limit from the header too.
"""

import tensorflow as tf

# 50 megapixels: larger than any phone or consumer camera photo (a 48 MP
# sensor), small enough that decoding it (150 MB as uint8 RGB) is safe.
DEFAULT_MAX_PIXELS = 50_000_000


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
