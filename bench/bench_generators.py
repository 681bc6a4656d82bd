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

  python bench/bench_generators.py --data_dir=runs/bundled/data \
      --val_photos=runs/bundled/val_photos --minutes=8 \
      --pretrain_steps=600 --gan_steps=300 --output=bench_generators.json
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COMMON = ['--image_size=128', '--global_batch_size=16', '--seed=0',
           '--steps_per_loop=10', '--summary_every=10',
           '--checkpoint_every=100000', '--eval_every=100000',
           '--discriminator_width=32', '--min_crop_scale=0.4']


def _train(data_dir, model_dir, *flags, seconds=None):
    command = [sys.executable, '-m', 'chromagen_tf.train',
               f'--data_dir={data_dir}', f'--model_dir={model_dir}',
               *_COMMON, *flags]
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=_REPO, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
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


def _evaluate(model, val_photos, report, *flags):
    subprocess.run(
        [sys.executable, '-m', 'chromagen_tf.evaluate', f'--model={model}',
         f'--image_dir={val_photos}', f'--report={report}', *flags],
        cwd=_REPO, check=True, capture_output=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    with open(report) as f:
        result = json.load(f)
    return result['model'], result['gray_baseline']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data_dir', required=True)
    parser.add_argument('--val_photos', required=True,
                        help='Folder of the val photos at full size.')
    parser.add_argument('--minutes', type=float, default=8.0,
                        help='Wall-clock training budget per generator.')
    parser.add_argument('--pretrain_steps', type=int, default=600)
    parser.add_argument('--gan_steps', type=int, default=300)
    parser.add_argument('--render_size', type=int, default=192)
    parser.add_argument('--questions', default='wall_clock,pretraining')
    parser.add_argument('--output', default='')
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='bench_generators_')
    render = f'--render_size={args.render_size}'
    report = {'config': vars(args), 'wall_clock': {}, 'pretraining': {}}
    questions = args.questions.split(',')
    if 'wall_clock' in questions:
        for generator in ('resnet18_unet_lite', 'resnet18_unet'):
            model_dir = os.path.join(work, generator)
            step, seconds = _train(
                args.data_dir, model_dir, '--stage=pretrain',
                f'--generator={generator}', '--train_steps=1000000',
                '--lr_g=2e-4', seconds=args.minutes * 60)
            model, gray = _evaluate(model_dir, args.val_photos,
                                    os.path.join(work, f'{generator}.json'),
                                    '--stage=pretrain', render)
            report['wall_clock'][generator] = dict(
                steps=step, seconds=seconds, model=model, gray=gray)
            print(json.dumps({generator: report['wall_clock'][generator]}),
                  flush=True)
    if 'pretraining' in questions:
        total = args.pretrain_steps + args.gan_steps
        runs = {
            'pretrain_then_gan': [
                ('--stage=pretrain', f'--train_steps={args.pretrain_steps}',
                 '--lr_g=2e-4'),
                ('--stage=gan', f'--train_steps={args.gan_steps}')],
            'gan_from_scratch': [
                ('--stage=gan', f'--train_steps={total}', '--init_from=none')],
        }
        for name, stages in runs.items():
            model_dir = os.path.join(work, name)
            seconds = 0.0
            for flags in stages:
                seconds += _train(args.data_dir, model_dir,
                                  '--generator=resnet18_unet_lite', *flags)[1]
            model, gray = _evaluate(model_dir, args.val_photos,
                                    os.path.join(work, f'{name}.json'),
                                    '--stage=gan', render)
            report['pretraining'][name] = dict(
                total_steps=total, seconds=seconds, model=model, gray=gray)
            print(json.dumps({name: report['pretraining'][name]}), flush=True)
    print(json.dumps(report, indent=1))
    if args.output:
        with open(args.output, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
