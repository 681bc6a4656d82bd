"""Evaluates a colorization model, and the gray baseline, on held-out photos.

Usage:

  python -m chromagen_tf.evaluate --model=models/chromagen \
      --data_dir=data/coco --split=val --report=eval.json
  python -m chromagen_tf.evaluate --model=runs/coco --image_dir=photos \
      --report=eval.json

--model takes the same paths as the colorize tool: an export base
directory, one SavedModel version, or a training model_dir. Images come
either from Lab TFRecord shards (DATA_DIR/<split>-*.tfrecord) or from a
folder of photos (walked recursively). Prints a table and writes the JSON
report described in chromagen_tf/evaluate_lib.py.
"""

import json
import os
import sys

from absl import app
from absl import flags

from chromagen_tf import colorize_lib
from chromagen_tf import evaluate_lib

_MODEL = flags.DEFINE_string(
    'model', None,
    'Export base directory, SavedModel version directory or training '
    'model_dir.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', '', 'Folder of Lab TFRecord shards.')
_SPLIT = flags.DEFINE_string(
    'split', 'val', 'Which shards of --data_dir: <split>-*.tfrecord.')
_IMAGE_DIR = flags.DEFINE_string(
    'image_dir', '', 'Folder of photos, instead of --data_dir.')
_REPORT = flags.DEFINE_string(
    'report', None, 'Path of the JSON report to write.')
_MAX_IMAGES = flags.DEFINE_integer(
    'max_images', 0, 'Evaluate at most this many images; 0: all.',
    lower_bound=0)
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size', colorize_lib.DEFAULT_BATCH_SIZE,
    'Images per network call.', lower_bound=1)
_RENDER_SIZE = flags.DEFINE_integer(
    'render_size', None,
    'Working size of the network; default: the export\'s, else 256.',
    lower_bound=32)
_STAGE = flags.DEFINE_enum(
    'stage', 'gan', ['gan', 'pretrain'],
    'For a training model_dir: which stage\'s checkpoint to use.')


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    if not _MODEL.value or not _REPORT.value:
        raise app.UsageError('--model and --report are required.')
    if bool(_DATA_DIR.value) == bool(_IMAGE_DIR.value):
        raise app.UsageError('Give exactly one of --data_dir and --image_dir.')
    config = evaluate_lib.EvaluateConfig(
        model=_MODEL.value,
        data_dir=_DATA_DIR.value,
        split=_SPLIT.value,
        image_dir=_IMAGE_DIR.value,
        max_images=_MAX_IMAGES.value,
        batch_size=_BATCH_SIZE.value,
        render_size=_RENDER_SIZE.value,
        stage=_STAGE.value,
    )
    try:
        report = evaluate_lib.run_evaluation(config)
    except (FileNotFoundError, ValueError,
            colorize_lib.ModelNotFoundError) as error:
        print(f'evaluate: {error}', file=sys.stderr)
        sys.exit(2)
    print(evaluate_lib.format_table(report))
    os.makedirs(os.path.dirname(os.path.abspath(_REPORT.value)),
                exist_ok=True)
    with open(_REPORT.value, 'w') as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write('\n')


if __name__ == '__main__':
    app.run(main)
