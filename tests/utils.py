"""The one module of fixtures the tests share (tests never import tests).

Free ports for local clusters, the TensorBoard event files a training run
writes, the tiny training config, a training directory holding a tiny
generator checkpoint, and the web app running as a real server process.
"""

import glob
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator
import urllib.error
import urllib.request

import keras
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import models


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
        glob.glob(os.path.join(directory, 'events.out.tfevents.*'))
    ):
        try:
            yield from tf.compat.v1.train.summary_iterator(path)
        except tf.errors.DataLossError:
            pass


def event_tags(directory) -> dict[str, str]:
    """Maps each summary tag under directory to its plugin name."""
    return {
        value.tag: value.metadata.plugin_data.plugin_name
        for event in _events(directory)
        for value in event.summary.value
    }


def scalars_at(directory, step) -> dict[str, float]:
    """{tag: value} of the scalar summaries written at `step`."""
    return {
        value.tag: float(tf.make_ndarray(value.tensor))
        for event in _events(directory)
        if event.step == step
        for value in event.summary.value
        if not value.tensor.tensor_shape.dim
    }  # Not images.


def summarised_steps(directory, paths=None) -> list[int]:
    """Steps with a losses/l1 summary, one entry per event, in file order."""
    return [
        event.step
        for event in _events(directory, paths)
        if any(value.tag == 'losses/l1' for value in event.summary.value)
    ]


def tiny_config(data_dir, model_dir, stage='pretrain', **overrides):
    """configs.tiny for a data and model folder."""
    return configs.tiny(
        stage, data_dir=data_dir, model_dir=model_dir, **overrides
    )


def make_model_dir(
    model_dir: str,
    seed: int = 0,
    step: int = 7,
    model_config: configs.ModelConfig | None = None,
):
    """A training directory with one GAN checkpoint of a width-8 model."""
    model_config = model_config or configs.ModelConfig(
        generator='resnet18_unet', width=8
    )
    configs.check_and_write_model_config(model_dir, model_config)
    keras.utils.set_random_seed(seed)
    generator = models.build_from_config(model_config)
    checkpoint = tf.train.Checkpoint(
        generator=generator, step=tf.Variable(step, dtype=tf.int64)
    )
    tf.train.CheckpointManager(
        checkpoint,
        os.path.join(model_dir, 'gan'),
        max_to_keep=3,
        checkpoint_name='ckpt',
    ).save(checkpoint_number=step)
    return generator


class AppServer:
    """`python -m chromagen_tf.app` in its own process on a free loopback port.

    It runs in an empty working directory with an empty TMPDIR of its own,
    so that a test can check it leaves no files anywhere; its output goes to
    a log file (a pipe nobody reads would block it).
    """

    def __init__(self, work_dir: str, *flags: str):
        self.port = free_ports(1)[0]
        self.url = f'http://127.0.0.1:{self.port}'
        self.temp_dir = os.path.join(work_dir, 'tmp')
        self.work_dir = os.path.join(work_dir, 'cwd')
        os.makedirs(self.temp_dir)
        os.makedirs(self.work_dir)
        self.log_path = os.path.join(work_dir, 'app.log')
        repo_root = str(pathlib.Path(__file__).resolve().parents[1])
        env = dict(
            os.environ,
            TMPDIR=self.temp_dir,
            PYTHONPATH=os.pathsep.join(
                filter(None, [repo_root, os.environ.get('PYTHONPATH')])
            ),
        )
        with open(self.log_path, 'wb') as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    '-m',
                    'chromagen_tf.app',
                    f'--port={self.port}',
                    *flags,
                ],
                cwd=self.work_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        with open(self.log_path, encoding='utf-8', errors='replace') as log:
            return log.read()

    def health(self) -> dict:
        with urllib.request.urlopen(self.url + '/healthz', timeout=10) as r:
            return json.load(r)

    def wait_until_ready(self, timeout: float = 300) -> dict:
        """/healthz's answer, once the server gives one."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f'The app exited with {self.process.returncode}:\n'
                    f'{self.log()[-3000:]}'
                )
            try:
                return self.health()
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f'The app did not answer:\n{self.log()[-3000:]}'
                    ) from None
                time.sleep(0.2)

    def stop(self) -> int:
        """Stops the server as Ctrl-C does; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def running_app(work_dir: str, *flags: str) -> Iterator[AppServer]:
    """A started, ready app server for a fixture; stopped afterwards."""
    app = AppServer(work_dir, *flags)
    try:
        app.wait_until_ready()
        yield app
    finally:
        app.stop()
