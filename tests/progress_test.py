"""Tests for the console progress bar shared by the tools."""

import io
import re
import time

from chromagen_tf import progress


class _Terminal(io.StringIO):

    def isatty(self):
        return True


def test_terminal_line_shows_count_rate_eta_and_fields():
    terminal = _Terminal()
    bar = progress.ProgressBar(40, unit='images', description='convert',
                               stream=terminal, min_interval_seconds=0.0)
    bar.update(10)
    time.sleep(0.05)
    bar.update(10, loss=0.25)
    bar.close()
    lines = terminal.getvalue().strip('\n').split('\r')
    last = lines[-1].replace('\x1b[K', '')
    assert last.startswith('convert [############............] 20/40 ')
    assert re.search(r' \d+\.\d images/s elapsed 00:00 ETA 00:\d\d loss=0.25$',
                     last), last


def test_log_output_is_throttled_to_whole_lines():
    log = io.StringIO()
    bar = progress.ProgressBar(None, unit='step', stream=log,
                               min_interval_seconds=3600)
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    # One line at the first update (the interval starts at 0) and the final.
    assert len(lines) == 2
    assert lines[-1].startswith('100 ')


def test_disabled_bar_writes_nothing():
    log = io.StringIO()
    bar = progress.ProgressBar(5, stream=log, enabled=False)
    bar.update(5)
    bar.close()
    assert not log.getvalue()
