"""glibc malloc settings for the converter's worker processes, for speed.

Converting one photo allocates a dozen arrays of 0.2 to 1 MB (decoded
pixels, linear RGB, XYZ, Lab, planes, PNG rows) and frees them all before
the next photo. With glibc's default settings most of them come from fresh
`mmap` calls or from heap the allocator has just given back to the kernel,
so every page is faulted in and zeroed again for every photo. In a worker
process that made the conversion a quarter slower: 117 against 155
COCO-sized photos per CPU-second (bench/bench_convert.py, BENCHMARKS.md).

Raising glibc's mmap and trim thresholds lets freed blocks be reused.
Memory stays bounded: glibc gives the free top of the heap back once it
exceeds `_TRIM_THRESHOLD`, and the converter's allocations are the same few
sizes photo after photo, so freed blocks are reused rather than fragmented.

The settings travel as environment variables (mallopt(3): glibc reads
MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ once, when a process
starts). make_tfrecords exports them, so the worker processes it starts get
them, while its own process, which runs TensorFlow, keeps glibc's defaults.
Other allocators (macOS, Windows, musl) ignore them.

Example:

  os.environ.update(allocator.WORKER_ENVIRONMENT)  # Before starting workers.
"""

# Blocks under 16 MiB come from the heap rather than from mmap; a decoded
# 12-megapixel photo (36 MB) is still mapped and returned at once. glibc
# accepts at most 32 MiB here on 64-bit machines.
_MMAP_THRESHOLD = 16 * 1024 * 1024
# Up to 64 MiB of free heap is kept for reuse instead of being trimmed.
_TRIM_THRESHOLD = 64 * 1024 * 1024

# Setting either variable also turns off glibc's dynamic mmap threshold,
# as mallopt does.
WORKER_ENVIRONMENT = {
    'MALLOC_MMAP_THRESHOLD_': str(_MMAP_THRESHOLD),
    'MALLOC_TRIM_THRESHOLD_': str(_TRIM_THRESHOLD),
}
