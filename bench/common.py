"""What the benchmarks share: paths, inputs, timing, memory, children, reports.

Every benchmark runs as `python -m bench.<name>` from the repository root,
and starts its child processes the same way (`child_command`, run with
cwd=REPO_ROOT), so that `bench` and `chromagen_tf` import from this
checkout. A child prints its figures as one `RESULT {json}` line
(`print_result`); the parent reads them back with `run_child` or
`parse_result`.

TensorFlow and the converter are imported inside the functions that need
them, so that a parent which only starts children stays light.
"""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Optional, Sequence

from absl import app
from absl import flags

from chromagen_tf import sample_photos

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_PHOTOS = sample_photos.folder()

_RESULT = 'RESULT '


def photo_set(spec: str) -> tuple[str, str]:
    """(name, folder) of a --photo_sets entry NAME:FOLDER.

    A bare NAME (such as "sample_photos") is the packaged sample photos.
    """
    name, _, folder = spec.partition(':')
    return name, folder or SAMPLE_PHOTOS


def check_no_arguments(argv: Sequence[str]) -> None:
    """Rejects positional arguments: every benchmark takes flags only.

    Raises:
      app.UsageError: if argv holds more than the program name.
    """
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')


def check_found_photos(count: int, image_dir: str) -> None:
    """Rejects a folder that gave no readable photo.

    Raises:
      app.UsageError: if count is 0.
    """
    if not count:
        raise app.UsageError(f'No readable photos under {image_dir}.')


def print_metrics_table(first_column: str, rows: dict[str, dict]) -> None:
    """Prints evaluate-style summaries as a markdown table, one row each."""
    print(
        f'| {first_column} | ab MAE | PSNR dB | AuC | colourfulness | '
        'delta CF |'
    )
    print('|---|---|---|---|---|---|')
    for name, row in rows.items():
        print(
            f"| {name} | {row['ab_mae']:.2f} | {row['psnr']:.2f} | "
            f"{row['auc']:.3f} | {row['colorfulness']:.1f} | "
            f"{row['delta_colorfulness']:.1f} |"
        )


def flag_values(*holders: flags.FlagHolder) -> dict[str, Any]:
    """{name: value} of the given flags, for a config or a report."""
    return {holder.name: holder.value for holder in holders}


def child_command(module: str, *arguments: str) -> list[str]:
    """The command line that runs `bench.<module>` in a new process."""
    return [sys.executable, '-m', f'bench.{module}', *arguments]


def quiet_environment(**extra: str) -> dict[str, str]:
    """This process's environment for a child, plus `extra`.

    TensorFlow's info logs are off unless TF_CPP_MIN_LOG_LEVEL is set.
    """
    return {'TF_CPP_MIN_LOG_LEVEL': '2', **os.environ, **extra}


def print_result(result: dict) -> None:
    """Prints a child's figures as the line `parse_result` looks for."""
    print(_RESULT + json.dumps(result), flush=True)


def parse_result(stdout: str) -> dict:
    """The figures a child printed with `print_result` (the last ones).

    Raises:
      ValueError: if the output holds no result line.
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(_RESULT):
            return json.loads(line[len(_RESULT) :])
    raise ValueError('the child printed no RESULT line')


def run_child(module: str, *arguments: str) -> dict:
    """Runs `bench.<module>` in a new process; returns what it printed.

    Raises:
      RuntimeError: with the end of the child's stderr, if it failed.
    """
    output = subprocess.run(
        child_command(module, *arguments),
        cwd=REPO_ROOT,
        env=quiet_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if output.returncode:
        raise RuntimeError(
            f'bench.{module} {" ".join(arguments)} failed with code '
            f'{output.returncode}:\n{output.stderr[-3000:]}'
        )
    return parse_result(output.stdout)


def copy_photos(source_dir: str, count: int, target: str) -> str:
    """Copies the photos under `source_dir` into `target` until there are
    `count` (each under a new name, so that every copy is a new key).

    Returns:
      target.
    """
    from data_prep import shard_files  # pylint: disable=g-import-not-at-top

    photos = shard_files.list_image_dir(source_dir)
    os.makedirs(target, exist_ok=True)
    for index in range(count):
        photo = photos[index % len(photos)]
        shutil.copy(
            photo.path,
            os.path.join(target, f'{index:05d}_' + photo.key.replace('/', '_')),
        )
    return target


def make_shards(
    directory: str, image_size: int = 256, num_shards: int = 1
) -> str:
    """Converts the bundled photos with the real converter (2 for val).

    Returns:
      directory, which then holds the train and val shards.
    """
    # pylint: disable=g-import-not-at-top
    from data_prep import convert_config
    from data_prep import convert_lib
    from data_prep import shard_files

    # pylint: enable=g-import-not-at-top
    config = convert_config.ConvertConfig(
        output_dir=directory,
        image_dir=SAMPLE_PHOTOS,
        image_size=image_size,
        num_val=2,
        num_shards=num_shards,
        num_processes=0,
    )
    convert_lib.run(
        config,
        shard_files.list_image_dir(config.image_dir),
        show_progress=False,
    )
    return directory


def median_seconds(
    function: Callable[[], Any], repeats: int, warm_up: bool = True
) -> float:
    """Median wall time of `function()` over `repeats` calls.

    The warm-up call (tracing, allocation) is not timed. A function that
    returns a tensor should return it evaluated (`.numpy()`), or the time
    of asynchronous work is missed.
    """
    if warm_up:
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_rates(
    function: Callable[[], Any], count: int, runs: int
) -> tuple[float, float, list[float]]:
    """Median rate of `function()`, which handles `count` items a call.

    Nothing is warmed up: the caller does that where it matters.

    Returns:
      The median items per second of wall time, the median items per
      CPU-second (of this process and its waited-for children), and the
      wall-time rate of each run. On a shared machine the wall-clock rate
      depends on the other load; the rate per CPU-second is what one free
      core would do.
    """
    rates, cpu_rates = [], []
    for _ in range(runs):
        start, cpu_start = time.perf_counter(), cpu_seconds()
        function()
        rates.append(count / (time.perf_counter() - start))
        cpu_rates.append(count / (cpu_seconds() - cpu_start))
    return statistics.median(rates), statistics.median(cpu_rates), rates


def cpu_seconds() -> float:
    """CPU time of this process and of its finished (waited-for) children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process, in MiB.

    With children=True, that of the largest of its waited-for children.
    """
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def load_average() -> float:
    """The 1-minute load average (2 = both cores of a 2-core machine busy)."""
    return round(os.getloadavg()[0], 2)


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare a number with their own."""
    model = ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        'cpu': model,
        'cores': os.cpu_count(),
        'load_average_1min': load_average(),
    }


def write_report(report: dict, output: Optional[str] = None) -> None:
    """Prints a JSON report, and writes it to `output` when given."""
    text = json.dumps(report, indent=1)
    print(text, flush=True)
    if output:
        with open(output, 'w') as f:
            f.write(text + '\n')
