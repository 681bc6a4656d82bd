"""A small console progress bar shared by the command-line tools.

It draws one line, redrawn in place on a terminal, with the count, the rate,
the ETA and any extra fields (losses, for training). When stderr is not a
terminal (CI logs, files) it prints a full line at most every
`min_interval_seconds` instead, so logs stay readable.
"""

import sys
import time
from typing import Optional, TextIO


def _format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f'{hours:d}:{minutes:02d}:{seconds:02d}'
    return f'{minutes:02d}:{seconds:02d}'


class ProgressBar:
    """Progress over a known (or unknown) total of units.

    Usage:
      bar = ProgressBar(total=1000, unit='img', description='convert')
      for ...:
          bar.update(1)
      bar.close()
    """

    def __init__(
        self,
        total: Optional[int],
        *,
        unit: str = 'it',
        description: str = '',
        initial: int = 0,
        stream: Optional[TextIO] = None,
        min_interval_seconds: Optional[float] = None,
        width: int = 24,
        enabled: bool = True,
    ):
        self.total = total
        self.unit = unit
        self.description = description
        self.count = initial
        self._initial = initial
        self._stream = stream or sys.stderr
        self._is_terminal = hasattr(self._stream, 'isatty') and (
            self._stream.isatty()
        )
        if min_interval_seconds is None:
            min_interval_seconds = 0.1 if self._is_terminal else 10.0
        self._min_interval = min_interval_seconds
        self._width = width
        self._start = time.monotonic()
        self._last_draw = float('-inf')
        self._fields = ''
        self._closed = not enabled

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self._start
        return (self.count - self._initial) / elapsed if elapsed > 0 else 0.0

    def set_fields(self, **fields) -> None:
        """Extra `name=value` pairs shown after the rate (floats as %.4g)."""
        self._fields = ' '.join(
            f'{name}={value:.4g}' if isinstance(value, float) else
            f'{name}={value}' for name, value in fields.items()
        )

    def update(self, amount: int = 1, **fields) -> None:
        self.count += amount
        if fields:
            self.set_fields(**fields)
        now = time.monotonic()
        if not self._closed and now - self._last_draw >= self._min_interval:
            self._draw(now)

    def _line(self, now: float) -> str:
        rate = self.rate
        parts = [self.description] if self.description else []
        if self.total:
            fraction = min(self.count / self.total, 1.0)
            filled = int(fraction * self._width)
            bar = '#' * filled + '.' * (self._width - filled)
            parts.append(f'[{bar}] {self.count}/{self.total}')
            remaining = (self.total - self.count) / rate if rate > 0 else 0
            eta = f'ETA {_format_duration(remaining)}'
        else:
            parts.append(f'{self.count}')
            eta = ''
        parts.append(f'{rate:.1f} {self.unit}/s')
        parts.append(f'elapsed {_format_duration(now - self._start)}')
        if eta:
            parts.append(eta)
        if self._fields:
            parts.append(self._fields)
        return ' '.join(parts)

    def _draw(self, now: float) -> None:
        self._last_draw = now
        line = self._line(now)
        if self._is_terminal:
            self._stream.write('\r' + line + '\x1b[K')
        else:
            self._stream.write(line + '\n')
        self._stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._draw(time.monotonic())
        if self._is_terminal:
            self._stream.write('\n')
            self._stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *unused_exc_info):
        self.close()
