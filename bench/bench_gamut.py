r"""The cost of gamut mapping on a 12-megapixel photo.

Times `full_resolution.lab_to_uint8` (Lab -> sRGB with chroma reduced at
fixed L and hue, `color.lab_to_rgb_in_gamut`) against the same conversion
with per-channel clipping (`color.lab_to_rgb`), on a 4032x3024 photo, for
three predictions of its a*b*: the photo's own (in gamut but for rounding),
the same with doubled chroma (a saturated model), and uniform random a*b*
(nearly everything out of gamut). Median of --repeats calls after a warm-up,
in tf.function graphs, as the colorize tool runs them.

Usage:

  python -m bench.bench_gamut --repeats=5
"""

import os

from absl import app
from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

from bench import common
from chromagen_tf import color
from chromagen_tf.serving import full_resolution

_REPEATS = flags.DEFINE_integer(
    'repeats',
    5,
    'Timed calls of each conversion; the median is reported.',
    lower_bound=1,
)


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    with Image.open(os.path.join(common.SAMPLE_PHOTOS, 'fig_bowl.jpg')) as im:
        rgb = np.asarray(
            im.convert('RGB').resize((4032, 3024), Image.Resampling.BICUBIC)
        )
    lab = color.rgb_to_lab(tf.constant(rgb, tf.float32)[tf.newaxis] / 255.0)
    l_channel, ab = lab[..., :1], lab[..., 1:]
    rng = np.random.default_rng(0)
    predictions = {
        'own a*b*': ab,
        'doubled chroma': ab * 2.0,
        'random a*b*': tf.constant(
            rng.uniform(-110, 110, ab.shape).astype(np.float32)
        ),
    }
    spec = [
        tf.TensorSpec([1, None, None, 1]),
        tf.TensorSpec([1, None, None, 2]),
    ]
    mapped = tf.function(full_resolution.lab_to_uint8, input_signature=spec)
    clipped = tf.function(
        lambda l, a: tf.cast(
            tf.round(color.lab_to_rgb(tf.concat([l, a], -1)) * 255.0), tf.uint8
        ),
        input_signature=spec,
    )
    outside = tf.function(
        lambda l, a: tf.reduce_mean(
            tf.cast(
                tf.logical_not(
                    color._in_gamut(  # pylint: disable=protected-access
                        color._lab_to_linear_rgb(tf.concat([l, a], -1))
                    )
                ),  # pylint: disable=protected-access
                tf.float32,
            )
        ),
        input_signature=spec,
    )
    print('| a*b* | out of gamut | clip (s) | gamut map (s) | extra (ms) |')
    print('|---|---|---|---|---|')
    for name, prediction in predictions.items():
        fraction = float(outside(l_channel, prediction))
        clip_time = common.median_seconds(
            lambda p=prediction: clipped(l_channel, p).numpy(), _REPEATS.value
        )
        map_time = common.median_seconds(
            lambda p=prediction: mapped(l_channel, p).numpy(), _REPEATS.value
        )
        print(
            f'| {name} | {fraction:.1%} | {clip_time:.3f} | '
            f'{map_time:.3f} | {1000 * (map_time - clip_time):.0f} |',
            flush=True,
        )


if __name__ == '__main__':
    app.run(main)
