"""The serving graph: a generator and its pre- and post-processing.

`ColorizationModule` wraps a trained generator in a `tf.Module` whose
`tf.function` signatures hold all pre- and post-processing, so that a TF
Serving client needs nothing from this project:

  serving_default  image_bytes [B] string (JPEG, PNG, GIF, BMP; colour or
                   gray)                -> colorized_png_bytes [B] string
  colorize_image   image [B, H, W, 1 or 3] uint8
                                        -> colorized [B, H, W, 3] uint8
  predict_ab       l_channel [B, H, W, 1] float32, normalised L
                                        -> ab [B, H, W, 2], normalised ab

A hint model (`models.takes_hints`) also has

  colorize_with_hints  image_bytes [B] string, hint_points [B, N, 2]
                       float32 (x, y in pixels of the photo as displayed),
                       hint_colors [B, N, 3] uint8 sRGB
                                        -> colorized_png_bytes [B] string
  predict_ab_with_hints  l_channel, hint_ab [B, H, W, 2] (normalised),
                       hint_mask [B, H, W, 1]  -> ab

N may be 0, and points outside an image are ignored, so that a batch of
photos with different numbers of hints is padded with (-1, -1). A
colour-bins model also has

  suggest_colors   image_bytes [B], point [B, 2] float32, hint_points
                   [B, N, 2], hint_colors [B, N, 3]
                                        -> suggested_colors [B, K, 3] uint8,
                                           probabilities [B, K] float32

the K likeliest colours at the point given the hints (`color_bins.suggest`,
K = `SUGGESTIONS`). Images are colorized at full resolution (see
`full_resolution`); encoded images are decoded in the graph after a check
of their header size (see `image_decoding`). An empty batch gives an empty
result.
"""

import tensorflow as tf

from chromagen_tf import models
from chromagen_tf.data import imaging
from chromagen_tf.models import unet_lite
from chromagen_tf.serving import full_resolution
from chromagen_tf.serving import image_decoding

IMAGE_BYTES = 'image_bytes'
# TF Serving's REST API base64-wraps a string output only when its name
# ends in '_bytes' (IsNamedTensorBytes in tensorflow_serving's json_tensor.cc);
# any other name would put raw PNG bytes into the JSON answer.
COLORIZED_PNG = 'colorized_png_bytes'
IMAGE = 'image'
COLORIZED = 'colorized'
L_CHANNEL = 'l_channel'
AB = 'ab'
HINT_AB = 'hint_ab'
HINT_MASK = 'hint_mask'
HINT_POINTS = 'hint_points'
HINT_COLORS = 'hint_colors'
POINT = 'point'
SUGGESTED_COLORS = 'suggested_colors'
PROBABILITIES = 'probabilities'
SIGNATURES = ('serving_default', 'colorize_image', 'predict_ab')
HINT_SIGNATURES = ('colorize_with_hints', 'predict_ab_with_hints')
SUGGEST_SIGNATURE = 'suggest_colors'
# Colours suggest_colors returns per point.
SUGGESTIONS = 6

_spec = tf.TensorSpec


