r"""Converts photos or a COCO split into sharded Lab TFRecords.

Each record holds one photo resized to --image_size, in CIELAB, with its key
and original size (schema: chromagen_tf/data/records.py). The output folder gets
train-00000-of-000NN.tfrecord, val-... and manifest.json. Re-running the
same command after an interruption finishes the job.

Usage:

  # 10,000 random COCO photos, 10% of them for validation:
  python -m data_prep.make_tfrecords --coco_dir=/data/coco --split=train2017 \
      --max_images=10000 --seed=0 --val_fraction=0.1 --output_dir=/data/lab

  # Any folder of photos, recursively:
  python -m data_prep.make_tfrecords --image_dir=photos --output_dir=out

  # The same conversion as an Apache Beam pipeline (pip install .[beam]);
  # with a distributed runner the folders may be on gs://:
  python -m data_prep.make_tfrecords --image_dir=gs://bucket/photos \
      --output_dir=gs://bucket/lab --images_per_shard=500 \
      --runner=DataflowRunner --beam_options="--project=my-project \
      --region=europe-west4 --temp_location=gs://bucket/tmp \
      --extra_package=dist/chromagen-0.1.0-py3-none-any.whl"
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
import os

from absl import app
from absl import flags
import tensorflow as tf

from chromagen_tf import errors
from chromagen_tf import files
from chromagen_tf.data import imaging
from data_prep import allocator
from data_prep import coco_download
from data_prep import convert_config
from data_prep import convert_lib
from data_prep import manifest_lib

_IMAGE_DIR = flags.DEFINE_string(
    'image_dir',
    None,
    'Folder of photos, read recursively (JPEG, PNG, WebP, '
    'BMP, TIFF, GIF). Keys are paths relative to it.',
)
_COCO_DIR = flags.DEFINE_string(
    'coco_dir',
    None,
    'COCO folder holding SPLIT/*.jpg and, optionally, '
    'annotations/instances_SPLIT.json. Keys are COCO image ids.',
)
_SPLIT = flags.DEFINE_string('split', 'train2017', 'COCO split to convert.')
_DOWNLOAD = flags.DEFINE_bool(
    'download',
    False,
    'Download the official COCO archives of --split into '
    '--coco_dir first (resumable).',
)
_COCO_BASE_URL = flags.DEFINE_string(
    'coco_base_url',
    coco_download.DEFAULT_BASE_URL,
    'Where --download fetches from.',
)
_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', None, 'Folder for the shards and manifest.json.'
)
_IMAGE_SIZE = flags.DEFINE_integer(
    'image_size', 256, 'Stored height and width, in pixels.'
)
_RESIZE = flags.DEFINE_enum(
    'resize',
    'crop',
    imaging.RESIZE_POLICIES,
    'crop: shorter side to --image_size, then the centre square (no '
    'distortion); stretch: both sides to --image_size, as the tutorial does.',
)
_MIN_SIZE = flags.DEFINE_integer(
    'min_size',
    128,
    'Skip photos whose shorter side is smaller: upscaling '
    'them more than 2x gives blurry training targets.',
)
_MAX_PIXELS = flags.DEFINE_integer(
    'max_pixels',
    imaging.CONVERT_MAX_PIXELS,
    'Skip larger photos, judged from the header without decoding them.',
)
_MAX_IMAGES = flags.DEFINE_integer(
    'max_images', 0, 'Convert a random sample of this many photos (0: all).'
)
_SEED = flags.DEFINE_integer(
    'seed', 0, 'Seed of the sample, the shuffle and the split.'
)
_VAL_FRACTION = flags.DEFINE_float(
    'val_fraction', 0.1, 'Fraction of the photos written as val shards.'
)
_NUM_VAL = flags.DEFINE_integer(
    'num_val', None, 'Number of val photos; overrides --val_fraction.'
)
_NUM_SHARDS = flags.DEFINE_integer(
    'num_shards',
    None,
    'Number of train shards; val shards get the same '
    'number of photos each. Overrides --images_per_shard.',
)
_IMAGES_PER_SHARD = flags.DEFINE_integer(
    'images_per_shard', 1000, 'Photos per shard (about 100 MB at 256 px).'
)
_STRICT = flags.DEFINE_bool(
    'strict',
    False,
    'Stop at the first broken input (grayscale and too '
    'small photos are still skipped).',
)
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes',
    os.cpu_count() or 1,
    'Worker processes (default: all cores); 0 converts in this process. '
    'Not used with --runner.',
)
_RUNNER = flags.DEFINE_string(
    'runner',
    '',
    'Convert with Apache Beam on this runner (one of '
    f'{", ".join(convert_config.RUNNERS)}) instead of local processes; '
    'needs pip install .[beam]. Folders may then be URLs such as gs://.',
)
_BEAM_OPTIONS = flags.DEFINE_string(
    'beam_options',
    '',
    'Beam pipeline options for --runner, as one '
    'shell-quoted string, e.g. "--project=p --region=r '
    '--temp_location=gs://bucket/tmp".',
)


def _config_from_flags() -> convert_config.ConvertConfig:
    """The conversion the flags ask for, validated (errors.UsageError)."""
    config = convert_config.ConvertConfig(
        output_dir=_absolute(_OUTPUT_DIR.value),
        image_dir=_absolute(_IMAGE_DIR.value) if _IMAGE_DIR.value else None,
        coco_dir=_absolute(_COCO_DIR.value) if _COCO_DIR.value else None,
        split=_SPLIT.value,
        image_size=_IMAGE_SIZE.value,
        resize=_RESIZE.value,
        min_size=_MIN_SIZE.value,
        max_pixels=_MAX_PIXELS.value,
        max_images=_MAX_IMAGES.value,
        seed=_SEED.value,
        val_fraction=_VAL_FRACTION.value,
        num_val=_NUM_VAL.value,
        num_shards=_NUM_SHARDS.value,
        images_per_shard=_IMAGES_PER_SHARD.value,
        strict=_STRICT.value,
        num_processes=_NUM_PROCESSES.value,
        runner=_RUNNER.value,
        beam_options=_BEAM_OPTIONS.value,
    )
    convert_config.validate(config, download=_DOWNLOAD.value)
    return config


def _absolute(path: str | None) -> str:
    if not path or files.is_remote(path):
        return path or ''
    return os.path.abspath(path)


def _convert(config: convert_config.ConvertConfig) -> dict:
    """Lists the inputs and converts them: in a pool of this machine's
    processes, or with Apache Beam when config.runner is set."""
    sources, skipped = convert_lib.list_inputs(config)
    if not config.runner:
        tf.io.gfile.makedirs(config.output_dir)
        return convert_lib.run(config, sources, skipped)
    try:
        # Imported only when asked for: Beam is an optional extra.
        # pylint: disable-next=import-outside-toplevel
        from data_prep import beam_pipeline
    except ImportError as error:
        raise errors.UsageError(
            f'--runner needs Apache Beam ({error}); install it with '
            'pip install .[beam]'
        ) from None
    return beam_pipeline.run(
        config, sources, skipped, config.runner, config.beam_argv
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        errors.fail(
            'make_tfrecords',
            f'unexpected arguments: {" ".join(argv[1:])}',
            errors.USAGE_EXIT_CODE,
        )
    try:
        config = _config_from_flags()
        if _DOWNLOAD.value:
            coco_download.download_split(
                config.coco_dir, config.split, _COCO_BASE_URL.value
            )
        # For the worker processes started from here on; this process
        # runs TensorFlow and keeps glibc's defaults (see allocator.py).
        os.environ.update(allocator.WORKER_ENVIRONMENT)
        manifest = _convert(config)
    except errors.ChromaGenError as error:
        errors.fail('make_tfrecords', error)
    except OSError as error:  # The output folder cannot be written.
        errors.fail('make_tfrecords', error, errors.USAGE_EXIT_CODE)
    for line in manifest_lib.summary_lines(manifest):
        print(line)


if __name__ == '__main__':
    app.run(main)
