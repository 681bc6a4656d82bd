"""Evaluating a colorization model on held-out photos: the evaluate library.

For each image the model predicts ab at the image's own size, exactly as
the colorize tool and the serving graph do (`colorizer.Colorizer`), and
the metrics of `chromagen_tf.metrics` compare it with the true ab. The same
metrics are computed for the trivial "gray" baseline (ab = 0 everywhere),
so that every number has a reference point.

Report (JSON; tools read these names, keep them stable):

  {
    "model":         {metric: value, ...},
    "gray_baseline": {metric: value, ...},
    "num_images":    N,
    "per_image":     [{"key": record key or path relative to the folder,
                       "model": {metric: value}, "gray_baseline": {...}},
                      ...] in input order, without delta_colorfulness,
    "config":        {how the evaluation was run}
  }

Metrics, each the mean over images unless said otherwise:
  ab_mae              mean absolute ab error, Lab units (lower is better)
  psnr                PSNR of sRGB in [0, 1], dB; an exact image counts as
                      `metrics.PSNR_CAP_DB` instead of infinity, so the mean
                      stays finite (the gray baseline is exact on gray
                      photos)
  ssim                SSIM of sRGB
  colorfulness        Hasler-Suesstrunk colorfulness of the predictions
  colorfulness_gt     the same of the ground truth
  delta_colorfulness  |colorfulness - colorfulness_gt| of the two means, as
                      reported by DDColor (Kang et al. 2023)
  auc                 area under the cumulative ab-error curve, thresholds
                      0..150 (Zhang et al. 2016), in [0, 1]
"""

import dataclasses
import os
from typing import Iterator, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf import errors
from chromagen_tf import metrics
from chromagen_tf.data import image_folders
from chromagen_tf.data import imaging
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import colorizer
from chromagen_tf.inference import hint_evaluation

# The report's metrics: the per-image ones, then delta_colorfulness.
METRIC_NAMES = (*metrics.IMAGE_METRICS, 'delta_colorfulness')


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """Where the images come from; see chromagen_tf/evaluate.py flags."""

    model: str = ''  # Empty: the bundled model.
    data_dir: str = ''
    split: str = 'val'
    image_dir: str = ''
    max_images: int = 0  # 0: all.
    batch_size: int = colorize_lib.DEFAULT_BATCH_SIZE
    render_size: Optional[int] = None
    stage: str = 'gan'
    temperature: Optional[float] = None  # None: the model's own.
    prior_strength: Optional[float] = None  # None: the model's own.
    hint_correction: Optional[float] = None  # None: the model's own.
    hints: int = 0  # Hints simulated per photo (hint_evaluation.py).
    hint_seed: int = 0


Example = tuple[str, tf.Tensor, tf.Tensor]  # key, L [1,H,W,1], ab [1,H,W,2]


def examples_from_records(data_dir: str, split: str) -> Iterator[Example]:
    """(key, L, ab) of every record of a split, in real Lab units."""
    files = input_pipeline.list_files(records.shard_pattern(data_dir, split))
    dataset = tf.data.TFRecordDataset(files).map(
        lambda serialized: (
            records.parse_record(serialized)[records.KEY],
            *records.decode_record(serialized),
        )
    )
    for key, l_channel, ab in dataset:
        yield key.numpy().decode('utf-8'), l_channel[None], ab[None]


def examples_from_images(image_dir: str) -> Iterator[Example]:
    """(path, L, ab) of every photo under a folder (recursive), sorted."""
    lab_of = tf.function(
        lambda rgb: color.rgb_to_lab(tf.cast(rgb, tf.float32) / 255.0),
        input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)],
    )
    for key, path in image_folders.find_images(image_dir):
        try:
            rgb = np.asarray(imaging.load_rgb(path).image)
        except imaging.BadImageError as error:
            logging.warning('Skipping %s: %s', path, error)
            continue
        lab = lab_of(rgb)[None]
        yield key, lab[..., :1], lab[..., 1:]


@tf.function(
    input_signature=[
        tf.TensorSpec([1, None, None, 1], tf.float32),
        tf.TensorSpec([1, None, None, 2], tf.float32),
        tf.TensorSpec([1, None, None, 2], tf.float32),
    ]
)
def image_metrics(l_channel, ab_pred, ab_true) -> dict[str, tf.Tensor]:
    """The per-image metrics of one prediction, as float32 scalars."""
    rgb_pred = color.lab_to_rgb_in_gamut(tf.concat([l_channel, ab_pred], -1))
    rgb_true = color.lab_to_rgb_in_gamut(tf.concat([l_channel, ab_true], -1))
    values = metrics.image_metrics(rgb_pred, rgb_true, ab_pred, ab_true)
    return {name: value[0] for name, value in values.items()}


def summarize(per_image: dict[str, list[float]]) -> dict[str, float]:
    """Means over images, plus delta_colorfulness."""
    means = {
        name: float(np.mean(per_image[name])) for name in metrics.IMAGE_METRICS
    }
    means['delta_colorfulness'] = metrics.delta_colorfulness(means)
    return {name: means[name] for name in METRIC_NAMES}


