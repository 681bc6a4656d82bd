r"""Generators and recipes compared at equal budgets, on real photos.

Two questions, each answered by real `chromagen_tf.train` runs on Lab
shards (the bundled model's, by default) and `chromagen_tf.evaluate` on the
val photos:

  wall_clock   resnet18_unet_lite against resnet18_unet, L1 pretraining for
               the same wall-clock time each (the run is stopped by SIGTERM,
               on which the trainer saves a checkpoint): is the cheap
               generator at least as good per CPU-minute?
  pretraining  L1 pretraining then the GAN, against the GAN from scratch,
               for the same total number of steps: does pretraining pay?

Usage (the figures in BENCHMARKS.md):

  python -m bench.bench_generators --data_dir=runs/bundled/data \
      --val_photos=runs/bundled/val_photos --minutes=8 \
      --pretrain_steps=600 --gan_steps=300 --output=bench_generators.json
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from bench import common

_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Lab shards to train on.')
_VAL_PHOTOS = flags.DEFINE_string(
    'val_photos', None, 'Folder of the val photos at full size.'
)
_MINUTES = flags.DEFINE_float(
    'minutes', 8.0, 'Wall-clock training budget per generator.', lower_bound=0.0
)
_PRETRAIN_STEPS = flags.DEFINE_integer(
    'pretrain_steps', 600, 'L1 pretraining steps before the GAN.', lower_bound=1
)
_GAN_STEPS = flags.DEFINE_integer(
    'gan_steps', 300, 'GAN steps after pretraining.', lower_bound=1
)
_RENDER_SIZE = flags.DEFINE_integer(
    'render_size', 192, 'Render size of the evaluation.'
)
_QUESTIONS = flags.DEFINE_list(
    'questions', ['wall_clock', 'pretraining'], 'Which comparisons to run.'
)
_OUTPUT = flags.DEFINE_string('output', '', 'Also write JSON here.')
flags.mark_flags_as_required(['data_dir', 'val_photos'])

# Every training run of both questions.
_TRAIN_FLAGS = [
    '--image_size=128',
    '--global_batch_size=16',
    '--seed=0',
    '--steps_per_loop=10',
    '--summary_every=10',
    '--checkpoint_every=100000',
    '--eval_every=100000',
    '--discriminator_width=32',
    '--min_crop_scale=0.4',
]


def _train(data_dir, model_dir, *train_flags, seconds=None):
    command = [
        sys.executable,
        '-m',
        'chromagen_tf.train',
        f'--data_dir={data_dir}',
        f'--model_dir={model_dir}',
        *_TRAIN_FLAGS,
        *train_flags,
    ]
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=common.REPO_ROOT,
        env=common.quiet_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if seconds is not None:
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)  # Saves, then exits 0.
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(stderr[-3000:])
    step = int(stdout.split('stopped at step ')[1].split()[0])
    return step, time.monotonic() - start


def _evaluate(model, val_photos, report, *evaluate_flags) -> dict:
    """The val metrics of `model` and of the gray baseline."""
    command = [
        sys.executable,
        '-m',
        'chromagen_tf.evaluate',
        f'--model={model}',
        f'--image_dir={val_photos}',
        f'--report={report}',
        *evaluate_flags,
    ]
    subprocess.run(
        command,
        cwd=common.REPO_ROOT,
        check=True,
        capture_output=True,
        env=common.quiet_environment(),
    )
    with open(report) as f:
        result = json.load(f)
    return {'model': result['model'], 'gray': result['gray_baseline']}


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    data_dir, val_photos = _DATA_DIR.value, _VAL_PHOTOS.value
    work = tempfile.mkdtemp(prefix='bench_generators_')
    render = f'--render_size={_RENDER_SIZE.value}'
    config = common.flag_values(
        _DATA_DIR,
        _VAL_PHOTOS,
        _MINUTES,
        _PRETRAIN_STEPS,
        _GAN_STEPS,
        _RENDER_SIZE,
        _QUESTIONS,
        _OUTPUT,
    )
    report = {
        'config': config,
        'machine': common.machine(),
        'wall_clock': {},
        'pretraining': {},
    }
    questions = _QUESTIONS.value

    def record(question: str, name: str, stage: str, **figures) -> None:
        """Evaluates the run `name`; records and prints its row."""
        row = dict(
            figures,
            **_evaluate(
                os.path.join(work, name),
                val_photos,
                os.path.join(work, f'{name}.json'),
                f'--stage={stage}',
                render,
            ),
        )
        report[question][name] = row
        print(json.dumps({name: row}), flush=True)

    if 'wall_clock' in questions:
        for generator in ('resnet18_unet_lite', 'resnet18_unet'):
            model_dir = os.path.join(work, generator)
            step, seconds = _train(
                data_dir,
                model_dir,
                '--stage=pretrain',
                f'--generator={generator}',
                '--train_steps=1000000',
                '--lr_g=2e-4',
                seconds=_MINUTES.value * 60,
            )
            record(
                'wall_clock', generator, 'pretrain', steps=step, seconds=seconds
            )
    if 'pretraining' in questions:
        total = _PRETRAIN_STEPS.value + _GAN_STEPS.value
        runs = {
            'pretrain_then_gan': [
                (
                    '--stage=pretrain',
                    f'--train_steps={_PRETRAIN_STEPS.value}',
                    '--lr_g=2e-4',
                ),
                ('--stage=gan', f'--train_steps={_GAN_STEPS.value}'),
            ],
            'gan_from_scratch': [
                ('--stage=gan', f'--train_steps={total}', '--init_from=none')
            ],
        }
        for name, stages in runs.items():
            model_dir = os.path.join(work, name)
            seconds = 0.0
            for stage_flags in stages:
                seconds += _train(
                    data_dir,
                    model_dir,
                    '--generator=resnet18_unet_lite',
                    *stage_flags,
                )[1]
            record(
                'pretraining', name, 'gan', total_steps=total, seconds=seconds
            )
    common.write_report(report, _OUTPUT.value)


if __name__ == '__main__':
    app.run(main)
