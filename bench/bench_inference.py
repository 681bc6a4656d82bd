"""Inference benchmark: latency, colorize throughput, a 12 MP photo, memory.

Usage:

  python -m bench.bench_inference [--generator=resnet18_unet|bundled]
      [--width=64] [--repeats=10]

Exports a generator (resnet18_unet unless --generator says otherwise) (random
weights: speed does not depend on
them) and runs each group of measurements in its own Python process, so
that each peak RSS (`common.peak_rss_mb`) belongs to that group alone.
Latency (one process, the four items interleaved):

  generator_256      the network alone (predict_ab), [1, 256, 256, 1]: the
                     model's pure compute time, the reference for the
                     latency targets
  colorize_image_1   the colorize_image signature, one 256x256 RGB image
  colorize_image_8   the same, a batch of 8
  serving_default_1  serving_default, one 256x256 JPEG -> PNG

Files (one process each):

  cli_folder         colorize_files over a folder of photos (images/s)
  folder_memory      peak RSS after 42 and after 462 photos, at
                     render_size 64: memory must not grow with the folder
  photo_12mp         one 4032x3024 black-and-white JPEG: load, colorize,
                     save as JPEG, in a process where the model is loaded
                     and warm
  photo_12mp_colour  the same for a colour JPEG (its lightness is computed
                     with the full sRGB -> Lab conversion)
  photo_12mp_cold    the black-and-white photo through the whole command
                     line, including starting Python and loading the model

Times are medians over --repeats runs after one warm-up run (fewer for
the folder and the 12 MP photo).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from bench import common

_GENERATOR = flags.DEFINE_string(
    'generator',
    'resnet18_unet',
    'Generator to export (random weights), '
    'or "bundled": the bundled model itself, as it ships.',
)
_WIDTH = flags.DEFINE_integer(
    'width', 64, 'Base channel width of the generator.', lower_bound=1
)
_REPEATS = flags.DEFINE_integer(
    'repeats',
    10,
    'Timed runs of each latency item (a fifth of them for '
    'the folder, a third for the 12 MP photo).',
    lower_bound=1,
)
_MEASURE = flags.DEFINE_string(
    'measure', '', 'Internal: the measurement a child process makes.'
)
_WORK_DIR = flags.DEFINE_string(
    'work_dir', '', 'Internal: the child\'s folder of model and photos.'
)


def _measure(name: str, work_dir: str, repeats: int) -> dict:
    """Runs one measurement in this process; returns its figures."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    from chromagen_tf.inference import colorize_folders  # pylint: disable=g-import-not-at-top
    from chromagen_tf.inference import colorize_lib  # pylint: disable=g-import-not-at-top

    export_base = os.path.join(work_dir, 'export')
    rng = np.random.default_rng(0)
    result = {'name': name}
    if name == 'latency':
        # Interleaved in one process, so that the load of a shared machine
        # affects every item alike and the ratios stay meaningful.
        loaded = tf.saved_model.load(os.path.join(export_base, '1'))
        signatures = loaded.signatures
        l_channel = tf.constant(
            rng.uniform(-1, 1, [1, 256, 256, 1]), tf.float32
        )
        with Image.open(
            os.path.join(common.SAMPLE_PHOTOS, 'chelsea.jpg')
        ) as photo:
            image = np.asarray(photo.convert('RGB').resize((256, 256)))
        one, eight = (
            tf.constant(image[None]),
            tf.constant(np.stack([image] * 8)),
        )
        with open(os.path.join(work_dir, 'photo_256.jpg'), 'rb') as f:
            jpeg = tf.constant([f.read()])
        items = {
            'generator_256': lambda: signatures['predict_ab'](
                l_channel=l_channel
            )['ab'].numpy(),
            'colorize_image_1': lambda: signatures['colorize_image'](image=one)[
                'colorized'
            ].numpy(),
            'colorize_image_8': lambda: signatures['colorize_image'](
                image=eight
            )['colorized'].numpy(),
            'serving_default_1': lambda: signatures['serving_default'](
                image_bytes=jpeg
            )['colorized_png_bytes'].numpy(),
        }
        times = {item: [] for item in items}
        for function in items.values():
            function()  # Warm-up: tracing and memory allocation.
        for _ in range(repeats):
            for item, function in items.items():
                start = time.perf_counter()
                function()
                times[item].append(time.perf_counter() - start)
        result['items'] = {
            item: statistics.median(values) for item, values in times.items()
        }
    elif name == 'cli_folder':
        colorizer = colorize_lib.load_colorizer(export_base)
        folder = os.path.join(work_dir, 'folder')
        count = len(os.listdir(folder))
        config = colorize_folders.ColorizeConfig(
            inputs=(folder,),
            output_dir=os.path.join(work_dir, 'out'),
            overwrite=True,
            batch_size=8,
        )
        with open(os.devnull, 'w') as quiet:
            seconds = common.median_seconds(
                lambda: colorize_folders.colorize_files(
                    colorizer, config, quiet
                ),
                max(1, repeats // 5),
            )
        result.update(
            seconds=seconds, images=count, images_per_second=count / seconds
        )
    elif name == 'folder_memory':
        # Peak RSS after 42 photos and after 420 more: a streaming tool
        # holds one batch, so the second figure must not grow with the
        # folder. The small working size keeps this quick.
        colorizer = colorize_lib.load_colorizer(export_base, render_size=64)
        folder = os.path.join(work_dir, 'folder')
        large = os.path.join(work_dir, 'folder_large')
        os.makedirs(large, exist_ok=True)
        for copy in range(10):
            for photo_name in os.listdir(folder):
                target = os.path.join(large, f'{copy}_{photo_name}')
                if not os.path.exists(target):
                    os.link(os.path.join(folder, photo_name), target)
        rss = []
        start = time.perf_counter()
        with open(os.devnull, 'w') as quiet:
            for inputs in ((folder,), (large,)):
                config = colorize_folders.ColorizeConfig(
                    inputs=inputs,
                    output_dir=os.path.join(work_dir, 'mem'),
                    overwrite=True,
                )
                colorize_folders.colorize_files(colorizer, config, quiet)
                rss.append(common.peak_rss_mb())
        result.update(
            seconds=time.perf_counter() - start,
            rss_after_42_mb=rss[0],
            rss_after_462_mb=rss[1],
        )
    elif name.startswith('photo_12mp'):
        colorizer = colorize_lib.load_colorizer(export_base)
        config = colorize_folders.ColorizeConfig(
            inputs=(os.path.join(work_dir, f'{name}.jpg'),),
            output_dir=os.path.join(work_dir, 'out_12mp'),
            overwrite=True,
        )
        with open(os.devnull, 'w') as quiet:
            result['seconds'] = common.median_seconds(
                lambda: colorize_folders.colorize_files(
                    colorizer, config, quiet
                ),
                max(1, repeats // 3),
            )
    else:
        raise ValueError(f'Unknown measurement {name}')
    result['peak_rss_mb'] = common.peak_rss_mb()
    return result


def _prepare(work_dir: str, width: int, generator: str) -> None:
    """Exports the model and writes the test photos."""
    import keras  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top

    from chromagen_tf.models import build_generator  # pylint: disable=g-import-not-at-top
    from chromagen_tf.serving import export_lib  # pylint: disable=g-import-not-at-top
    from chromagen_tf.serving import signatures  # pylint: disable=g-import-not-at-top

    keras.utils.set_random_seed(0)
    if generator == 'bundled':
        from chromagen_tf import bundled  # pylint: disable=g-import-not-at-top

        network = bundled.load_generator()[0]
    else:
        network = build_generator(generator, width=width)
    module = signatures.ColorizationModule(network)
    export_lib.export_saved_model(module, os.path.join(work_dir, 'export'), 1)
    with Image.open(os.path.join(common.SAMPLE_PHOTOS, 'chelsea.jpg')) as photo:
        photo.convert('RGB').resize((256, 256)).save(
            os.path.join(work_dir, 'photo_256.jpg'), quality=90
        )
    with Image.open(
        os.path.join(common.SAMPLE_PHOTOS, 'picos_de_europa.jpg')
    ) as p:
        # A 12 MP phone photo: 4032x3024, upscaled from a sample photo; as
        # a black-and-white photo (the tool's purpose) and in colour.
        big = p.convert('RGB').resize((4032, 3024), Image.Resampling.BICUBIC)
        big.save(os.path.join(work_dir, 'photo_12mp_colour.jpg'), quality=90)
        big.convert('L').save(
            os.path.join(work_dir, 'photo_12mp.jpg'), quality=90
        )
    folder = os.path.join(work_dir, 'folder')
    os.makedirs(folder)
    for copy in range(3):  # 42 photos of the bundled sizes (<= 640 px).
        for name in sorted(os.listdir(common.SAMPLE_PHOTOS)):
            if name.endswith('.jpg'):
                shutil.copy(
                    os.path.join(common.SAMPLE_PHOTOS, name),
                    os.path.join(folder, f'{copy}_{name}'),
                )


def _run_child(name: str, work_dir: str, repeats: int) -> dict:
    return common.run_child(
        'bench_inference',
        f'--measure={name}',
        f'--work_dir={work_dir}',
        f'--repeats={repeats}',
    )


def _cold_cli(work_dir: str) -> dict:
    """The whole command line on the 12 MP photo, timed from outside."""
    command = [
        sys.executable,
        '-m',
        'chromagen_tf.colorize',
        f'--model={os.path.join(work_dir, "export")}',
        os.path.join(work_dir, 'photo_12mp.jpg'),
        f'--output_dir={os.path.join(work_dir, "out_cold")}',
        '--overwrite',
    ]
    start = time.perf_counter()
    subprocess.run(
        command, cwd=common.REPO_ROOT, capture_output=True, check=True
    )
    seconds = time.perf_counter() - start
    return {
        'name': 'photo_12mp_cold',
        'seconds': seconds,
        'peak_rss_mb': common.peak_rss_mb(children=True),
    }


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    if _MEASURE.value:
        common.print_result(
            _measure(_MEASURE.value, _WORK_DIR.value, _REPEATS.value)
        )
        return
    work_dir = tempfile.mkdtemp(prefix='chromagen_bench_')
    try:
        _prepare(work_dir, _WIDTH.value, _GENERATOR.value)
        names = [
            'latency',
            'cli_folder',
            'folder_memory',
            'photo_12mp',
            'photo_12mp_colour',
        ]
        results = [_run_child(name, work_dir, _REPEATS.value) for name in names]
        results.append(_cold_cli(work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    latency = results[0]
    reference = latency['items']['generator_256']
    print(
        f'{"measurement":20s}{"seconds":>10s}{"x generator":>13s}'
        f'{"peak RSS MB":>13s}  notes'
    )
    rows = [
        dict(name=item, seconds=seconds, peak_rss_mb=latency['peak_rss_mb'])
        for item, seconds in latency['items'].items()
    ]
    rows[2]['seconds_per_image'] = rows[2]['seconds'] / 8
    for row in rows + results[1:]:
        notes = ''
        if 'images_per_second' in row:
            notes = (
                f'{row["images_per_second"]:.2f} images/s over '
                f'{row["images"]} photos'
            )
        if 'rss_after_42_mb' in row:
            notes = (
                f'peak RSS {row["rss_after_42_mb"]:.0f} MB after 42 '
                f'photos, {row["rss_after_462_mb"]:.0f} MB after 462'
            )
        if 'seconds_per_image' in row:
            notes = (
                f'{row["seconds_per_image"]:.3f} s/image, '
                f'{row["seconds_per_image"] / reference:.2f}x'
            )
        print(
            f'{row["name"]:20s}{row["seconds"]:10.3f}'
            f'{row["seconds"] / reference:13.2f}'
            f'{row["peak_rss_mb"]:13.0f}  {notes}'
        )
    print(f'load average after the run: {common.load_average():.2f}')


if __name__ == '__main__':
    app.run(main)
