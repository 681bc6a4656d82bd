"""Full-resolution colorization: the working-size pre- and post-processing.

The network runs at a working size; each image's detail comes from its own
L channel (as DDColor and DeOldify do):
  1. L is resized so that its longer side is `render_size`, and padded
     (mirror padding, bottom and right) to a multiple of the generator's
     total stride; the padding is cut off the prediction.
  2. The predicted ab is resized back to the image's own size.
  3. The original full-resolution L is joined with that ab.
So the output's L equals the input's L up to uint8 rounding: predictions
outside the sRGB gamut lose chroma at fixed L and hue.

These graph functions are the one home of those steps: the serving graph
(`signatures.ColorizationModule`) and the colorize and evaluation tools
(`colorizer.Colorizer`) all call them, so every path colorizes an image
identically.
"""

import tensorflow as tf

from chromagen_tf import color
from chromagen_tf import configs
from chromagen_tf import hints
from chromagen_tf import models
from chromagen_tf.models import color_bins
from chromagen_tf.models import unet_lite

DEFAULT_RENDER_SIZE = 256
# For exports that do not record theirs (older SavedModels).
DEFAULT_SIZE_MULTIPLE = models.size_multiple(configs.ModelConfig.generator)


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
        return tf.gather(_gray_lightness_table(), tf.cast(first, tf.int32))[
            ..., 0, :
        ]

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
    """Real-unit L [..., 1] and ab [..., 2] -> uint8 sRGB [..., 3].

    Out-of-gamut predictions lose chroma, never lightness
    (`color.lab_to_rgb_in_gamut`), so the output keeps the photo's L.
    """
    return _lab_to_integer_rgb(l_channel, ab, tf.uint8)


def lab_to_uint16(l_channel: tf.Tensor, ab: tf.Tensor) -> tf.Tensor:
    """As `lab_to_uint8`, in 16-bit sRGB (for 10-bit video)."""
    return _lab_to_integer_rgb(l_channel, ab, tf.uint16)


def _lab_to_integer_rgb(l_channel, ab, dtype: tf.DType) -> tf.Tensor:
    rgb = color.lab_to_rgb_in_gamut(tf.concat([l_channel, ab], axis=-1))
    return tf.cast(tf.round(rgb * float(dtype.max)), dtype)


def working_hints(
    points: tf.Tensor,
    colors: tf.Tensor,
    image_size,
    working_size: tf.Tensor,
    padded_size,
) -> tuple[tf.Tensor, tf.Tensor]:
    """A photo's hint points as the model's hint maps at its working size.

    Args:
      points: [N, 2] x, y in pixels of the photo (N may be 0); points
        outside it are ignored.
      colors: [N, 3] uint8 sRGB.
      image_size: (height, width) of the photo.
      working_size: [2] unpadded working (height, width), from
        `to_working_l`.
      padded_size: (height, width) of the padded working L.

    Returns:
      (hint_ab [1, h, w, 2], hint_mask [1, h, w, 1]) at the padded size,
      with no hints in the padding.
    """
    hint_ab, hint_mask = hints.rasterize(
        points, colors, image_size, working_size
    )
    paddings = [
        [0, padded_size[0] - working_size[0]],
        [0, padded_size[1] - working_size[1]],
        [0, 0],
    ]
    return (
        tf.pad(hint_ab, paddings)[tf.newaxis],
        tf.pad(hint_mask, paddings)[tf.newaxis],
    )


def suggest_at(
    logits: tf.Tensor,
    l_channel: tf.Tensor,
    working_size: tf.Tensor,
    point: tf.Tensor,
    k: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """A colour-bins model's k likeliest colours at a point of a photo.

    Args:
      logits: [h', w', Q] bin logits of the padded working image, at
        1/stride of its size (stride = padded size / h').
      l_channel: [H, W, 1] the photo's L in [0, 100].
      working_size: [2] the unpadded working (height, width).
      point: [2] x, y in pixels of the photo, inside it.
      k: How many colours.

    Returns:
      (colours [k, 3] uint8 sRGB at the photo's lightness there,
      probabilities [k]), most likely first (`color_bins.suggest`).
    """
    image_size = tf.cast(tf.shape(l_channel)[:2], tf.float32)
    fraction = tf.stack([point[1], point[0]]) / image_size
    stride = tf.cast(unet_lite.OUTPUT_STRIDE, tf.float32)
    cell = tf.cast(
        tf.floor(fraction * tf.cast(working_size, tf.float32) / stride),
        tf.int32,
    )
    cell = tf.minimum(cell, tf.shape(logits)[:2] - 1)
    ab, probabilities = color_bins.suggest(logits[cell[0], cell[1]], k)
    pixel = tf.cast(tf.floor(point), tf.int32)
    lightness = tf.fill([k, 1, 1], l_channel[pixel[1], pixel[0], 0])
    colours = lab_to_uint8(lightness, color.denormalize_ab(ab)[:, None, :])
    return colours[:, 0], probabilities
