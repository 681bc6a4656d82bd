r"""Accuracy against colourfulness across colour-bins decoding settings.

A colour-bins model (`--color_head=bins`, Zhang et al. 2016) predicts a
distribution over a*b* bins; its annealed mean at temperature T runs from
the mean (T = 1: the least squared error) towards the most likely bin
(T -> 0; gray wherever gray is the likeliest), and the prior strength tau
divides out the training set's prior over the bins to bring rarer colours
forward (`training/bin_prior.py`).

The network runs once per photo: its bin logits are kept and decoded at
every setting, then brought to full resolution with the colorize tool's
own post-processing and measured with the evaluate tool's per-image
metrics (`evaluate_lib`), so the rows compare with the chroma-gain and
blend tables in BENCHMARKS.md. Gray is the first row. The first photo is
also colorized through `colorize_lib.load_colorizer` at every uniform
setting, and the two must agree: the cached decoding is the model's own.

`--prior_rules` also tries priors that vary per pixel. With p_gray the
probability (at T = 1, no prior) of the bins within chroma 10 of gray:

  * uniform: tau everywhere (what `--prior_strength` does);
  * near_gray: tau * p_gray, so the prior pushes only where the model
    puts its mass near gray, and leaves confident colours alone;
  * far_from_gray: tau * (1 - p_gray), the opposite.

`--worst=N` lists, per setting, the N photos that lose the most PSNR
against gray, with their true colourfulness and mean p_gray (over the
photo, without the working size's padding).

Usage (the figures in BENCHMARKS.md):

  python -m bench.bench_temperature --image_dir=runs/bins/val_photos \
      --model=runs/bins/model --stage=pretrain --render_size=256
"""

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from bench import common
from chromagen_tf import bundled
from chromagen_tf import color
from chromagen_tf import metrics
from chromagen_tf import models
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import colorizer
from chromagen_tf.inference import evaluate_lib
from chromagen_tf.models import color_bins
from chromagen_tf.models import unet_lite
from chromagen_tf.serving import full_resolution

_IMAGE_DIR = flags.DEFINE_string(
    'image_dir', None, 'Folder of colour photos (the val photos).'
)
_MODEL = flags.DEFINE_string(
    'model',
    '',
    'A colour-bins model: a training model_dir or a bundled '
    'folder; empty: the bundled one.',
)
_STAGE = flags.DEFINE_enum(
    'stage',
    'gan',
    ['pretrain', 'gan'],
    'For a training model_dir: which stage.',
)
_RENDER_SIZE = flags.DEFINE_integer(
    'render_size', None, "Working size; default: the model's own."
)
_TEMPERATURES = flags.DEFINE_list(
    'temperatures',
    ['0.2', '0.3', '0.38', '0.5', '0.7', '1'],
    'Annealed-mean temperatures to decode at.',
)
_PRIOR_STRENGTHS = flags.DEFINE_list(
    'prior_strengths',
    ['0'],
    'Prior strengths (logit adjustment, training/bin_prior.py) to decode '
    'at; every temperature is measured at each.',
)
_RULES = ('uniform', 'near_gray', 'far_from_gray')
_PRIOR_RULES = flags.DEFINE_multi_enum(
    'prior_rules',
    ['uniform'],
    _RULES,
    'How the prior strength is applied per pixel (module docstring); '
    'repeat the flag for several. Rules other than uniform skip tau = 0, '
    'where they all agree.',
)
_WORST = flags.DEFINE_integer(
    'worst',
    0,
    'Also list this many photos per setting: those that lose '
    'the most PSNR against gray.',
)
_OUTPUT = flags.DEFINE_string('output', '', 'Also write JSON here.')
flags.mark_flags_as_required(['image_dir'])

# Bins within this chroma (Lab units) of gray: the centre and its four
# nearest neighbours on the grid of spacing 10.
_NEAR_GRAY_CHROMA = 10.0


def _load_generator(model: str, stage: str):
    """(generator, model config, render size) of a colour-bins model."""
    generator, model_config, render_size, _ = colorize_lib.load_generator(
        model, stage
    )
    if model_config.color_head != 'bins':
        raise app.UsageError(f'{model} is not a colour-bins model.')
    return generator, model_config, render_size


class _CachedDecoder:
    """A Colorizer predict_fn: the network once per photo, then decodings.

    `new_photo()` forgets the logits; each call after it decodes the kept
    logits at `setting`, a (temperature, prior strength, rule) triple.
    """

    def __init__(self, generator):
        # Automatic colorization: a hint branch's automatic model, or a hint
        # model given no hints.
        automatic = models.automatic_generator(generator) or generator
        logits_and_ab = unet_lite.logits_and_ab_model(automatic)
        self._logits_of = tf.function(
            lambda l: logits_and_ab(models.generator_inputs(automatic, l)),
            input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
        )
        # The bilinear up-sampling of ab_small, the model's last layer.
        self._upsample = automatic.layers[-1]
        log_prior = automatic.get_layer('ab_small').log_prior
        self.has_prior = log_prior is not None
        self._log_prior = tf.constant(
            np.zeros(color_bins.NUM_BINS) if log_prior is None else log_prior,
            tf.float32,
        )
        chroma = np.hypot(*color_bins.bin_centres().T) * color.AB_SCALE
        self._near_gray = tf.constant(chroma <= _NEAR_GRAY_CHROMA + 1e-3)
        self._logits = None
        self.setting = None
        self.p_gray = None

    def new_photo(self):
        self._logits = None

    def __call__(self, working_l, *unused_hint_maps):
        if self._logits is None:
            self._logits = tf.cast(self._logits_of(working_l)[0], tf.float32)
            probabilities = tf.nn.softmax(self._logits, axis=-1)
            self.p_gray = tf.reduce_sum(
                tf.where(self._near_gray, probabilities, 0.0), -1, keepdims=True
            )
        temperature, prior_strength, rule = self.setting
        strength = {
            'uniform': prior_strength,
            'near_gray': prior_strength * self.p_gray,
            'far_from_gray': prior_strength * (1.0 - self.p_gray),
        }[rule]
        # The prior applied here, as the strength may vary per pixel.
        ab_small = color_bins.annealed_mean(
            self._logits - strength * self._log_prior, temperature
        )
        return self._upsample(ab_small)


