"""Comparison sheets: a tidy grid whatever the photos' shapes."""

import os

import numpy as np
from PIL import Image
import tensorflow as tf

from chromagen_tf.inference import contact_sheet


class GridTest(tf.test.TestCase):
    def _compare_image(self, name, width, height):
        # Three panels of one flat colour each, as colorize --compare lays
        # out gray | colorized | original.
        panels = [
            np.full((height, width, 3), value, np.uint8)
            for value in ((128, 128, 128), (200, 40, 40), (40, 40, 200))
        ]
        path = os.path.join(self.get_temp_dir(), name)
        Image.fromarray(np.concatenate(panels, axis=1)).save(path)
        return path

    def test_mixed_shapes_fill_the_grid(self):
        paths = [
            self._compare_image('wide.png', 320, 120),
            self._compare_image('tall.png', 90, 300),
            self._compare_image('square.png', 200, 200),
        ]
        output = os.path.join(self.get_temp_dir(), 'sheet.jpg')
        contact_sheet.grid(paths, output, columns=2, panel_size=(120, 90))
        with Image.open(output) as sheet:
            self.assertEqual(
                sheet.size, (2 * (3 * 120 + 6) + 6, 24 + 2 * 90 + 6)
            )
            pixels = np.asarray(sheet.convert('RGB')).astype(int)
        # Every panel is filled edge to edge with its own colour: the
        # middle panel of the tall photo (row 0, column 1) is red.
        left = 1 * (3 * 120 + 6 + 6) + 1 * (120 + 3)
        red = pixels[24 + 5 : 24 + 85, left + 5 : left + 115]
        self.assertLess(np.abs(red - [200, 40, 40]).max(), 12)
        # The last cell of the second row is the sheet's only blank.
        self.assertGreater(pixels[24 + 90 + 6 + 45, -60].min(), 245)

    def test_one_photo_is_one_cell_wide(self):
        path = self._compare_image('one.png', 64, 48)
        output = os.path.join(self.get_temp_dir(), 'one.jpg')
        contact_sheet.grid([path], output, panel_size=(120, 90))
        with Image.open(output) as sheet:
            self.assertEqual(sheet.size, (3 * 120 + 6, 24 + 90))

    def test_no_images(self):
        with self.assertRaises(ValueError):
            contact_sheet.grid([], os.path.join(self.get_temp_dir(), 'x.png'))


if __name__ == '__main__':
    tf.test.main()
