"""Tests for the colorize tool on real photos, folders and bad files."""

import os
import shutil
import subprocess
import sys
from unittest import mock

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from chromagen_tf.inference import colorize_folders
from chromagen_tf.inference import colorize_lib
from chromagen_tf.serving import full_resolution
from tests.conftest import REPO_ROOT
from tests.conftest import SAMPLE_PHOTOS
from tests.utils import make_model_dir

_RENDER_SIZE = 64


def _size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


class ColorizeTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tf.test.TestCase().get_temp_dir()
        cls.model_dir = os.path.join(cls.root, 'run')
        make_model_dir(cls.model_dir)
        cls.colorizer = colorize_lib.load_colorizer(
            cls.model_dir, render_size=_RENDER_SIZE
        )
        # A small tree: two photos at the top, one in a subfolder, one
        # broken file, and a file that is not an image at all.
        cls.inputs = os.path.join(cls.root, 'album')
        os.makedirs(os.path.join(cls.inputs, 'trip', 'day1'))
        for name, folder in (
            ('chelsea.jpg', ''),
            ('coffee.jpg', ''),
            ('rocket.jpg', os.path.join('trip', 'day1')),
        ):
            shutil.copy(
                SAMPLE_PHOTOS / name, os.path.join(cls.inputs, folder, name)
            )
        with open(os.path.join(cls.inputs, 'trip', 'broken.jpg'), 'wb') as f:
            f.write(b'\xff\xd8\xff\xe0 this is not really a JPEG')
        with open(os.path.join(cls.inputs, 'notes.txt'), 'w') as f:
            f.write('ignored: not an image extension')

    def _config(self, output_dir, **overrides):
        values = dict(
            inputs=(self.inputs,),
            output_dir=output_dir,
            recursive=True,
            batch_size=2,
        )
        values.update(overrides)
        return colorize_folders.ColorizeConfig(**values)

    @pytest.mark.slow  # A colorize process.
    def test_command_line_mirrors_tree_and_skips_bad_files(self):
        output_dir = os.path.join(self.get_temp_dir(), 'out')
        single = SAMPLE_PHOTOS / 'sunset.jpg'
        result = subprocess.run(
            [
                sys.executable,
                '-m',
                'chromagen_tf.colorize',
                f'--model={self.model_dir}',
                self.inputs,
                str(single),
                f'--output_dir={output_dir}',
                '--recursive',
                '--batch_size=2',
                f'--render_size={_RENDER_SIZE}',
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.assertEqual(result.returncode, 1, result.stderr[-2000:])
        self.assertIn(
            '4 colorized, 0 skipped (output exists), 1 failed', result.stdout
        )
        # One line names the broken photo and its problem.
        self.assertLen(
            [
                line
                for line in result.stderr.splitlines()
                if 'broken.jpg' in line
            ],
            1,
            result.stderr[-2000:],
        )
        self.assertNotIn('Traceback', result.stderr)
        for relative in (
            'chelsea.jpg',
            'coffee.jpg',
            os.path.join('trip', 'day1', 'rocket.jpg'),
        ):
            self.assertEqual(
                _size(os.path.join(output_dir, relative)),
                _size(os.path.join(self.inputs, relative)),
            )
        self.assertEqual(
            _size(os.path.join(output_dir, 'sunset.jpg')), _size(single)
        )
        self.assertFalse(
            os.path.exists(os.path.join(output_dir, 'trip', 'broken.jpg'))
        )
        self.assertFalse(os.path.exists(os.path.join(output_dir, 'notes.txt')))

    def test_missing_input_is_reported_before_any_work(self):
        with self.assertRaisesRegex(FileNotFoundError, 'does not exist'):
            colorize_folders.find_jobs(
                self._config(
                    self.get_temp_dir(), inputs=(self.inputs, '/no/such/photo')
                )
            )

    def test_skips_existing_unless_overwrite(self):
        output_dir = os.path.join(self.get_temp_dir(), 'again')
        config = self._config(
            output_dir, inputs=(os.path.join(self.inputs, 'chelsea.jpg'),)
        )
        first = colorize_folders.colorize_files(self.colorizer, config)
        self.assertEqual((first.colorized, first.skipped_existing), (1, 0))
        output = os.path.join(output_dir, 'chelsea.jpg')
        os.utime(output, (0, 0))
        second = colorize_folders.colorize_files(self.colorizer, config)
        self.assertEqual((second.colorized, second.skipped_existing), (0, 1))
        self.assertEqual(os.path.getmtime(output), 0)
        third = colorize_folders.colorize_files(
            self.colorizer,
            self._config(output_dir, inputs=config.inputs, overwrite=True),
        )
        self.assertEqual(third.colorized, 1)
        self.assertNotEqual(os.path.getmtime(output), 0)

    def test_not_recursive_and_output_extension(self):
        output_dir = os.path.join(self.get_temp_dir(), 'flat')
        summary = colorize_folders.colorize_files(
            self.colorizer,
            self._config(output_dir, recursive=False, output_extension='png'),
        )
        self.assertEqual((summary.colorized, summary.failed), (2, 0))
        self.assertCountEqual(
            os.listdir(output_dir), ['chelsea.png', 'coffee.png']
        )
        with Image.open(os.path.join(output_dir, 'coffee.png')) as image:
            self.assertEqual(image.format, 'PNG')

    def test_compare_panels(self):
        output_dir = os.path.join(self.get_temp_dir(), 'compare')
        colour = os.path.join(self.inputs, 'coffee.jpg')
        gray = os.path.join(self.get_temp_dir(), 'gray.png')
        Image.open(colour).convert('L').save(gray)
        summary = colorize_folders.colorize_files(
            self.colorizer,
            self._config(output_dir, inputs=(colour, gray), compare=True),
        )
        self.assertEqual(summary.colorized, 2)
        width, height = _size(colour)
        # Colour input: gray | colorized | original; gray input: two panels.
        self.assertEqual(
            _size(os.path.join(output_dir, 'coffee.jpg')), (3 * width, height)
        )
        self.assertEqual(
            _size(os.path.join(output_dir, 'gray.png')), (2 * width, height)
        )
        panels = np.asarray(Image.open(os.path.join(output_dir, 'gray.png')))
        first, second = panels[:, :width], panels[:, width:]
        # The first panel is gray, the second is not.
        self.assertLessEqual(np.ptp(first.astype(int), axis=-1).max(), 1)
        self.assertGreater(np.ptp(second.astype(int), axis=-1).mean(), 2)

    def test_colour_input_is_colorized_as_gray(self):
        rgb = np.asarray(Image.open(SAMPLE_PHOTOS / 'brushes.jpg'))
        gray = self.colorizer.gray(rgb)
        from_colour, from_gray = self.colorizer.colorize([rgb, gray])
        # Equal up to the uint8 rounding of the gray picture's lightness. A
        # tiny random model predicts many out-of-gamut colours, and there a
        # lightness change of 0.2 moves the largest chroma that fits (the
        # gamut mapping keeps L and hue), so single pixels may move more.
        difference = np.abs(from_colour.astype(int) - from_gray)
        self.assertLessEqual(difference.max(), 10)
        self.assertLess(difference.mean(), 0.5)

    def test_exif_orientation_is_applied(self):
        # Stored 80x40 landscape, EXIF says rotate 90 degrees: shown 40x80.
        path = os.path.join(self.get_temp_dir(), 'rotated.jpg')
        image = Image.open(SAMPLE_PHOTOS / 'chelsea.jpg').resize((80, 40))
        exif = Image.Exif()
        exif[0x0112] = 6
        image.save(path, exif=exif)
        output_dir = os.path.join(self.get_temp_dir(), 'exif')
        summary = colorize_folders.colorize_files(
            self.colorizer, self._config(output_dir, inputs=(path,))
        )
        self.assertEqual(summary.colorized, 1)
        self.assertEqual(
            _size(os.path.join(output_dir, 'rotated.jpg')), (40, 80)
        )

    def test_mixed_sizes_in_one_batch_match_single_images(self):
        photos = [
            np.asarray(Image.open(SAMPLE_PHOTOS / name).convert('RGB'))
            for name in ('chelsea.jpg', 'retina.jpg', 'rocket.jpg')
        ]
        together = self.colorizer.colorize(photos)
        for photo, batched in zip(photos, together):
            self.assertEqual(batched.shape, photo.shape)
            self.assertAllClose(
                batched.astype(int), self.colorizer.colorize([photo])[0], atol=1
            )

    def test_large_photos_are_lightness_converted_by_xla_alike(self):
        photo = np.asarray(
            Image.open(SAMPLE_PHOTOS / 'coffee.jpg')
            .convert('RGB')
            .resize((1280, 960))
        )  # Above the XLA threshold.
        small = photo[:480, :640]  # Below it.
        lightness = self.colorizer._lightness  # pylint: disable=protected-access
        for image, expected_twin in ((photo, '_xla'), (small, '_plain')):
            with (
                mock.patch.object(
                    lightness, '_xla', wraps=lightness._xla
                ) as xla,
                mock.patch.object(
                    lightness, '_plain', wraps=lightness._plain
                ) as plain,
            ):
                colorized = self.colorizer.colorize([image])[0]
            calls = {'_xla': xla.call_count, '_plain': plain.call_count}
            self.assertEqual(calls[expected_twin], 1, calls)
            self.assertEqual(sum(calls.values()), 1, calls)
            # The same result as the eager full-resolution functions.
            l_channel = full_resolution.l_channel_from_uint8(image[None])
            ab = self.colorizer.predict_ab([l_channel])[0]
            expected = full_resolution.lab_to_uint8(l_channel, ab)[0]
            self.assertAllClose(
                colorized.astype(int), tf.cast(expected, tf.int32), atol=1
            )
        # XLA compiled what ran for the large photo: only a jit_compile
        # function has compiler IR (others raise ValueError), and XLA fused
        # the element-wise sRGB -> Lab chain into fusion computations.
        hlo = lightness._xla.experimental_get_compiler_ir(photo)(
            stage='optimized_hlo'
        )
        self.assertIn('fusion', hlo)

    def test_duplicate_outputs_are_failures(self):
        output_dir = os.path.join(self.get_temp_dir(), 'dup')
        photo = os.path.join(self.inputs, 'chelsea.jpg')
        summary = colorize_folders.colorize_files(
            self.colorizer, self._config(output_dir, inputs=(photo, photo))
        )
        self.assertEqual((summary.colorized, summary.failed), (1, 1))
        self.assertIn('also writes', summary.failures[0][1])


if __name__ == '__main__':
    tf.test.main()
