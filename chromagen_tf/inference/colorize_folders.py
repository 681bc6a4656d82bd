"""Colorizing files and folders on disk: the colorize tool's jobs and outputs.

`find_jobs` pairs each input photo with an output path, mirroring the input
tree under the output directory. `colorize_files` runs those jobs through a
`colorizer.Colorizer` and streams: it holds at most one batch of photos
in memory, so a folder of 10,000 photos needs no more memory than one
batch. A photo that cannot be read, colorized or written is counted in the
`Summary` and skipped, so that one bad file never stops a run.
"""

import dataclasses
import os
import sys
from typing import Iterator, Optional, TextIO

import numpy as np
from PIL import Image
import tensorflow as tf
import tqdm

from chromagen_tf import errors
from chromagen_tf import hint_format
from chromagen_tf.data import image_folders
from chromagen_tf.data import imaging
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import colorizer

# JPEG quality of written outputs: 95 keeps chroma detail that the default
# 75 visibly blurs, at about twice the size.
_JPEG_QUALITY = 95
# The colour test for --compare runs on a thumbnail: the criterion is a
# fraction of pixels, which a 256-pixel thumbnail estimates well.
_COLOUR_TEST_SIZE = 256


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    """What the colorize tool does; see chromagen_tf/colorize.py flags."""

    inputs: tuple[str, ...]
    output_dir: str
    recursive: bool = False
    overwrite: bool = False
    batch_size: int = colorize_lib.DEFAULT_BATCH_SIZE
    compare: bool = False
    output_extension: str = ''  # '' keeps each input's extension.
    max_pixels: int = imaging.COLORIZE_MAX_PIXELS
    # '' colorizes automatically; SIDECAR reads <input>.hints.json next to
    # each input that has one; anything else is a hint file for the one
    # input (chromagen_tf/hints.py has the format).
    hints: str = ''


SIDECAR = 'sidecar'


@dataclasses.dataclass
class Summary:
    """Counts of a colorize run, and why files failed."""

    colorized: int = 0
    skipped_existing: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return (
            f'{self.colorized} colorized, {self.skipped_existing} '
            f'skipped (output exists), {self.failed} failed'
        )


@dataclasses.dataclass(frozen=True)
class Job:
    source: str
    output: str


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
            jobs.extend(
                Job(source, relative)
                for relative, source in image_folders.find_images(
                    root, recursive=config.recursive
                )
            )
        else:
            raise errors.NotFoundError(f'Input {root} does not exist.')
    if config.hints not in ('', SIDECAR) and len(jobs) != 1:
        raise errors.UsageError(
            f'--hints={config.hints} is for one photo, and the inputs hold '
            f'{len(jobs)}; use --hints=sidecar for several '
            f'(<photo>{hint_format.SIDECAR_SUFFIX} beside each).'
        )
    result = []
    for job in jobs:
        relative = job.output
        if config.output_extension:
            relative = (
                os.path.splitext(relative)[0]
                + '.'
                + config.output_extension.lstrip('.')
            )
        result.append(
            Job(job.source, os.path.join(config.output_dir, relative))
        )
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


def _side_by_side(
    colorizer: colorizer.Colorizer,
    original: np.ndarray,
    colorized: np.ndarray,
) -> np.ndarray:
    panels = [colorizer.gray(original), colorized]
    if _is_colour(original):
        panels.append(original)
    return np.concatenate(panels, axis=1)


def _load(path: str, max_pixels: int) -> np.ndarray:
    loaded = imaging.load_rgb(path, max_pixels=max_pixels)
    return np.asarray(loaded.image)


def hint_file(config: ColorizeConfig, source: str) -> Optional[str]:
    """The hint file that applies to an input, or None."""
    if config.hints == SIDECAR:
        sidecar = hint_format.sidecar_path(source)
        return sidecar if os.path.isfile(sidecar) else None
    return config.hints or None


