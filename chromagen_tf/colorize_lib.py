"""Colorizing photos on disk with a trained model: the colorize tool's library.

`Colorizer` loads a model from any of the three places a user may point at:

  * an export base directory (`models/chromagen`): its newest version;
  * one SavedModel version directory (`models/chromagen/3`);
  * a training directory (`--model_dir` of the trainer): its latest
    checkpoint, restored with `checkpoints.restore_generator`.

It colorizes at full resolution with the same pre- and post-processing
functions as the exported serving graph (`full_resolution`), so a photo
comes out the same from the command line as from TF Serving. Images of different
sizes share a batch: they are grouped by working size, and each group is
one call to the network.

`colorize_files` walks inputs, mirrors the input tree under the output
directory and streams: it holds at most one batch of photos in memory, so a
folder of 10,000 photos needs no more memory than one batch.
"""

import dataclasses
import os
from typing import Iterator, Optional, Sequence, TextIO

from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

from chromagen_tf import checkpoints
from chromagen_tf import export_lib
from chromagen_tf import full_resolution
from chromagen_tf import image_decoding
from chromagen_tf import imaging
from chromagen_tf import progress

DEFAULT_BATCH_SIZE = 8
# JPEG quality of written outputs: 95 keeps chroma detail that the default
# 75 visibly blurs, at about twice the size.
_JPEG_QUALITY = 95
# The colour test for --compare runs on a thumbnail: the criterion is a
# fraction of pixels, which a 256-pixel thumbnail estimates well.
_COLOUR_TEST_SIZE = 256


class ModelNotFoundError(ValueError):
    """--model points at nothing a model can be loaded from."""


class Colorizer:
    """A generator plus the full-resolution pre- and post-processing."""

    def __init__(
        self,
        predict_fn,
        render_size: int,
        size_multiple: int,
        description: str = '',
        keep_alive: object = None,
    ):
        """Wraps a prediction function.

        Args:
          predict_fn: normalised L [B, H, W, 1] -> normalised ab [B, H, W, 2],
            for H and W multiples of size_multiple.
          render_size: Longer side of the working size.
          size_multiple: See `full_resolution.working_shape`.
          description: What was loaded, for logs.
          keep_alive: An object predict_fn needs alive (a loaded SavedModel).
        """
        self.render_size = render_size
        self.size_multiple = size_multiple
        self.description = description
        self._predict_fn = predict_fn
        self._keep_alive = keep_alive
        spec = tf.TensorSpec
        self._lightness = _Compiled(
            lambda image: full_resolution.l_channel_from_uint8(
                image[tf.newaxis]),
            [spec([None, None, None], tf.uint8)])
        self._prepare = tf.function(
            lambda l_channel: full_resolution.to_working_l(
                l_channel, render_size, size_multiple),
            input_signature=[spec([1, None, None, 1], tf.float32)],
        )
        # Not compiled: XLA needs the crop and resize sizes as constants.
        self._finish = tf.function(
            full_resolution.from_working_ab,
            input_signature=[spec([1, None, None, 2], tf.float32),
                             spec([2], tf.int32), spec([2], tf.int32)])
        self._to_uint8 = _Compiled(
            full_resolution.lab_to_uint8,
            [spec([1, None, None, 1], tf.float32),
             spec([1, None, None, 2], tf.float32)])

    def _predict_working(self, l_channels: Sequence[tf.Tensor]) -> list:
        """Working-size predictions: (ab [1, h, w, 2], working size) each.

        Images whose padded working sizes match share one network call.
        """
        prepared = [self._prepare(l_channel) for l_channel in l_channels]
        groups = {}
        for index, (working_l, _) in enumerate(prepared):
            groups.setdefault(tuple(working_l.shape[1:3]), []).append(index)
        results = [None] * len(l_channels)
        for indices in groups.values():
            batch = tf.concat([prepared[i][0] for i in indices], axis=0)
            ab_batch = tf.cast(self._predict_fn(batch), tf.float32)
            for position, index in enumerate(indices):
                results[index] = (ab_batch[position:position + 1],
                                  prepared[index][1])
        return results

    def _full_resolution(self, working, l_channel: tf.Tensor) -> tf.Tensor:
        ab_working, working_size = working
        return self._finish(ab_working, working_size,
                            tf.shape(l_channel)[1:3])

    def predict_ab(self, l_channels: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """Full-resolution ab for a batch of L channels of any sizes.

        Args:
          l_channels: [1, H, W, 1] float32 tensors, L in [0, 100].

        Returns:
          One [1, H, W, 2] float32 tensor of ab (real Lab units) per input.
        """
        return [
            self._full_resolution(working, l_channel)
            for working, l_channel in zip(
                self._predict_working(l_channels), l_channels)
        ]

    def lightness(self, image: np.ndarray) -> tf.Tensor:
        """uint8 [H, W, 1 or 3] -> L [1, H, W, 1] in [0, 100]."""
        image = tf.convert_to_tensor(image, tf.uint8)
        return self._lightness(_pixels(image[tf.newaxis]), image)

    def colorize(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """uint8 gray or RGB images [H, W, 1 or 3] -> uint8 RGB, same sizes.

        Colour inputs are reduced to their lightness first.
        """
        l_channels = [self.lightness(image) for image in images]
        outputs = []
        # Full-resolution ab exists for one image at a time: a batch of
        # 12 MP photos would otherwise hold 100 MB of it per photo.
        for working, l_channel in zip(self._predict_working(l_channels),
                                      l_channels):
            ab = self._full_resolution(working, l_channel)
            outputs.append(
                self._to_uint8(_pixels(l_channel), l_channel, ab)[0].numpy())
        return outputs

    def gray(self, image: np.ndarray) -> np.ndarray:
        """The lightness of an image as a uint8 RGB gray picture."""
        l_channel = self.lightness(image)
        ab = tf.zeros_like(tf.concat([l_channel, l_channel], -1))
        return self._to_uint8(_pixels(l_channel), l_channel, ab)[0].numpy()


# From this size on, the full-resolution steps are compiled with XLA, which
# fuses their element-wise chains: 4-5x faster on a 12 MP photo (0.3 s
# instead of 1.6 s for Lab -> RGB, measured on 2 cores). Below it, the
# per-shape compilation would cost more than it saves.
_XLA_MIN_PIXELS = 1_000_000


def _pixels(tensor: tf.Tensor) -> int:
    """Pixels of a [B, H, W, C] tensor."""
    return int(tensor.shape[1]) * int(tensor.shape[2])


class _Compiled:
    """A tf.function with an XLA twin, picked by image size."""

    def __init__(self, function, input_signature):
        self._plain = tf.function(function, input_signature=input_signature)
        self._xla = tf.function(function, input_signature=input_signature,
                                jit_compile=True)

    def __call__(self, pixels: int, *args):
        if pixels >= _XLA_MIN_PIXELS:
            return self._xla(*args)
        return self._plain(*args)


def _keras_predict_fn(generator):
    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)]
    )
    def predict(l_normalized):
        return tf.cast(generator(l_normalized, training=False), tf.float32)

    return predict


