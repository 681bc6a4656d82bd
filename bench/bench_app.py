"""Web app benchmark: the round trip of one hint change, and of a suggestion.

Usage:

  python -m bench.bench_app [--model=...] [--stage=gan] [--repeats=20]
      [--megapixels=1]

Starts the app (`python -m chromagen_tf.app`) in its own process on a free
loopback port, waits until it answers /healthz, and times from this
process, over HTTP, what the page asks for:

  preview_3_hints   POST /api/colorize with a black-and-white JPEG of
                    --megapixels and 3 hints, preview=1: what the page
                    sends after each hint change (one hint moves a few
                    pixels between requests, so no two are the same)
  suggest_3_hints   POST /api/suggest at one point, with the 3 hints: what
                    a click asks before the colour picker fills
  full_3_hints      the same photo and hints at full resolution, as PNG:
                    what a download asks for
  full_no_hints     the automatic full-resolution result, for reference

Each time is the whole round trip: upload, decode, colorize, encode and
download. Reported: the median, the 10th and 90th percentiles and the
extremes over --repeats requests after one warm-up request, and the load
average before and after (the machine may be shared: compare under the
same load). Without --model, the bundled model is served; hints need a
hint model.
"""

import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from absl import app
from absl import flags
from PIL import Image
import requests

from bench import common

_MODEL = flags.DEFINE_string(
    'model',
    None,
    'The model the app serves (its --model); default: the bundled model.',
)
_STAGE = flags.DEFINE_string(
    'stage', None, 'The app\'s --stage, for a training model_dir.'
)
_RENDER_SIZE = flags.DEFINE_integer(
    'render_size',
    None,
    'The app\'s --render_size; default: the model\'s.',
    lower_bound=32,
)
_REPEATS = flags.DEFINE_integer(
    'repeats', 20, 'Timed requests of each kind.', lower_bound=1
)
_MEGAPIXELS = flags.DEFINE_float(
    'megapixels', 1.0, 'Size of the test photo (4:3).', lower_bound=0.01
)
_STARTUP_SECONDS = 600

# Three hints as fractions of the photo: a coat, a wall and the sky.
_HINTS = ((0.3, 0.6, '#c02020'), (0.7, 0.5, '#2050d0'), (0.5, 0.15, '#60a0e0'))


def _photo(megapixels: float) -> tuple[bytes, int, int]:
    """A black-and-white 4:3 JPEG of about `megapixels` from a sample."""
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    with Image.open(
        os.path.join(common.SAMPLE_PHOTOS, 'picos_de_europa.jpg')
    ) as photo:
        gray = photo.convert('L').resize(
            (width, height), Image.Resampling.LANCZOS
        )
    buffer = io.BytesIO()
    gray.save(buffer, format='JPEG', quality=90)
    return buffer.getvalue(), width, height


def _hints(width: int, height: int, shift: int = 0) -> str:
    return json.dumps(
        {
            'hints': [
                {
                    'x': int(x * width) + (shift % 8 if index == 0 else 0),
                    'y': int(y * height),
                    'color': colour,
                }
                for index, (x, y, colour) in enumerate(_HINTS)
            ]
        }
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _start_app(port: int, log) -> tuple[subprocess.Popen, dict]:
    command = [sys.executable, '-m', 'chromagen_tf.app', f'--port={port}']
    for name, holder in (
        ('model', _MODEL),
        ('stage', _STAGE),
        ('render_size', _RENDER_SIZE),
    ):
        if holder.value is not None:
            command.append(f'--{name}={holder.value}')
    process = subprocess.Popen(
        command,
        cwd=common.REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=common.quiet_environment(),
    )
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise app.UsageError(
                f'The app exited with {process.returncode}; see {log.name}.'
            )
        try:
            with urllib.request.urlopen(
                f'http://127.0.0.1:{port}/healthz', timeout=5
            ) as answer:
                return process, json.load(answer)
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise app.UsageError(f'The app did not start in {_STARTUP_SECONDS} s.')


def _timed(send, repeats: int) -> dict:
    send(0)  # Warm-up: the first request at this photo size traces.
    times = []
    for index in range(repeats):
        started = time.perf_counter()
        send(index + 1)
        times.append(time.perf_counter() - started)
    deciles = statistics.quantiles(times, n=10) if len(times) > 1 else times
    return {
        'median_s': statistics.median(times),
        'p10_s': deciles[0],
        'p90_s': deciles[-1],
        'min_s': min(times),
        'max_s': max(times),
    }


def main(argv):
    common.check_no_arguments(argv)
    photo, width, height = _photo(_MEGAPIXELS.value)
    port = _free_port()
    url = f'http://127.0.0.1:{port}'
    with tempfile.NamedTemporaryFile('w', suffix='.log', delete=False) as log:
        process, health = _start_app(port, log)
    try:
        if not health.get('takes_hints'):
            raise app.UsageError(
                f'{health["model"]} does not take hints; '
                'pass --model with a hint model.'
            )
        session = requests.Session()

        def post(path, **fields):
            response = session.post(
                url + path,
                files={'image': ('photo.jpg', photo)},
                data=fields,
                timeout=600,
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f'{path}: {response.status_code} {response.text[:300]}'
                )
            return response.content

        load_before = os.getloadavg()
        results = {
            'preview_3_hints': _timed(
                lambda i: post(
                    '/api/colorize', hints=_hints(width, height, i), preview='1'
                ),
                _REPEATS.value,
            ),
        }
        if health.get('suggests_colors'):
            results['suggest_3_hints'] = _timed(
                lambda i: post(
                    '/api/suggest',
                    hints=_hints(width, height, i),
                    x=str(width // 4 + i % 8),
                    y=str(height // 3),
                ),
                _REPEATS.value,
            )
        results['full_3_hints'] = _timed(
            lambda i: post('/api/colorize', hints=_hints(width, height, i)),
            max(1, _REPEATS.value // 4),
        )
        results['full_no_hints'] = _timed(
            lambda i: post('/api/colorize'), max(1, _REPEATS.value // 4)
        )
        load_after = os.getloadavg()
    finally:
        process.terminate()
        process.wait(timeout=60)
        os.unlink(log.name)
    print(
        f'{health["model"]}, render size {health["render_size"]}; photo '
        f'{width}x{height} ({width * height / 1e6:.2f} MP) JPEG, '
        f'{len(photo) / 1e3:.0f} kB; {os.cpu_count()} CPUs; load average '
        f'{load_before[0]:.1f} before, {load_after[0]:.1f} after'
    )
    print('| request | median s | p10 s | p90 s | min s | max s |')
    print('|---|---|---|---|---|---|')
    for name, row in results.items():
        print(
            f"| {name} | {row['median_s']:.3f} | {row['p10_s']:.3f} | "
            f"{row['p90_s']:.3f} | {row['min_s']:.3f} | "
            f"{row['max_s']:.3f} |"
        )
    common.print_result(
        {
            'model': health['model'],
            'render_size': health['render_size'],
            'width': width,
            'height': height,
            'repeats': _REPEATS.value,
            'load_before': load_before,
            'load_after': load_after,
            **results,
        }
    )


if __name__ == '__main__':
    app.run(main)
