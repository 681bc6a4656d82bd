r"""ChromaGen on the bundled photos, in one command.

Usage:

  python -m chromagen_tf.demo --output_dir=demo_out

First the bundled model (MODEL_CARD.md) colorizes the sample photos, which
it never saw in training, and is measured against the gray baseline. Then the
whole training pipeline runs on a few of the same photos, through the
project's own command-line tools exactly as a user would run them on COCO,
only smaller (a narrow generator, 64x64 crops, a few hundred steps):

  1. chromagen_tf.colorize      the sample photos with the bundled model
     chromagen_tf.evaluate      the bundled model vs the gray baseline
     chromagen_tf.colorize      --hints=sidecar: the photos that have a
                                <photo>.hints.json (a few clicked colours
                                where the automatic result is wrong, and
                                background and skin points that hold back
                                their bleeding), guided by their hints
  2. data_prep.make_tfrecords   the sample photos -> Lab shards, train/val
  3. chromagen_tf.train         --stage=pretrain (L1 only)
  4. chromagen_tf.train         --stage=gan (adversarial + lambda * L1)
  5. chromagen_tf.export        -> a TF Serving SavedModel
  6. chromagen_tf.colorize      the held-out photos, through the SavedModel
  7. chromagen_tf.evaluate      the held-out photos vs the gray baseline

The tiny model of steps 2-7 shows the pipeline working, not a usable
colorizer: it trains for minutes on about ten photos, renders at the size
it was trained at, and its metrics are printed beside gray's. A stage whose
output exists is reused, so a second run is quick; pass --overwrite to
start clean. It takes about 4-5 minutes on a 2-core CPU.

The sample photos ship inside the package (chromagen_tf/sample_photos), so
the demo runs from an installed wheel as it does from a checkout; --photos
points it at another folder.
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
import json
import os
import shutil
import time

from absl import app
from absl import flags
from PIL import Image

from chromagen_tf import errors
from chromagen_tf import hint_format
from chromagen_tf import sample_photos
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records
from chromagen_tf.inference import contact_sheet
from chromagen_tf.inference import evaluate_lib
from chromagen_tf.inference import run_tools
from chromagen_tf.training import checkpoints

_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', 'demo_out', 'Where every artefact of the demo goes.'
)
_PHOTOS = flags.DEFINE_string(
    'photos',
    sample_photos.folder(),
    'Folder of colour photos: the bundled model colorizes all of them, the '
    'tiny pipeline trains and evaluates on them.',
)
_NUM_VAL = flags.DEFINE_integer(
    'num_val', 3, 'Photos held out for colorizing and evaluation.'
)
_MAX_IMAGES = flags.DEFINE_integer(
    'max_images', 0, 'Use only this many photos (0: all).'
)
_IMAGE_SIZE = flags.DEFINE_integer(
    'image_size', 64, 'Training crop size (a multiple of 32).'
)
_STORED_SIZE = flags.DEFINE_integer(
    'stored_size',
    96,
    'Size the photos are stored at in the shards; '
    'training takes random crops of --image_size from them.',
)
_WIDTH = flags.DEFINE_integer(
    'width', 16, 'Generator base width (64 is the full ResNet-18 U-Net).'
)
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 8, 'Global batch size.')
_PRETRAIN_STEPS = flags.DEFINE_integer(
    'pretrain_steps', 300, 'Steps of L1 pretraining.'
)
_GAN_STEPS = flags.DEFINE_integer('gan_steps', 100, 'Steps of GAN training.')
_LR_PRETRAIN = flags.DEFINE_float(
    'lr_pretrain',
    2e-3,
    'Pretraining learning rate. Higher than the '
    "tutorial's 1e-4 so that the tiny demo learns within minutes.",
)
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'Delete --output_dir first and run every stage.'
)

flags.register_validator(
    'image_size',
    lambda value: value % 32 == 0,
    message='--image_size must be a multiple of 32.',
)
for _name in ('num_val', 'width', 'batch_size', 'pretrain_steps', 'gan_steps'):
    flags.register_validator(
        _name, lambda value: value > 0, message=f'--{_name} must be positive.'
    )


_STAGES = 7


def _stage(number, title, done_marker, *commands):
    """Runs tools unless the stage's output exists; streams their progress."""
    print(f'\n[{number}/{_STAGES}] {title}', flush=True)
    if os.path.exists(done_marker):
        print(f'      reusing {done_marker} (--overwrite to redo)', flush=True)
        return
    start = time.monotonic()
    for command in commands:
        run_tools.run(*command, step=f'stage {number} ({title})')
    print(f'      done in {time.monotonic() - start:.0f} s', flush=True)


