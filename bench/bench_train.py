r"""Training throughput, memory and FLOP efficiency on this machine.

Measures, for the real resnet18_unet (width 64) at 256x256 and global batch
16 on one device:
  * images/s of each stage (custom tf.function steps, steps_per_loop=5),
    median over timed loops after a warm-up, under float32 and bfloat16;
  * the same next to a plain Keras `model.fit` of the same networks
    (`compile(loss='mae')` for pretraining; a `train_step` override in the
    style of the Keras DCGAN example for the GAN);
  * the peak RSS of each run (each run is its own process);
  * the achieved FLOP rate as a fraction of the CPU's peak, the peak being a
    large float32 matmul timed in the same process;
  * input pipeline images/s on one core (private thread pool of 1).

Usage:
  python bench/bench_train.py --steps=4 --repeats=3 --output=bench_train.json
  python bench/bench_train.py --steps=1 --repeats=3 --stages=pretrain \
      --precisions=float32 --trials=3   # custom vs fit, 3 processes each
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)

# Forward FLOPs per 256x256 image, from the models' docstrings (measured
# with bench/bench_models.py). A training step costs about 3x the forward
# pass (forward, gradient w.r.t. activations, gradient w.r.t. weights).
_GENERATOR_GFLOPS = {'resnet18_unet': 56.9, 'resnet18_unet_lite': 8.08,
                     'resnet34_unet': 61.8, 'resnet34_unet_lite': 12.9,
                     'pix2pix_unet': 12.0}
_DISCRIMINATOR_GFLOPS = 6.3


def _step_gflops(stage, generator):
    # GAN step: G fwd+bwd (3 G); D on real and fake, fwd+bwd (2 x 3 D); the
    # fresh D(fake) for the generator, fwd + input gradient (about 2 D).
    gflops = 3 * _GENERATOR_GFLOPS[generator]
    return gflops + (8 * _DISCRIMINATOR_GFLOPS if stage == 'gan' else 0)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _matmul_peak_gflops(dtype_name='float32', size=2048, repeats=10):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    dtype = tf.as_dtype(dtype_name)
    a = tf.random.normal([size, size], dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).numpy()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def make_shards(directory, image_size=256):
    """Converts the bundled photos with the real converter."""
    from data_prep import convert_config  # pylint: disable=g-import-not-at-top
    from data_prep import convert_lib  # pylint: disable=g-import-not-at-top
    from data_prep import shard_files  # pylint: disable=g-import-not-at-top

    config = convert_config.ConvertConfig(
        output_dir=directory,
        image_dir=os.path.join(_REPO, 'sample_photos'),
        image_size=image_size, num_val=2, num_shards=1, num_processes=0)
    sources = shard_files.list_image_dir(config.image_dir)
    convert_lib.run(config, sources, show_progress=False)
    return directory


def _run_custom(stage, precision, data_dir, steps, repeats,
                variant='custom', generator='resnet18_unet'):
    """Times chromagen_tf's steps.

    variant 'custom' is the trainer's `train_loop` (an in-graph loop over
    `steps` under OneDeviceStrategy); 'custom_run_once' one `strategy.run`
    per call with no in-graph loop; 'custom_no_strategy' the per-replica
    step in a plain `tf.function` under the default strategy.
    """
    # pylint: disable=g-import-not-at-top
    import tensorflow as tf

    from chromagen_tf import configs
    from chromagen_tf.training import distribute
    from chromagen_tf.training import state
    from chromagen_tf.training import trainer

    # pylint: enable=g-import-not-at-top

    values = dict(stage=stage, data_dir=data_dir,
                  model_dir=tempfile.mkdtemp(), image_size=256,
                  global_batch_size=16, steps_per_loop=steps,
                  mixed_precision=precision, strategy='one_device',
                  model=configs.ModelConfig(generator=generator))
    config = configs.TrainConfig(**values)
    strategy, policy = distribute.setup('one_device', precision)
    if variant == 'custom_no_strategy':
        strategy = tf.distribute.get_strategy()
    train = state.Trainer(config, strategy, policy)
    iterator = iter(trainer._make_datasets(config, strategy, 0, None))  # pylint: disable=protected-access
    step_functions = train.steps
    if variant == 'custom':
        run = lambda: step_functions.train_loop(iterator, tf.constant(steps))
    else:
        @tf.function
        def _one_step():
            if variant == 'custom_run_once':
                return step_functions._sum(strategy.run(  # pylint: disable=protected-access
                    step_functions.replica_step, args=(next(iterator),)))
            return step_functions.replica_step(next(iterator))

        def run():
            for _ in range(steps):
                outputs = _one_step()
            return outputs
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        tf.nest.map_structure(lambda value: value.numpy(), run())
        if i:  # The first call includes tracing.
            times.append(time.perf_counter() - start)
    return steps * 16 / statistics.median(times)


def _run_fit(stage, precision, data_dir, steps, repeats):
    # pylint: disable=g-import-not-at-top
    import keras
    import tensorflow as tf

    from chromagen_tf import models
    from chromagen_tf.data import input_pipeline
    from chromagen_tf.data import records
    from chromagen_tf.training import distribute
    from chromagen_tf.training import losses

    # pylint: enable=g-import-not-at-top

    distribute.setup('one_device', precision)
    dataset = input_pipeline.make_dataset(
        records.shard_pattern(data_dir, 'train'), training=True,
        image_size=256, global_batch_size=16)
    generator = models.build_generator('resnet18_unet')
    if stage == 'pretrain':
        model = generator
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss='mae',
                      steps_per_execution=steps)
    else:
        model = _FitGan(generator, models.build_discriminator(), losses)
        model.compile(steps_per_execution=steps)
    times = []

    class _Timer(keras.callbacks.Callback):

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch:  # The first epoch includes tracing.
                times.append(time.perf_counter() - self.start)

    model.fit(dataset, epochs=repeats + 1, steps_per_epoch=steps,
              callbacks=[_Timer()], verbose=0)
    del tf
    return steps * 16 / statistics.median(times)


def _fit_gan_class():
    import keras  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    class FitGan(keras.Model):
        """The GAN step as a Keras `train_step`, as in keras.io's DCGAN."""

        def __init__(self, generator, discriminator, losses):
            super().__init__()
            self.generator = generator
            self.discriminator = discriminator
            self.losses_lib = losses
            self.g_optimizer = keras.optimizers.Adam(2e-4, beta_1=0.5)
            self.d_optimizer = keras.optimizers.Adam(2e-4, beta_1=0.5)

        def train_step(self, batch):
            l_channel, ab = batch
            lib = self.losses_lib
            with tf.GradientTape() as g_tape:
                fake = self.generator(l_channel, training=True)
                with tf.GradientTape() as d_tape:
                    real_logits = self.discriminator(
                        tf.concat([l_channel, ab], -1), training=True)
                    fake_logits = self.discriminator(
                        tf.concat([l_channel, tf.stop_gradient(fake)], -1),
                        training=True)
                    d_loss = tf.reduce_mean(
                        lib.discriminator_loss(real_logits, fake_logits))
                d_vars = self.discriminator.trainable_variables
                self.d_optimizer.apply(d_tape.gradient(d_loss, d_vars),
                                       d_vars)
                logits = self.discriminator(
                    tf.concat([l_channel, fake], -1), training=True)
                g_loss = tf.reduce_mean(
                    lib.generator_adversarial_loss(logits)
                    + 100.0 * lib.l1(ab, fake))
            g_vars = self.generator.trainable_variables
            self.g_optimizer.apply(g_tape.gradient(g_loss, g_vars), g_vars)
            return {'d_loss': d_loss, 'g_loss': g_loss}

    return FitGan


