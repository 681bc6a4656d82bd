"""Kill-and-resume with real processes: SIGKILL in training, in a checkpoint
write and in an export, then a restart of the same command.

A SIGKILL cannot be caught, so these tests check what is left on disk: every
checkpoint that `tf.train.latest_checkpoint` names is complete and holds the
step its name says, a restart resumes from it and counts no step twice, and an
export base never shows a version folder without its SavedModel. SIGTERM on
one process is tested in train_cli_test.py; here one of two workers gets it.
"""

import glob
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

from absl import logging
import pytest
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf.serving import export_lib
from chromagen_tf.serving import signatures
from chromagen_tf.training import distribute
from chromagen_tf.training import state
from tests import conftest
from tests import shards
from tests import utils

_TINY_FLAGS = [
    '--width=8',
    '--image_size=32',
    '--global_batch_size=4',
    '--mixed_precision=float32',
    '--strategy=one_device',
    '--steps_per_loop=1',
    '--eval_every=100000',
]
_STEP_KEY = 'step/.ATTRIBUTES/VARIABLE_VALUE'
_TIMEOUT = 240  # Seconds; TF start-up alone takes ~10 s on a busy 2-core box.


def _checkpoint_numbers(stage_dir, suffix='.index') -> list[int]:
    """Numbers of the ckpt-<number><suffix> entries, sorted."""
    pattern = re.compile(r'ckpt-(\d+)' + re.escape(suffix) + '$')
    return sorted(
        int(match.group(1))
        for match in (
            pattern.search(path)
            for path in glob.glob(os.path.join(stage_dir, 'ckpt-*' + suffix))
        )
        if match
    )


class _Process:
    """A command whose output goes to files (a full pipe would block it).

    With two workers a full pipe would also stall the other worker in its
    next all-reduce.
    """

    def __init__(self, command, log_prefix, env=None):
        self.stdout_path = log_prefix + '.out'
        self.stderr_path = log_prefix + '.err'
        with (
            open(self.stdout_path, 'w') as stdout,
            open(self.stderr_path, 'w') as stderr,
        ):
            self.popen = subprocess.Popen(
                command,
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=conftest.REPO_ROOT,
            )

    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        self.popen.kill()  # SIGKILL.
        self.popen.wait(timeout=60)

    def output(self) -> tuple[str, str]:
        with open(self.stdout_path) as stdout, open(self.stderr_path) as err:
            return stdout.read(), err.read()


