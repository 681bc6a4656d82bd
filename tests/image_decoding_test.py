"""In-graph decoding agrees with the colorize tool's PIL path.

Every EXIF orientation (1-8) against PIL.ImageOps.exif_transpose, and
transparency composited on white as imaging.load_rgb does.
"""

import io
import os

from absl.testing import parameterized
import numpy as np
from PIL import Image
from PIL import ImageOps
import tensorflow as tf

from chromagen_tf.data import imaging
from chromagen_tf.serving import image_decoding
from tests.conftest import SAMPLE_PHOTOS


def _jpeg_with_orientation(orientation, byte_order='<'):
    with Image.open(SAMPLE_PHOTOS / 'chelsea.jpg') as photo:
        image = photo.convert('RGB').resize((96, 64))
    exif = Image.Exif()
    exif[0x010F] = 'ChromaGen test camera'  # Make: another IFD0 entry first.
    exif[0x0112] = orientation
    exif.endian = byte_order  # pylint: disable=attribute-defined-outside-init
    buffer = io.BytesIO()
    image.save(buffer, 'JPEG', quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def _pil_upright(data):
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert('RGB'))


class _FileTestCase(tf.test.TestCase):
    def _write(self, data):
        path = os.path.join(self.get_temp_dir(), f'image-{len(data)}.bin')
        with open(path, 'wb') as f:
            f.write(data)
        return path


class OrientationTest(_FileTestCase, parameterized.TestCase):
    @parameterized.parameters(*range(1, 9))
    def test_matches_pillow(self, orientation):
        data = _jpeg_with_orientation(orientation)
        self.assertEqual(
            int(image_decoding.exif_orientation(data)), orientation
        )
        decoded = image_decoding.decode_image(tf.constant(data)).numpy()
        # Exactly Pillow's transform of the same decoded pixels.
        raw = Image.fromarray(tf.io.decode_jpeg(data, channels=3).numpy())
        with Image.open(io.BytesIO(data)) as original:
            raw.info['exif'] = original.info['exif']
        self.assertAllEqual(decoded, np.asarray(ImageOps.exif_transpose(raw)))
        # And close to Pillow's own decoding (its IDCT and chroma
        # up-sampling differ from TensorFlow's by about 1.4 levels).
        expected = _pil_upright(data)
        self.assertEqual(decoded.shape, expected.shape)
        self.assertLessEqual(
            np.abs(decoded.astype(int) - expected.astype(int)).mean(), 2.0
        )
        # The colorize tool's loader gives the same size.
        path = self._write(data)
        self.assertEqual(
            imaging.load_rgb(path).image.size,
            (expected.shape[1], expected.shape[0]),
        )

    def test_big_endian_exif(self):
        data = _jpeg_with_orientation(6, byte_order='>')
        self.assertEqual(int(image_decoding.exif_orientation(data)), 6)
        self.assertEqual(
            image_decoding.decode_image(tf.constant(data)).shape,
            _pil_upright(data).shape,
        )

    def test_in_a_graph_and_without_exif(self):
        decode = tf.function(
            image_decoding.decode_image,
            input_signature=[tf.TensorSpec([], tf.string)],
        )
        data = _jpeg_with_orientation(8)
        self.assertEqual(decode(data).shape, (96, 64, 3))
        plain = (SAMPLE_PHOTOS / 'coffee.jpg').read_bytes()
        self.assertEqual(int(image_decoding.exif_orientation(plain)), 1)
        png = io.BytesIO()
        Image.new('RGB', (5, 3)).save(png, 'PNG')
        self.assertEqual(
            int(image_decoding.exif_orientation(png.getvalue())), 1
        )
        self.assertEqual(int(image_decoding.exif_orientation(b'\xff\xd8')), 1)


class AlphaTest(_FileTestCase, parameterized.TestCase):
    @parameterized.parameters('RGBA', 'LA')
    def test_transparent_regions_match_the_colorize_tool(self, mode):
        rng = np.random.default_rng(0)
        rgba = rng.integers(0, 256, (40, 60, 4), dtype=np.uint8)
        rgba[:20, :, 3] = 0  # Fully transparent top half, coloured below it.
        rgba[20:30, :, 3] = 128
        rgba[30:, :, 3] = 255
        image = Image.fromarray(rgba, 'RGBA').convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, 'PNG')
        path = self._write(buffer.getvalue())
        expected = np.asarray(imaging.load_rgb(path).image).astype(int)
        decoded = (
            image_decoding.decode_image(tf.constant(buffer.getvalue()))
            .numpy()
            .astype(int)
        )
        self.assertAllEqual(decoded[:20], np.full((20, 60, 3), 255))
        self.assertLessEqual(np.abs(decoded - expected).max(), 1)


if __name__ == '__main__':
    tf.test.main()
