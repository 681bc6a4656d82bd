"""A generator plus the full-resolution pre- and post-processing.

A `Colorizer` colorizes at full resolution with the same pre- and
post-processing functions as the exported serving graph
(`full_resolution`), so a photo comes out the same from the command line
as from TF Serving. Images of different sizes share a batch: they are
grouped by working size (and by whether they have hints, for a model
whose automatic part can run alone), and each group is one call to the
network. A hint model also takes each photo's colour hints, and a
colour-bins model
suggests colours at a point. `colorize_lib.load_colorizer` makes one from
any model a user may point at.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from chromagen_tf import errors
from chromagen_tf import hint_format
from chromagen_tf import hints as hints_lib
from chromagen_tf.serving import full_resolution


class Colorizer:
    """A generator plus the full-resolution pre- and post-processing."""

    def __init__(
        self,
        predict_fn,
        render_size: int,
        size_multiple: int,
        description: str = '',
        keep_alive: object = None,
        takes_hints: bool = False,
        logits_fn=None,
        automatic_fn=None,
    ):
        """Wraps a prediction function.

        Args:
          predict_fn: normalised L [B, H, W, 1], hint_ab [B, H, W, 2] and
            hint_mask [B, H, W, 1] -> normalised ab [B, H, W, 2], for H and
            W multiples of size_multiple; a model without hints ignores
            the hint maps.
          render_size: Longer side of the working size.
          size_multiple: See `full_resolution.working_shape`.
          description: What was loaded, for logs.
          keep_alive: An object predict_fn needs alive (a loaded SavedModel).
          takes_hints: Whether the model follows colour hints.
          logits_fn: For a colour-bins model, the same inputs -> bin logits
            [B, H/4, W/4, Q], for colour suggestions; else None.
          automatic_fn: For a hint model, normalised L -> what predict_fn
            gives without hints, at less cost (a hint branch's automatic
            generator); photos without hints go to it. None: predict_fn
            with zero hint maps.
        """
        self.render_size = render_size
        self.size_multiple = size_multiple
        self.description = description
        self.takes_hints = takes_hints
        self._predict_fn = predict_fn
        self._logits_fn = logits_fn
        self._automatic_fn = automatic_fn
        self._keep_alive = keep_alive
        spec = tf.TensorSpec
        self._lightness = _Compiled(
            lambda image: full_resolution.l_channel_from_uint8(
                image[tf.newaxis]
            ),
            [spec([None, None, None], tf.uint8)],
        )
        self._prepare = tf.function(
            lambda l_channel: full_resolution.to_working_l(
                l_channel, render_size, size_multiple
            ),
            input_signature=[spec([1, None, None, 1], tf.float32)],
        )
        self._suggest = tf.function(
            full_resolution.suggest_at, reduce_retracing=True
        )
        self._hint_maps = tf.function(
            full_resolution.working_hints,
            input_signature=[
                spec([None, 2], tf.float32),
                spec([None, 3], tf.uint8),
                spec([2], tf.int32),
                spec([2], tf.int32),
                spec([2], tf.int32),
            ],
        )
        # Not compiled: XLA needs the crop and resize sizes as constants.
        self._finish = tf.function(
            full_resolution.from_working_ab,
            input_signature=[
                spec([1, None, None, 2], tf.float32),
                spec([2], tf.int32),
                spec([2], tf.int32),
            ],
        )
        self._resize_ab = tf.function(
            lambda ab, size: tf.image.resize(ab, size, method='bilinear'),
            input_signature=[
                spec([1, None, None, 2], tf.float32),
                spec([2], tf.int32),
            ],
        )
        # Not compiled: the gamut mapping works on a data-dependent number
        # of pixels, which XLA recompiles (and runs slowly) for every size.
        self._to_uint8 = tf.function(
            full_resolution.lab_to_uint8,
            input_signature=[
                spec([1, None, None, 1], tf.float32),
                spec([1, None, None, 2], tf.float32),
            ],
        )
        self._to_uint16 = tf.function(
            full_resolution.lab_to_uint16,
            input_signature=[
                spec([1, None, None, 1], tf.float32),
                spec([1, None, None, 2], tf.float32),
            ],
        )

    def with_render_size(self, render_size: int) -> 'Colorizer':
        """The same loaded model at another working size (no reload)."""
        if render_size == self.render_size:
            return self
        return Colorizer(
            self._predict_fn,
            render_size,
            self.size_multiple,
            self.description,
            self._keep_alive,
            self.takes_hints,
            self._logits_fn,
            self._automatic_fn,
        )

    def working_size(self, l_channel: tf.Tensor) -> tuple[int, int]:
        """The unpadded (height, width) the network sees an image at."""
        return tuple(int(v) for v in self._prepare(l_channel)[1])

    def _inputs(self, l_channel: tf.Tensor, hint_list):
        """(working L, hint_ab, hint_mask, working size) of one image.

        hint_list: None, a list of `hint_format.Hint`, or hint maps (hint_ab
        [h, w, 2], hint_mask [h, w, 1]) already at the working size.
        """
        working_l, working_size = self._prepare(l_channel)
        if hint_list is not None and len(hint_list) and not self.takes_hints:
            raise errors.UsageError(
                f'{self.description} does not take colour hints; use a hint '
                'model (the bundled model is one).'
            )
        padded_size = tf.shape(working_l)[1:3]
        if isinstance(hint_list, tuple):
            paddings = [
                [0, padded_size[0] - working_size[0]],
                [0, padded_size[1] - working_size[1]],
                [0, 0],
            ]
            return (
                working_l,
                tf.pad(hint_list[0], paddings)[tf.newaxis],
                tf.pad(hint_list[1], paddings)[tf.newaxis],
                working_size,
            )
        points, colors = hints_lib.as_arrays(hint_list or [])
        hint_ab, hint_mask = self._hint_maps(
            points, colors, tf.shape(l_channel)[1:3], working_size, padded_size
        )
        return working_l, hint_ab, hint_mask, working_size

    def _predict_working(
        self, l_channels: Sequence[tf.Tensor], hint_lists=None
    ) -> list:
        """Working-size predictions: (ab [1, h, w, 2], working size) each.

        hint_lists: one list of `hint_format.Hint` (or None) per image.
        Images whose padded working sizes match share one network call;
        without hints they share the automatic one (`automatic_fn`).
        """
        hint_lists = hint_lists or [None] * len(l_channels)
        prepared = [
            self._inputs(l_channel, hint_list)
            for l_channel, hint_list in zip(l_channels, hint_lists, strict=True)
        ]
        groups = {}
        for index, inputs in enumerate(prepared):
            automatic = self._automatic_fn is not None and not bool(
                tf.reduce_any(inputs[2] > 0)
            )
            key = (tuple(inputs[0].shape[1:3]), automatic)
            groups.setdefault(key, []).append(index)
        results = [None] * len(l_channels)
        for (_, automatic), indices in groups.items():
            batch = [
                tf.concat([prepared[i][part] for i in indices], axis=0)
                for part in range(1 if automatic else 3)
            ]
            predict = self._automatic_fn if automatic else self._predict_fn
            ab_batch = tf.cast(predict(*batch), tf.float32)
            for position, index in enumerate(indices):
                results[index] = (
                    ab_batch[position : position + 1],
                    prepared[index][3],
                )
        return results

    def suggest_colors(
        self, image: np.ndarray, x: float, y: float, hint_list=None, k: int = 6
    ) -> list[tuple[str, float]]:
        """The model's k most likely colours at a point of a photo.

        The colour-bins distribution at (x, y) given the hints so far
        (`color_bins.suggest`), each shown at the photo's own lightness.

        Returns:
          [(hex sRGB, probability)], most likely first.

        Raises:
          errors.UsageError: the model has no colour-bins head, or the point
            is outside the photo.
        """
        if self._logits_fn is None:
            raise errors.UsageError(
                f'{self.description} has no colour-bins head, so it has no '
                'colour distribution to suggest from.'
            )
        l_channel = self.lightness(image)
        height, width = int(l_channel.shape[1]), int(l_channel.shape[2])
        hint_format.check_inside(
            [hint_format.Hint(x, y, (0, 0, 0))], width, height, 'point'
        )
        working_l, hint_ab, hint_mask, working_size = self._inputs(
            l_channel, hint_list
        )
        colours, probabilities = self._suggest(
            self._logits_fn(working_l, hint_ab, hint_mask)[0],
            l_channel[0],
            working_size,
            tf.constant([x, y], tf.float32),
            k,
        )
        return [
            (
                hint_format.Hint(0, 0, tuple(int(v) for v in colour)).hex,
                float(probability),
            )
            for colour, probability in zip(
                colours.numpy(), probabilities.numpy()
            )
        ]

    def _full_resolution(self, working, l_channel: tf.Tensor) -> tf.Tensor:
        ab_working, working_size = working
        return self._finish(ab_working, working_size, tf.shape(l_channel)[1:3])

    def predict_ab(
        self, l_channels: Sequence[tf.Tensor], hint_lists=None
    ) -> list[tf.Tensor]:
        """Full-resolution ab for a batch of L channels of any sizes.

        Args:
          l_channels: [1, H, W, 1] float32 tensors, L in [0, 100].
          hint_lists: Per image, what `_inputs` takes, or None.

        Returns:
          One [1, H, W, 2] float32 tensor of ab (real Lab units) per input.
        """
        return [
            self._full_resolution(working, l_channel)
            for working, l_channel in zip(
                self._predict_working(l_channels, hint_lists), l_channels
            )
        ]

    def predict_working_ab(
        self, l_channels: Sequence[tf.Tensor], hint_lists=None
    ) -> list[tf.Tensor]:
        """ab at the working size, for work that is cheaper there.

        `predict_ab` is this followed by `ab_to_full_resolution` (to float32
        rounding: the resize is bilinear, so it commutes with the ab scale).

        Args:
          l_channels: [1, H, W, 1] float32 tensors, L in [0, 100].

        Returns:
          One [1, h, w, 2] float32 tensor of ab (real Lab units) per input,
          at its working size (longer side about render_size), unpadded.
        """
        return [
            self._finish(ab_working, working_size, working_size)
            for ab_working, working_size in self._predict_working(
                l_channels, hint_lists
            )
        ]

    def ab_to_full_resolution(self, ab, l_channel: tf.Tensor) -> tf.Tensor:
        """Working-size ab [1, h, w, 2] (a tensor or an array) -> ab
        [1, H, W, 2] at the size of l_channel [1, H, W, 1]."""
        return self._resize_ab(
            tf.convert_to_tensor(ab, tf.float32), tf.shape(l_channel)[1:3]
        )

    def lightness(self, image: np.ndarray) -> tf.Tensor:
        """uint8 [H, W, 1 or 3] -> L [1, H, W, 1] in [0, 100]."""
        image = tf.convert_to_tensor(image, tf.uint8)
        return self._lightness(_pixels(image[tf.newaxis]), image)

    def colorize(
        self, images: Sequence[np.ndarray], hint_lists=None
    ) -> list[np.ndarray]:
        """uint8 gray or RGB images [H, W, 1 or 3] -> uint8 RGB, same sizes.

        Colour inputs are reduced to their lightness first. hint_lists: one
        list of `hint_format.Hint` (or None) per image, for a hint model.
        """
        l_channels = [self.lightness(image) for image in images]
        outputs = []
        # Full-resolution ab exists for one image at a time: a batch of
        # 12 MP photos would otherwise hold 100 MB of it per photo.
        for working, l_channel in zip(
            self._predict_working(l_channels, hint_lists), l_channels
        ):
            ab = self._full_resolution(working, l_channel)
            outputs.append(self.to_uint8(l_channel, ab))
        return outputs

    def to_uint8(self, l_channel: tf.Tensor, ab) -> np.ndarray:
        """L [1, H, W, 1] and ab [1, H, W, 2] (real Lab units, a tensor or
        an array) -> uint8 RGB [H, W, 3], gamut-mapped."""
        ab = tf.convert_to_tensor(ab, tf.float32)
        return self._to_uint8(l_channel, ab)[0].numpy()

    def to_uint16(self, l_channel: tf.Tensor, ab) -> np.ndarray:
        """As `to_uint8`, in 16-bit RGB (what 10-bit video can hold)."""
        ab = tf.convert_to_tensor(ab, tf.float32)
        return self._to_uint16(l_channel, ab)[0].numpy()

    def gray(self, image: np.ndarray) -> np.ndarray:
        """The lightness of an image as a uint8 RGB gray picture."""
        l_channel = self.lightness(image)
        ab = tf.zeros_like(tf.concat([l_channel, l_channel], -1))
        return self.to_uint8(l_channel, ab)


# From this size on, the full-resolution steps are compiled with XLA, which
# fuses their element-wise chains: 4-5x faster on a 12 MP photo (0.3 s
# instead of 1.6 s for Lab -> RGB, measured on 2 cores). Below it, the
# per-shape compilation would cost more than it saves.
_XLA_MIN_PIXELS = 1_000_000


def _pixels(tensor: tf.Tensor) -> int:
    """Pixels of a [B, H, W, C] tensor."""
    return int(tensor.shape[1]) * int(tensor.shape[2])


class _Compiled:
    """A tf.function with an XLA twin, picked by image size."""

    def __init__(self, function, input_signature):
        self._plain = tf.function(function, input_signature=input_signature)
        self._xla = tf.function(
            function, input_signature=input_signature, jit_compile=True
        )

    def __call__(self, pixels: int, *args):
        if pixels >= _XLA_MIN_PIXELS:
            return self._xla(*args)
        return self._plain(*args)
