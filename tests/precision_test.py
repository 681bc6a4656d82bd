"""Tests for --mixed_precision=auto: bfloat16 only on CPUs that have it."""

import os
from unittest import mock

import tensorflow as tf

from chromagen_tf.training import distribute

_FLAGS = (
    'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov '
    'avx2 avx512f avx512dq'
)


class CpuFeatureTest(tf.test.TestCase):
    def _cpuinfo(self, flags_line):
        path = os.path.join(self.get_temp_dir(), 'cpuinfo')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(
                'processor\t: 0\nmodel name\t: Test CPU\n'
                f'flags\t\t: {flags_line}\n\nprocessor\t: 1\n'
            )
        return path

    def test_avx512_bf16_and_amx_count_as_native(self):
        for extra in ('avx512_bf16', 'amx_bf16 amx_tile'):
            self.assertTrue(
                distribute.cpu_has_native_bfloat16(
                    self._cpuinfo(f'{_FLAGS} {extra}')
                ),
                extra,
            )

    def test_other_cpus_do_not(self):
        self.assertFalse(
            distribute.cpu_has_native_bfloat16(self._cpuinfo(_FLAGS))
        )
        # amx_tile alone (AMX-INT8 only) has no bfloat16 arithmetic.
        self.assertFalse(
            distribute.cpu_has_native_bfloat16(
                self._cpuinfo(f'{_FLAGS} amx_tile amx_int8')
            )
        )
        self.assertFalse(
            distribute.cpu_has_native_bfloat16(
                os.path.join(self.get_temp_dir(), 'no-such-file')
            )
        )

    def test_auto_follows_the_cpu(self):
        with mock.patch.object(
            distribute, 'cpu_has_native_bfloat16', return_value=True
        ):
            self.assertEqual(
                distribute.resolve_precision('auto', 'one_device', ''),
                'mixed_bfloat16',
            )
        with mock.patch.object(
            distribute, 'cpu_has_native_bfloat16', return_value=False
        ):
            self.assertEqual(
                distribute.resolve_precision('auto', 'one_device', ''),
                'float32',
            )
        # Explicit choices are never overridden.
        self.assertEqual(
            distribute.resolve_precision('float32', 'one_device', ''), 'float32'
        )

    def test_this_machine_against_cpuid(self):
        # An independent reading of the same CPU: NumPy asks the processor
        # itself (the CPUID instruction), not the kernel's /proc/cpuinfo.
        # NumPy does not probe AMX, so only its 'yes' decides anything: a
        # CPU with AMX-BF16 but no AVX512_BF16 would be native too.
        try:
            from numpy._core._multiarray_umath import __cpu_features__  # pylint: disable=g-import-not-at-top
        except ImportError:
            self.skipTest('This NumPy does not report its CPU features.')
        if not __cpu_features__.get('AVX512BF16'):
            self.skipTest(
                'CPUID reports no AVX512_BF16 here: nothing '
                'independent to check the answer against.'
            )
        self.assertTrue(distribute.cpu_has_native_bfloat16())
        if not tf.config.list_physical_devices('GPU'):
            self.assertEqual(
                distribute.resolve_precision('auto', 'one_device', ''),
                'mixed_bfloat16',
            )


if __name__ == '__main__':
    tf.test.main()