def load_colorizer(
    model: str, stage: str = 'gan', render_size: Optional[int] = None
) -> Colorizer:
    """Loads a Colorizer from an export base, a version or a training dir.

    Args:
      model: The path given as --model.
      stage: For a training directory: which stage's checkpoint to use.
      render_size: Working size; default: the export's, else 256.

    Raises:
      ModelNotFoundError: the path holds no model.
    """
    if not tf.io.gfile.isdir(model):
        raise ModelNotFoundError(f'--model={model} is not a directory.')
    version_dir = None
    if tf.saved_model.contains_saved_model(model):
        version_dir = model
    elif not tf.io.gfile.exists(os.path.join(model, 'config.json')):
        version_dir = export_lib.latest_version_dir(model)
    if version_dir is not None:
        loaded = tf.saved_model.load(version_dir)
        metadata = export_lib.read_metadata(version_dir)
        signature = loaded.signatures['predict_ab']

        def predict(l_normalized):
            return signature(**{export_lib.L_CHANNEL: l_normalized})[
                export_lib.AB]

        return Colorizer(
            predict,
            render_size or metadata.get(
                'render_size', full_resolution.DEFAULT_RENDER_SIZE),
            metadata.get('size_multiple',
                         full_resolution.DEFAULT_SIZE_MULTIPLE),
            description=f'SavedModel {version_dir}',
            keep_alive=loaded,
        )
    if tf.io.gfile.exists(os.path.join(model, 'config.json')):
        generator, model_config, path = checkpoints.restore_generator(
            model, stage=stage)
        return Colorizer(
            _keras_predict_fn(generator),
            render_size or full_resolution.DEFAULT_RENDER_SIZE,
            full_resolution.size_multiple_for(model_config.generator),
            description=f'checkpoint {path}',
        )
    raise ModelNotFoundError(
        f'--model={model} holds neither a SavedModel, nor numbered versions '
        'of one, nor a training config.json.'
    )


# --- Files ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    """What the colorize tool does; see chromagen_tf/colorize.py flags."""

    inputs: tuple[str, ...]
    output_dir: str
    recursive: bool = False
    overwrite: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    compare: bool = False
    output_extension: str = ''  # '' keeps each input's extension.
    max_pixels: int = image_decoding.DEFAULT_MAX_PIXELS


@dataclasses.dataclass
class Summary:
    """Counts of a colorize run, and why files failed."""

    colorized: int = 0
    skipped_existing: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return (f'{self.colorized} colorized, {self.skipped_existing} '
                f'skipped (output exists), {self.failed} failed')


@dataclasses.dataclass(frozen=True)
class Job:
    source: str
    output: str


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in imaging.IMAGE_EXTENSIONS


