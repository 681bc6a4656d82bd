r"""The cost of gamut mapping on a 12-megapixel photo.

Times `full_resolution.lab_to_uint8` (Lab -> sRGB with chroma reduced at
fixed L and hue, `color.lab_to_rgb_in_gamut`) against the same conversion
with per-channel clipping (`color.lab_to_rgb`), on a 4032x3024 photo, for
three predictions of its a*b*: the photo's own (in gamut but for rounding),
the same with doubled chroma (a saturated model), and uniform random a*b*
(nearly everything out of gamut). Median of --repeats calls after a warm-up,
in tf.function graphs, as the colorize tool runs them.

Usage:

  python bench/bench_gamut.py --repeats=5
"""

import argparse
import os
import statistics
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)

# pylint: disable=wrong-import-position
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
import tensorflow as tf  # noqa: E402

from chromagen_tf import color  # noqa: E402
from chromagen_tf.serving import full_resolution  # noqa: E402


def _median_seconds(function, *args, repeats):
    function(*args)  # Trace and warm up.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()
    with Image.open(os.path.join(_REPO, 'sample_photos', 'fig_bowl.jpg')) as im:
        rgb = np.asarray(im.convert('RGB').resize((4032, 3024),
                                                  Image.Resampling.BICUBIC))
    lab = color.rgb_to_lab(tf.constant(rgb, tf.float32)[tf.newaxis] / 255.0)
    l_channel, ab = lab[..., :1], lab[..., 1:]
    rng = np.random.default_rng(0)
    predictions = {
        'own a*b*': ab,
        'doubled chroma': ab * 2.0,
        'random a*b*': tf.constant(
            rng.uniform(-110, 110, ab.shape).astype(np.float32)),
    }
    spec = [tf.TensorSpec([1, None, None, 1]), tf.TensorSpec([1, None, None, 2])]
    mapped = tf.function(full_resolution.lab_to_uint8, input_signature=spec)
    clipped = tf.function(
        lambda l, a: tf.cast(tf.round(color.lab_to_rgb(
            tf.concat([l, a], -1)) * 255.0), tf.uint8), input_signature=spec)
    outside = tf.function(lambda l, a: tf.reduce_mean(tf.cast(
        tf.logical_not(color._in_gamut(  # pylint: disable=protected-access
            color._lab_to_linear_rgb(tf.concat([l, a], -1)))),  # pylint: disable=protected-access
        tf.float32)), input_signature=spec)
    print('| a*b* | out of gamut | clip (s) | gamut map (s) | extra (ms) |')
    print('|---|---|---|---|---|')
    for name, prediction in predictions.items():
        fraction = float(outside(l_channel, prediction))
        clip_time = _median_seconds(clipped, l_channel, prediction,
                                    repeats=args.repeats)
        map_time = _median_seconds(mapped, l_channel, prediction,
                                   repeats=args.repeats)
        print(f'| {name} | {fraction:.1%} | {clip_time:.3f} | '
              f'{map_time:.3f} | {1000 * (map_time - clip_time):.0f} |',
              flush=True)


if __name__ == '__main__':
    main()
