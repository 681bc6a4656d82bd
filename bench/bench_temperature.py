r"""Accuracy against colourfulness across annealed-mean temperatures.

A colour-bins model (`--color_head=bins`, Zhang et al. 2016) predicts a
distribution over a*b* bins; its annealed mean at temperature T runs from
the mean (T = 1: the least squared error) towards the most likely bin
(T -> 0; gray wherever gray is the likeliest), and the prior strength
divides out the training set's prior over the bins to bring rarer colours
forward. This decodes one model at each setting and measures each with the evaluate tool's own per-image metrics
(`evaluate_lib`), so its rows compare with the chroma-gain and blend
tables in BENCHMARKS.md. Gray is the first row.

Usage (the figures in BENCHMARKS.md):

  python -m bench.bench_temperature --image_dir=runs/bins/val_photos \
      --model=runs/bins/model --stage=pretrain --render_size=256
"""

from absl import app
from absl import flags

from bench import common
from chromagen_tf import metrics
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import evaluate_lib

_IMAGE_DIR = flags.DEFINE_string('image_dir', None,
                                 'Folder of colour photos (the val photos).')
_MODEL = flags.DEFINE_string(
    'model', '', 'A colour-bins model: a training model_dir or a bundled '
    'folder; empty: the bundled one.')
_STAGE = flags.DEFINE_enum('stage', 'gan', ['pretrain', 'gan'],
                           'For a training model_dir: which stage.')
_RENDER_SIZE = flags.DEFINE_integer('render_size', None,
                                    "Working size; default: the model's own.")
_TEMPERATURES = flags.DEFINE_list('temperatures',
                                  ['0.2', '0.3', '0.38', '0.5', '0.7', '1'],
                                  'Annealed-mean temperatures to decode at.')
_PRIOR_STRENGTHS = flags.DEFINE_list(
    'prior_strengths', ['0'],
    'Prior strengths (logit adjustment, training/bin_prior.py) to decode '
    'at; every temperature is measured at each.')
_OUTPUT = flags.DEFINE_string('output', '', 'Also write JSON here.')
flags.mark_flags_as_required(['image_dir'])


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    examples = list(evaluate_lib.examples_from_images(_IMAGE_DIR.value))
    common.check_found_photos(len(examples), _IMAGE_DIR.value)
    rows = {}
    settings = [(None, None)] + [(float(t), float(tau))
                                 for tau in _PRIOR_STRENGTHS.value
                                 for t in _TEMPERATURES.value]
    for temperature, prior_strength in settings:
        if temperature is None:
            predict = lambda l_channel, ab_true: ab_true * 0.0
        else:
            colorizer = colorize_lib.load_colorizer(_MODEL.value or None,
                                                    _STAGE.value,
                                                    _RENDER_SIZE.value,
                                                    temperature, prior_strength)
            predict = lambda l_channel, _, c=colorizer: c.predict_ab(
                [l_channel])[0]
        per_image = {name: [] for name in metrics.IMAGE_METRICS}
        for _, l_channel, ab_true in examples:
            values = evaluate_lib.image_metrics(l_channel,
                                                predict(l_channel, ab_true),
                                                ab_true)
            for name, value in values.items():
                per_image[name].append(float(value))
        name = ('gray' if temperature is None else
                f'T {temperature:g}, tau {prior_strength:g}')
        rows[name] = evaluate_lib.summarize(per_image)
    common.print_metrics_table('decoding', rows)
    common.write_report(
        {
            'config':
                common.flag_values(_IMAGE_DIR, _MODEL, _STAGE, _RENDER_SIZE,
                                   _TEMPERATURES, _PRIOR_STRENGTHS, _OUTPUT),
            'machine':
                common.machine(),
            'temperatures':
                rows
        }, _OUTPUT.value)


if __name__ == '__main__':
    app.run(main)