def find_jobs(config: ColorizeConfig) -> list[Job]:
    """Input files and their output paths, mirroring the input tree.

    A file INPUT is written as OUTPUT_DIR/<its name>; the files of a folder
    INPUT as OUTPUT_DIR/<path relative to that folder>. Folders are walked
    recursively only with `recursive`; in folders only image extensions
    count, while a file named explicitly is always tried.

    Raises:
      FileNotFoundError: an input does not exist.
    """
    jobs = []
    for root in config.inputs:
        if os.path.isfile(root):
            jobs.append(Job(root, os.path.basename(root)))
        elif os.path.isdir(root):
            for directory, subdirectories, files in os.walk(root):
                subdirectories.sort()
                if not config.recursive:
                    subdirectories.clear()
                for name in sorted(files):
                    if _is_image_name(name):
                        source = os.path.join(directory, name)
                        jobs.append(Job(source, os.path.relpath(source, root)))
        else:
            raise FileNotFoundError(f'Input {root} does not exist.')
    result = []
    for job in jobs:
        relative = job.output
        if config.output_extension:
            relative = (os.path.splitext(relative)[0] + '.' +
                        config.output_extension.lstrip('.'))
        result.append(Job(job.source,
                          os.path.join(config.output_dir, relative)))
    return result


def _format_for(path: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    image_format = Image.registered_extensions().get(extension)
    if image_format is None:
        raise ValueError(f'no image format for the extension {extension!r}')
    return image_format


def save_image(image: np.ndarray, path: str) -> None:
    """Writes uint8 RGB in the format of the path's extension, atomically.

    The temporary name keeps an interrupted run from leaving a truncated
    file that the next run would skip as done.
    """
    image_format = _format_for(path)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    temporary = f'{path}.partial'
    options = {'quality': _JPEG_QUALITY} if image_format == 'JPEG' else {}
    Image.fromarray(image).save(temporary, format=image_format, **options)
    os.replace(temporary, path)


def _is_colour(rgb: np.ndarray) -> bool:
    thumbnail = Image.fromarray(rgb)
    thumbnail.thumbnail((_COLOUR_TEST_SIZE, _COLOUR_TEST_SIZE))
    return not imaging.is_grayscale(np.asarray(thumbnail))


def _side_by_side(colorizer: Colorizer, original: np.ndarray,
                  colorized: np.ndarray) -> np.ndarray:
    panels = [colorizer.gray(original), colorized]
    if _is_colour(original):
        panels.append(original)
    return np.concatenate(panels, axis=1)


def _load(path: str, max_pixels: int) -> np.ndarray:
    loaded = imaging.load_rgb(path, max_pixels=max_pixels)
    return np.asarray(loaded.image)


def _batches(jobs: list[Job], size: int) -> Iterator[list[Job]]:
    for start in range(0, len(jobs), size):
        yield jobs[start:start + size]


def colorize_files(
    colorizer: Colorizer,
    config: ColorizeConfig,
    progress_stream: Optional[TextIO] = None,
) -> Summary:
    """Colorizes every input file; bad files are reported and skipped.

    Args:
      colorizer: The model.
      config: Inputs, outputs and options.
      progress_stream: Where the progress bar goes; default stderr.

    Returns:
      The counts; `failures` lists (path, reason) of the failed files.
    """
    summary = Summary()
    jobs = find_jobs(config)
    seen = set()
    pending = []
    for job in jobs:
        if job.output in seen:
            summary.failed += 1
            summary.failures.append(
                (job.source, f'another input also writes {job.output}'))
            continue
        seen.add(job.output)
        if os.path.exists(job.output) and not config.overwrite:
            summary.skipped_existing += 1
            continue
        pending.append(job)
    bar = progress.ProgressBar(
        len(pending), unit='img', description='colorize',
        stream=progress_stream)
    for batch in _batches(pending, config.batch_size):
        loaded = []
        for job in batch:
            try:
                _format_for(job.output)
                loaded.append((job, _load(job.source, config.max_pixels)))
            except (imaging.BadImageError, ValueError, OSError) as error:
                _record_failure(summary, job, error)
                bar.update(1)
        if not loaded:
            continue
        outputs = _colorize_isolating_failures(
            colorizer, [image for _, image in loaded])
        for (job, image), colorized in zip(loaded, outputs):
            try:
                if isinstance(colorized, Exception):
                    raise colorized
                if config.compare:
                    colorized = _side_by_side(colorizer, image, colorized)
                save_image(colorized, job.output)
                summary.colorized += 1
            except (ValueError, OSError, tf.errors.OpError) as error:
                _record_failure(summary, job, error)
            bar.update(1)
        del loaded, outputs  # Hold one batch of photos at a time.
    bar.close()
    return summary


def _colorize_isolating_failures(
    colorizer: Colorizer, images: list[np.ndarray]
) -> list:
    """Colorizes a batch; if it fails, each image alone, so that one odd
    image costs only itself. Failed entries hold their exception."""
    try:
        return colorizer.colorize(images)
    except (tf.errors.OpError, ValueError) as error:
        if len(images) == 1:
            return [error]
    outputs = []
    for image in images:
        try:
            outputs.extend(colorizer.colorize([image]))
        except (tf.errors.OpError, ValueError) as error:
            outputs.append(error)
    return outputs


def _record_failure(summary: Summary, job: Job, error: Exception) -> None:
    summary.failed += 1
    summary.failures.append((job.source, str(error)))
    logging.warning('Skipping %s: %s', job.source, error)
