r"""Training throughput, memory and FLOP efficiency on this machine.

Measures, for the real resnet18_unet (width 64) at 256x256 and global batch
16 on one device:
  * images/s of each stage (custom tf.function steps, steps_per_loop = --steps,
  4),
    median over timed loops after a warm-up, under float32 and bfloat16;
  * the same next to a plain Keras `model.fit` of the same networks
    (`compile(loss='mae')` for pretraining; a `train_step` override in the
    style of the Keras DCGAN example for the GAN);
  * the peak RSS of each run (each run is its own process);
  * the achieved FLOP rate as a fraction of the CPU's peak, the peak being a
    large float32 matmul timed in the same process;
  * input pipeline images/s on one core (private thread pool of 1).

Usage:
  python -m bench.bench_train --steps=4 --repeats=3 --output=bench_train.json
  python -m bench.bench_train --steps=1 --repeats=3 --stages=pretrain \
      --precisions=float32 --trials=3   # custom vs fit, 3 processes each
"""

import dataclasses
import json
import statistics
import tempfile
import time

from absl import app
from absl import flags

from bench import common

_LOOP_NAMES = (
    'custom',
    'fit',
    'custom_run_once',
    'custom_no_strategy',
    'custom_ema',
    'custom_bins',
)

_STEPS = flags.DEFINE_integer(
    'steps', 4, 'Steps per timed loop (steps_per_loop).', lower_bound=1
)
_REPEATS = flags.DEFINE_integer(
    'repeats', 3, 'Timed loops after the warm-up loop.', lower_bound=1
)
_PRECISIONS = flags.DEFINE_list(
    'precisions', ['float32', 'bfloat16'], 'Precisions to measure.'
)
_STAGES = flags.DEFINE_list(
    'stages', ['pretrain', 'gan'], 'Training stages to measure.'
)
_LOOPS = flags.DEFINE_list(
    'loops',
    ['custom', 'fit'],
    'Any of custom (chromagen_tf.train), fit, '
    'custom_run_once, custom_no_strategy, custom_ema, custom_bins (see '
    '_run_custom).',
)
flags.register_validator(
    'loops',
    lambda loops: set(loops) <= set(_LOOP_NAMES),
    message=f'--loops takes any of {",".join(_LOOP_NAMES)}',
)
_TRIALS = flags.DEFINE_integer(
    'trials',
    1,
    'Processes per setting, interleaved across settings; the '
    'median and range are reported. The rate varies by a few percent '
    'between processes.',
    lower_bound=1,
)
_GENERATOR = flags.DEFINE_string(
    'generator', 'resnet18_unet', 'Generator to train (the custom loops only).'
)
_OUTPUT = flags.DEFINE_string('output', '', 'Also write JSON here.')
_CHILD = flags.DEFINE_bool(
    'child', False, 'Internal: this process is one measurement of a parent run.'
)
_KIND = flags.DEFINE_string(
    'kind',
    'custom',
    'Internal: the child\'s measurement: peak, input or a loop.',
)
_STAGE = flags.DEFINE_string(
    'stage', 'pretrain', 'Internal: the child\'s stage.'
)
_PRECISION = flags.DEFINE_string(
    'precision', 'float32', 'Internal: the child\'s precision.'
)
_DATA_DIR = flags.DEFINE_string(
    'data_dir', '', 'Internal: the child\'s shards.'
)

# Forward FLOPs per 256x256 image, from the models' docstrings (measured
# with `python -m bench.bench_models`). A training step costs about 3x the
# forward pass (forward, gradient w.r.t. activations, gradient w.r.t. weights).
_GENERATOR_GFLOPS = {
    'resnet18_unet': 56.9,
    'resnet18_unet_lite': 8.08,
    'resnet34_unet': 61.8,
    'resnet34_unet_lite': 12.9,
    'pix2pix_unet': 12.0,
}
_DISCRIMINATOR_GFLOPS = 6.3


def _step_gflops(stage, generator):
    # GAN step: G fwd+bwd (3 G); D on real and fake, fwd+bwd (2 x 3 D); the
    # fresh D(fake) for the generator, fwd + input gradient (about 2 D).
    gflops = 3 * _GENERATOR_GFLOPS[generator]
    return gflops + (8 * _DISCRIMINATOR_GFLOPS if stage == 'gan' else 0)