def _with_hints(colorizer, l_channel, ab_true, num_hints, seed, errors_out):
    """(model ab, spread-baseline ab) at full size, with simulated hints."""
    simulated = hint_evaluation.simulate(
        ab_true, colorizer.working_size(l_channel), num_hints, seed
    )
    guided, automatic = (
        colorizer.predict_working_ab([l_channel], [hint_list])[0]
        for hint_list in (simulated.maps, None)
    )
    errors_out.extend(hint_evaluation.hint_errors(guided[0].numpy(), simulated))
    spread = hint_evaluation.spread_baseline(automatic[0].numpy(), simulated)
    return tuple(
        colorizer.ab_to_full_resolution(ab, l_channel)
        for ab in (guided, spread[np.newaxis])
    )


def evaluate(
    colorizer: colorizer.Colorizer,
    examples: Iterator[Example],
    batch_size: int = colorize_lib.DEFAULT_BATCH_SIZE,
    max_images: int = 0,
    num_hints: int = 0,
    hint_seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Runs the model and the gray baseline over the examples.

    With num_hints > 0, the model gets that many hints per photo, simulated
    from the truth (`hint_evaluation.py`; photo i draws with seed
    hint_seed + i), and the report adds the edge-blind spread of the same
    hints over the automatic result ('hint_spread_baseline') and the
    median |delta a*b*| at the hints ('hint_ab_error_median').

    Returns:
      {'model': {...}, 'gray_baseline': {...}, 'num_images': N, ...}.

    Raises:
      ValueError: there were no examples.
    """
    names = ['model', 'gray_baseline']
    if num_hints:
        names.append('hint_spread_baseline')
    results = {name: {n: [] for n in metrics.IMAGE_METRICS} for name in names}
    per_image = []
    errors_at_hints = []
    count = 0

    def run(batch):
        if num_hints:
            outputs = [
                _with_hints(
                    colorizer,
                    l_channel,
                    ab_true,
                    num_hints,
                    hint_seed + count - len(batch) + index,
                    errors_at_hints,
                )
                for index, (_, l_channel, ab_true) in enumerate(batch)
            ]
        else:
            outputs = [
                (ab,) for ab in colorizer.predict_ab([l for _, l, _ in batch])
            ]
        for (key, l_channel, ab_true), predictions in zip(batch, outputs):
            entry = {'key': key}
            for name, prediction in zip(
                names,
                (predictions[0], tf.zeros_like(ab_true), *predictions[1:]),
            ):
                values = image_metrics(l_channel, prediction, ab_true)
                entry[name] = {
                    metric: float(value) for metric, value in values.items()
                }
                for metric, value in entry[name].items():
                    results[name][metric].append(value)
            per_image.append(entry)

    batch = []
    for example in examples:
        if max_images and count >= max_images:
            break
        batch.append(example)
        count += 1
        if len(batch) == batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    if not count:
        raise errors.UsageError('No images to evaluate.')
    report = {name: summarize(results[name]) for name in names}
    report.update(num_images=count, per_image=per_image)
    if num_hints:
        report.update(
            num_hints=num_hints,
            hint_ab_error_median=float(np.median(errors_at_hints)),
        )
    return report


def run_evaluation(config: EvaluateConfig) -> dict:
    """Loads the model and the data of a config; returns the full report."""
    if bool(config.data_dir) == bool(config.image_dir):
        raise errors.UsageError('Give exactly one of data_dir and image_dir.')
    colorizer = colorize_lib.load_colorizer(
        config.model,
        config.stage,
        config.render_size,
        config.temperature,
        config.prior_strength,
        config.hint_correction,
    )
    if config.data_dir:
        examples = examples_from_records(config.data_dir, config.split)
    else:
        if not os.path.isdir(config.image_dir):
            raise errors.NotFoundError(f'{config.image_dir} is not a folder.')
        examples = examples_from_images(config.image_dir)
    report = evaluate(
        colorizer,
        examples,
        config.batch_size,
        config.max_images,
        config.hints,
        config.hint_seed,
    )
    settings = dataclasses.asdict(config)
    settings.update(
        render_size=colorizer.render_size,
        model_description=colorizer.description,
    )
    report['config'] = settings
    return report


def format_table(report: dict) -> str:
    """A report as an aligned text table: one row per metric."""
    columns = [
        name
        for name in ('model', 'gray_baseline', 'hint_spread_baseline')
        if name in report
    ]
    rows = [f'{"metric":20s}' + ''.join(f'{name:>22s}' for name in columns)]
    for metric in METRIC_NAMES:
        rows.append(
            f'{metric:20s}'
            + ''.join(f'{report[name][metric]:22.4f}' for name in columns)
        )
    rows.append(f'{report["num_images"]} images')
    if 'num_hints' in report:
        rows.append(
            f'{report["num_hints"]} simulated hints per image; '
            'median |delta a*b*| at the hints: '
            f'{report["hint_ab_error_median"]:.2f}'
        )
    return '\n'.join(rows)
