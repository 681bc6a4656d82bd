r"""Test-time augmentation: does averaging several predictions help?

The model bundled before the colour-bins one sat 0.07 dB below gray on
val PSNR (MODEL_CARD.md); this bench was written for it, and its figures
in BENCHMARKS.md are that model's.
Averaging a model's predictions over flips or working sizes is the
cheapest ensemble there is: it needs no training, and the mean of several
guesses is nearer the conditional mean, which is what PSNR rewards. It is
also paler, so each ensemble is measured with a few chroma gains too
(`bench_chroma_gain`'s cousin), to see whether colour can be bought back.

Ensembles, each the mean of full-resolution a*b*:
  plain:        the model at its render size;
  flip:         that and the horizontally flipped L, flipped back;
  sizes:        the model at each of --sizes;
  flip+sizes:   both.

The metrics are the evaluate tool's own (`evaluate_lib.image_metrics`).

Usage (the figures in BENCHMARKS.md):

  python -m bench.bench_tta --image_dir=runs/bundled/val_photos
"""

import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from bench import common
from chromagen_tf import metrics
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import evaluate_lib

_IMAGE_DIR = flags.DEFINE_string(
    'image_dir', None, 'Folder of colour photos (the val photos).'
)
_MODEL = flags.DEFINE_string(
    'model', '', 'Any model colorize takes; empty: the bundled one.'
)
_SIZES = flags.DEFINE_list(
    'sizes', ['192', '256'], "Working sizes averaged by the 'sizes' ensembles."
)
_GAINS = flags.DEFINE_list(
    'gains', ['1', '1.2', '1.4'], 'Factors each ensemble\'s a*b* are scaled by.'
)
_OUTPUT = flags.DEFINE_string('output', '', 'Also write JSON here.')
flags.mark_flags_as_required(['image_dir'])

_BOTH = (False, True)


def _flipped(colorizer, l_channel):
    ab = colorizer.predict_ab([tf.reverse(l_channel, axis=[2])])[0]
    return tf.reverse(ab, axis=[2])


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    gains = [float(gain) for gain in _GAINS.value]
    plain = colorize_lib.load_colorizer(_MODEL.value or None)
    own = plain.render_size
    sizes = [int(size) for size in _SIZES.value]
    # Each (size, flipped) prediction runs once per photo and serves every
    # ensemble that holds it.
    members = {
        'plain': [(own, False)],
        'flip': [(own, False), (own, True)],
        'sizes': [(size, False) for size in sizes],
        'flip+sizes': [(size, flip) for size in sizes for flip in _BOTH],
    }
    colorizers = {size: plain.with_render_size(size) for size in {own, *sizes}}
    keys = sorted({key for key_list in members.values() for key in key_list})
    per_image = {
        (name, gain): {metric: [] for metric in metrics.IMAGE_METRICS}
        for name in members
        for gain in gains
    }
    seconds = {key: [] for key in keys}
    for _, l_channel, ab_true in evaluate_lib.examples_from_images(
        _IMAGE_DIR.value
    ):
        predictions = {}
        for size, flip in keys:
            colorizer = colorizers[size]
            start = time.perf_counter()
            if flip:
                ab = _flipped(colorizer, l_channel)
            else:
                ab = colorizer.predict_ab([l_channel])[0]
            predictions[(size, flip)] = ab
            seconds[(size, flip)].append(time.perf_counter() - start)
        for name, key_list in members.items():
            ensemble = [predictions[key] for key in key_list]
            ab_mean = tf.add_n(ensemble) / len(ensemble)
            for gain in gains:
                values = evaluate_lib.image_metrics(
                    l_channel, ab_mean * gain, ab_true
                )
                for metric, value in values.items():
                    per_image[(name, gain)][metric].append(float(value))
    common.check_found_photos(len(seconds[keys[0]]), _IMAGE_DIR.value)
    rows = {
        f'{name} x{gain:g}': evaluate_lib.summarize(values)
        for (name, gain), values in per_image.items()
    }
    common.print_metrics_table('ensemble x gain', rows)
    # The first photo includes tracing; medians over the rest.
    medians = {
        f"{size}{' flipped' if flip else ''}": float(np.median(values[1:]))
        for (size, flip), values in seconds.items()
    }
    print(
        'median seconds per prediction:',
        {name: round(value, 3) for name, value in medians.items()},
    )
    common.write_report(
        {
            'config': common.flag_values(
                _IMAGE_DIR, _MODEL, _SIZES, _GAINS, _OUTPUT
            ),
            'machine': common.machine(),
            'render_size': plain.render_size,
            'ensembles': rows,
            'median_seconds_per_prediction': medians,
        },
        _OUTPUT.value,
    )


if __name__ == '__main__':
    app.run(main)
