"""Two real worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy.

Each worker is `python -m chromagen_tf.train --strategy=multi_worker` with
its own TF_CONFIG, exactly as on two hosts. The tiny dataset has two train
shards of two photos and a global batch of four, with no shuffling or
augmentation, so that every step of every run sees the same four photos:
the two-worker run must then match a one-process run at the same global
batch (with synchronized BatchNorm, as explained in distributed_test.py).
"""

import ast
import json
import os
import re
import socket
import subprocess
import sys

import tensorflow as tf

from tests import conftest
from tests import records

_FLAGS = [
    '--width=8', '--image_size=32', '--global_batch_size=4',
    '--mixed_precision=float32', '--sync_batch_norm', '--noaugment',
    '--train_steps=3', '--steps_per_loop=1', '--summary_every=1',
    '--eval_every=3', '--checkpoint_every=1',
]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _losses(stdout):
    match = re.search(r'^final losses: (.*)$', stdout, re.MULTILINE)
    assert match, stdout
    return json.loads(match.group(1))


class MultiWorkerTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = records.write_shards(
            os.path.join(tf.compat.v1.test.get_temp_dir(), 'mw_data'),
            image_size=32, num_train=4, num_val=2, train_shards=2)

    def _run_workers(self, model_dir, stage):
        ports = _free_ports(2)
        cluster = {'worker': [f'127.0.0.1:{port}' for port in ports]}
        processes = []
        for index in range(2):
            environment = dict(os.environ)
            environment['TF_CONFIG'] = json.dumps(
                {'cluster': cluster, 'task': {'type': 'worker',
                                              'index': index}})
            environment['CUDA_VISIBLE_DEVICES'] = ''
            processes.append(subprocess.Popen(
                [sys.executable, '-m', 'chromagen_tf.train',
                 f'--stage={stage}', '--strategy=multi_worker',
                 f'--data_dir={self.data_dir}', f'--model_dir={model_dir}',
                 *_FLAGS],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=environment, cwd=conftest.REPO_ROOT))
        outputs = [process.communicate(timeout=400) for process in processes]
        for process, (_, stderr) in zip(processes, outputs):
            self.assertEqual(process.returncode, 0, stderr[-4000:])
        return outputs

    def _run_single(self, model_dir, stage):
        completed = subprocess.run(
            [sys.executable, '-m', 'chromagen_tf.train', f'--stage={stage}',
             '--strategy=one_device', f'--data_dir={self.data_dir}',
             f'--model_dir={model_dir}', *_FLAGS],
            capture_output=True, text=True, timeout=400,
            cwd=conftest.REPO_ROOT)
        self.assertEqual(completed.returncode, 0, completed.stderr[-4000:])
        return completed.stdout

    def test_two_workers_train_both_stages_like_one_process(self):
        model_dir = os.path.join(self.get_temp_dir(), 'two_workers')
        single_dir = os.path.join(self.get_temp_dir(), 'one_process')
        for stage in ('pretrain', 'gan'):
            (chief_out, chief_err), (worker_out, worker_err) = (
                self._run_workers(model_dir, stage))
            chief_losses = _losses(chief_out)
            # Same collective results on both workers.
            self.assertEqual(chief_losses, _losses(worker_out))
            single_losses = _losses(self._run_single(single_dir, stage))
            self.assertEqual(set(chief_losses), set(single_losses))
            for name, value in single_losses.items():
                self.assertAllClose(chief_losses[name], value, rtol=2e-3,
                                    msg=f'{stage} {name}')

            # Only the chief wrote into model_dir; the other worker's
            # temporary directory is gone.
            stage_dir = os.path.join(model_dir, stage)
            self.assertEqual(tf.train.latest_checkpoint(stage_dir),
                             os.path.join(stage_dir, 'ckpt-3'))
            self.assertNotEmpty(os.listdir(os.path.join(stage_dir, 'train')))
            temporary = re.findall(r'writing to the temporary (\S+)',
                                   worker_err)
            self.assertLen(temporary, 1, worker_err[-3000:])
            self.assertIn('chromagen-worker-1-', temporary[0])
            self.assertFalse(os.path.exists(temporary[0]))
            self.assertEmpty(re.findall(r'writing to the temporary',
                                        chief_err))

            # Each worker read its own shard: no photo was seen twice.
            reads = [re.findall(r'Input pipeline (\d) of 2 reads files '
                                r'(\[.*?\])', err)
                     for err in (chief_err, worker_err)]
            chief_files = set(ast.literal_eval(reads[0][0][1]))
            worker_files = set(ast.literal_eval(reads[1][0][1]))
            self.assertLen(chief_files | worker_files, 2)
            self.assertEmpty(chief_files & worker_files)


if __name__ == '__main__':
    tf.test.main()
