r"""Benchmark: TFRecord conversion throughput, in images/s per process.

Converts COCO-sized (about 640x480) real JPEGs with the real converter
(`data_prep.convert_lib.run`) at several process counts, and compares with a
plain PIL decode-and-resize loop over the same files. By default the input
is the bundled photos, copied until there are --num_images files.

Usage:

  python -m bench.bench_convert --num_images=420 --runs=5
  python -m bench.bench_convert --image_dir=/data/coco/val2017
"""

import contextlib
import multiprocessing
import os
import shutil
import tempfile
import time
from unittest import mock

from absl import app
from absl import flags
import numpy as np
from PIL import Image

from bench import common
from chromagen_tf import color
from chromagen_tf.data import imaging
from chromagen_tf.data import records
from data_prep import allocator
from data_prep import convert_config
from data_prep import convert_lib
from data_prep import shard_files

_IMAGE_DIR = flags.DEFINE_string(
    'image_dir', None, 'Photos to convert; default: the bundled photos.'
)
_NUM_IMAGES = flags.DEFINE_integer(
    'num_images', 420, 'Photos per run (copies if needed).'
)
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 256, 'Stored size.')
_RUNS = flags.DEFINE_integer(
    'runs', 5, 'Runs per setting; the median is reported.', lower_bound=1
)
_COMPARE_MALLOC = flags.DEFINE_bool(
    'compare_malloc',
    True,
    "Also measure workers with glibc's default "
    'malloc settings, not only with those make_tfrecords gives them.',
)
_PROCESSES = flags.DEFINE_list(
    'processes', ['0', '1', '2'], 'Process counts to measure (0: in-process).'
)


def _prepare_inputs(workdir: str) -> str:
    if _IMAGE_DIR.value:
        return _IMAGE_DIR.value
    return common.copy_photos(
        common.SAMPLE_PHOTOS, _NUM_IMAGES.value, os.path.join(workdir, 'photos')
    )


def _plain_pil(paths, size):
    for path in paths:
        with Image.open(path) as image:
            image.convert('RGB').resize((size, size), Image.Resampling.BICUBIC)


def _stages(paths, size):
    """Seconds per image of each stage of `convert_image`, in-process."""
    totals = {'decode+resize': 0.0, 'rgb_to_lab': 0.0, 'encode_example': 0.0}
    for path in paths:
        start = time.perf_counter()
        loaded = imaging.load_for_storage(path, size)
        rgb = np.asarray(loaded.image)
        middle = time.perf_counter()
        lab = color.rgb_to_lab_numpy(rgb)
        end = time.perf_counter()
        records.encode_example(
            lab, 'key', loaded.original_height, loaded.original_width
        )
        totals['decode+resize'] += middle - start
        totals['rgb_to_lab'] += end - middle
        totals['encode_example'] += time.perf_counter() - end
    return {name: 1000 * value / len(paths) for name, value in totals.items()}


@contextlib.contextmanager
def _worker_malloc(tuned: bool):
    """Worker processes started inside get make_tfrecords' malloc settings
    (tuned) or glibc's defaults; this process keeps its own either way."""
    with mock.patch.dict(os.environ):
        for name in allocator.WORKER_ENVIRONMENT:
            os.environ.pop(name, None)
        if tuned:
            os.environ.update(allocator.WORKER_ENVIRONMENT)
        yield


def _measure_converter(workdir, image_dir, sources, size, label, tuned):
    for processes in (int(value) for value in _PROCESSES.value):
        if tuned and not processes:
            continue  # In-process conversion keeps glibc's defaults.

        def convert(processes=processes):
            output = os.path.join(workdir, 'out')
            shutil.rmtree(output, ignore_errors=True)
            config = convert_config.ConvertConfig(
                output_dir=output,
                image_dir=image_dir,
                image_size=size,
                num_processes=processes,
                images_per_shard=100,
            )
            convert_lib.run(config, sources, show_progress=False)

        rate, cpu_rate, rates = common.median_rates(
            convert, len(sources), _RUNS.value
        )
        per_process = rate / max(processes, 1)
        # Children's peak RSS only grows over the run: with the default
        # settings measured first, a later, larger figure is the tuned one.
        worker_rss = common.peak_rss_mb(children=True)
        print(
            f'[{label}] make_tfrecords num_processes={processes}: '
            f'{rate:7.1f} images/s total, {per_process:7.1f} per process, '
            f'{cpu_rate:7.1f} per CPU-second (runs: '
            f'{", ".join(f"{r:.0f}" for r in rates)}); largest worker '
            f'RSS so far {worker_rss:.0f} MB'
        )


def main(argv):
    common.check_no_arguments(argv)
    workdir = tempfile.mkdtemp(prefix='bench_convert_')
    try:
        image_dir = _prepare_inputs(workdir)
        sources = shard_files.list_image_dir(image_dir)
        paths = [source.path for source in sources]
        size = _IMAGE_SIZE.value
        print(f'load average {common.load_average():.2f}')
        with Image.open(paths[0]) as image:
            print(
                f'{len(paths)} photos (first: {image.size[0]}x'
                f'{image.size[1]} {image.format}), image_size={size}, '
                f'median of {_RUNS.value} runs, {os.cpu_count()} cores'
            )
        _plain_pil(paths[:20], size)  # Warm the page cache.
        rate, cpu_rate, _ = common.median_rates(
            lambda: _plain_pil(paths, size), len(paths), _RUNS.value
        )
        print(
            f'plain PIL open+convert+resize (1 process): {rate:7.1f} '
            f'images/s, {cpu_rate:7.1f} per CPU-second'
        )
        for label, tuned in (
            ('default malloc', False),
            ('worker malloc settings', True),
        ):
            if not tuned and not _COMPARE_MALLOC.value:
                continue
            with _worker_malloc(tuned):
                # In one worker process, as the converter's workers run.
                with multiprocessing.get_context('spawn').Pool(1) as pool:
                    stages = pool.apply(_stages, (paths, size))
                print(
                    f'[{label}] convert_image stages in a worker, '
                    'ms/image: '
                    + ', '.join(
                        f'{name} {value:.2f}' for name, value in stages.items()
                    )
                    + f', total {sum(stages.values()):.2f}'
                )
                _measure_converter(
                    workdir, image_dir, sources, size, label, tuned
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    app.run(main)