def load_hints(path: Optional[str], image: np.ndarray):
    """A photo's hints from `path` (None: none), checked against it.

    Raises:
      hint_format.HintFormatError, errors.NotFoundError: naming the file.
    """
    if path is None:
        return None
    hint_list = hint_format.read_file(path)
    hint_format.check_inside(hint_list, image.shape[1], image.shape[0], path)
    return hint_list


def _batches(jobs: list[Job], size: int) -> Iterator[list[Job]]:
    for start in range(0, len(jobs), size):
        yield jobs[start : start + size]


def colorize_files(
    colorizer: colorizer.Colorizer,
    config: ColorizeConfig,
    progress_stream: Optional[TextIO] = None,
) -> Summary:
    """Colorizes every input file; bad files are reported and skipped.

    Each failed file is printed as it fails, one line naming it and the
    problem ("failed: PATH: REASON"), to the progress bar's stream.

    Args:
      colorizer: The model.
      config: Inputs, outputs and options.
      progress_stream: Where the progress bar and the failures go; default
        stderr.

    Returns:
      The counts; `failures` lists (path, reason) of the failed files.
    """
    summary = Summary()
    jobs = find_jobs(config)
    if config.hints and not colorizer.takes_hints:
        raise errors.UsageError(
            f'--hints needs a model that takes colour hints; '
            f'{colorizer.description} does not.'
        )
    seen = set()
    pending = []
    for job in jobs:
        if job.output in seen:
            _record_failure(
                summary,
                job.source,
                f'another input also writes {job.output}',
                progress_stream,
            )
            continue
        seen.add(job.output)
        if os.path.exists(job.output) and not config.overwrite:
            summary.skipped_existing += 1
            continue
        pending.append(job)
    bar = tqdm.tqdm(
        total=len(pending), unit='img', desc='colorize', file=progress_stream
    )
    for batch in _batches(pending, config.batch_size):
        loaded = []
        for job in batch:
            try:
                _format_for(job.output)
                image = _load(job.source, config.max_pixels)
                hint_list = load_hints(hint_file(config, job.source), image)
                loaded.append((job, image, hint_list))
            except (
                imaging.BadImageError,
                errors.ChromaGenError,
                ValueError,
                OSError,
            ) as error:
                _record_failure(summary, job.source, error, progress_stream)
                bar.update(1)
        if not loaded:
            continue
        outputs = _colorize_isolating_failures(
            colorizer,
            [image for _, image, _ in loaded],
            [hint_list for _, _, hint_list in loaded],
        )
        for (job, image, _), colorized in zip(loaded, outputs):
            try:
                if isinstance(colorized, Exception):
                    raise colorized
                if config.compare:
                    colorized = _side_by_side(colorizer, image, colorized)
                save_image(colorized, job.output)
                summary.colorized += 1
            except (ValueError, OSError, tf.errors.OpError) as error:
                _record_failure(summary, job.source, error, progress_stream)
            bar.update(1)
        del loaded, outputs  # Hold one batch of photos at a time.
    bar.close()
    return summary


def _colorize_isolating_failures(
    colorizer: colorizer.Colorizer,
    images: list[np.ndarray],
    hint_lists: list,
) -> list:
    """Colorizes a batch; if it fails, each image alone, so that one odd
    image costs only itself. Failed entries hold their exception."""
    try:
        return colorizer.colorize(images, hint_lists)
    except (tf.errors.OpError, ValueError) as error:
        if len(images) == 1:
            return [error]
    outputs = []
    for image, hint_list in zip(images, hint_lists):
        try:
            outputs.extend(colorizer.colorize([image], [hint_list]))
        except (tf.errors.OpError, ValueError) as error:
            outputs.append(error)
    return outputs


def _record_failure(
    summary: Summary, source: str, reason, stream: Optional[TextIO]
) -> None:
    """Counts a failed file and prints one line, above the progress bar."""
    summary.failed += 1
    summary.failures.append((source, str(reason)))
    tqdm.tqdm.write(f'failed: {source}: {reason}', file=stream or sys.stderr)