@dataclasses.dataclass(frozen=True)
class _Measurement:
    """What one child process measures."""

    kind: str  # 'peak', 'input' or one of _LOOP_NAMES.
    stage: str
    precision: str
    data_dir: str
    steps: int
    repeats: int
    generator: str


def _matmul_peak_gflops(dtype_name='float32', size=2048, repeats=10):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    dtype = tf.as_dtype(dtype_name)
    a = tf.random.normal([size, size], dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.matmul(x, x))
    seconds = common.median_seconds(lambda: matmul(a).numpy(), repeats)
    return 2 * size**3 / seconds / 1e9


def _run_custom(
    stage,
    precision,
    data_dir,
    steps,
    repeats,
    variant='custom',
    generator='resnet18_unet',
):
    """Times chromagen_tf's steps.

    variant 'custom' is the trainer's `train_loop` (an in-graph loop over
    `steps` under OneDeviceStrategy); 'custom_run_once' one `strategy.run`
    per call with no in-graph loop; 'custom_no_strategy' the per-replica
    step in a plain `tf.function` under the default strategy; 'custom_ema'
    the trainer's `train_loop` keeping a moving average of the generator
    (--ema_decay=0.999); 'custom_bins' the trainer's `train_loop` with the
    colour-bins head (--color_head=bins, a *_unet_lite generator).
    """
    # pylint: disable=g-import-not-at-top
    import tensorflow as tf

    from chromagen_tf import configs
    from chromagen_tf.training import distribute
    from chromagen_tf.training import state
    from chromagen_tf.training import trainer

    # pylint: enable=g-import-not-at-top

    values = dict(
        stage=stage,
        data_dir=data_dir,
        model_dir=tempfile.mkdtemp(),
        image_size=256,
        global_batch_size=16,
        steps_per_loop=steps,
        mixed_precision=precision,
        strategy='one_device',
        model=configs.ModelConfig(
            generator=generator,
            color_head='bins' if variant == 'custom_bins' else 'regression',
        ),
        ema_decay=0.999 if variant == 'custom_ema' else 0.0,
    )
    config = configs.TrainConfig(**values)
    strategy, policy = distribute.setup('one_device', precision)
    if variant == 'custom_no_strategy':
        strategy = tf.distribute.get_strategy()
    train = state.Trainer(config, strategy, policy)
    iterator = iter(trainer._make_datasets(config, strategy, 0, None))  # pylint: disable=protected-access
    step_functions = train.steps
    if variant in ('custom', 'custom_ema', 'custom_bins'):

        def run():
            return step_functions.train_loop(iterator, tf.constant(steps))

    else:

        @tf.function
        def _one_step():
            if variant == 'custom_run_once':
                return step_functions._sum(
                    strategy.run(  # pylint: disable=protected-access
                        step_functions.replica_step, args=(next(iterator),)
                    )
                )
            return step_functions.replica_step(next(iterator))

        def run():
            for _ in range(steps):
                outputs = _one_step()
            return outputs

    # The untimed warm-up call includes tracing.
    seconds = common.median_seconds(
        lambda: tf.nest.map_structure(lambda value: value.numpy(), run()),
        repeats,
    )
    return steps * 16 / seconds


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

    # keras.fit builds its models under the global policy; this process is
    # the benchmark's own, so it may set it.
    _, policy = distribute.setup('one_device', precision)
    keras.config.set_dtype_policy(policy)
    dataset = input_pipeline.make_dataset(
        records.shard_pattern(data_dir, 'train'),
        training=True,
        image_size=256,
        global_batch_size=16,
    )
    generator = models.build_generator('resnet18_unet')
    if stage == 'pretrain':
        model = generator
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss='mae',
            steps_per_execution=steps,
        )
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

    model.fit(
        dataset,
        epochs=repeats + 1,
        steps_per_epoch=steps,
        callbacks=[_Timer()],
        verbose=0,
    )
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
                        tf.concat([l_channel, ab], -1), training=True
                    )
                    fake_logits = self.discriminator(
                        tf.concat([l_channel, tf.stop_gradient(fake)], -1),
                        training=True,
                    )
                    d_loss = tf.reduce_mean(
                        lib.discriminator_loss(real_logits, fake_logits)
                    )
                d_vars = self.discriminator.trainable_variables
                self.d_optimizer.apply(d_tape.gradient(d_loss, d_vars), d_vars)
                logits = self.discriminator(
                    tf.concat([l_channel, fake], -1), training=True
                )
                g_loss = tf.reduce_mean(
                    lib.generator_adversarial_loss(logits)
                    + 100.0 * lib.l1(ab, fake)
                )
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
        records.shard_pattern(data_dir, 'train'),
        training=True,
        image_size=256,
        global_batch_size=16,
    )
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


