"""Tests for the converter's malloc settings (data_prep/allocator.py)."""

import json
import os
import subprocess
import sys

import pytest

from data_prep import allocator
from tests import conftest

# Allocates, fills and frees 0.75 MB arrays the way converting a photo does,
# and prints the minor page faults that costs per round: as started, then
# after putting the settings into this process's own environment.
_FAULTS_SCRIPT = '''
import os
import resource
import numpy as np
from data_prep import allocator

def faults_per_round():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):
        arrays = [np.ones((256, 256, 3), np.float32) for _ in range(4)]
        del arrays
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50

faults_per_round()  # Warm up: NumPy's own first allocations.
as_started = faults_per_round()
os.environ.update(allocator.WORKER_ENVIRONMENT)
faults_per_round()
print(as_started, faults_per_round())
'''


def _environment(**settings: str) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith('MALLOC_')
    }
    environment.update(settings)
    return environment


def _faults(environment: dict[str, str]) -> tuple[float, float]:
    output = subprocess.run(
        [sys.executable, '-c', _FAULTS_SCRIPT],
        check=True,
        capture_output=True,
        text=True,
        cwd=conftest.REPO_ROOT,
        env=environment,
    )
    as_started, after_update = output.stdout.split()
    return float(as_started), float(after_update)


@pytest.mark.skipif(
    not sys.platform.startswith('linux'),
    reason='glibc malloc settings apply on Linux only',
)
def test_a_process_started_with_the_settings_reuses_freed_arrays():
    tuned, _ = _faults(_environment(**allocator.WORKER_ENVIRONMENT))
    default, after_update = _faults(_environment())
    # 4 arrays of 192 pages each are faulted in again every round by default.
    assert tuned < 10, tuned
    assert default > 300, default
    # A process that is already running keeps glibc's defaults: which is
    # why only the converter's workers, started afterwards, are tuned.
    assert after_update > 300, after_update


# make_tfrecords' command line with the converter replaced by a probe that
# prints the environment its worker processes would be started with.
_COMMAND_LINE_SCRIPT = '''
import json
import os
import sys
from absl import flags
from data_prep import allocator
from data_prep import convert_lib
from data_prep import make_tfrecords

def probe(*unused_args, **unused_kwargs):
    print(json.dumps({name: os.environ.get(name)
                      for name in allocator.WORKER_ENVIRONMENT}))
    sys.exit(0)

convert_lib.run = probe
flags.FLAGS(['make_tfrecords', '--image_dir=' + sys.argv[1],
             '--output_dir=' + sys.argv[2], '--num_processes=1'])
make_tfrecords.main(['make_tfrecords'])
'''


def test_make_tfrecords_exports_the_settings_before_converting(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            '-c',
            _COMMAND_LINE_SCRIPT,
            str(conftest.SAMPLE_PHOTOS),
            str(tmp_path / 'out'),
        ],
        capture_output=True,
        text=True,
        cwd=conftest.REPO_ROOT,
        env=_environment(TF_CPP_MIN_LOG_LEVEL='2'),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == (
        allocator.WORKER_ENVIRONMENT
    )
