"""Helpers shared by the tests that run real processes and read their logs.

Free ports for local clusters, and the TensorBoard event files a training
run writes.
"""

import glob
import os
import socket

import tensorflow as tf


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that were free a moment ago, one per worker."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _events(directory, paths=None):
    """Every event under directory (or in paths), file by file.

    A file whose writer is mid-record (or was killed mid-record) yields its
    complete records only.
    """
    for path in paths or sorted(
            glob.glob(os.path.join(directory, 'events.out.tfevents.*'))):
        try:
            yield from tf.compat.v1.train.summary_iterator(path)
        except tf.errors.DataLossError:
            pass


def event_tags(directory) -> dict[str, str]:
    """Maps each summary tag under directory to its plugin name."""
    return {value.tag: value.metadata.plugin_data.plugin_name
            for event in _events(directory) for value in event.summary.value}


def scalars_at(directory, step) -> dict[str, float]:
    """{tag: value} of the scalar summaries written at `step`."""
    return {value.tag: float(tf.make_ndarray(value.tensor))
            for event in _events(directory) if event.step == step
            for value in event.summary.value
            if not value.tensor.tensor_shape.dim}  # Not images.


def summarised_steps(directory, paths=None) -> list[int]:
    """Steps with a losses/l1 summary, one entry per event, in file order."""
    return [event.step for event in _events(directory, paths)
            if any(value.tag == 'losses/l1' for value in event.summary.value)]
