"""Tests for the converter's malloc settings (data_prep/allocator.py)."""

import subprocess
import sys

import pytest

# Allocates, fills and frees 0.75 MB arrays the way converting a photo does,
# and prints the minor page faults that cost, before and after the settings.
_SCRIPT = '''
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
default = faults_per_round()
applied = allocator.retain_freed_memory()
faults_per_round()  # The first round after the change may still fault.
print(applied, default, faults_per_round())
'''


@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='glibc malloc settings apply on Linux only')
def test_freed_arrays_are_reused_without_page_faults():
    output = subprocess.run([sys.executable, '-c', _SCRIPT], check=True,
                            capture_output=True, text=True).stdout.split()
    applied, default, tuned = output[0] == 'True', float(output[1]), float(
        output[2])
    assert applied
    # 4 arrays of 192 pages each are faulted in again every round by default.
    assert default > 300, default
    assert tuned < 10, tuned