# Each test starts and kills real training or export processes.
@pytest.mark.slow
class FaultToleranceTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = shards.write_shards(
            os.path.join(tf.compat.v1.test.get_temp_dir(), 'fault_data'),
            image_size=32,
            num_train=8,
            num_val=2,
        )

    def _train_command(self, model_dir, *flags):
        return [
            sys.executable,
            '-m',
            'chromagen_tf.train',
            # INFO lines (resumes) are what the test reads.
            '--verbosity=0',
            *_TINY_FLAGS,
            f'--data_dir={self.data_dir}',
            f'--model_dir={model_dir}',
            *flags,
        ]

    def _wait_until(self, condition, process, what, poll_seconds=0.05):
        deadline = time.monotonic() + _TIMEOUT
        while not condition():
            if not process.running():
                self.fail(
                    f'exited before {what}: {process.output()[1][-3000:]}'
                )
            self.assertLess(time.monotonic(), deadline, f'no {what}')
            time.sleep(poll_seconds)

    def _assert_latest_is_valid(self, stage_dir) -> int:
        """Reads every tensor of the latest checkpoint; returns its step."""
        latest = tf.train.latest_checkpoint(stage_dir)
        self.assertIsNotNone(latest, os.listdir(stage_dir))
        return self._assert_readable(latest)

    def _assert_readable(self, prefix) -> int:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
        number = int(re.search(r'ckpt-(\d+)$', prefix).group(1))
        self.assertEqual(int(reader.get_tensor(_STEP_KEY)), number, prefix)
        return number

    def test_sigkill_during_training_loses_at_most_checkpoint_every(self):
        model_dir = os.path.join(self.get_temp_dir(), 'killed')
        stage_dir = os.path.join(model_dir, 'pretrain')
        train_events = os.path.join(stage_dir, 'train')
        train_steps, checkpoint_every = 12, 3
        command = self._train_command(
            model_dir,
            f'--train_steps={train_steps}',
            f'--checkpoint_every={checkpoint_every}',
            '--summary_every=1',
        )
        process = _Process(command, model_dir + '.first')
        # Checkpoints at steps 1, 4, 7: kill once the third is on disk.
        self._wait_until(
            lambda: len(_checkpoint_numbers(stage_dir)) >= 3,
            process,
            'third checkpoint',
        )
        process.kill()
        self.assertEqual(process.popen.returncode, -9)

        for number in _checkpoint_numbers(stage_dir):
            self._assert_readable(os.path.join(stage_dir, f'ckpt-{number}'))
        restored = self._assert_latest_is_valid(stage_dir)
        self.assertGreaterEqual(restored, 4)
        # Each loop writes its summaries, then its checkpoint if one is due:
        # the last summarised step is the last completed one, and at most
        # checkpoint_every completed steps may lie past the checkpoint.
        reached = max(utils.summarised_steps(train_events))
        self.assertBetween(reached - restored, 0, checkpoint_every)
        first_run_events = set(glob.glob(os.path.join(train_events, '*')))

        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            cwd=conftest.REPO_ROOT,
        )
        self.assertEqual(completed.returncode, 0, completed.stderr[-3000:])
        self.assertIn(
            f'Resumed {stage_dir}/ckpt-{restored} at step {restored}.',
            completed.stderr,
        )
        self.assertIn(
            f'stopped at step {train_steps} (complete)', completed.stdout
        )
        self.assertEqual(
            tf.train.latest_checkpoint(stage_dir),
            os.path.join(stage_dir, f'ckpt-{train_steps}'),
        )
        self.assertEqual(self._assert_latest_is_valid(stage_dir), train_steps)
        # The restart counted each step after the checkpoint exactly once.
        new_events = sorted(
            set(glob.glob(os.path.join(train_events, '*'))) - first_run_events
        )
        self.assertLen(new_events, 1)
        self.assertEqual(
            utils.summarised_steps(train_events, new_events),
            list(range(restored + 1, train_steps + 1)),
        )

    def test_repeated_sigkill_during_checkpoint_writes(self):
        # Five kill-and-restart rounds, each aimed at a random moment of a
        # checkpoint write rather than anywhere in the loop. Each round costs
        # one TF start-up of a tiny model (the run itself is a few steps),
        # and this test was the slowest of the suite at ten rounds.
        rounds = 5
        model_dir = os.path.join(self.get_temp_dir(), 'write_kills')
        stage_dir = os.path.join(model_dir, 'pretrain')
        flags = ['--checkpoint_every=1', '--summary_every=1000']
        command = self._train_command(model_dir, '--train_steps=100000', *flags)
        delays = random.Random(7)
        restored = 0
        # Rounds whose kill left this round's ckpt-N_temp/ behind, i.e. landed
        # inside a checkpoint write (the next start deletes it).
        kills_inside_a_write = 0
        for round_number in range(rounds):
            process = _Process(command, f'{model_dir}.{round_number}')
            before = restored
            # A killed write leaves ckpt-N_temp/ behind: aim at later ones.
            seen = max(
                _checkpoint_numbers(stage_dir)
                + _checkpoint_numbers(stage_dir, '_temp'),
                default=0,
            )
            self._wait_until(
                lambda before=before: (
                    _checkpoint_numbers(stage_dir)[-1:] > [before]
                ),
                process,
                'a new checkpoint',
            )
            # A write takes ~10 ms of a ~200 ms step: wait for the next one
            # to start (TF writes ckpt-N_temp/ first, then merges it into
            # ckpt-N.index, records the `checkpoint` file and deletes the
            # oldest checkpoint), then kill somewhere in it.
            self._wait_until(
                lambda seen=seen: (
                    _checkpoint_numbers(stage_dir, '_temp')[-1:] > [seen]
                ),
                process,
                'a checkpoint write',
                poll_seconds=0.0005,
            )
            time.sleep(delays.uniform(0.0, 0.015))
            process.kill()
            logging.info(
                'Round %d killed with %s on disk.',
                round_number,
                sorted(os.listdir(stage_dir)),
            )
            if _checkpoint_numbers(stage_dir, '_temp')[-1:] > [seen]:
                kills_inside_a_write += 1
            stderr = process.output()[1]
            if round_number:
                self.assertIn(
                    f'Resumed {stage_dir}/ckpt-{restored} at step {restored}.',
                    stderr,
                )
            restored = self._assert_latest_is_valid(stage_dir)
            self.assertGreater(restored, before)
        logging.info(
            '%d of %d kills landed inside a checkpoint write.',
            kills_inside_a_write,
            rounds,
        )
        # Otherwise this test would only have tested kills between writes.
        self.assertGreaterEqual(kills_inside_a_write, 1)

        # The rounds aimed at 100000 steps; --train_steps may change on
        # resume, so the last run finishes two steps after the checkpoint.
        final_steps = restored + 2
        completed = subprocess.run(
            self._train_command(
                model_dir, f'--train_steps={final_steps}', *flags
            ),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            cwd=conftest.REPO_ROOT,
        )
        self.assertEqual(completed.returncode, 0, completed.stderr[-3000:])
        self.assertIn(
            f'Resumed {stage_dir}/ckpt-{restored} at step {restored}.',
            completed.stderr,
        )
        self.assertIn(
            f'stopped at step {final_steps} (complete)', completed.stdout
        )
        self.assertEqual(self._assert_latest_is_valid(stage_dir), final_steps)
        # The trainer deletes the ckpt-N_temp/ folders the kills left.
        self.assertEqual(_checkpoint_numbers(stage_dir, '_temp'), [])

    def _start_workers(self, command, log_prefix, ports):
        cluster = {'worker': [f'127.0.0.1:{port}' for port in ports]}
        workers = []
        for index in range(2):
            env = dict(
                os.environ,
                CUDA_VISIBLE_DEVICES='',
                TF_CONFIG=(
                    json.dumps(
                        {
                            'cluster': cluster,
                            'task': {'type': 'worker', 'index': index},
                        }
                    )
                ),
            )
            workers.append(_Process(command, f'{log_prefix}.{index}', env))
        return workers

    def _wait_for_workers(self, workers):
        try:
            for worker in workers:
                worker.popen.wait(timeout=_TIMEOUT)
        finally:
            for worker in workers:
                if worker.running():
                    worker.kill()
        return [worker.output() for worker in workers]

    def test_sigterm_on_one_worker_stops_both_then_both_resume(self):
        model_dir = os.path.join(self.get_temp_dir(), 'two_workers')
        stage_dir = os.path.join(model_dir, 'pretrain')
        train_events = os.path.join(stage_dir, 'train')
        train_steps = 40
        command = [
            flag
            for flag in self._train_command(
                model_dir,
                f'--train_steps={train_steps}',
                '--checkpoint_every=100000',
                '--summary_every=1',
            )
            if flag != '--strategy=one_device'
        ]
        command.append('--strategy=multi_worker')
        workers = self._start_workers(command, model_dir, utils.free_ports(2))
        chief, other = workers
        try:
            self._wait_until(
                lambda: len(set(utils.summarised_steps(train_events))) >= 2,
                chief,
                'two summarised steps',
            )
            # The worker that does not write checkpoints is preempted: the
            # chief learns it through the all-reduce and saves for both.
            other.popen.send_signal(signal.SIGTERM)
        finally:
            (chief_out, chief_err), (other_out, other_err) = (
                self._wait_for_workers(workers)
            )
        self.assertEqual(chief.popen.returncode, 0, chief_err[-3000:])
        self.assertEqual(other.popen.returncode, 0, other_err[-3000:])
        self.assertIn('Received SIGTERM', other_err)
        saved = self._assert_latest_is_valid(stage_dir)
        self.assertBetween(saved, 2, train_steps - 1)
        self.assertIn(
            f'stopped at step {saved} (another worker stopped)', chief_out
        )
        self.assertIn(f'stopped at step {saved} (SIGTERM)', other_out)
        # No step trained after the one saved.
        self.assertEqual(max(utils.summarised_steps(train_events)), saved)

        # The same command again, on both workers: each resumes at the
        # saved step, and together they train exactly to train_steps.
        first_events = set(glob.glob(os.path.join(train_events, '*')))
        workers = self._start_workers(
            command, f'{model_dir}.again', utils.free_ports(2)
        )
        outputs = self._wait_for_workers(workers)
        for worker, (out, err) in zip(workers, outputs):
            self.assertEqual(worker.popen.returncode, 0, err[-3000:])
            self.assertIn(
                f'Resumed {stage_dir}/ckpt-{saved} at step {saved}.', err
            )
            self.assertIn(f'stopped at step {train_steps} (complete)', out)
        self.assertEqual(self._assert_latest_is_valid(stage_dir), train_steps)
        new_events = sorted(
            set(glob.glob(os.path.join(train_events, '*'))) - first_events
        )
        self.assertEqual(
            utils.summarised_steps(train_events, new_events),
            list(range(saved + 1, train_steps + 1)),
        )

    def _assert_only_complete_versions_visible(self, export_base):
        # TF Serving loads every numbered folder of its base path; exports
        # are staged outside it, so nothing else may appear there.
        for name in os.listdir(export_base):
            path = os.path.join(export_base, name)
            self.assertTrue(name.isdigit(), path)
            for part in (
                'saved_model.pb',
                'variables/variables.index',
                f'assets.extra/{export_lib.METADATA_FILE}',
            ):
                self.assertTrue(
                    os.path.exists(os.path.join(path, part)),
                    f'{path} has no {part}',
                )

    def test_sigkill_during_export_leaves_no_partial_version(self):
        model_dir = os.path.join(self.get_temp_dir(), 'to_export')
        # Export reads only the generator: an untrained checkpoint will do
        # and saves the tracing of a training step.
        config = utils.tiny_config(self.data_dir, model_dir)
        strategy, policy = distribute.setup('one_device', 'float32')
        configs.check_and_write_model_config(model_dir, config.model)
        state.Trainer(config, strategy, policy).manager.save(
            checkpoint_number=0
        )
        parent = os.path.join(self.get_temp_dir(), 'export_parent')
        os.makedirs(parent)
        export_base = os.path.join(parent, 'exports')
        command = [
            sys.executable,
            '-m',
            'chromagen_tf.export',
            f'--model_dir={model_dir}',
            f'--export_dir={export_base}',
            '--stage=pretrain',
            '--render_size=32',
        ]

        def _staging_folders():
            """Folders beside the base: where a version is written first."""
            return sorted(
                name
                for name in os.listdir(parent)
                if name != 'exports'
                and os.path.isdir(os.path.join(parent, name))
            )

        def _writing():
            if os.path.isdir(export_base):
                # Checked at every poll, not only after the kill.
                self._assert_only_complete_versions_visible(export_base)
            return bool(_staging_folders())

        process = _Process(command, self.get_temp_dir() + '/export.killed')
        self._wait_until(
            _writing, process, 'a staging folder', poll_seconds=0.005
        )
        time.sleep(random.Random(11).uniform(0.0, 0.2))
        process.kill()
        logging.info(
            'Export killed with %s beside %s, which holds %s.',
            _staging_folders(),
            export_base,
            sorted(os.listdir(export_base)),
        )
        self._assert_only_complete_versions_visible(export_base)
        # The kill landed inside the write: its staging folder is left.
        killed_staging = _staging_folders()
        self.assertLen(killed_staging, 1)

        # The same command again, uninterrupted and watched the same way.
        process = _Process(command, self.get_temp_dir() + '/export.complete')
        deadline = time.monotonic() + _TIMEOUT
        while process.running():
            self.assertLess(time.monotonic(), deadline, 'the export hangs')
            self._assert_only_complete_versions_visible(export_base)
            time.sleep(0.005)
        stdout, stderr = process.output()
        self.assertEqual(process.popen.returncode, 0, stderr[-3000:])
        version_dir = stdout.strip().splitlines()[-1]
        self.assertEqual(
            export_lib.latest_version_dir(export_base), version_dir
        )
        self._assert_only_complete_versions_visible(export_base)
        # The complete export removed its own staging folder; the killed
        # one's stays where TF Serving never looks.
        self.assertEqual(_staging_folders(), killed_staging)
        loaded = tf.saved_model.load(version_dir)
        photo = tf.io.read_file(shards.sample_photo_paths()[0])
        outputs = loaded.signatures['serving_default'](
            **{signatures.IMAGE_BYTES: photo[tf.newaxis]}
        )
        colorized = tf.io.decode_png(outputs[signatures.COLORIZED_PNG][0])
        self.assertEqual(
            colorized.shape, tf.io.decode_jpeg(photo, channels=3).shape
        )


if __name__ == '__main__':
    tf.test.main()