def _held_out_photos(data_dir, photos_dir):
    """The photos of the val split: their record keys are relative paths."""
    return [
        os.path.join(photos_dir, key)
        for key in input_pipeline.record_keys(data_dir, 'val')
    ]


def _hints_sheet(photos: str, compare_dir: str, output_dir: str):
    """Colorizes the photos that have hint sidecars with their hints.

    Returns:
      The sheet gray | automatic | with hints | original, or None when no
      photo has a sidecar.
    """
    guided = sorted(
        os.path.join(photos, name)
        for name in os.listdir(photos)
        if os.path.isfile(hint_format.sidecar_path(os.path.join(photos, name)))
    )
    if not guided:
        return None
    sheet = os.path.join(output_dir, 'hints.jpg')
    print(
        f'\n[1/{_STAGES}] Guiding the colours of '
        f'{", ".join(map(os.path.basename, guided))} with their hints',
        flush=True,
    )
    if not os.path.exists(sheet):
        run_tools.run(
            'chromagen_tf.colorize',
            *guided,
            '--hints=sidecar',
            f'--output_dir={output_dir}',
            '--output_extension=png',
            step='stage 1 (hints)',
        )
    rows = []
    for path in guided:
        name = os.path.splitext(os.path.basename(path))[0]
        with Image.open(os.path.join(compare_dir, name + '.jpg')) as image:
            gray, automatic, original = contact_sheet.panels_of(
                image.convert('RGB')
            )
        with Image.open(os.path.join(output_dir, name + '.png')) as image:
            hinted = contact_sheet.with_hints(
                image, hint_format.read_file(hint_format.sidecar_path(path))
            )
        rows.append([gray, automatic, hinted, original])
    return contact_sheet.rows(
        rows,
        ('gray input', 'automatic', 'with the hints (dots)', 'original'),
        sheet,
    )


