"""The shipped model: it loads offline, colorizes, and scores as recorded.

chromagen_tf/bundled/model.json records, per check photo of the sample
photos, the ab MAE and PSNR the shipped weights gave when they were made
(chromagen_tf.bundled.recipe). The test colorizes those photos, measures
the output with its own numpy metrics, and checks it against the record
and against the gray baseline. That catches a damaged weights file, a
change in the pre- or post-processing or the architecture's code, and a
model that no longer beats gray; the model is never retrained.
"""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from chromagen_tf import bundled
from chromagen_tf.inference import colorize_lib
from tests import conftest


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of 8-bit sRGB: IEC 61966-2-1 and CIE 15."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack(
        [
            116 * f[..., 1] - 16,
            500 * (f[..., 0] - f[..., 1]),
            200 * (f[..., 1] - f[..., 2]),
        ],
        -1,
    )


def _gray(rgb: np.ndarray) -> np.ndarray:
    """The gray baseline: the photo's own L*, a* = b* = 0, as 8-bit sRGB.

    A neutral colour has R = G = B = the relative luminance Y of its L*.
    """
    lightness = _lab(rgb)[..., 0]
    y = np.where(
        lightness > 8, ((lightness + 16) / 116) ** 3, lightness * 27 / 24389
    )
    encoded = np.where(
        y <= 0.0031308, 12.92 * y, 1.055 * np.maximum(y, 0) ** (1 / 2.4) - 0.055
    )
    gray = np.clip(np.round(255 * encoded), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., np.newaxis], 3, axis=-1)


def _metrics(rgb: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(ab MAE in Lab units, PSNR in dB) of 8-bit RGB against the truth."""
    ab_mae = np.abs(_lab(rgb)[..., 1:] - _lab(truth)[..., 1:]).mean()
    mse = np.mean((rgb.astype(np.float64) - truth) ** 2)
    return float(ab_mae), float(10 * np.log10(255**2 / mse))


class BundledModelTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.info = bundled.read_info()

    def test_weights_files_fit_in_the_repository_budget(self):
        size = sum(
            os.path.getsize(os.path.join(bundled.BUNDLED_DIR, name))
            for name in (bundled.WEIGHTS_FILE, bundled.HINT_BRANCH_FILE)
            if os.path.isfile(os.path.join(bundled.BUNDLED_DIR, name))
        )
        self.assertLessEqual(size, 40 * 2**20)
        self.assertEqual(self.info['model']['generator'], 'resnet18_unet_lite')

    def _check_photos(self):
        """(name, original RGB, colorized RGB) of model.json's check photos,
        colorized by the shipped model at its recorded render size."""
        colorizer = colorize_lib.load_colorizer()
        self.assertEqual(
            self.info['check']['render_size'], self.info['render_size']
        )
        names = sorted(self.info['check']['per_photo'])
        self.assertNotEmpty(names)
        for name in names:
            with Image.open(conftest.SAMPLE_PHOTOS / name) as image:
                original = np.asarray(image.convert('RGB'))
            (colorized,) = colorizer.colorize([original])
            yield name, original, colorized

    def test_shipped_model_beats_gray_on_the_check_photos(self):
        # The metrics are computed here, from the RGB output, with numpy
        # only: no colour maths or metric of chromagen_tf takes part.
        model, gray = [], []
        for name, original, colorized in self._check_photos():
            self.assertEqual(colorized.shape, original.shape)
            model.append(_metrics(colorized, original))
            gray.append(_metrics(_gray(original), original))
            recorded = self.info['check']['per_photo'][name]
            # model.json's figures were computed from float a*b* before
            # rounding to 8-bit RGB, which moves them by up to 0.1.
            self.assertAllClose(
                model[-1],
                (recorded['ab_mae'], recorded['psnr']),
                atol=0.3,
                msg=name,
            )
        (model_mae, model_psnr), (gray_mae, gray_psnr) = (
            np.mean(model, axis=0),
            np.mean(gray, axis=0),
        )
        self.assertLess(model_mae, gray_mae)
        self.assertGreater(model_psnr, gray_psnr)

    @pytest.mark.slow  # A process that imports TensorFlow.
    def test_colorize_with_no_model_uses_it(self):
        output_dir = os.path.join(self.get_temp_dir(), 'out')
        photo = conftest.SAMPLE_PHOTOS / 'chelsea.jpg'
        result = subprocess.run(
            [
                sys.executable,
                '-m',
                'chromagen_tf.colorize',
                str(photo),
                f'--output_dir={output_dir}',
                '--output_extension=png',
            ],
            cwd=conftest.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn('bundled model', result.stdout)
        with (
            Image.open(photo) as original,
            Image.open(os.path.join(output_dir, 'chelsea.png')) as colorized,
        ):
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
