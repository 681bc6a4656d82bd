"""Tests for the evaluation tool: report format, metric values, baseline."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf import metrics
from chromagen_tf.data import records
from chromagen_tf.inference import colorizer
from chromagen_tf.inference import evaluate_lib
from tests.conftest import REPO_ROOT
from tests.conftest import SAMPLE_PHOTOS
from tests.utils import make_model_dir

_PHOTOS = ('chelsea.jpg', 'fig_bowl.jpg', 'wine_room.jpg')


def _lab(name: str, size=(64, 48)) -> np.ndarray:
    with Image.open(SAMPLE_PHOTOS / name) as image:
        rgb = np.asarray(image.convert('RGB').resize(size))
    return color.rgb_to_lab_numpy(rgb)


def _gray_model():
    """A Colorizer whose network always answers ab = 0."""
    return colorizer.Colorizer(
        lambda l_normalized, *hint_maps: tf.zeros(
            tf.concat([tf.shape(l_normalized)[:3], [2]], 0)
        ),
        render_size=64,
        size_multiple=32,
    )


class EvaluateTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tf.test.TestCase().get_temp_dir()
        cls.data_dir = os.path.join(cls.root, 'records')
        os.makedirs(cls.data_dir)
        cls.labs = [_lab(name) for name in _PHOTOS]
        path = os.path.join(cls.data_dir, 'val-00000-of-00001.tfrecord')
        with tf.io.TFRecordWriter(path) as writer:
            for name, lab in zip(_PHOTOS, cls.labs):
                writer.write(records.encode_example(lab, name, 48, 64))
        # What the records hold after quantisation: the ground truth.
        cls.stored = [
            records.dequantize_lab(records.quantize_lab(lab)).numpy()
            for lab in cls.labs
        ]

    def test_gray_baseline_values_by_hand(self):
        examples = evaluate_lib.examples_from_records(self.data_dir, 'val')
        report = evaluate_lib.evaluate(_gray_model(), examples, batch_size=2)
        self.assertEqual(report['num_images'], 3)
        baseline = report['gray_baseline']
        self.assertCountEqual(baseline, evaluate_lib.METRIC_NAMES)
        expected_mae = np.mean(
            [np.abs(lab[..., 1:]).mean() for lab in self.stored]
        )
        self.assertAllClose(baseline['ab_mae'], expected_mae, rtol=1e-5)
        errors = [
            np.linalg.norm(lab[..., 1:], axis=-1).ravel() for lab in self.stored
        ]
        curves = [(e[:, None] <= np.arange(151)).mean(0) for e in errors]
        expected_auc = np.mean(
            [np.trapezoid(c, dx=1.0) / 150.0 for c in curves]
        )
        self.assertAllClose(baseline['auc'], expected_auc, rtol=1e-5)
        # A gray prediction has no colour at all.
        self.assertAllClose(baseline['colorfulness'], 0.0, atol=0.1)
        self.assertAllClose(
            baseline['delta_colorfulness'],
            baseline['colorfulness_gt'],
            atol=0.1,
        )
        self.assertGreater(baseline['colorfulness_gt'], 10.0)
        # A model that predicts gray scores exactly like the baseline.
        for metric in evaluate_lib.METRIC_NAMES:
            self.assertAllClose(
                report['model'][metric],
                baseline[metric],
                rtol=1e-5,
                atol=1e-5,
                msg=metric,
            )

    def test_perfect_prediction_caps_psnr(self):
        lab = self.stored[0][None]
        values = evaluate_lib.image_metrics(
            lab[..., :1], lab[..., 1:], lab[..., 1:]
        )
        self.assertAllClose(values['ab_mae'], 0.0)
        self.assertAllClose(values['psnr'], metrics.PSNR_CAP_DB)
        self.assertAllClose(values['ssim'], 1.0)
        self.assertAllClose(values['auc'], 1.0)
        self.assertAllClose(values['colorfulness'], values['colorfulness_gt'])

    def test_image_dir_and_max_images(self):
        image_dir = os.path.join(self.get_temp_dir(), 'photos')
        os.makedirs(image_dir)
        for name in _PHOTOS:
            Image.open(SAMPLE_PHOTOS / name).resize((64, 48)).save(
                os.path.join(image_dir, name.replace('.jpg', '.png'))
            )
        with open(os.path.join(image_dir, 'broken.png'), 'wb') as f:
            f.write(b'not a png')
        examples = list(evaluate_lib.examples_from_images(image_dir))
        self.assertLen(examples, 3)  # The broken file is skipped.
        report = evaluate_lib.evaluate(
            _gray_model(), iter(examples), max_images=2
        )
        self.assertEqual(report['num_images'], 2)
        # Per image, in input order, and the summary is their mean.
        self.assertEqual(
            [row['key'] for row in report['per_image']],
            [key for key, _, _ in examples[:2]],
        )
        for name in ('model', 'gray_baseline'):
            for metric in ('ab_mae', 'psnr', 'auc'):
                self.assertAllClose(
                    np.mean([row[name][metric] for row in report['per_image']]),
                    report[name][metric],
                    msg=f'{name} {metric}',
                )

    @pytest.mark.slow  # An evaluate process.
    def test_command_line_writes_the_report(self):
        model_dir = os.path.join(self.get_temp_dir(), 'run')
        make_model_dir(model_dir)
        report_path = os.path.join(self.get_temp_dir(), 'eval', 'report.json')
        result = subprocess.run(
            [
                sys.executable,
                '-m',
                'chromagen_tf.evaluate',
                f'--model={model_dir}',
                f'--data_dir={self.data_dir}',
                '--split=val',
                f'--report={report_path}',
                '--render_size=64',
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn('gray_baseline', result.stdout)
        with open(report_path) as f:
            report = json.load(f)
        self.assertCountEqual(
            report,
            ['model', 'gray_baseline', 'num_images', 'per_image', 'config'],
        )
        self.assertLen(report['per_image'], 3)
        self.assertEqual(report['num_images'], 3)
        self.assertEqual(report['config']['render_size'], 64)
        for row in ('model', 'gray_baseline'):
            self.assertCountEqual(report[row], evaluate_lib.METRIC_NAMES)
            for value in report[row].values():
                self.assertTrue(np.isfinite(value))
        # An untrained model is colourful noise: worse ab error than gray.
        self.assertGreater(
            report['model']['ab_mae'], report['gray_baseline']['ab_mae']
        )


if __name__ == '__main__':
    tf.test.main()