def _measure(measurement: _Measurement) -> dict:
    """One measurement in this process; returns its figures."""
    if measurement.kind == 'peak':
        result = {
            name: _matmul_peak_gflops(name) for name in ('float32', 'bfloat16')
        }
    elif measurement.kind == 'input':
        result = {'images_per_second': _input_pipeline(measurement.data_dir)}
    else:
        if measurement.kind == 'fit':
            images_per_second = _run_fit(
                measurement.stage,
                measurement.precision,
                measurement.data_dir,
                measurement.steps,
                measurement.repeats,
            )
        else:
            images_per_second = _run_custom(
                measurement.stage,
                measurement.precision,
                measurement.data_dir,
                measurement.steps,
                measurement.repeats,
                measurement.kind,
                measurement.generator,
            )
        result = {'images_per_second': images_per_second}
    result['peak_rss_mb'] = common.peak_rss_mb()
    return result


def _spawn(measurement: _Measurement) -> dict:
    """Runs one measurement in its own process, for its own peak RSS."""
    return common.run_child(
        'bench_train',
        '--child',
        f'--kind={measurement.kind}',
        f'--stage={measurement.stage}',
        f'--precision={measurement.precision}',
        f'--data_dir={measurement.data_dir}',
        f'--steps={measurement.steps}',
        f'--repeats={measurement.repeats}',
        f'--generator={measurement.generator}',
    )


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    measurement = _Measurement(
        **common.flag_values(
            _KIND, _STAGE, _PRECISION, _DATA_DIR, _STEPS, _REPEATS, _GENERATOR
        )
    )
    if _CHILD.value:
        common.print_result(_measure(measurement))
        return
    measurement = dataclasses.replace(
        measurement,
        data_dir=common.make_shards(
            tempfile.mkdtemp(prefix='bench_train_'), image_size=256
        ),
    )
    report = {
        'machine': common.machine(),
        'peak_gflops': _spawn(dataclasses.replace(measurement, kind='peak')),
        'input_pipeline_one_core': _spawn(
            dataclasses.replace(measurement, kind='input')
        ),
        'runs': [],
    }
    trials = {}
    for _ in range(_TRIALS.value):
        for precision in _PRECISIONS.value:
            for stage in _STAGES.value:
                for kind in _LOOPS.value:
                    result = _spawn(
                        dataclasses.replace(
                            measurement,
                            kind=kind,
                            stage=stage,
                            precision=precision,
                        )
                    )
                    result.update(stage=stage, precision=precision, loop=kind)
                    print(json.dumps(result), flush=True)
                    trials.setdefault((stage, precision, kind), []).append(
                        result
                    )
    peak = report['peak_gflops']['float32']
    for (stage, precision, kind), results in trials.items():
        rates = [result['images_per_second'] for result in results]
        median = statistics.median(rates)
        achieved = median * _step_gflops(stage, _GENERATOR.value)
        report['runs'].append(
            dict(
                stage=stage,
                precision=precision,
                loop=kind,
                generator=_GENERATOR.value,
                images_per_second=median,
                images_per_second_trials=rates,
                peak_rss_mb=max(result['peak_rss_mb'] for result in results),
                achieved_gflops=achieved,
                fraction_of_float32_peak=achieved / peak,
            )
        )
    common.write_report(report, _OUTPUT.value)


if __name__ == '__main__':
    app.run(main)