class ColorizationModule(tf.Module):
    """A generator plus the serving pre- and post-processing.

    Attributes:
      generator: The Keras generator (normalised L, and for a hint model
        its hint maps -> normalised ab).
      render_size, size_multiple: See `full_resolution`.
      max_pixels: See `image_decoding`.
    """

    def __init__(
        self,
        generator: tf.Module,
        render_size: int = full_resolution.DEFAULT_RENDER_SIZE,
        size_multiple: int = full_resolution.DEFAULT_SIZE_MULTIPLE,
        max_pixels: int = imaging.COLORIZE_MAX_PIXELS,
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
        self.takes_hints = models.takes_hints(generator)
        logits_and_ab = unet_lite.logits_and_ab_model(generator)
        self._logits_and_ab = logits_and_ab
        network_inputs = [
            _spec([None, None, None, 1], tf.float32),
            _spec([None, None, None, 2], tf.float32),
            _spec([None, None, None, 1], tf.float32),
        ]
        # One traced network, called by every signature: tracing the Keras
        # model once instead of once per signature halves the export time.
        self._generate = tf.function(
            self._generate_once, input_signature=network_inputs
        )
        # Photos without hints: a hint branch's automatic generator skips
        # the branch (the same result); other models are the one network.
        self._automatic_model = (
            models.automatic_generator(generator) if self.takes_hints else None
        )
        if self._automatic_model is not None:
            self._automatic = tf.function(
                self._automatic_once, input_signature=network_inputs[:1]
            )
        else:
            self._automatic = lambda l_normalized: self._generate(
                l_normalized, *_no_hints(l_normalized)
            )
        self.predict_ab = tf.function(
            self._predict_ab,
            input_signature=[
                _spec([None, None, None, 1], tf.float32, L_CHANNEL)
            ],
        )
        self.colorize_image = tf.function(
            self._colorize_image,
            input_signature=[_spec([None, None, None, None], tf.uint8, IMAGE)],
        )
        self.serving_default = tf.function(
            self._serving_default,
            input_signature=[_spec([None], tf.string, IMAGE_BYTES)],
        )
        hint_inputs = [
            _spec([None, None, 2], tf.float32, HINT_POINTS),
            _spec([None, None, 3], tf.uint8, HINT_COLORS),
        ]
        self._endpoints = {
            'serving_default': self.serving_default,
            'colorize_image': self.colorize_image,
            'predict_ab': self.predict_ab,
        }
        if self.takes_hints:
            self._endpoints['colorize_with_hints'] = tf.function(
                self._colorize_with_hints,
                input_signature=[
                    _spec([None], tf.string, IMAGE_BYTES),
                    *hint_inputs,
                ],
            )
            self._endpoints['predict_ab_with_hints'] = tf.function(
                self._predict_ab_with_hints,
                input_signature=[
                    _spec([None, None, None, 1], tf.float32, L_CHANNEL),
                    _spec([None, None, None, 2], tf.float32, HINT_AB),
                    _spec([None, None, None, 1], tf.float32, HINT_MASK),
                ],
            )
        if logits_and_ab is not None:
            self._logits = tf.function(
                self._logits_once, input_signature=network_inputs
            )
            self._endpoints[SUGGEST_SIGNATURE] = tf.function(
                self._suggest_colors,
                input_signature=[
                    _spec([None], tf.string, IMAGE_BYTES),
                    _spec([None, 2], tf.float32, POINT),
                    *hint_inputs,
                ],
            )

    def _generate_once(self, l_normalized, hint_ab, hint_mask) -> tf.Tensor:
        inputs = models.generator_inputs(
            self.generator, l_normalized, hint_ab, hint_mask
        )
        return tf.cast(self.generator(inputs, training=False), tf.float32)

    def _automatic_once(self, l_normalized) -> tf.Tensor:
        return tf.cast(
            self._automatic_model(l_normalized, training=False), tf.float32
        )

    def _logits_once(self, l_normalized, hint_ab, hint_mask) -> tf.Tensor:
        inputs = models.generator_inputs(
            self.generator, l_normalized, hint_ab, hint_mask
        )
        return self._logits_and_ab(inputs, training=False)[0]

    def _predict_ab(self, l_channel: tf.Tensor) -> dict[str, tf.Tensor]:
        return {AB: self._automatic(l_channel)}

    def _predict_ab_with_hints(self, l_channel, hint_ab, hint_mask):
        return {AB: self._generate(l_channel, hint_ab, hint_mask)}

    def _working_inputs(self, l_channel, points, colors):
        """Working L [1, h, w, 1] with its hint maps, and the working size.

        l_channel: [1, H, W, 1]; points [N, 2] and colors [N, 3].
        """
        working_l, working_size = full_resolution.to_working_l(
            l_channel, self.render_size, self.size_multiple
        )
        hint_ab, hint_mask = full_resolution.working_hints(
            points,
            colors,
            tf.shape(l_channel)[1:3],
            working_size,
            tf.shape(working_l)[1:3],
        )
        return (working_l, hint_ab, hint_mask), working_size

    def _colorize_rgb(self, images, points=None, colors=None) -> tf.Tensor:
        """uint8 [B, H, W, 1 or 3] -> uint8 RGB, full resolution.

        With points and colors (one image), that image's hints.
        """
        l_channel = full_resolution.l_channel_from_uint8(images)
        if points is None:
            working_l, working_size = full_resolution.to_working_l(
                l_channel, self.render_size, self.size_multiple
            )
            working_ab = self._automatic(working_l)
        else:
            inputs, working_size = self._working_inputs(
                l_channel, points, colors
            )
            if self._automatic_model is None:
                working_ab = self._generate(*inputs)
            else:
                # No point inside the photo (N = 0, or only padding).
                working_ab = tf.cond(
                    tf.reduce_any(inputs[2] > 0),
                    lambda: self._generate(*inputs),
                    lambda: self._automatic(inputs[0]),
                )
        ab = full_resolution.from_working_ab(
            working_ab, working_size, tf.shape(l_channel)[1:3]
        )
        return full_resolution.lab_to_uint8(l_channel, ab)

    def _colorize_image(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
        channels = tf.shape(image)[-1]
        check = tf.debugging.Assert(
            (channels == 1) | (channels == 3),
            [
                'colorize_image takes 1 (gray) or 3 (RGB) channels, got',
                channels,
            ],
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

    def _decode(self, image_bytes: tf.Tensor) -> tf.Tensor:
        return image_decoding.decode_image(image_bytes, self.max_pixels)[
            tf.newaxis
        ]

    def _serving_default(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        # Images in a batch have different sizes: one at a time.
        pngs = tf.map_fn(
            lambda one: tf.io.encode_png(
                self._colorize_rgb(self._decode(one))[0]
            ),
            image_bytes,
            fn_output_signature=_spec([], tf.string),
        )
        return {COLORIZED_PNG: pngs}

    def _colorize_with_hints(self, image_bytes, hint_points, hint_colors):
        def colorize_one(item):
            one, points, colors = item
            return tf.io.encode_png(
                self._colorize_rgb(self._decode(one), points, colors)[0]
            )

        pngs = tf.map_fn(
            colorize_one,
            (image_bytes, hint_points, hint_colors),
            fn_output_signature=_spec([], tf.string),
        )
        return {COLORIZED_PNG: pngs}

    def _suggest_colors(self, image_bytes, point, hint_points, hint_colors):
        def suggest_one(item):
            one, at, points, colors = item
            l_channel = full_resolution.l_channel_from_uint8(self._decode(one))
            inputs, working_size = self._working_inputs(
                l_channel, points, colors
            )
            height = tf.cast(tf.shape(l_channel)[1], tf.float32)
            width = tf.cast(tf.shape(l_channel)[2], tf.float32)
            tf.debugging.assert_less(
                at,
                tf.stack([width, height]),
                message='suggest_colors: the point is outside the image',
            )
            tf.debugging.assert_non_negative(
                at, message='suggest_colors: the point is outside the image'
            )
            return full_resolution.suggest_at(
                self._logits(*inputs)[0],
                l_channel[0],
                working_size,
                at,
                SUGGESTIONS,
            )

        colours, probabilities = tf.map_fn(
            suggest_one,
            (image_bytes, point, hint_points, hint_colors),
            fn_output_signature=(
                _spec([SUGGESTIONS, 3], tf.uint8),
                _spec([SUGGESTIONS], tf.float32),
            ),
        )
        return {SUGGESTED_COLORS: colours, PROBABILITIES: probabilities}

    def endpoints(self) -> dict[str, tf.types.experimental.PolymorphicFunction]:
        """The exported signatures by name (each a tf.function)."""
        return dict(self._endpoints)


def _no_hints(l_channel: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Zero hint maps the size of L [B, H, W, 1]."""
    mask = tf.zeros_like(l_channel)
    return tf.concat([mask, mask], axis=-1), mask
