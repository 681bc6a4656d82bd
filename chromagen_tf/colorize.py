"""Colorizes black-and-white photos with a trained ChromaGen model.

Usage:

  python -m chromagen_tf.colorize old_scan.jpg photos/ --output_dir=out
  python -m chromagen_tf.colorize --model=models/chromagen \
      photos/ --output_dir=colorized --recursive

Without --model the bundled model is used (MODEL_CARD.md). --model takes
an export base directory (its newest version is used), one SavedModel
version directory, or a training --model_dir (its latest checkpoint is
used). Each INPUT is a file or a folder; outputs mirror the
input tree under --output_dir and keep each input's format unless
--output_extension is given. Photos are colorized at full resolution: the
network sees a --render_size working copy and its colours are laid over the
original lightness. Colour photos are treated as black and white.

A hint model (the bundled model is one) follows colour hints:
--hints=FILE.json for one photo, or --hints=sidecar to read
<photo file name>.hints.json beside each photo that has one, in the format
of docs/hints.md: {"hints": [{"x": 120, "y": 45, "color": "#d04020"}]}.

Existing outputs are skipped unless --overwrite. A file that cannot be read
is reported and skipped; the exit status is 1 if any file failed.
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
import sys

from absl import app
from absl import flags

from chromagen_tf import errors
from chromagen_tf.data import imaging
from chromagen_tf.inference import colorize_folders
from chromagen_tf.inference import model_flags

_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', None, 'Where the colorized images are written.'
)
_RECURSIVE = flags.DEFINE_boolean(
    'recursive', False, 'Also colorize images in subfolders of folder inputs.'
)
_OVERWRITE = flags.DEFINE_boolean(
    'overwrite', False, 'Replace outputs that already exist.'
)
_COMPARE = flags.DEFINE_boolean(
    'compare',
    False,
    'Write side-by-side images: the gray input, the colorized result and, '
    'for colour inputs, the original.',
)
_OUTPUT_EXTENSION = flags.DEFINE_string(
    'output_extension',
    '',
    'Write every output with this extension and its format (e.g. png, '
    'jpg). Default: the input\'s own.',
)
_HINTS = flags.DEFINE_string(
    'hints',
    '',
    'Colour hints for a hint model: a JSON file of hints for the one input '
    'photo, or "sidecar" to read <photo file name>.hints.json beside each '
    'input that has one (the others are colorized automatically). x and y '
    'are pixels of the photo as displayed, colours sRGB hex.',
)
_MAX_PIXELS = flags.DEFINE_integer(
    'max_pixels',
    imaging.COLORIZE_MAX_PIXELS,
    'Larger images are skipped, judged from their header.',
    lower_bound=1,
)


# --help lists the shared model flags as this tool's own.
flags.adopt_module_key_flags(model_flags)


def main(argv):
    inputs = tuple(argv[1:])
    if not inputs:
        raise app.UsageError('Give at least one INPUT file or folder.')
    if not _OUTPUT_DIR.value:
        raise app.UsageError('--output_dir is required.')
    config = colorize_folders.ColorizeConfig(
        inputs=inputs,
        output_dir=_OUTPUT_DIR.value,
        recursive=_RECURSIVE.value,
        overwrite=_OVERWRITE.value,
        batch_size=model_flags.BATCH_SIZE.value,
        compare=_COMPARE.value,
        output_extension=_OUTPUT_EXTENSION.value,
        max_pixels=_MAX_PIXELS.value,
        hints=_HINTS.value,
    )
    try:
        colorize_folders.find_jobs(config)  # Fails early on a missing input.
        colorizer = model_flags.load_colorizer()
        summary = colorize_folders.colorize_files(colorizer, config)
    except errors.ChromaGenError as error:
        errors.fail('colorize', error)
    print(f'{summary} ({colorizer.description})')
    sys.exit(1 if summary.failed else 0)


if __name__ == '__main__':
    app.run(main)
