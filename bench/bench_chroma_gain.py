r"""Accuracy against colourfulness: a model's a*b* scaled by a constant.

An L1-trained colorizer predicts a conditional median, which is paler than
the truth. The simplest way to buy colour back is to scale its a*b* by a
gain k > 1 at inference (the crude cousin of the annealed mean of Zhang et
al. 2016). This measures what that costs, with the evaluate tool's own
per-image metrics (`evaluate_lib.image_metrics`: gamut-mapped sRGB, PSNR,
AuC, colourfulness), so its rows compare with the GAN/L1 blends in
BENCHMARKS.md. The network runs once per photo; every gain reuses its a*b*.
Gain 0 is the gray baseline.

Usage (the figures in BENCHMARKS.md):

  python -m bench.bench_chroma_gain --image_dir=runs/bundled/val_photos \
      --gains=0,1,1.2,1.4,1.6,1.8
"""

from absl import app
from absl import flags

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
_RENDER_SIZE = flags.DEFINE_integer(
    'render_size', None, "Working size; default: the model's own."
)
_GAINS = flags.DEFINE_list(
    'gains',
    ['0', '1', '1.2', '1.4', '1.6', '1.8'],
    'Factors the predicted a*b* are scaled by.',
)
_OUTPUT = flags.DEFINE_string('output', '', 'Also write JSON here.')
flags.mark_flags_as_required(['image_dir'])


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    gains = [float(gain) for gain in _GAINS.value]
    colorizer = colorize_lib.load_colorizer(
        _MODEL.value or None, render_size=_RENDER_SIZE.value
    )
    per_image = {
        gain: {name: [] for name in metrics.IMAGE_METRICS} for gain in gains
    }
    for _, l_channel, ab_true in evaluate_lib.examples_from_images(
        _IMAGE_DIR.value
    ):
        ab_pred = colorizer.predict_ab([l_channel])[0]
        for gain in gains:
            values = evaluate_lib.image_metrics(
                l_channel, ab_pred * gain, ab_true
            )
            for name, value in values.items():
                per_image[gain][name].append(float(value))
    common.check_found_photos(
        len(per_image[gains[0]]['psnr']), _IMAGE_DIR.value
    )
    rows = {
        f'{gain:g}': evaluate_lib.summarize(per_image[gain]) for gain in gains
    }
    common.print_metrics_table('gain', rows)
    common.write_report(
        {
            'config': common.flag_values(
                _IMAGE_DIR, _MODEL, _RENDER_SIZE, _GAINS, _OUTPUT
            ),
            'machine': common.machine(),
            'render_size': colorizer.render_size,
            'gains': rows,
        },
        _OUTPUT.value,
    )


if __name__ == '__main__':
    app.run(main)