def _FitGan(*args):  # pylint: disable=invalid-name
    return _fit_gan_class()(*args)


def _input_pipeline(data_dir, batches=40):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    # pylint: disable-next=g-import-not-at-top
    from chromagen_tf.data import input_pipeline
    from chromagen_tf.data import records  # pylint: disable=g-import-not-at-top

    dataset = input_pipeline.make_dataset(
        records.shard_pattern(data_dir, 'train'), training=True,
        image_size=256, global_batch_size=16)
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    dataset = dataset.with_options(options)
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * 16 / (time.perf_counter() - start)


def _child(args):
    """One measurement in this process; prints a JSON line."""
    if args.kind == 'peak':
        result = {name: _matmul_peak_gflops(name)
                  for name in ('float32', 'bfloat16')}
    elif args.kind == 'input':
        result = {'images_per_second': _input_pipeline(args.data_dir)}
    else:
        if args.kind == 'fit':
            images_per_second = _run_fit(args.stage, args.precision,
                                         args.data_dir, args.steps,
                                         args.repeats)
        else:
            images_per_second = _run_custom(args.stage, args.precision,
                                            args.data_dir, args.steps,
                                            args.repeats, args.kind,
                                            args.generator)
        result = {'images_per_second': images_per_second}
    result['peak_rss_mb'] = _peak_rss_mb()
    print('RESULT ' + json.dumps(result))


