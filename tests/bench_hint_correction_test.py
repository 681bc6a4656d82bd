"""The correction-scale benchmark's one-standard-error rule."""

import unittest

from bench import bench_hint_correction


class PickScaleTest(unittest.TestCase):
    def test_the_smallest_scale_within_one_standard_error_of_the_best(self):
        # Three photos. Scale 1 is best at both counts; 0.5 trails it by
        # 0.1 dB on every photo (standard error 0: outside); 0.8 trails by
        # 0.1 on average with a spread that makes its standard error 0.2.
        gains = {
            0.5: {3: [1.9, 2.9, 3.9], 10: [3.9, 4.9, 5.9]},
            0.8: {3: [2.3, 2.7, 3.7], 10: [4.3, 4.7, 5.7]},
            1.0: {3: [2.0, 3.0, 4.0], 10: [4.0, 5.0, 6.0]},
        }
        choice = bench_hint_correction.pick_scale(gains)
        self.assertEqual(choice['best'], {3: 1.0, 10: 1.0})
        self.assertEqual(choice['chosen'], 0.8)
        row = choice['rows'][0.8][3]
        self.assertAlmostEqual(row['gain'], 2.9)
        self.assertAlmostEqual(row['below_best'], 0.1)
        self.assertAlmostEqual(row['se'], 0.2)
        self.assertAlmostEqual(choice['rows'][0.5][10]['below_best'], 0.1)
        self.assertAlmostEqual(choice['rows'][0.5][10]['se'], 0.0)

    def test_within_at_one_count_but_not_the_other_is_out(self):
        gains = {
            0.5: {3: [2.3, 2.7, 3.7], 10: [3.9, 4.9, 5.9]},
            1.0: {3: [2.0, 3.0, 4.0], 10: [4.0, 5.0, 6.0]},
        }
        self.assertEqual(bench_hint_correction.pick_scale(gains)['chosen'], 1.0)


if __name__ == '__main__':
    unittest.main()
