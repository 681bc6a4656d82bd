"""Hints simulated from the truth, the edge-blind baseline, evaluate --hints."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from chromagen_tf import bundled
from chromagen_tf import color
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import evaluate_lib
from chromagen_tf.inference import hint_evaluation
from tests import conftest
from tests import hint_branch_test


class SimulateTest(tf.test.TestCase):
    def test_hints_are_the_working_truths_means_inside_the_photo(self):
        ab_true = tf.random.stateless_uniform([1, 90, 120, 2], [1, 2], -80, 80)
        simulated = hint_evaluation.simulate(ab_true, (48, 64), 7, seed=3)
        working = tf.image.resize(
            color.normalize_ab(ab_true)[0], [48, 64], method='area'
        ).numpy()
        hint_ab, mask = (x.numpy() for x in simulated.maps)
        self.assertLen(simulated.boxes, 7)
        covered = np.zeros([48, 64], bool)
        for (top, left, size), value, (row, column) in zip(
            simulated.boxes, simulated.values, simulated.centres
        ):
            self.assertBetween(size, 1, 9)
            self.assertTrue(0 <= top and top + size <= 48)
            self.assertTrue(0 <= left and left + size <= 64)
            box = working[top : top + size, left : left + size]
            self.assertAllClose(value, box.reshape(-1, 2).mean(0), atol=1e-5)
            self.assertAllClose(
                (row, column), (top + (size - 1) / 2, left + (size - 1) / 2)
            )
            covered[top : top + size, left : left + size] = True
        self.assertAllEqual(mask[..., 0] > 0, covered)
        self.assertAllEqual(hint_ab[~covered], np.zeros([(~covered).sum(), 2]))
        # Same seed, same hints; another seed, others.
        again = hint_evaluation.simulate(ab_true, (48, 64), 7, seed=3)
        other = hint_evaluation.simulate(ab_true, (48, 64), 7, seed=4)
        self.assertEqual(again.boxes, simulated.boxes)
        self.assertNotEqual(other.boxes, simulated.boxes)


class SpreadBaselineTest(tf.test.TestCase):
    def _simulated(self, hints):
        return hint_evaluation.Simulated(
            maps=None,
            centres=np.array([c for c, _ in hints], np.float32),
            values=np.array([v for _, v in hints], np.float32),
            boxes=[(int(r), int(c), 1) for (r, c), _ in hints],
        )

    def test_a_lone_hint_is_met_and_fades_with_the_diagonals_gaussian(self):
        automatic = np.full([30, 40, 2], 5.0, np.float32)
        spread = hint_evaluation.spread_baseline(
            automatic, self._simulated([((3, 4), (0.5, -0.25))])
        )
        self.assertAllClose(spread[3, 4], [55.0, -27.5], atol=1e-4)
        sigma = hint_evaluation.SPREAD_SIGMA * np.hypot(30, 40)
        weight = np.exp(-(26**2 + 35**2) / (2 * sigma**2))
        self.assertAllClose(
            spread[29, 39], 5.0 + weight * np.array([50.0, -32.5]), atol=1e-4
        )

    def test_overlapping_hints_average_without_overshooting(self):
        automatic = np.zeros([20, 20, 2], np.float32)
        spread = hint_evaluation.spread_baseline(
            automatic,
            self._simulated([((10, 9), (0.5, 0.0)), ((10, 11), (0.5, 0.0))]),
        )
        # Two hints of the same difference: the average, never twice it.
        self.assertAllClose(spread[10, 10], [55.0, 0.0], atol=1e-4)
        self.assertLessEqual(spread[..., 0].max(), 55.0 + 1e-4)


class EvaluateWithHintsTest(tf.test.TestCase):
    @pytest.mark.slow
    def test_a_hint_branch_at_its_start_scores_like_the_baseline(self):
        # A hint branch before training is the edge-blind spread, computed
        # on its 1/4 grid; evaluate --hints measures both the same way.
        _, branch = hint_branch_test._pair()
        folder = os.path.join(self.get_temp_dir(), 'model')
        bundled.save(branch, hint_branch_test._BRANCH, folder, render_size=64)
        photos = os.path.join(self.get_temp_dir(), 'photos')
        os.makedirs(photos)
        for name in ('coffee.jpg', 'chelsea.jpg'):
            shutil.copy(conftest.SAMPLE_PHOTOS / name, photos)
        colorizer = colorize_lib.load_colorizer(folder)
        reports = {
            count: evaluate_lib.evaluate(
                colorizer,
                evaluate_lib.examples_from_images(photos),
                num_hints=count,
            )
            for count in (0, 10)
        }
        guided = reports[10]
        self.assertEqual(guided['num_hints'], 10)
        self.assertEqual(
            set(guided['hint_spread_baseline']), set(guided['model'])
        )
        self.assertGreater(
            guided['model']['psnr'], reports[0]['model']['psnr'] + 0.5
        )
        self.assertAllClose(
            guided['model']['psnr'],
            guided['hint_spread_baseline']['psnr'],
            atol=0.5,
        )
        self.assertLess(guided['hint_ab_error_median'], 10.0)
