"""End to end: the demo, from an installed wheel: the bundled model on the
sample photos, then the pipeline on four of them, two steps per stage."""

import fnmatch
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from bench import bench_sidecar_hints
import chromagen_tf
from chromagen_tf import color
from chromagen_tf import hint_format
from chromagen_tf import sample_photos
from tests import conftest
from tests import utils

_PHOTOS_PACKAGE = 'chromagen_tf.sample_photos'


def _install_wheel(work_dir):
    """Builds the wheel from a copy of the tree and installs it in a folder.

    Returns:
      (the wheel, the folder to put on PYTHONPATH).
    """
    source = os.path.join(work_dir, 'source')
    for name in ('chromagen_tf', 'data_prep'):
        shutil.copytree(
            conftest.REPO_ROOT / name,
            os.path.join(source, name),
            ignore=shutil.ignore_patterns('__pycache__'),
        )
    for name in ('pyproject.toml', 'README.md'):
        shutil.copy(conftest.REPO_ROOT / name, source)
    wheels, site = (
        os.path.join(work_dir, 'wheels'),
        os.path.join(work_dir, 'site'),
    )
    # No build isolation: the build uses this environment's setuptools
    # instead of downloading one.
    subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'wheel',
            '-q',
            '--no-deps',
            '--no-build-isolation',
            '-w',
            wheels,
            source,
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = glob.glob(os.path.join(wheels, '*.whl'))
    subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'install',
            '-q',
            '--no-deps',
            '--target',
            site,
            wheel,
        ],
        check=True,
        timeout=300,
    )
    return wheel, site


