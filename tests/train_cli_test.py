"""Runs `python -m chromagen_tf.train` as users do: errors and preemption."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests import conftest
from tests import shards
from tests import utils

_TINY_FLAGS = [
    '--width=8',
    '--image_size=32',
    '--global_batch_size=4',
    '--mixed_precision=float32',
    '--strategy=one_device',
]


def _command(*flags):
    # --verbosity=0: the INFO lines (resumes) are what the tests read.
    return [
        sys.executable,
        '-m',
        'chromagen_tf.train',
        '--verbosity=0',
        *_TINY_FLAGS,
        *flags,
    ]


def _run(*flags, timeout=300):
    return subprocess.run(
        _command(*flags),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=conftest.REPO_ROOT,
    )


# Each test runs the training command in its own process.
@pytest.mark.slow
class TrainCommandTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = shards.write_shards(
            os.path.join(tf.compat.v1.test.get_temp_dir(), 'cli_data'),
            image_size=32,
            num_train=8,
            num_val=2,
        )

    def test_bad_flag_is_one_clear_line(self):
        completed = _run(
            f'--data_dir={self.data_dir}',
            f'--model_dir={self.get_temp_dir()}',
            '--image_size=30',
        )
        self.assertNotEqual(completed.returncode, 0)
        self.assertIn('--image_size must be a multiple of 32', completed.stderr)
        self.assertNotIn('Traceback', completed.stderr)

    def test_gan_without_pretraining_says_how_to_pretrain(self):
        completed = _run(
            '--stage=gan',
            f'--data_dir={self.data_dir}',
            f'--model_dir={self.get_temp_dir()}/run',
        )
        self.assertEqual(completed.returncode, 1)
        self.assertIn('Run pretraining first', completed.stderr)
        self.assertIn('--stage=pretrain', completed.stderr)
        self.assertNotIn('Traceback', completed.stderr)

    def test_sigterm_saves_the_current_step_and_restart_resumes(self):
        model_dir = os.path.join(self.get_temp_dir(), 'preempted')
        flags = [
            f'--data_dir={self.data_dir}',
            f'--model_dir={model_dir}',
            '--steps_per_loop=1',
            '--summary_every=1',
            '--checkpoint_every=100000',
            '--eval_every=100000',
        ]
        process = subprocess.Popen(
            _command(*flags, '--train_steps=100000'),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=conftest.REPO_ROOT,
        )
        train_events = os.path.join(model_dir, 'pretrain', 'train')
        deadline = time.monotonic() + 240
        # Wait until a few steps have been summarised, then preempt.
        while time.monotonic() < deadline:
            if len(set(utils.summarised_steps(train_events))) >= 3:
                break
            self.assertIsNone(process.poll(), 'training exited early')
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
        self.assertEqual(process.returncode, 0, stderr)
        self.assertIn('Received SIGTERM', stderr)
        latest = tf.train.latest_checkpoint(os.path.join(model_dir, 'pretrain'))
        self.assertIsNotNone(latest, stderr)
        saved_step = int(re.search(r'ckpt-(\d+)$', latest).group(1))
        self.assertGreaterEqual(saved_step, 3)
        self.assertEqual(
            int(
                tf.train.load_checkpoint(latest).get_tensor(
                    'step/.ATTRIBUTES/VARIABLE_VALUE'
                )
            ),
            saved_step,
        )

        completed = _run(*flags, f'--train_steps={saved_step + 2}')
        self.assertEqual(completed.returncode, 0, completed.stderr)
        self.assertIn(f'at step {saved_step}.', completed.stderr)
        self.assertIn(
            f'stopped at step {saved_step + 2} (complete)', completed.stdout
        )


if __name__ == '__main__':
    tf.test.main()
