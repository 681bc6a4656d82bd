"""The shipped model: it loads offline, colorizes, and scores as recorded.

chromagen_tf/bundled/model.json records, per check photo of sample_photos/,
the ab MAE and PSNR the shipped weights gave when they were made
(chromagen_tf.bundled.recipe). Recomputing them here catches a damaged
weights file, a change in the pre- or post-processing and a change in the
architecture's code; the model is never retrained.
"""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import tensorflow as tf

from chromagen_tf import bundled
from chromagen_tf.inference import colorize_lib
from tests import conftest


class BundledModelTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.info = bundled.read_info()

    def test_weights_file_fits_in_the_repository_budget(self):
        size = os.path.getsize(os.path.join(bundled.BUNDLED_DIR,
                                            bundled.WEIGHTS_FILE))
        self.assertLessEqual(size, 40 * 2**20)
        self.assertEqual(self.info['model']['generator'],
                         'resnet18_unet_lite')

    def test_recorded_metrics_on_the_check_photos(self):
        check = self.info['check']
        self.assertEqual(check['render_size'], self.info['render_size'])
        got = bundled.check_metrics(bundled.BUNDLED_DIR,
                                   str(conftest.SAMPLE_PHOTOS))
        self.assertCountEqual(got, bundled.CHECK_PHOTOS)
        for name, values in check['per_photo'].items():
            # Float rounding across machines moves these by far less.
            self.assertAllClose(got[name]['ab_mae'], values['ab_mae'],
                                atol=0.05, msg=name)
            self.assertAllClose(got[name]['psnr'], values['psnr'],
                                atol=0.05, msg=name)

    def test_recorded_metrics_against_gray(self):
        # What MODEL_CARD.md states. On the val split the colourfulness is
        # within 12 of the truth's, the GAN generator is more colourful than
        # the pretrained one; its PSNR and AuC are below gray's there.
        # On the held-out sample photos it beats gray on ab MAE, PSNR and
        # AuC.
        metrics = self.info['metrics']
        val = metrics['val']
        self.assertLessEqual(val['model']['delta_colorfulness'], 12.0)
        self.assertGreater(metrics['val_gan']['model']['colorfulness'],
                           metrics['val_l1_only']['model']['colorfulness'])
        held_out = metrics['sample_photos']
        self.assertEqual(held_out['num_images'], 14)
        for metric in ('psnr', 'auc'):
            self.assertGreater(held_out['model'][metric],
                               held_out['gray_baseline'][metric], metric)
        self.assertLess(held_out['model']['ab_mae'],
                        held_out['gray_baseline']['ab_mae'])

    def test_colorize_with_no_model_uses_it(self):
        output_dir = os.path.join(self.get_temp_dir(), 'out')
        photo = conftest.SAMPLE_PHOTOS / 'chelsea.jpg'
        result = subprocess.run(
            [sys.executable, '-m', 'chromagen_tf.colorize', str(photo),
             f'--output_dir={output_dir}', '--output_extension=png'],
            cwd=conftest.REPO_ROOT, capture_output=True, text=True,
            timeout=300, check=False)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn('bundled model', result.stdout)
        with Image.open(photo) as original, Image.open(
                os.path.join(output_dir, 'chelsea.png')) as colorized:
            self.assertEqual(colorized.size, original.size)
            pixels = np.asarray(colorized.convert('RGB')).astype(int)
            gray = np.asarray(original.convert('L')).astype(int)
        # Colour, not gray: channels differ on a fair share of pixels.
        spread = pixels.max(-1) - pixels.min(-1)
        self.assertGreater(np.mean(spread > 8), 0.2)
        # The photo's own lightness is kept (luma within a few levels).
        luma = pixels @ np.array([0.299, 0.587, 0.114])
        self.assertLess(np.abs(luma - gray).mean(), 4.0)

    def test_colorizer_defaults_to_the_recorded_render_size(self):
        colorizer = colorize_lib.load_colorizer()
        self.assertEqual(colorizer.render_size, self.info['render_size'])
        self.assertIn('bundled model', colorizer.description)


if __name__ == '__main__':
    tf.test.main()