def _settings():
    settings = []
    for rule in _PRIOR_RULES.value:
        for tau in map(float, _PRIOR_STRENGTHS.value):
            if rule != 'uniform' and not tau:
                continue
            settings += [(float(t), tau, rule) for t in _TEMPERATURES.value]
    return settings


def _name(setting) -> str:
    temperature, prior_strength, rule = setting
    name = f'T {temperature:g}, tau {prior_strength:g}'
    return name if rule == 'uniform' else f'{name} {rule}'


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    model = _MODEL.value or bundled.BUNDLED_DIR
    generator, model_config, render_size = _load_generator(model, _STAGE.value)
    decoder = _CachedDecoder(generator)
    model_colorizer = colorizer.Colorizer(
        decoder,
        _RENDER_SIZE.value or render_size,
        models.size_multiple(model_config.generator),
    )
    settings = _settings()
    if not decoder.has_prior and any(tau for _, tau, _ in settings):
        raise app.UsageError(
            f'{model} keeps no prior over the bins; only '
            '--prior_strengths=0 can be decoded.'
        )
    names = ['gray'] + [_name(setting) for setting in settings]
    per_image = {
        name: {metric: [] for metric in metrics.IMAGE_METRICS} for name in names
    }
    photos, p_gray = [], []
    for index, (key, l_channel, ab_true) in enumerate(
        evaluate_lib.examples_from_images(_IMAGE_DIR.value)
    ):
        photos.append(key)
        decoder.new_photo()
        predictions = [ab_true * 0.0]
        for setting in settings:
            decoder.setting = setting
            predictions.append(model_colorizer.predict_ab([l_channel])[0])
        p_gray.append(_photo_mean(decoder.p_gray, l_channel, model_colorizer))
        if index == 0:
            _check_against_colorizer(
                model,
                settings,
                model_colorizer.render_size,
                l_channel,
                predictions[1:],
            )
        for name, ab_pred in zip(names, predictions):
            values = evaluate_lib.image_metrics(l_channel, ab_pred, ab_true)
            for metric, value in values.items():
                per_image[name][metric].append(float(value))
    common.check_found_photos(len(photos), _IMAGE_DIR.value)
    rows = {
        name: evaluate_lib.summarize(values)
        for name, values in per_image.items()
    }
    common.print_metrics_table('decoding', rows)
    if _WORST.value:
        _print_worst(per_image, photos, p_gray, _WORST.value)
    common.write_report(
        {
            'config': common.flag_values(
                _IMAGE_DIR,
                _MODEL,
                _STAGE,
                _RENDER_SIZE,
                _TEMPERATURES,
                _PRIOR_STRENGTHS,
                _PRIOR_RULES,
                _OUTPUT,
            ),
            'machine': common.machine(),
            'temperatures': rows,
            'photos': photos,
            'p_gray': p_gray,
            'per_image': per_image,
        },
        _OUTPUT.value,
    )


def _check_against_colorizer(
    model, settings, render_size, l_channel, predictions
):
    """The cached decodings must equal the model's own at every uniform
    setting (the other rules have no counterpart in the model)."""
    for setting, ab_cached in zip(settings, predictions):
        temperature, prior_strength, rule = setting
        if rule != 'uniform':
            continue
        reference = colorize_lib.load_colorizer(
            model, _STAGE.value, render_size, temperature, prior_strength
        )
        difference = float(
            tf.reduce_max(
                tf.abs(reference.predict_ab([l_channel])[0] - ab_cached)
            )
        )
        if difference > 1e-2:
            raise AssertionError(
                f'The cached decoding differs from the colorizer by '
                f'{difference} (ab units) at {_name(setting)}.'
            )


def _photo_mean(p_gray, l_channel, colorizer) -> float:
    """Mean of p_gray over the photo, without the working size's padding."""
    height, width = (
        int(size)
        for size in full_resolution.working_shape(
            l_channel.shape[1],
            l_channel.shape[2],
            colorizer.render_size,
            colorizer.size_multiple,
        )[:2]
    )
    stride = unet_lite.OUTPUT_STRIDE
    return float(
        tf.reduce_mean(p_gray[:, : -(-height // stride), : -(-width // stride)])
    )


def _print_worst(per_image, photos, p_gray, count):
    gray_psnr = np.array(per_image['gray']['psnr'])
    truth_cf = per_image['gray']['colorfulness_gt']
    for name, values in per_image.items():
        if name == 'gray':
            continue
        loss = gray_psnr - np.array(values['psnr'])
        print(f'\n{name}: the {count} photos furthest below gray')
        print(
            f'{"photo":40s} {"dB below gray":>13s} {"truth CF":>8s} '
            f'{"CF":>6s} {"p_gray":>6s}'
        )
        for index in np.argsort(-loss)[:count]:
            print(
                f'{photos[index][-40:]:40s} {loss[index]:13.2f} '
                f'{truth_cf[index]:8.1f} '
                f'{values["colorfulness"][index]:6.1f} '
                f'{p_gray[index]:6.2f}'
            )


if __name__ == '__main__':
    app.run(main)
