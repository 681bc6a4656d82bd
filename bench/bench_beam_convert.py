r"""Benchmark: the Beam DirectRunner converter against the in-process one.

Converts the same photos with `convert_lib.run` (in-process and with worker
processes) and with `beam_pipeline.run` on the DirectRunner (in memory, and
with worker processes), and prints images/s for each, the median of --runs.
By default the input is the bundled photos, copied until there are
--num_images files. Needs Apache Beam (pip install .[beam]).

Usage:

  python -m bench.bench_beam_convert --num_images=14 --image_size=64
  python -m bench.bench_beam_convert --num_images=420 --image_size=256
"""

import os
import tempfile

from absl import app
from absl import flags

from bench import common
from data_prep import beam_pipeline
from data_prep import convert_config
from data_prep import convert_lib
from data_prep import shard_files

_IMAGE_DIR = flags.DEFINE_string(
    'image_dir', None, 'Photos to convert; default: the bundled photos.'
)
_NUM_IMAGES = flags.DEFINE_integer(
    'num_images', 14, 'Photos per run (copies if needed).'
)
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 64, 'Stored size.')
_IMAGES_PER_SHARD = flags.DEFINE_integer(
    'images_per_shard', 4, 'Photos per shard, the Beam unit of work.'
)
_RUNS = flags.DEFINE_integer(
    'runs', 3, 'Runs per setting; the median is reported.', lower_bound=1
)
_WORKERS = flags.DEFINE_integer(
    'workers', 2, 'Processes of the parallel settings.'
)


def _settings(workers: int) -> dict:
    multi = [
        f'--direct_num_workers={workers}',
        '--direct_running_mode=multi_processing',
    ]
    return {
        'in-process (num_processes=0)': ('local', 0, []),
        f'multiprocessing (num_processes={workers})': ('local', workers, []),
        'DirectRunner in_memory': ('beam', 0, []),
        f'DirectRunner multi_processing x{workers}': ('beam', 0, multi),
    }


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    with tempfile.TemporaryDirectory() as scratch:
        image_dir = common.copy_photos(
            _IMAGE_DIR.value or common.SAMPLE_PHOTOS,
            _NUM_IMAGES.value,
            os.path.join(scratch, 'photos'),
        )
        sources = shard_files.list_image_dir(image_dir)
        print(
            f'{len(sources)} photos, {_IMAGE_SIZE.value} px, '
            f'{_IMAGES_PER_SHARD.value} per shard, median of '
            f'{_RUNS.value} runs'
        )
        for name, (path, processes, beam_args) in _settings(
            _WORKERS.value
        ).items():

            def convert(path=path, processes=processes, beam_args=beam_args):
                # A new folder for every run: none converts into another's.
                config = convert_config.ConvertConfig(
                    output_dir=os.path.join(
                        tempfile.mkdtemp(dir=scratch), 'records'
                    ),
                    image_dir=image_dir,
                    image_size=_IMAGE_SIZE.value,
                    min_size=min(64, _IMAGE_SIZE.value),
                    images_per_shard=_IMAGES_PER_SHARD.value,
                    num_processes=processes,
                )
                if path == 'local':
                    convert_lib.run(config, sources, show_progress=False)
                else:
                    beam_pipeline.run(
                        config,
                        sources,
                        runner='DirectRunner',
                        beam_args=beam_args,
                    )

            median = common.median_seconds(convert, _RUNS.value, warm_up=False)
            print(
                f'{name:42s} {median:7.2f} s {len(sources) / median:8.1f} '
                'images/s'
            )


if __name__ == '__main__':
    app.run(main)