def _run_demo(output_dir, site):
    return subprocess.run(
        [
            sys.executable,
            '-m',
            'chromagen_tf.demo',
            f'--output_dir={output_dir}',
            '--max_images=4',
            '--num_val=1',
            '--pretrain_steps=2',
            '--gan_steps=2',
            '--batch_size=2',
            '--width=8',
            '--image_size=32',
            '--stored_size=48',
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=os.path.dirname(output_dir),
        env=dict(os.environ, PYTHONPATH=site),
    )


def _assert_follows_hints(test, png, hints):
    """The colorized photo's a*b* at its hint points is near the hints'.

    Without the hints the bundled model is 31-35 a*b* units from them on
    average at these points; with them, 13-15 (BENCHMARKS.md, "Hand-picked
    hints").
    """
    found = bench_sidecar_hints.ab_at_points(
        np.asarray(Image.open(png).convert('RGB')), [(h.x, h.y) for h in hints]
    )
    wanted = color.rgb_to_lab(
        tf.constant([[h.rgb for h in hints]], tf.float32) / 255.0
    ).numpy()[0, :, 1:]
    test.assertLess(np.linalg.norm(found - wanted, axis=-1).mean(), 20, png)


def test_sample_photos_are_package_data():
    tomllib = pytest.importorskip('tomllib')  # Python >= 3.11.
    folder = sample_photos.folder()
    assert os.path.dirname(folder) == os.path.dirname(chromagen_tf.__file__)
    with open(conftest.REPO_ROOT / 'pyproject.toml', 'rb') as f:
        patterns = tomllib.load(f)['tool']['setuptools']['package-data'][
            _PHOTOS_PACKAGE
        ]
    shipped = [
        name
        for name in os.listdir(folder)
        if any(fnmatch.fnmatch(name, p) for p in patterns)
    ]
    assert 'ATTRIBUTION.md' in shipped
    assert len([name for name in shipped if name.endswith('.jpg')]) == 14
    # Every photo has its licence recorded.
    with open(os.path.join(folder, 'ATTRIBUTION.md'), encoding='utf-8') as f:
        attribution = f.read()
    for name in shipped:
        if name.endswith('.jpg'):
            assert f'| {name} |' in attribution, name


@pytest.mark.slow  # Builds a wheel; the demo starts a dozen processes.
class DemoTest(tf.test.TestCase):
    def test_demo_from_the_wheel_produces_every_artefact_and_reuses_stages(
        self,
    ):
        pytest.importorskip('setuptools')  # To build the wheel.
        wheel, site = _install_wheel(self.get_temp_dir())
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
        self.assertIn('chromagen_tf/sample_photos/chelsea.jpg', names)
        self.assertIn('chromagen_tf/bundled/generator.npz', names)
        self.assertNotIn('chromagen_tf/video/synthetic.py', names)
        self.assertFalse(
            [name for name in names if name.startswith(('tests/', 'bench/'))]
        )
        out = os.path.join(self.get_temp_dir(), 'run', 'demo')
        os.makedirs(os.path.dirname(out))
        completed = _run_demo(out, site)
        self.assertEqual(completed.returncode, 0, completed.stderr[-5000:])
        # Every stage ran from the wheel, not from this checkout.
        self.assertNotIn(str(conftest.REPO_ROOT), completed.stdout)

        # 1. Shards and manifest.
        manifest = json.load(open(os.path.join(out, 'data', 'manifest.json')))
        self.assertEqual(manifest['splits']['train']['records'], 3)
        self.assertEqual(manifest['splits']['val']['records'], 1)
        self.assertNotEmpty(
            glob.glob(os.path.join(out, 'data', 'train-*.tfrecord'))
        )
        # 2-3. Checkpoints and event files with images, for both stages.
        for stage in ('pretrain', 'gan'):
            stage_dir = os.path.join(out, 'run', stage)
            self.assertEqual(
                tf.train.latest_checkpoint(stage_dir),
                os.path.join(stage_dir, 'ckpt-2'),
            )
            tags = utils.event_tags(os.path.join(stage_dir, 'eval'))
            self.assertEqual(tags.get('gray_prediction_truth'), 'images')
            self.assertIn(
                'losses/l1', utils.event_tags(os.path.join(stage_dir, 'train'))
            )
        # 4. The SavedModel in TF Serving's layout.
        self.assertTrue(
            os.path.exists(
                os.path.join(out, 'models', 'chromagen', '1', 'saved_model.pb')
            )
        )
        # 5. Colorized PNGs at the held-out photo's own size.
        outputs = glob.glob(os.path.join(out, 'colorized', '*.png'))
        self.assertLen(outputs, 1)
        name = os.path.splitext(os.path.basename(outputs[0]))[0]
        original = Image.open(
            os.path.join(conftest.SAMPLE_PHOTOS, name + '.jpg')
        )
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
        bundled = json.load(
            open(os.path.join(out, 'bundled_model', 'metrics.json'))
        )
        self.assertEqual(bundled['num_images'], len(photos))
        self.assertIn('bundled model', bundled['config']['model_description'])
        grid = Image.open(os.path.join(out, 'bundled_model', 'comparison.jpg'))
        rows = -(-len(photos) // 2)
        self.assertEqual(
            grid.size, (2 * (3 * 240 + 6) + 6, 24 + rows * 180 + (rows - 1) * 6)
        )
        self.assertLess(
            completed.stdout.index('bundled model on the sample'),
            completed.stdout.index('tiny model'),
        )
        # 0b. The photos with hint sidecars, with their hints: one row each.
        hints_dir = os.path.join(out, 'bundled_model', 'hints')
        sidecars = sorted(
            glob.glob(os.path.join(conftest.SAMPLE_PHOTOS, '*.hints.json'))
        )
        self.assertLen(sidecars, 2)
        height = Image.open(os.path.join(hints_dir, 'hints.jpg')).height
        self.assertBetween(height, 2 * 200, 3 * 200)
        for sidecar in sidecars:
            self.assertIn(
                'chromagen_tf/sample_photos/' + os.path.basename(sidecar),
                names,
            )
            _assert_follows_hints(
                self,
                os.path.join(
                    hints_dir,
                    os.path.basename(sidecar).split('.')[0] + '.png',
                ),
                hint_format.read_file(sidecar),
            )

        again = _run_demo(out, site)
        self.assertEqual(again.returncode, 0, again.stderr[-5000:])
        self.assertEqual(again.stdout.count('reusing'), 7, again.stdout)


if __name__ == '__main__':
    tf.test.main()
