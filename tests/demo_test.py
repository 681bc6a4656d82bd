"""End to end: the demo: the bundled model on the sample photos, then the
pipeline on four of them, two steps per stage."""

import glob
import json
import os
import subprocess
import sys

import tensorflow as tf
from PIL import Image

from tests import conftest
from tests import utils


def _run_demo(output_dir):
    return subprocess.run(
        [sys.executable, '-m', 'chromagen_tf.demo',
         f'--output_dir={output_dir}', '--max_images=4', '--num_val=1',
         '--pretrain_steps=2', '--gan_steps=2', '--batch_size=2',
         '--width=8', '--image_size=32', '--stored_size=48'],
        capture_output=True, text=True, timeout=600, cwd=conftest.REPO_ROOT)


class DemoTest(tf.test.TestCase):

    def test_demo_produces_every_artefact_and_reuses_stages(self):
        out = os.path.join(self.get_temp_dir(), 'demo')
        completed = _run_demo(out)
        self.assertEqual(completed.returncode, 0, completed.stderr[-5000:])

        # 1. Shards and manifest.
        manifest = json.load(open(os.path.join(out, 'data', 'manifest.json')))
        self.assertEqual(manifest['splits']['train']['records'], 3)
        self.assertEqual(manifest['splits']['val']['records'], 1)
        self.assertNotEmpty(glob.glob(os.path.join(out, 'data',
                                                   'train-*.tfrecord')))
        # 2-3. Checkpoints and event files with images, for both stages.
        for stage in ('pretrain', 'gan'):
            stage_dir = os.path.join(out, 'run', stage)
            self.assertEqual(tf.train.latest_checkpoint(stage_dir),
                             os.path.join(stage_dir, 'ckpt-2'))
            tags = utils.event_tags(os.path.join(stage_dir, 'eval'))
            self.assertEqual(tags.get('gray_prediction_truth'), 'images')
            self.assertIn('losses/l1', utils.event_tags(
                os.path.join(stage_dir, 'train')))
        # 4. The SavedModel in TF Serving's layout.
        self.assertTrue(os.path.exists(os.path.join(
            out, 'models', 'chromagen', '1', 'saved_model.pb')))
        # 5. Colorized PNGs at the held-out photo's own size.
        outputs = glob.glob(os.path.join(out, 'colorized', '*.png'))
        self.assertLen(outputs, 1)
        name = os.path.splitext(os.path.basename(outputs[0]))[0]
        original = Image.open(os.path.join(conftest.SAMPLE_PHOTOS,
                                           name + '.jpg'))
        self.assertEqual(Image.open(outputs[0]).size, original.size)
        # One photo: a header over gray | colorized | original, 240x180 each.
        sheet = Image.open(os.path.join(out, 'comparison.png'))
        self.assertEqual(sheet.size, (3 * 240 + 6, 24 + 180))
        # 6. The metrics report, with the gray baseline.
        report = json.load(open(os.path.join(out, 'metrics.json')))
        self.assertEqual(report['num_images'], 1)
        for side in ('model', 'gray_baseline'):
            self.assertIn('ab_mae', report[side])
        self.assertIn('tensorboard --logdir=', completed.stdout)
        self.assertIn('comparison.png', completed.stdout)
        # 0. The bundled model on every sample photo, printed first.
        photos = glob.glob(os.path.join(conftest.SAMPLE_PHOTOS, '*.jpg'))
        bundled = json.load(open(os.path.join(out, 'bundled_model',
                                              'metrics.json')))
        self.assertEqual(bundled['num_images'], len(photos))
        self.assertIn('bundled model', bundled['config']['model_description'])
        grid = Image.open(os.path.join(out, 'bundled_model', 'comparison.jpg'))
        rows = -(-len(photos) // 2)
        self.assertEqual(grid.size, (2 * (3 * 240 + 6) + 6,
                                     24 + rows * 180 + (rows - 1) * 6))
        self.assertLess(completed.stdout.index('bundled model on the sample'),
                        completed.stdout.index('tiny model'))

        again = _run_demo(out)
        self.assertEqual(again.returncode, 0, again.stderr[-5000:])
        self.assertEqual(again.stdout.count('reusing'), 7, again.stdout)


if __name__ == '__main__':
    tf.test.main()
