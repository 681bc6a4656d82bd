"""Tests for the SavedModel export: signatures, reload, full resolution, abuse.

One tiny model is exported once per class, in this process, as the
command line does (a slow test checks that the two agree); the reload runs
in a separate Python process that imports only TensorFlow, as a serving
process would.
"""

import errno
import io
import os
import shutil
import subprocess
import sys
import textwrap
from unittest import mock

import keras
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from chromagen_tf import color
from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import models
from chromagen_tf.inference import colorize_lib
from chromagen_tf.serving import export_lib
from chromagen_tf.serving import full_resolution
from chromagen_tf.serving import image_decoding
from chromagen_tf.serving import signatures
from tests.conftest import REPO_ROOT
from tests.conftest import SAMPLE_PHOTOS
from tests.utils import make_model_dir

_RENDER_SIZE = 64


def _files_under(directory: str) -> set[str]:
    """Every file below `directory`, as '/'-separated relative paths."""
    return {
        os.path.relpath(os.path.join(parent, name), directory).replace(
            os.sep, '/'
        )
        for parent, _, names in os.walk(directory)
        for name in names
    }


def encode(image: np.ndarray, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def photo(name: str, size=None) -> np.ndarray:
    with Image.open(SAMPLE_PHOTOS / name) as image:
        image = image.convert('RGB')
        if size:
            image = image.resize(size)
        return np.asarray(image)


_RELOAD_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import tensorflow as tf
    export_dir, inputs_path, outputs_path = sys.argv[1:]
    inputs = np.load(inputs_path)
    loaded = tf.saved_model.load(export_dir)
    signatures = loaded.signatures
    outputs = {
        'ab': signatures['predict_ab'](
            l_channel=tf.constant(inputs['l_channel']))['ab'],
        'colorized': signatures['colorize_image'](
            image=tf.constant(inputs['image']))['colorized'],
        'png': tf.io.decode_png(signatures['serving_default'](
            image_bytes=tf.constant([inputs['jpeg'].tobytes()])
        )['colorized_png_bytes'][0]),
    }
    np.savez(outputs_path, **{k: v.numpy() for k, v in outputs.items()})
    assert not any(m.startswith('chromagen') for m in sys.modules), 'import'
    print('ok')
''')


def _export(model_dir: str, export_base: str):
    """What `python -m chromagen_tf.export` does, in this process.

    Returns:
      (generator, module, version_dir): what was restored and exported.
    """
    generator, model_config, _, checkpoint = colorize_lib.load_generator(
        model_dir
    )
    module = signatures.ColorizationModule(
        generator,
        render_size=_RENDER_SIZE,
        size_multiple=models.size_multiple(model_config.generator),
    )
    version_dir = export_lib.export_saved_model(
        module,
        export_base,
        metadata={
            'checkpoint': checkpoint,
            'model': configs.to_dict(model_config),
        },
    )
    return generator, module, version_dir


class ExportTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tf.test.TestCase().get_temp_dir()
        cls.model_dir = os.path.join(cls.root, 'run')
        # The bundled model's generator at width 4: the signatures do not
        # depend on the network's size, and the lite decoder traces faster.
        make_model_dir(
            cls.model_dir,
            model_config=configs.ModelConfig(
                generator='resnet18_unet_lite', width=4
            ),
        )
        cls.export_base = os.path.join(cls.root, 'models', 'chromagen')
        # The module keeps its traced functions: exporting it again in a
        # test costs no new tracing.
        cls.generator, cls.module, cls.version_dir = _export(
            cls.model_dir, cls.export_base
        )
        cls.loaded = tf.saved_model.load(cls.version_dir)

    def _serve(self, images):
        signature = self.loaded.signatures['serving_default']
        return signature(image_bytes=tf.constant(images, tf.string))[
            'colorized_png_bytes'
        ]

    def test_versioned_layout_and_nothing_left_beside_it(self):
        self.assertEqual(self.version_dir, os.path.join(self.export_base, '1'))
        self.assertEqual(sorted(os.listdir(self.export_base)), ['1'])
        # The staging folder beside the base is gone.
        self.assertEqual(
            os.listdir(os.path.dirname(self.export_base)), ['chromagen']
        )
        self.assertEqual(export_lib.next_version(self.export_base), 2)
        self.assertEqual(
            export_lib.latest_version_dir(self.export_base), self.version_dir
        )
        metadata = export_lib.read_metadata(self.version_dir)
        self.assertEqual(metadata['render_size'], _RENDER_SIZE)
        self.assertEqual(metadata['model']['width'], 4)
        self.assertTrue(metadata['checkpoint'].endswith('ckpt-7'))
        with self.assertRaises(FileExistsError):
            export_lib._write_version(self.export_base, 1, os.makedirs)  # pylint: disable=protected-access

    def test_failed_export_leaves_nothing(self):
        parent = os.path.join(self.get_temp_dir(), 'failing')
        base = os.path.join(parent, 'models')

        def write(path):
            os.makedirs(path)
            # Written where TF Serving never looks.
            self.assertEqual(os.listdir(base), [])
            raise RuntimeError('disk full')

        with self.assertRaisesRegex(RuntimeError, 'disk full'):
            export_lib._write_version(base, None, write)  # pylint: disable=protected-access
        self.assertEqual(os.listdir(base), [])
        self.assertEqual(os.listdir(parent), ['models'])

    def test_remote_export_copies_saved_model_pb_last(self):
        # A real export through the code path of gs:// and other remote
        # paths, on a local folder: every file is copied, and when
        # saved_model.pb arrives all the others are there already.
        base = os.path.join(self.get_temp_dir(), 'bucket')
        final = os.path.join(base, '1')
        copied = []
        copy = tf.io.gfile.copy

        def recording_copy(source, destination, overwrite=False):
            relative = os.path.relpath(destination, final)
            if relative == 'saved_model.pb':
                staged = os.path.dirname(source)
                self.assertEqual(
                    _files_under(final), _files_under(staged) - {relative}
                )
            copied.append(relative)
            copy(source, destination, overwrite)

        with (
            mock.patch.object(export_lib.files, 'is_remote', return_value=True),
            mock.patch.object(tf.io.gfile, 'copy', recording_copy),
        ):
            self.assertEqual(
                export_lib.export_saved_model(self.module, base), final
            )
        self.assertEqual(copied[-1], 'saved_model.pb')
        self.assertEqual(set(copied), _files_under(final))
        self.assertIn(f'assets.extra/{export_lib.METADATA_FILE}', copied)
        self.assertIn('variables/variables.index', copied)
        self.assertEqual(os.listdir(base), ['1'])
        # What a server reads first: the signatures, in the last file.
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(final, 'saved_model.pb'), 'rb') as f:
            saved_model.ParseFromString(f.read())
        served = [
            name
            for name in saved_model.meta_graphs[0].signature_def
            if not name.startswith('__')
        ]  # '__saved_model_init_op'
        self.assertEqual(sorted(served), sorted(signatures.SIGNATURES))

    def test_rename_across_file_systems_falls_back_to_copying(self):
        base = os.path.join(self.get_temp_dir(), 'other_device')

        def write(path):
            shutil.copytree(self.version_dir, path)

        def cross_device(source, destination):
            raise OSError(errno.EXDEV, 'Invalid cross-device link')

        with mock.patch.object(os, 'rename', cross_device):
            final = export_lib._write_version(  # pylint: disable=protected-access
                base, 3, write
            )
        self.assertEqual(_files_under(final), _files_under(self.version_dir))
        self.assertTrue(tf.saved_model.contains_saved_model(final))
        self.assertEqual(
            [
                name
                for name in os.listdir(self.get_temp_dir())
                if name.startswith('.other_device-staging-')
            ],
            [],
        )

    @pytest.mark.slow  # An export process.
    def test_command_line_writes_what_the_library_does(self):
        export_base = os.path.join(self.get_temp_dir(), 'command_line')
        result = subprocess.run(
            [
                sys.executable,
                '-m',
                'chromagen_tf.export',
                f'--model_dir={self.model_dir}',
                f'--export_dir={export_base}',
                f'--render_size={_RENDER_SIZE}',
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        # The last line printed is the version directory.
        version_dir = result.stdout.strip().splitlines()[-1]
        self.assertEqual(version_dir, os.path.join(export_base, '1'))
        self.assertEqual(
            export_lib.read_metadata(version_dir),
            export_lib.read_metadata(self.version_dir),
        )
        self.assertEqual(
            _files_under(version_dir), _files_under(self.version_dir)
        )
        image = photo('coffee.jpg', (90, 70))[None]
        self.assertAllEqual(
            tf.saved_model.load(version_dir).signatures['colorize_image'](
                image=tf.constant(image)
            )['colorized'],
            self.loaded.signatures['colorize_image'](image=tf.constant(image))[
                'colorized'
            ],
        )

    @pytest.mark.slow  # Subprocesses that import TensorFlow.
    def test_reload_in_a_process_without_chromagen(self):
        rng = np.random.default_rng(0)
        inputs = {
            'l_channel': rng.uniform(-1, 1, [2, 64, 96, 1]).astype(np.float32),
            'image': photo('coffee.jpg', (90, 70))[None],
            'jpeg': np.frombuffer(
                (SAMPLE_PHOTOS / 'rocket.jpg').read_bytes(), np.uint8
            ),
        }
        inputs_path = os.path.join(self.get_temp_dir(), 'inputs.npz')
        outputs_path = os.path.join(self.get_temp_dir(), 'outputs.npz')
        np.savez(inputs_path, **inputs)
        environment = dict(os.environ, PYTHONPATH='')
        result = subprocess.run(
            [
                sys.executable,
                '-c',
                _RELOAD_SCRIPT,
                self.version_dir,
                inputs_path,
                outputs_path,
            ],
            cwd=self.get_temp_dir(),
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        outputs = np.load(outputs_path)
        self.assertAllClose(
            outputs['ab'],
            self.generator(inputs['l_channel'], training=False),
            atol=1e-5,
        )
        self.assertAllEqual(
            outputs['colorized'],
            self.module.colorize_image(inputs['image'])['colorized'],
        )
        expected = tf.io.decode_png(
            self.module.serving_default(
                tf.constant([inputs['jpeg'].tobytes()])
            )['colorized_png_bytes'][0]
        )
        self.assertAllEqual(outputs['png'], expected)
        with Image.open(SAMPLE_PHOTOS / 'rocket.jpg') as original:
            self.assertEqual(
                outputs['png'].shape[:2], (original.height, original.width)
            )

    @pytest.mark.slow  # Subprocesses that import TensorFlow.
    def test_saved_model_cli(self):
        cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
        shown = subprocess.run(
            [cli, 'show', '--dir', self.version_dir, '--all'],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        for name in signatures.SIGNATURES:
            self.assertIn(f"signature_def['{name}']", shown)
        self.assertEqual(
            shown.count('Method name is: tensorflow/serving/predict'), 3
        )
        l_channel = np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(
            1, 64, 64, 1
        )
        npy = os.path.join(self.get_temp_dir(), 'l.npy')
        np.save(npy, l_channel)
        outdir = os.path.join(self.get_temp_dir(), 'cli_out')
        subprocess.run(
            [
                cli,
                'run',
                '--dir',
                self.version_dir,
                '--tag_set',
                'serve',
                '--signature_def',
                'predict_ab',
                '--inputs',
                f'l_channel={npy}',
                '--outdir',
                outdir,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        self.assertAllClose(
            np.load(os.path.join(outdir, 'ab.npy')),
            self.generator(l_channel, training=False),
            atol=1e-5,
        )

    def test_all_formats_colour_and_gray(self):
        rgb = photo('astronaut.jpg', (70, 45))
        gray = np.asarray(Image.fromarray(rgb).convert('L'))
        images = [
            encode(rgb, 'JPEG'),
            encode(gray, 'JPEG'),
            encode(rgb, 'PNG'),
            encode(gray, 'PNG'),
            encode(rgb, 'GIF'),
            encode(gray, 'BMP'),
            encode(rgb, 'BMP'),
        ]
        pngs = self._serve(images)
        self.assertLen(pngs, len(images))
        for png in pngs:
            self.assertEqual(tf.io.decode_png(png).shape, (45, 70, 3))
        # Gray and colour inputs of the same picture are colorized alike.
        from_gray = tf.io.decode_png(pngs[3])
        self.assertAllClose(
            from_gray,
            self.module.colorize_image(gray[None, :, :, None])['colorized'][0],
        )

    def test_hostile_inputs_are_invalid_argument(self):
        real_png = encode(photo('chelsea.jpg', (40, 30)), 'PNG')
        huge_png = bytearray(real_png)
        huge_png[16:24] = (100_000).to_bytes(4, 'big') * 2  # IHDR w, h.
        jpeg = bytearray(encode(photo('chelsea.jpg', (40, 30)), 'JPEG'))
        sof = jpeg.index(b'\xff\xc0')
        jpeg[sof + 5 : sof + 9] = (30_000).to_bytes(2, 'big') * 2  # SOF h, w.
        gif = bytearray(encode(photo('chelsea.jpg', (40, 30)), 'GIF'))
        gif[6:10] = (65_535).to_bytes(2, 'little') * 2
        cases = {
            b'certainly not an image': 'not a JPEG, PNG, GIF or BMP',
            b'': 'not a JPEG, PNG, GIF or BMP',
            bytes(huge_png): 'too large',
            bytes(jpeg): 'too large',
            bytes(gif): 'too large',
            real_png[:60]: '',  # Truncated: the decoder's own message.
        }
        for image_bytes, message in cases.items():
            with self.subTest(image_bytes=image_bytes[:12]):
                with self.assertRaisesRegex(
                    tf.errors.InvalidArgumentError, message
                ):
                    self._serve([image_bytes])

    def test_colorize_image_rejects_other_channel_counts(self):
        colorize = self.loaded.signatures['colorize_image']
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, '1 \\(gray\\) or 3 \\(RGB\\)'
        ):
            colorize(image=tf.zeros([1, 32, 32, 4], tf.uint8))

    def test_pixel_limit_is_configurable(self):
        png = encode(photo('chelsea.jpg', (40, 30)), 'PNG')
        self.assertEqual(
            image_decoding.decode_image(png, 1200).shape, (30, 40, 3)
        )
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, 'limit of 1199 pixels'
        ):
            image_decoding.decode_image(png, 1199)

    def test_empty_batch(self):
        self.assertEqual(self._serve([]).shape, (0,))
        colorize = self.loaded.signatures['colorize_image']
        empty = colorize(image=tf.zeros([0, 32, 48, 1], tf.uint8))
        self.assertEqual(empty['colorized'].shape, (0, 32, 48, 3))

    def test_full_resolution_keeps_the_input_lightness(self):
        # Scaled-down predictions stay inside the sRGB gamut, where joining
        # L with ab and converting back is exact up to uint8 rounding.
        inputs = keras.Input([None, None, 1])
        gentle = keras.Model(inputs, self.generator(inputs) * 0.1)
        module = signatures.ColorizationModule(gentle, render_size=_RENDER_SIZE)
        rgb = photo('picos_de_europa.jpg')  # 640x427: ten times the render.
        gray = np.asarray(Image.fromarray(rgb).convert('L'))[None, ..., None]
        colorized = module.colorize_image(gray)['colorized'].numpy()
        self.assertEqual(colorized.shape, gray.shape[:3] + (3,))
        l_in = color.rgb_to_lab_numpy(np.repeat(gray, 3, -1))[..., 0]
        lab_out = color.rgb_to_lab_numpy(colorized)
        error = np.abs(lab_out[..., 0] - l_in)
        self.assertLess(np.percentile(error, 99), 0.6)
        self.assertLess(error.mean(), 0.3)
        # And the colours are not those of a gray image.
        self.assertGreater(np.abs(lab_out[..., 1:]).mean(), 0.5)

    def test_working_shape_keeps_aspect_and_multiple(self):
        for (height, width), expected in {
            (3024, 4032): (192, 256, 192, 256),
            (427, 640): (171, 256, 192, 256),
            (640, 100): (256, 40, 256, 64),
            (10, 5000): (16, 256, 32, 256),
        }.items():
            shape = full_resolution.working_shape(height, width, 256, 32)
            self.assertEqual(tuple(int(x) for x in shape), expected)

    def test_colorize_tool_loads_exports_and_agrees(self):
        rgb = photo('fig_bowl.jpg', (100, 75))
        expected = self.loaded.signatures['colorize_image'](
            image=tf.constant(rgb[None])
        )['colorized'][0]
        # The export base resolves to its newest version directory.
        for model in (self.export_base, self.model_dir):
            with self.subTest(model=model):
                colorizer = colorize_lib.load_colorizer(
                    model, render_size=_RENDER_SIZE
                )
                self.assertEqual(colorizer.render_size, _RENDER_SIZE)
                self.assertAllClose(
                    colorizer.colorize([rgb])[0].astype(int),
                    tf.cast(expected, tf.int32),
                    atol=1,
                )
                if model == self.export_base:  # Its newest version.
                    self.assertIn(self.version_dir, colorizer.description)
        with self.assertRaises(colorize_lib.ModelNotFoundError):
            colorize_lib.load_colorizer(self.root)
        # An export decodes as it was exported.
        for setting in ('temperature', 'prior_strength', 'hint_correction'):
            with self.assertRaisesRegex(
                errors.UsageError, 'as it was exported'
            ):
                colorize_lib.load_colorizer(self.export_base, **{setting: 0.5})

    def test_tflite(self):
        path = export_lib.export_tflite(
            self.module, os.path.join(self.get_temp_dir(), 'tflite'), 5
        )
        self.assertTrue(path.endswith('/5/model.tflite'))
        interpreter = tf.lite.Interpreter(model_path=path)
        interpreter.allocate_tensors()
        l_channel = np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(
            1, 64, 64, 1
        )
        interpreter.set_tensor(
            interpreter.get_input_details()[0]['index'], l_channel
        )
        interpreter.invoke()
        ab = interpreter.get_tensor(
            interpreter.get_output_details()[0]['index']
        )
        self.assertAllClose(
            ab, self.generator(l_channel, training=False), atol=1e-4
        )


if __name__ == '__main__':
    tf.test.main()
