"""Tests for chromagen_tf.metrics against hand-computed values and tf.image."""

import numpy as np
from PIL import Image
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf import metrics
from tests.conftest import SAMPLE_PHOTOS


def _photo(name: str, size: int = 64) -> np.ndarray:
    with Image.open(SAMPLE_PHOTOS / name) as image:
        image = image.convert('RGB').resize((size, size))
        return np.asarray(image, dtype=np.float32) / 255.0


class AbMaeTest(tf.test.TestCase):
    def test_hand_computed(self):
        ab_true = np.zeros([2, 2, 2, 2], np.float32)
        ab_pred = np.zeros([2, 2, 2, 2], np.float32)
        ab_pred[0, 0, 0] = [8.0, -4.0]  # 12 over 8 values -> 1.5.
        ab_pred[1] = 10.0
        self.assertAllClose(metrics.ab_mae(ab_pred, ab_true), [1.5, 10.0])


class PsnrSsimTest(tf.test.TestCase):
    def test_psnr_hand_computed(self):
        rgb_true = np.zeros([1, 4, 4, 3], np.float32)
        rgb_pred = np.full([1, 4, 4, 3], 0.1, np.float32)
        # MSE 0.01 -> 10 * log10(1 / 0.01) = 20 dB.
        self.assertAllClose(metrics.psnr(rgb_pred, rgb_true), [20.0])

    def test_matches_tf_image_on_photos(self):
        rgb_true = np.stack([_photo('chelsea.jpg'), _photo('coffee.jpg')])
        rgb_pred = np.clip(
            rgb_true
            + 0.05 * np.sin(np.arange(rgb_true.size).reshape(rgb_true.shape)),
            0,
            1,
        ).astype(np.float32)
        self.assertAllClose(
            metrics.psnr(rgb_pred, rgb_true),
            tf.image.psnr(rgb_pred, rgb_true, max_val=1.0),
        )
        self.assertAllClose(
            metrics.ssim(rgb_pred, rgb_true),
            tf.image.ssim(rgb_pred, rgb_true, max_val=1.0),
        )
        self.assertAllClose(metrics.ssim(rgb_true, rgb_true), [1.0, 1.0])


class ColorfulnessTest(tf.test.TestCase):
    def test_gray_is_zero(self):
        gray = np.broadcast_to(
            np.linspace(0, 255, 16, dtype=np.float32)[None, :, None, None],
            [1, 16, 8, 3],
        )
        self.assertAllClose(metrics.colorfulness(gray), [0.0], atol=1e-4)

    def test_hand_computed(self):
        # Half the pixels pure red (rg=255, yb=127.5), half black (0, 0):
        # std(rg) = 127.5, std(yb) = 63.75, mean(rg) = 127.5,
        # mean(yb) = 63.75.
        rgb = np.zeros([1, 2, 2, 3], np.float32)
        rgb[0, 0, :, 0] = 255.0
        sigma = np.hypot(127.5, 63.75)
        expected = sigma + 0.3 * sigma
        self.assertAllClose(metrics.colorfulness(rgb), [expected])

    def test_uint8_and_float_agree(self):
        rgb = (_photo('sunset.jpg') * 255).round().astype(np.uint8)[None]
        self.assertAllClose(
            metrics.colorfulness(rgb),
            metrics.colorfulness(rgb.astype(np.float32)),
        )
        self.assertGreater(float(metrics.colorfulness(rgb)[0]), 10.0)


class AbErrorAucTest(tf.test.TestCase):
    def test_exact_prediction_is_one(self):
        ab = np.random.default_rng(0).normal(0, 30, [2, 8, 8, 2])
        self.assertAllClose(metrics.ab_error_auc(ab, ab), [1.0, 1.0])

    def test_constant_error(self):
        ab_true = np.zeros([1, 4, 4, 2], np.float32)
        ab_pred = np.zeros([1, 4, 4, 2], np.float32)
        ab_pred[..., 0] = 3.0
        ab_pred[..., 1] = 4.0  # Error 5 everywhere.
        # Curve: 0 for t < 5, 1 from t = 5; trapezoids give 145.5 / 150.
        self.assertAllClose(
            metrics.ab_error_auc(ab_pred, ab_true), [145.5 / 150.0]
        )

    def test_half_the_pixels_beyond_range(self):
        ab_true = np.zeros([1, 2, 2, 2], np.float32)
        ab_pred = np.zeros([1, 2, 2, 2], np.float32)
        ab_pred[0, 0, :, 0] = 200.0  # Never within 150.
        # Curve is 0.5 everywhere.
        self.assertAllClose(metrics.ab_error_auc(ab_pred, ab_true), [0.5])

    def test_matches_dense_sweep(self):
        rng = np.random.default_rng(1)
        ab_true = rng.normal(0, 40, [3, 16, 16, 2])
        ab_pred = rng.normal(0, 40, [3, 16, 16, 2])
        error = np.linalg.norm(ab_pred - ab_true, axis=-1).reshape(3, -1)
        thresholds = np.arange(151)
        curve = (error[:, :, None] <= thresholds).mean(axis=1)
        expected = np.trapezoid(curve, thresholds, axis=-1) / 150.0
        self.assertAllClose(metrics.ab_error_auc(ab_pred, ab_true), expected)

    def test_gray_baseline_on_photo(self):
        rgb = _photo('picos_de_europa.jpg')[None]
        _, ab = color.split_lab(color.rgb_to_lab(rgb))
        auc = metrics.ab_error_auc(tf.zeros_like(ab), ab)
        # A gray guess is within a few ab units on most pixels of a photo.
        self.assertBetween(float(auc[0]), 0.5, 1.0)


class InGraphTest(tf.test.TestCase):
    def test_inside_tf_data(self):
        ab = tf.random.stateless_normal([4, 16, 16, 2], seed=[1, 2]) * 20
        eager = metrics.ab_error_auc(ab, ab * 0.5)
        dataset = tf.data.Dataset.from_tensor_slices((ab, ab * 0.5)).batch(4)
        in_data = next(iter(dataset.map(metrics.ab_error_auc)))
        self.assertAllClose(eager, in_data)
        in_function = tf.function(metrics.ab_mae)(ab, ab * 0.5)
        self.assertAllClose(metrics.ab_mae(ab, ab * 0.5), in_function)


if __name__ == '__main__':
    tf.test.main()
