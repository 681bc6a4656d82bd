r"""Data-parallel scaling on this machine, and gradient bytes per step.

Measures training images/s at the same global batch for:
  * 1 vs 2 replicas in one process: OneDeviceStrategy vs MirroredStrategy
    over 2 logical CPU devices (tf.config.set_logical_device_configuration,
    set before TF initialises);
  * 1 vs 2 workers: MultiWorkerMirroredStrategy in one process vs two
    processes on 127.0.0.1, each with its own TF_CONFIG;
and the scaling efficiency, (images/s with 2) / (2 x images/s with 1).
Each figure is the median over timed `train_loop` calls (steps_per_loop
steps each) after warm-up calls; every configuration runs in its own
process.

It also counts what data parallelism all-reduces each step: the gradients
of the trainable variables, float32, for each generator at width 64 and the
PatchGAN (computed from the built models).

Usage:
  python bench/bench_scaling.py --image_size=128 --width=32 \
      --global_batch_size=8 --steps_per_loop=3 --loops=5 \
      --output=bench_scaling.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)

from tests import utils  # pylint: disable=wrong-import-position

_WARMUP_LOOPS = 2  # The first call traces; the second settles the pools.
_GENERATORS = ('resnet18_unet', 'resnet34_unet', 'pix2pix_unet')


def _make_shards(directory, image_size):
    """Converts the bundled photos into two train shards (one per worker)."""
    from data_prep import convert_config
    from data_prep import convert_lib  # pylint: disable=g-import-not-at-top
    from data_prep import shard_files  # pylint: disable=g-import-not-at-top

    config = convert_config.ConvertConfig(
        output_dir=directory,
        image_dir=os.path.join(_REPO, 'sample_photos'),
        image_size=image_size, num_val=2, num_shards=2, num_processes=0)
    convert_lib.run(config, shard_files.list_image_dir(config.image_dir),
                    show_progress=False)
    return directory


def _measure(args):
    """Child process: images/s of one strategy; prints one JSON line."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    if args.mode == 'mirrored':
        cpu = tf.config.list_physical_devices('CPU')[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras  # pylint: disable=g-import-not-at-top

    from chromagen_tf import configs  # pylint: disable=g-import-not-at-top
    from chromagen_tf.training import state  # pylint: disable=g-import-not-at-top
    from chromagen_tf.training import trainer  # pylint: disable=g-import-not-at-top

    keras.mixed_precision.set_global_policy('float32')
    if args.mode == 'mirrored':
        strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    elif args.mode == 'multi_worker':
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
    config = configs.TrainConfig(
        stage='pretrain', data_dir=args.data_dir,
        model_dir=tempfile.mkdtemp(),
        model=configs.ModelConfig(generator=args.generator,
                                  width=args.width,
                                  discriminator_width=args.width),
        image_size=args.image_size,
        global_batch_size=args.global_batch_size,
        steps_per_loop=args.steps_per_loop, mixed_precision='float32',
        strategy=args.mode)
    train = state.Trainer(config, strategy, 'float32')
    # The trainer's own input pipeline, as `train()` builds it.
    datasets = trainer._make_datasets(  # pylint: disable=protected-access
        config, strategy, 0, None)
    iterator = iter(datasets)
    steps = tf.constant(args.steps_per_loop)
    times = []
    for index in range(_WARMUP_LOOPS + args.loops):
        start = time.perf_counter()
        float(train.steps.train_loop(iterator, steps)[0]['l1'])
        if index >= _WARMUP_LOOPS:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(json.dumps(dict(
        mode=args.mode, replicas=strategy.num_replicas_in_sync,
        seconds_per_loop=seconds,
        images_per_second=(args.steps_per_loop * args.global_batch_size
                           / seconds))))


def _gradient_bytes(args):
    """Child process: float32 bytes of the trainable variables per model."""
    del args
    from chromagen_tf import models  # pylint: disable=g-import-not-at-top

    sizes = {}
    for name in _GENERATORS:
        sizes[name] = models.build_generator(name, width=64)
    sizes['patchgan'] = models.build_discriminator(width=64)
    print(json.dumps({
        name: 4 * sum(int(v.numpy().size) for v in model.trainable_variables)
        for name, model in sizes.items()}))


def _child(args, mode, workers=0):
    """Runs this script as `workers` processes (0: one, no TF_CONFIG)."""
    command = [sys.executable, os.path.abspath(__file__), f'--mode={mode}',
               f'--data_dir={args.data_dir}', f'--generator={args.generator}',
               f'--width={args.width}', f'--image_size={args.image_size}',
               f'--global_batch_size={args.global_batch_size}',
               f'--steps_per_loop={args.steps_per_loop}',
               f'--loops={args.loops}']
    environments = [dict(os.environ)]
    if workers:
        cluster = {'worker': [f'127.0.0.1:{port}'
                              for port in utils.free_ports(workers)]}
        environments = []
        for index in range(workers):
            environment = dict(os.environ)
            environment['TF_CONFIG'] = json.dumps(
                {'cluster': cluster, 'task': {'type': 'worker',
                                              'index': index}})
            environments.append(environment)
    logs, processes = [], []
    for environment in environments:
        # Files, not pipes: a worker stuck on a full pipe stalls the other.
        log = tempfile.TemporaryFile('w+')
        logs.append(log)
        processes.append(subprocess.Popen(
            command, stdout=log, stderr=subprocess.DEVNULL, text=True,
            env=environment, cwd=_REPO))
    for process in processes:
        process.wait(timeout=1800)
    results = []
    for process, log in zip(processes, logs):
        log.seek(0)
        lines = log.read().strip().splitlines()
        if process.returncode or not lines:
            raise RuntimeError(f'{mode} failed with code {process.returncode}')
        results.append(json.loads(lines[-1]))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--mode', default='all', choices=[
        'all', 'one_device', 'mirrored', 'multi_worker', 'bytes'])
    parser.add_argument('--data_dir', default='')
    parser.add_argument('--generator', default='resnet18_unet',
                        choices=_GENERATORS)
    parser.add_argument('--width', type=int, default=32)
    parser.add_argument('--image_size', type=int, default=128)
    parser.add_argument('--global_batch_size', type=int, default=8)
    parser.add_argument('--steps_per_loop', type=int, default=3)
    parser.add_argument('--loops', type=int, default=5)
    parser.add_argument('--output', default='')
    args = parser.parse_args()
    if args.mode == 'bytes':
        return _gradient_bytes(args)
    if args.mode != 'all':
        return _measure(args)

    if not args.data_dir:
        args.data_dir = _make_shards(tempfile.mkdtemp(), args.image_size)
    one_device = _child(args, 'one_device')[0]
    mirrored = _child(args, 'mirrored')[0]
    one_worker = _child(args, 'multi_worker', workers=1)[0]
    two_workers = _child(args, 'multi_worker', workers=2)
    # Both workers time the same synchronised steps; report the slower.
    two_worker_rate = min(r['images_per_second'] for r in two_workers)
    results = dict(
        settings=dict(generator=args.generator, width=args.width,
                      image_size=args.image_size,
                      global_batch_size=args.global_batch_size,
                      steps_per_loop=args.steps_per_loop, loops=args.loops,
                      warmup_loops=_WARMUP_LOOPS, stage='pretrain',
                      precision='float32'),
        replicas={
            'one_device': one_device['images_per_second'],
            'mirrored_2_logical_cpus': mirrored['images_per_second'],
            'efficiency': mirrored['images_per_second']
                          / (2 * one_device['images_per_second']),
        },
        workers={
            'one_worker': one_worker['images_per_second'],
            'two_workers': two_worker_rate,
            'efficiency': two_worker_rate
                          / (2 * one_worker['images_per_second']),
        },
        gradient_bytes_per_step=_child(args, 'bytes')[0],
    )
    text = json.dumps(results, indent=2)
    print(text)
    if args.output:
        with open(args.output, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