def run_demo() -> dict:
    """Runs the stages; returns the paths of what they made."""
    out = os.path.abspath(_OUTPUT_DIR.value)
    if _OVERWRITE.value and os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    data_dir = os.path.join(out, 'data')
    model_dir = os.path.join(out, 'run')
    export_base = os.path.join(out, 'models', 'chromagen')
    colorized = os.path.join(out, 'colorized')
    report = os.path.join(out, 'metrics.json')
    photos = os.path.abspath(_PHOTOS.value)
    train_flags = [
        f'--data_dir={data_dir}',
        f'--model_dir={model_dir}',
        f'--image_size={_IMAGE_SIZE.value}',
        f'--width={_WIDTH.value}',
        f'--global_batch_size={_BATCH_SIZE.value}',
        '--steps_per_loop=25',
        '--summary_every=25',
        '--checkpoint_every=100000',
    ]

    bundled_dir = os.path.join(out, 'bundled_model')
    bundled_compare = os.path.join(bundled_dir, 'compare')
    bundled_report = os.path.join(bundled_dir, 'metrics.json')
    _stage(
        1,
        'Colorizing the photos with the bundled model',
        bundled_report,
        [
            'chromagen_tf.colorize',
            photos,
            f'--output_dir={bundled_compare}',
            '--output_extension=jpg',
            '--compare',
        ],
        [
            'chromagen_tf.evaluate',
            f'--image_dir={photos}',
            f'--report={bundled_report}',
        ],
    )
    bundled_sheet = contact_sheet.grid(
        contact_sheet.compare_images(bundled_compare),
        os.path.join(bundled_dir, 'comparison.jpg'),
    )
    hints_sheet = _hints_sheet(
        photos, bundled_compare, os.path.join(bundled_dir, 'hints')
    )
    _stage(
        2,
        'Converting the photos to Lab TFRecords',
        records.manifest_path(data_dir),
        [
            'data_prep.make_tfrecords',
            f'--image_dir={photos}',
            f'--output_dir={data_dir}',
            f'--image_size={_STORED_SIZE.value}',
            f'--num_val={_NUM_VAL.value}',
            f'--max_images={_MAX_IMAGES.value}',
            '--num_shards=2',
            '--min_size=64',
        ],
    )
    _stage(
        3,
        'Pretraining the generator with L1',
        checkpoints.checkpoint_index_file(
            model_dir, 'pretrain', _PRETRAIN_STEPS.value
        ),
        [
            'chromagen_tf.train',
            '--stage=pretrain',
            *train_flags,
            f'--train_steps={_PRETRAIN_STEPS.value}',
            f'--lr_g={_LR_PRETRAIN.value}',
            f'--eval_every={_PRETRAIN_STEPS.value}',
        ],
    )
    _stage(
        4,
        'Training the GAN (adversarial + 100 x L1)',
        checkpoints.checkpoint_index_file(model_dir, 'gan', _GAN_STEPS.value),
        [
            'chromagen_tf.train',
            '--stage=gan',
            *train_flags,
            f'--train_steps={_GAN_STEPS.value}',
            f'--eval_every={_GAN_STEPS.value}',
        ],
    )
    _stage(
        5,
        'Exporting a TF Serving SavedModel',
        os.path.join(export_base, '1', 'saved_model.pb'),
        [
            'chromagen_tf.export',
            f'--model_dir={model_dir}',
            f'--export_dir={export_base}',
            '--version=1',
        ],
    )
    held_out = _held_out_photos(data_dir, photos)
    compare = os.path.join(out, 'compare')
    _stage(
        6,
        'Colorizing the held-out photos with the SavedModel',
        compare,
        [
            'chromagen_tf.colorize',
            f'--model={export_base}',
            *held_out,
            f'--output_dir={colorized}',
            '--output_extension=png',
        ],
        [
            'chromagen_tf.colorize',
            f'--model={export_base}',
            *held_out,
            f'--output_dir={compare}',
            '--output_extension=png',
            '--compare',
        ],
    )
    _stage(
        7,
        'Evaluating against the gray baseline',
        report,
        [
            'chromagen_tf.evaluate',
            f'--model={export_base}',
            f'--data_dir={data_dir}',
            '--split=val',
            f'--report={report}',
        ],
    )
    sheet = contact_sheet.grid(
        contact_sheet.compare_images(compare),
        os.path.join(out, 'comparison.png'),
    )
    return dict(
        output_dir=out,
        data_dir=data_dir,
        model_dir=model_dir,
        export=os.path.join(export_base, '1'),
        colorized=colorized,
        comparison=sheet,
        report=report,
        bundled_comparison=bundled_sheet,
        hints_sheet=hints_sheet,
        bundled_report=bundled_report,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    try:
        paths = run_demo()
    except errors.ChromaGenError as error:
        errors.fail('demo', error)
    except OSError as error:  # Writing the output folder.
        errors.fail('demo', error, errors.RUNTIME_EXIT_CODE)
    with open(paths['bundled_report']) as f:
        bundled_table = evaluate_lib.format_table(json.load(f))
    with open(paths['report']) as f:
        table = evaluate_lib.format_table(json.load(f))
    sheet_columns = '(gray | colorized | original)'
    print(f"""
Done. Everything is in {paths['output_dir']}.

The bundled model on the sample photos (held out from its training):
  Comparison sheet:  {paths['bundled_comparison']}  {sheet_columns}
  Metrics report:    {paths['bundled_report']}
  Colour hints:      {paths['hints_sheet']}  (gray | automatic | hints)

{bundled_table}

The tiny model the demo trained (a pipeline check, not a colorizer):
  TensorBoard:       tensorboard --logdir={paths['model_dir']}
  Exported model:    {paths['export']}
  Colorized photos:  {paths['colorized']}
  Comparison sheet:  {paths['comparison']}
  Metrics report:    {paths['report']}

{table}""")


if __name__ == '__main__':
    app.run(main)
