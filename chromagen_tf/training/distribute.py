"""Choosing the tf.distribute strategy and the mixed-precision policy.

`auto` picks what is fastest where the job runs:
  * strategy: TPUStrategy when a TPU is named, MirroredStrategy when more than
    one GPU is visible, otherwise a one-device strategy.
  * precision: bfloat16 on TPU, float16 on NVIDIA GPUs; on a CPU, bfloat16
    where the CPU has native bfloat16 arithmetic (AVX512_BF16 or AMX-BF16,
    read from the kernel's CPU flags), float32 elsewhere. bfloat16 trained
    1.5x faster than float32 on an AVX-512 BF16 CPU, but was measured at
    about 0.65x on a CPU without it, where it is emulated (BENCHMARKS.md).

`setup` resolves the policy and builds the strategy; the policy is not set
globally: `networks.build_networks` builds the models under it, in a scope.
"""

import os
import shutil
import tempfile
from typing import Optional

from absl import logging
import tensorflow as tf

STRATEGIES = ('auto', 'one_device', 'mirrored', 'multi_worker', 'tpu')
PRECISIONS = ('auto', 'float32', 'float16', 'bfloat16')

_POLICY_NAMES = {
    'float32': 'float32',
    'float16': 'mixed_float16',
    'bfloat16': 'mixed_bfloat16',
}


def _resolve_strategy_name(name: str, tpu: str) -> str:
    if name != 'auto':
        return name
    if tpu:
        return 'tpu'
    if len(tf.config.list_physical_devices('GPU')) > 1:
        return 'mirrored'
    return 'one_device'


# Linux /proc/cpuinfo flags for native bfloat16 dot products.
_NATIVE_BFLOAT16_FLAGS = frozenset({'avx512_bf16', 'amx_bf16'})


def cpu_has_native_bfloat16(cpuinfo_path: str = '/proc/cpuinfo') -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512_BF16 or AMX-BF16).

    Reads the flags the Linux kernel reports. Where there is no such file
    (macOS, Windows) the answer is False, so `auto` stays float32: a wrong
    'no' costs speed, a wrong 'yes' costs more (emulated bfloat16 ran at
    0.65x float32).
    """
    try:
        with open(cpuinfo_path, encoding='utf-8', errors='replace') as f:
            for line in f:
                if line.startswith('flags'):
                    flags = set(line.partition(':')[2].split())
                    return bool(flags & _NATIVE_BFLOAT16_FLAGS)
    except OSError:
        pass
    return False


def resolve_precision(precision: str, strategy_name: str, tpu: str) -> str:
    """Maps --mixed_precision to a Keras policy name ('auto' resolved)."""
    if precision not in PRECISIONS:
        raise ValueError(f'mixed_precision must be one of {PRECISIONS}')
    if precision == 'auto':
        if _resolve_strategy_name(strategy_name, tpu) == 'tpu':
            precision = 'bfloat16'
        elif tf.config.list_physical_devices('GPU'):
            precision = 'float16'
        elif cpu_has_native_bfloat16():
            precision = 'bfloat16'
        else:
            precision = 'float32'
    return _POLICY_NAMES[precision]


def make_strategy(name: str, tpu: str = '') -> tf.distribute.Strategy:
    """Builds the tf.distribute strategy for --strategy and --tpu."""
    if name not in STRATEGIES:
        raise ValueError(f'strategy must be one of {STRATEGIES}')
    name = _resolve_strategy_name(name, tpu)
    if name == 'tpu':
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == 'multi_worker':
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == 'mirrored':
        return tf.distribute.MirroredStrategy()
    gpus = tf.config.list_logical_devices('GPU')
    device = gpus[0].name if gpus else '/cpu:0'
    return tf.distribute.OneDeviceStrategy(device)


def setup(
    strategy_name: str, precision: str, tpu: str = ''
) -> tuple[tf.distribute.Strategy, str]:
    """Resolves the precision policy, then builds the strategy.

    The policy is returned, not set: the global Keras policy stays as it
    was, and the networks are built under the policy in a scope.

    Returns:
      (strategy, policy name).
    """
    policy = resolve_precision(precision, strategy_name, tpu)
    strategy = make_strategy(strategy_name, tpu)
    logging.info(
        'Strategy %s with %d replica(s), precision policy %s.',
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
        policy,
    )
    return strategy, policy


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one worker that writes checkpoints and summaries."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == 'chief':
        return True
    has_chief = 'chief' in resolver.cluster_spec().as_dict()
    return (
        resolver.task_type == 'worker'
        and resolver.task_id == 0
        and (not has_chief)
    )


def write_dir(
    directory: str, strategy: tf.distribute.Strategy
) -> tuple[str, Optional[str]]:
    """Where this worker writes: `directory` on the chief, a temp dir else.

    Every worker must take part in a multi-worker checkpoint save, but only
    the chief's copy is kept.

    Returns:
      (path to write to, temporary directory to delete at the end or None).
    """
    if is_chief(strategy):
        return directory, None
    resolver = strategy.cluster_resolver
    temporary = tempfile.mkdtemp(
        prefix=f'chromagen-{resolver.task_type}-{resolver.task_id}-'
    )
    logging.info('Not the chief: writing to the temporary %s', temporary)
    return os.path.join(temporary, os.path.basename(directory)), temporary


def remove_temporary(temporary: Optional[str]) -> None:
    if temporary:
        shutil.rmtree(temporary, ignore_errors=True)
