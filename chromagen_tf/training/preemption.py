"""Stopping training cleanly on SIGTERM or SIGINT, on every worker at once.

A preempted VM, `kill`, Kubernetes or Ctrl-C sends SIGTERM or SIGINT to
one process. `StopRequest` turns the signal into a flag that the training
loop reads between `tf.function` loops, and `stop_agreement` all-reduces
that flag, so that every worker sees the request at the same loop
boundary, saves the same step and exits 0.

`tf.distribute.experimental.PreemptionCheckpointHandler` does the same
only for MultiWorkerMirroredStrategy and TPUStrategy and counts its own
steps, so the trainer uses this instead (BUILD_NOTES.md).

Example:

  agree_to_stop = preemption.stop_agreement(strategy)
  with preemption.StopRequest() as stop_request:
      while ...:
          run_one_loop()
          if agree_to_stop(bool(stop_request.signal_name)):
              save_and_exit()
"""

import signal
import threading
from typing import Callable

from absl import logging
import tensorflow as tf


class StopRequest:
    """Turns SIGTERM/SIGINT into a flag checked between training loops."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signal_number in (signal.SIGTERM, signal.SIGINT):
                self._previous[signal_number] = signal.signal(
                    signal_number, self._handle
                )
        return self

    def _handle(self, signal_number, unused_frame):
        self.signal_name = signal.Signals(signal_number).name
        logging.warning(
            'Received %s: saving a checkpoint after the current loop.',
            self.signal_name,
        )

    def __exit__(self, *unused_exc_info):
        for signal_number, handler in self._previous.items():
            signal.signal(signal_number, handler)


def stop_agreement(strategy: tf.distribute.Strategy) -> Callable[[bool], bool]:
    """Returns f(local_stop) -> True if any worker was asked to stop.

    The same idea as PreemptionCheckpointHandler, which only supports
    multi-worker and TPU strategies: a one-number all-reduce at each loop
    boundary lets a SIGTERM on any worker stop all of them at one step.
    """

    @tf.function
    def _any(flag):
        per_replica = strategy.run(lambda: tf.identity(flag))
        return strategy.reduce(
            tf.distribute.ReduceOp.SUM, per_replica, axis=None
        )

    return lambda local: float(_any(tf.constant(float(local)))) > 0
