"""Exports a trained generator as a SavedModel for TF Serving (or TFLite).

Usage:

  python -m chromagen_tf.export --model_dir=runs/coco \
      --export_dir=models/chromagen
  python -m chromagen_tf.export --export_dir=models/chromagen  # bundled

writes models/chromagen/<version>/, the layout TF Serving reads with
--model_base_path=models/chromagen. The version is the next integer unless
--version is given. The export is written in a staging folder outside
the base path and published when complete (a rename; on gs:// and other
remote paths, a copy with saved_model.pb last), so a server watching the
base path never loads half an export. Only the generator is exported,
from the latest GAN checkpoint (or the pretraining one with
--stage=pretrain); without --model_dir, the bundled model is exported.
The working size defaults to the one the model was trained for. The
signatures are described in chromagen_tf/serving/export_lib.py.

--format=tflite writes <version>/model.tflite instead: the raw network at a
fixed square working size, for mobile apps.
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
from absl import app
from absl import flags
from absl import logging

from chromagen_tf import bundled
from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import models
from chromagen_tf.data import imaging
from chromagen_tf.inference import colorize_lib
from chromagen_tf.serving import export_lib
from chromagen_tf.serving import signatures

_MODEL_DIR = flags.DEFINE_string(
    'model_dir',
    None,
    'Training directory holding config.json and '
    'checkpoints, or a folder in the bundled format. Default: the bundled '
    'model (MODEL_CARD.md).',
)
_EXPORT_DIR = flags.DEFINE_string(
    'export_dir',
    None,
    'Base directory of the versions (TF Serving\'s --model_base_path).',
)
_STAGE = flags.DEFINE_enum(
    'stage',
    'gan',
    list(configs.STAGES),
    'Export the latest checkpoint of this stage.',
)
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'An explicit checkpoint prefix instead of the latest.'
)
_VERSION = flags.DEFINE_integer(
    'version',
    None,
    'Version number; default: one more than the largest.',
    lower_bound=0,
)
_RENDER_SIZE = flags.DEFINE_integer(
    'render_size',
    None,
    'Longer side of the working size the network runs at. Default: the '
    'bundled model\'s recorded size, or the stage\'s training crop size.',
    lower_bound=32,
)
_TEMPERATURE = flags.DEFINE_float(
    'temperature',
    None,
    'For a colour-bins model: the annealed-mean temperature the export '
    'decodes at (1: the mean of the bin distribution; towards 0: its most '
    'likely bin). '
    'Default: the one recorded with the model.',
    lower_bound=0.01,
)
_PRIOR_STRENGTH = flags.DEFINE_float(
    'prior_strength',
    None,
    'For a colour-bins model: how much of its training set\'s prior over '
    'the bins the export divides out before decoding (0: none, 1: roughly '
    'Zhang et al.\'s rebalancing). Default: the one recorded with the model.',
    lower_bound=0.0,
)
_HINT_CORRECTION = flags.DEFINE_float(
    'hint_correction',
    None,
    'For a hint-branch model: how much of the correction the branch '
    'learned (where each hint\'s colour should stop) the export applies to '
    'its plain Gaussian spread of the hints (0: the spread alone, 1: all of '
    'it, as trained). Default: the one recorded with the model.',
    lower_bound=0.0,
)
_MAX_PIXELS = flags.DEFINE_integer(
    'max_pixels',
    imaging.COLORIZE_MAX_PIXELS,
    'Images with more pixels (read from the header) are refused.',
    lower_bound=1,
)
_FORMAT = flags.DEFINE_enum(
    'format', 'saved_model', ['saved_model', 'tflite'], 'What to write.'
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    if not _EXPORT_DIR.value:
        raise app.UsageError('--export_dir is required.')
    model_dir = _MODEL_DIR.value or bundled.BUNDLED_DIR
    try:
        generator, model_config, render_size, checkpoint = (
            colorize_lib.load_generator(
                model_dir,
                _STAGE.value,
                _CHECKPOINT.value,
                _TEMPERATURE.value,
                _PRIOR_STRENGTH.value,
                _HINT_CORRECTION.value,
            )
        )
    except errors.ChromaGenError as error:
        errors.fail('export', error)
    module = signatures.ColorizationModule(
        generator,
        render_size=_RENDER_SIZE.value or render_size,
        size_multiple=models.size_multiple(model_config.generator),
        max_pixels=_MAX_PIXELS.value,
    )
    try:
        if _FORMAT.value == 'tflite':
            path = export_lib.export_tflite(
                module, _EXPORT_DIR.value, _VERSION.value
            )
        else:
            path = export_lib.export_saved_model(
                module,
                _EXPORT_DIR.value,
                _VERSION.value,
                metadata={
                    'checkpoint': checkpoint,
                    'model': configs.to_dict(model_config),
                },
            )
    except errors.ChromaGenError as error:
        errors.fail('export', error)
    logging.info('Exported %s', checkpoint)
    print(path)


if __name__ == '__main__':
    app.run(main)
