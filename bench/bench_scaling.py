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
  python -m bench.bench_scaling --image_size=128 --width=32 \
      --global_batch_size=8 --steps_per_loop=3 --loops=5 \
      --output=bench_scaling.json
"""

import dataclasses
import json
import subprocess
import tempfile

from absl import app
from absl import flags

from bench import common
from tests import utils

_WARMUP_LOOPS = 2  # The first call traces; the second settles the pools.
_GENERATORS = ('resnet18_unet', 'resnet34_unet', 'pix2pix_unet')

_MODE = flags.DEFINE_enum(
    'mode',
    'all',
    ['all', 'one_device', 'mirrored', 'multi_worker', 'bytes'],
    'all: every measurement, each in its own process(es). The others are '
    'what those processes run: one strategy, or the gradient bytes.',
)
_DATA_DIR = flags.DEFINE_string(
    'data_dir',
    '',
    'Train shards (two, one per worker); default: the '
    'bundled photos, converted at --image_size.',
)
_GENERATOR = flags.DEFINE_enum(
    'generator', 'resnet18_unet', _GENERATORS, 'Generator to train.'
)
_WIDTH = flags.DEFINE_integer(
    'width', 32, 'Base channel width of the generator.', lower_bound=1
)
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 128, 'Training crop size.')
_GLOBAL_BATCH_SIZE = flags.DEFINE_integer(
    'global_batch_size',
    8,
    'Global batch, the same for every setting.',
    lower_bound=1,
)
_STEPS_PER_LOOP = flags.DEFINE_integer(
    'steps_per_loop', 3, 'Steps per timed train_loop call.', lower_bound=1
)
_LOOPS = flags.DEFINE_integer(
    'loops',
    5,
    'Timed train_loop calls after '
    f'{_WARMUP_LOOPS} warm-up calls; the median '
    'is reported.',
    lower_bound=1,
)
_OUTPUT = flags.DEFINE_string('output', '', 'Also write JSON here.')


@dataclasses.dataclass(frozen=True)
class _Settings:
    """What every measurement of one run shares."""

    data_dir: str
    generator: str
    width: int
    image_size: int
    global_batch_size: int
    steps_per_loop: int
    loops: int

    def as_flags(self) -> list[str]:
        """The same settings as command-line flags, for a child."""
        return [
            f'--{field.name}={getattr(self, field.name)}'
            for field in dataclasses.fields(self)
        ]


def _measure(mode: str, settings: _Settings) -> dict:
    """Child process: images/s of one strategy."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    if mode == 'mirrored':
        cpu = tf.config.list_physical_devices('CPU')[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    import keras  # pylint: disable=g-import-not-at-top

    from chromagen_tf import configs  # pylint: disable=g-import-not-at-top
    from chromagen_tf.training import state  # pylint: disable=g-import-not-at-top
    from chromagen_tf.training import trainer  # pylint: disable=g-import-not-at-top

    keras.mixed_precision.set_global_policy('float32')
    if mode == 'mirrored':
        strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    elif mode == 'multi_worker':
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
    config = configs.TrainConfig(
        stage='pretrain',
        data_dir=settings.data_dir,
        model_dir=tempfile.mkdtemp(),
        model=configs.ModelConfig(
            generator=settings.generator,
            width=settings.width,
            discriminator_width=settings.width,
        ),
        image_size=settings.image_size,
        global_batch_size=settings.global_batch_size,
        steps_per_loop=settings.steps_per_loop,
        mixed_precision='float32',
        strategy=mode,
    )
    train = state.Trainer(config, strategy, 'float32')
    # The trainer's own input pipeline, as `train()` builds it.
    datasets = trainer._make_datasets(  # pylint: disable=protected-access
        config, strategy, 0, None
    )
    iterator = iter(datasets)
    steps = tf.constant(settings.steps_per_loop)

    def train_loop():
        float(train.steps.train_loop(iterator, steps)[0]['l1'])

    for _ in range(_WARMUP_LOOPS):
        train_loop()
    seconds = common.median_seconds(train_loop, settings.loops, warm_up=False)
    return dict(
        mode=mode,
        replicas=strategy.num_replicas_in_sync,
        seconds_per_loop=seconds,
        images_per_second=(
            settings.steps_per_loop * settings.global_batch_size / seconds
        ),
    )


def _gradient_bytes() -> dict:
    """Child process: float32 bytes of the trainable variables per model."""
    from chromagen_tf import models  # pylint: disable=g-import-not-at-top

    sizes = {}
    for name in _GENERATORS:
        sizes[name] = models.build_generator(name, width=64)
    sizes['patchgan'] = models.build_discriminator(width=64)
    return {
        name: 4 * sum(int(v.numpy().size) for v in model.trainable_variables)
        for name, model in sizes.items()
    }


def _child(settings: _Settings, mode: str, workers: int = 0) -> list[dict]:
    """Runs this script as `workers` processes (0: one, no TF_CONFIG)."""
    command = common.child_command(
        'bench_scaling', f'--mode={mode}', *settings.as_flags()
    )
    environments = [common.quiet_environment()]
    if workers:
        cluster = {
            'worker': [
                f'127.0.0.1:{port}' for port in utils.free_ports(workers)
            ]
        }
        environments = [
            common.quiet_environment(
                TF_CONFIG=json.dumps(
                    {
                        'cluster': cluster,
                        'task': {'type': 'worker', 'index': index},
                    }
                )
            )
            for index in range(workers)
        ]
    logs, processes = [], []
    for environment in environments:
        # Files, not pipes: a worker stuck on a full pipe stalls the other.
        log = tempfile.TemporaryFile('w+')
        logs.append(log)
        processes.append(
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.DEVNULL,
                text=True,
                env=environment,
                cwd=common.REPO_ROOT,
            )
        )
    for process in processes:
        process.wait(timeout=1800)
    results = []
    for process, log in zip(processes, logs):
        if process.returncode:
            raise RuntimeError(f'{mode} failed with code {process.returncode}')
        log.seek(0)
        results.append(common.parse_result(log.read()))
    return results


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    settings = _Settings(
        **common.flag_values(
            _DATA_DIR,
            _GENERATOR,
            _WIDTH,
            _IMAGE_SIZE,
            _GLOBAL_BATCH_SIZE,
            _STEPS_PER_LOOP,
            _LOOPS,
        )
    )
    if _MODE.value == 'bytes':
        common.print_result(_gradient_bytes())
        return
    if _MODE.value != 'all':
        common.print_result(_measure(_MODE.value, settings))
        return

    if not settings.data_dir:
        settings = dataclasses.replace(
            settings,
            data_dir=common.make_shards(
                tempfile.mkdtemp(), settings.image_size, num_shards=2
            ),
        )
    one_device = _child(settings, 'one_device')[0]
    mirrored = _child(settings, 'mirrored')[0]
    one_worker = _child(settings, 'multi_worker', workers=1)[0]
    two_workers = _child(settings, 'multi_worker', workers=2)
    # Both workers time the same synchronised steps; report the slower.
    two_worker_rate = min(r['images_per_second'] for r in two_workers)
    settings_report = dataclasses.asdict(settings)
    del settings_report['data_dir']
    results = dict(
        machine=common.machine(),
        settings=dict(
            settings_report,
            warmup_loops=_WARMUP_LOOPS,
            stage='pretrain',
            precision='float32',
        ),
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
        gradient_bytes_per_step=_child(settings, 'bytes')[0],
    )
    common.write_report(results, _OUTPUT.value)


if __name__ == '__main__':
    app.run(main)
