"""Keeps freed heap memory in the converter processes, for speed.

Converting one photo allocates a dozen arrays of 0.2 to 1 MB (decoded
pixels, linear RGB, XYZ, Lab, planes, PNG rows) and frees them all before
the next photo. With glibc's default settings most of them come from fresh
`mmap` calls or from heap the allocator has just given back to the kernel,
so every page is faulted in and zeroed again for every photo. In a worker
process that made the conversion a quarter slower: 117 against 155
COCO-sized photos per CPU-second (bench/bench_convert.py, BENCHMARKS.md).

`retain_freed_memory` raises glibc's mmap and trim thresholds so that freed
blocks are reused. Memory stays bounded: glibc gives the free top of the
heap back once it exceeds `_TRIM_THRESHOLD`, and the converter's
allocations are the same few sizes photo after photo, so freed blocks are
reused rather than fragmented. Elsewhere (macOS, Windows, musl) it does
nothing; those allocators make their own choices.

Example:

  allocator.retain_freed_memory()  # Once per process, before converting.
"""

import ctypes
import ctypes.util
import sys

from absl import logging

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Blocks under 16 MiB come from the heap rather than from mmap; a decoded
# 12-megapixel photo (36 MB) is still mapped and returned at once. glibc
# accepts at most 32 MiB here on 64-bit machines.
_MMAP_THRESHOLD = 16 * 1024 * 1024
# Up to 64 MiB of free heap is kept for reuse instead of being trimmed.
_TRIM_THRESHOLD = 64 * 1024 * 1024


def retain_freed_memory() -> bool:
    """Tunes glibc malloc to reuse freed blocks; returns whether it applied."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
        # gnu_get_libc_version exists only in glibc: musl's mallopt is a stub.
        libc.gnu_get_libc_version  # pylint: disable=pointless-statement
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    applied = (mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1 and
               mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1)
    if not applied:
        logging.warning('mallopt refused the converter memory settings; '
                        'conversion will be slower.')
    return applied