def _spawn(*extra):
    output = subprocess.run(
        [sys.executable, os.path.abspath(__file__), '--child', *extra],
        capture_output=True, text=True, check=False)
    for line in output.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT '):])
    raise RuntimeError(output.stderr[-3000:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=4,
                        help='Steps per timed loop (steps_per_loop).')
    parser.add_argument('--repeats', type=int, default=3,
                        help='Timed loops after the warm-up loop.')
    parser.add_argument('--precisions', default='float32,bfloat16')
    parser.add_argument('--stages', default='pretrain,gan')
    parser.add_argument('--loops', default='custom,fit',
                        help='Any of custom (chromagen_tf.train), fit, '
                        'custom_run_once, custom_no_strategy (see '
                        '_run_custom).')
    parser.add_argument('--trials', type=int, default=1,
                        help='Processes per setting, interleaved across '
                        'settings; the median and range are reported. The '
                        'rate varies by a few percent between processes.')
    parser.add_argument('--generator', default='resnet18_unet',
                        help='Generator to train (the custom loops only).')
    parser.add_argument('--output', default='', help='Also write JSON here.')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--kind', default='custom', help=argparse.SUPPRESS)
    parser.add_argument('--stage', default='pretrain', help=argparse.SUPPRESS)
    parser.add_argument('--precision', default='float32',
                        help=argparse.SUPPRESS)
    parser.add_argument('--data_dir', default='', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    data_dir = make_shards(tempfile.mkdtemp(prefix='bench_train_'))
    common = ['--data_dir', data_dir, '--steps', str(args.steps),
              '--repeats', str(args.repeats), '--generator', args.generator]
    report = {'peak_gflops': _spawn('--kind', 'peak'),
              'input_pipeline_one_core': _spawn('--kind', 'input', *common),
              'runs': []}
    trials = {}
    for _ in range(args.trials):
        for precision in args.precisions.split(','):
            for stage in args.stages.split(','):
                for kind in args.loops.split(','):
                    result = _spawn('--kind', kind, '--stage', stage,
                                    '--precision', precision, *common)
                    result.update(stage=stage, precision=precision, loop=kind)
                    print(json.dumps(result), flush=True)
                    trials.setdefault((stage, precision, kind),
                                      []).append(result)
    peak = report['peak_gflops']['float32']
    for (stage, precision, kind), results in trials.items():
        rates = [result['images_per_second'] for result in results]
        median = statistics.median(rates)
        achieved = median * _step_gflops(stage, args.generator)
        report['runs'].append(dict(
            stage=stage, precision=precision, loop=kind,
            generator=args.generator, images_per_second=median, images_per_second_trials=rates,
            peak_rss_mb=max(result['peak_rss_mb'] for result in results),
            achieved_gflops=achieved,
            fraction_of_float32_peak=achieved / peak))
    print(json.dumps(report, indent=1))
    if args.output:
        with open(args.output, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
