"""Evaluates a colorization model, and the gray baseline, on held-out photos.

Usage:

  python -m chromagen_tf.evaluate --image_dir=photos --report=eval.json
  python -m chromagen_tf.evaluate --model=models/chromagen \
      --data_dir=data/coco --split=val --report=eval.json
  python -m chromagen_tf.evaluate --model=runs/coco --image_dir=photos \
      --report=eval.json

--model takes the same paths as the colorize tool, and defaults to the
bundled model: an export base directory, one SavedModel version, or a
training model_dir. Images come
either from Lab TFRecord shards (DATA_DIR/<split>-*.tfrecord) or from a
folder of photos (walked recursively). Prints a table and writes the JSON
report described in chromagen_tf/inference/evaluate_lib.py.
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
import json
import os

from absl import app
from absl import flags

from chromagen_tf import errors
from chromagen_tf.inference import evaluate_lib
from chromagen_tf.inference import model_flags

_DATA_DIR = flags.DEFINE_string(
    'data_dir', '', 'Folder of Lab TFRecord shards.'
)
_SPLIT = flags.DEFINE_string(
    'split', 'val', 'Which shards of --data_dir: <split>-*.tfrecord.'
)
_IMAGE_DIR = flags.DEFINE_string(
    'image_dir', '', 'Folder of photos, instead of --data_dir.'
)
_REPORT = flags.DEFINE_string(
    'report', None, 'Path of the JSON report to write.'
)
_HINTS = flags.DEFINE_integer(
    'hints',
    0,
    'Give a hint model this many hints per photo, simulated from the '
    'ground truth with the training sampler and --hint_seed (1-9 px patches '
    'of the true a*b* at the working size), and also report the edge-blind '
    'spread of the same hints over the automatic result and the median '
    '|delta a*b*| at the hints.',
    lower_bound=0,
)
_HINT_SEED = flags.DEFINE_integer(
    'hint_seed', 0, 'Seed of the simulated hints; photo i uses seed + i.'
)
_MAX_IMAGES = flags.DEFINE_integer(
    'max_images', 0, 'Evaluate at most this many images; 0: all.', lower_bound=0
)


# --help lists the shared model flags as this tool's own.
flags.adopt_module_key_flags(model_flags)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    if not _REPORT.value:
        raise app.UsageError('--report is required.')
    if bool(_DATA_DIR.value) == bool(_IMAGE_DIR.value):
        raise app.UsageError('Give exactly one of --data_dir and --image_dir.')
    config = evaluate_lib.EvaluateConfig(
        model=model_flags.MODEL.value,
        data_dir=_DATA_DIR.value,
        split=_SPLIT.value,
        image_dir=_IMAGE_DIR.value,
        max_images=_MAX_IMAGES.value,
        batch_size=model_flags.BATCH_SIZE.value,
        render_size=model_flags.RENDER_SIZE.value,
        stage=model_flags.STAGE.value,
        temperature=model_flags.TEMPERATURE.value,
        prior_strength=model_flags.PRIOR_STRENGTH.value,
        hint_correction=model_flags.HINT_CORRECTION.value,
        hints=_HINTS.value,
        hint_seed=_HINT_SEED.value,
    )
    try:
        report = evaluate_lib.run_evaluation(config)
    except errors.ChromaGenError as error:
        errors.fail('evaluate', error)
    print(evaluate_lib.format_table(report))
    os.makedirs(os.path.dirname(os.path.abspath(_REPORT.value)), exist_ok=True)
    with open(_REPORT.value, 'w') as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write('\n')


if __name__ == '__main__':
    app.run(main)
