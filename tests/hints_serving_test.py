"""Hints through colorize, the SavedModel and TFLite agree, on a tiny model.

The model is a width-8 colour-bins hint generator whose hint weights are
random instead of zero, so that hints change its output.
"""

import dataclasses
import io
import json
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from chromagen_tf import bundled
from chromagen_tf import configs
from chromagen_tf import hint_format
from chromagen_tf import hints
from chromagen_tf import models
from chromagen_tf import serving_client
from chromagen_tf.inference import colorize_folders
from chromagen_tf.inference import colorize_lib
from chromagen_tf.serving import export_lib
from chromagen_tf.serving import signatures
from tests.conftest import SAMPLE_PHOTOS

_MODEL = configs.ModelConfig(
    generator='resnet18_unet_lite', width=8, color_head='bins', hints=True
)
_HINTS = [
    hint_format.Hint(20, 30, (200, 40, 30)),
    hint_format.Hint(90, 60, (20, 60, 220)),
]


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG')
    return buffer.getvalue()


@pytest.mark.slow
class HintsServingTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tf.test.TestCase().get_temp_dir()
        tf.keras.utils.set_random_seed(1)
        generator = models.build_from_config(_MODEL)
        kernel = generator.get_layer('hint_conv').kernel
        kernel.assign(
            tf.random.stateless_normal(kernel.shape, [0, 1], stddev=0.5)
        )
        cls.bundle = bundled.save(
            generator, _MODEL, os.path.join(cls.root, 'bundle'), render_size=64
        )
        with Image.open(SAMPLE_PHOTOS / 'chelsea.jpg') as photo:
            cls.photo = np.asarray(photo.convert('L').resize((120, 80)))
        cls.rgb = np.stack([cls.photo] * 3, axis=-1)
        cls.photo_path = os.path.join(cls.root, 'photo.png')
        Image.fromarray(cls.photo).save(cls.photo_path)
        cls.colorizer = colorize_lib.load_colorizer(cls.bundle)
        module = signatures.ColorizationModule(
            cls.colorizer_generator(),
            render_size=64,
            size_multiple=models.size_multiple(_MODEL.generator),
        )
        cls.module = module
        cls.export = export_lib.export_saved_model(
            module, os.path.join(cls.root, 'export')
        )
        cls.loaded = tf.saved_model.load(cls.export)

    @classmethod
    def colorizer_generator(cls):
        return bundled.load_generator(cls.bundle)[0]

    def _serve(self, points, colors, image=None):
        image = self.photo if image is None else image
        outputs = self.loaded.signatures['colorize_with_hints'](
            **{
                signatures.IMAGE_BYTES: tf.constant([_png(image)]),
                signatures.HINT_POINTS: np.asarray(points, np.float32).reshape(
                    1, -1, 2
                ),
                signatures.HINT_COLORS: np.asarray(colors, np.uint8).reshape(
                    1, -1, 3
                ),
            }
        )
        return tf.io.decode_png(outputs[signatures.COLORIZED_PNG][0]).numpy()

    def test_signatures(self):
        self.assertContainsSubset(
            {
                *signatures.SIGNATURES,
                *signatures.HINT_SIGNATURES,
                signatures.SUGGEST_SIGNATURE,
            },
            set(self.loaded.signatures),
        )

    def test_colorize_cli_and_serving_give_the_same_photo(self):
        hint_file = os.path.join(self.root, 'photo.hints.json')
        with open(hint_file, 'w') as f:
            f.write(hint_format.to_json(_HINTS))
        output_dir = os.path.join(self.root, 'cli')
        summary = colorize_folders.colorize_files(
            self.colorizer,
            colorize_folders.ColorizeConfig(
                inputs=(self.photo_path,),
                output_dir=output_dir,
                hints=hint_file,
            ),
        )
        self.assertEqual(summary.colorized, 1)
        with Image.open(os.path.join(output_dir, 'photo.png')) as image:
            from_cli = np.asarray(image.convert('RGB')).astype(int)
        points, colors = hints.as_arrays(_HINTS)
        served = self._serve(points, colors).astype(int)
        self.assertLessEqual(np.abs(from_cli - served).max(), 1)
        # The hints matter: without them the photo comes out otherwise.
        automatic = self.colorizer.colorize([self.rgb])[0].astype(int)
        self.assertGreater(np.abs(automatic - served).max(), 10)

    def test_padded_points_are_ignored_and_no_points_is_automatic(self):
        points, colors = hints.as_arrays(_HINTS)
        padded_points = np.concatenate(
            [points, [[-1, -1], [500, 5], [5, 80]]]
        ).astype(np.float32)
        padded_colors = np.concatenate([colors, np.full([3, 3], 255, np.uint8)])
        self.assertAllEqual(
            self._serve(points, colors),
            self._serve(padded_points, padded_colors),
        )
        automatic = self.loaded.signatures['serving_default'](
            **{signatures.IMAGE_BYTES: tf.constant([_png(self.photo)])}
        )
        self.assertAllEqual(
            tf.io.decode_png(automatic[signatures.COLORIZED_PNG][0]),
            self._serve(
                np.zeros([0, 2], np.float32), np.zeros([0, 3], np.uint8)
            ),
        )

    def test_suggestions_match_the_library(self):
        points, colors = hints.as_arrays(_HINTS)
        served = self.loaded.signatures[signatures.SUGGEST_SIGNATURE](
            **{
                signatures.IMAGE_BYTES: tf.constant([_png(self.photo)]),
                signatures.POINT: tf.constant([[60.0, 40.0]]),
                signatures.HINT_POINTS: points[np.newaxis],
                signatures.HINT_COLORS: colors[np.newaxis],
            }
        )
        library = self.colorizer.suggest_colors(
            self.rgb, 60, 40, _HINTS, k=signatures.SUGGESTIONS
        )
        self.assertEqual(
            [
                hint_format.Hint(0, 0, tuple(int(v) for v in c)).hex
                for c in served[signatures.SUGGESTED_COLORS][0].numpy()
            ],
            [colour for colour, _ in library],
        )
        self.assertAllClose(
            served[signatures.PROBABILITIES][0],
            [p for _, p in library],
            atol=1e-5,
        )

    def test_saved_model_colorizer_follows_hints(self):
        from_export = colorize_lib.load_colorizer(self.export)
        self.assertTrue(from_export.takes_hints)
        self.assertAllClose(
            from_export.colorize([self.rgb], [_HINTS])[0],
            self.colorizer.colorize([self.rgb], [_HINTS])[0],
            atol=1,
        )

    def test_tflite_takes_the_hint_inputs(self):
        path = export_lib.export_tflite(
            self.module, os.path.join(self.root, 'tflite')
        )
        interpreter = tf.lite.Interpreter(model_path=path)
        interpreter.allocate_tensors()
        details = interpreter.get_input_details()
        self.assertLen(details, 3)
        rng = np.random.default_rng(0)
        values = {}
        for detail in details:
            name = next(
                (
                    key
                    for key in (signatures.HINT_AB, signatures.HINT_MASK)
                    if key in detail['name']
                ),
                signatures.L_CHANNEL,
            )
            values[name] = rng.uniform(-1, 1, detail['shape']).astype(
                np.float32
            )
            interpreter.set_tensor(detail['index'], values[name])
        self.assertLen(values, 3)
        interpreter.invoke()
        output = interpreter.get_tensor(
            interpreter.get_output_details()[0]['index']
        )
        expected = self.module.endpoints()['predict_ab_with_hints'](
            values[signatures.L_CHANNEL],
            values[signatures.HINT_AB],
            values[signatures.HINT_MASK],
        )[signatures.AB]
        self.assertAllClose(output, expected, atol=1e-3)


class BadHintsTest(tf.test.TestCase):
    def test_bad_hint_files_fail_their_photo_only(self):
        root = self.get_temp_dir()
        model = dataclasses.replace(_MODEL, color_head='regression')
        bundle = bundled.save(
            models.build_from_config(model),
            model,
            os.path.join(root, 'bundle'),
            render_size=64,
        )
        colorizer = colorize_lib.load_colorizer(bundle)
        photos = os.path.join(root, 'photos')
        os.makedirs(photos)
        gray = np.full([40, 50], 128, np.uint8)
        for name in ('bad_json', 'outside', 'good', 'none'):
            Image.fromarray(gray).save(os.path.join(photos, f'{name}.png'))
        sidecars = {
            'bad_json': '{"hints": [',
            'outside': json.dumps(
                {'hints': [{'x': 50, 'y': 3, 'color': '#ff0000'}]}
            ),
            'good': hint_format.to_json(
                [hint_format.Hint(49, 39, (255, 0, 0))]
            ),
        }
        for name, text in sidecars.items():
            with open(os.path.join(photos, f'{name}.png.hints.json'), 'w') as f:
                f.write(text)
        summary = colorize_folders.colorize_files(
            colorizer,
            colorize_folders.ColorizeConfig(
                inputs=(photos,),
                output_dir=os.path.join(root, 'out'),
                hints=colorize_folders.SIDECAR,
            ),
        )
        self.assertEqual(summary.colorized, 2)
        reasons = dict(summary.failures)
        self.assertRegex(
            reasons[os.path.join(photos, 'bad_json.png')],
            r'bad_json.png.hints.json: not JSON',
        )
        self.assertRegex(
            reasons[os.path.join(photos, 'outside.png')],
            r'outside.png.hints.json: hint 0 at \(50, 3\) is '
            r'outside the 50x40 photo',
        )


class ClientTest(tf.test.TestCase):
    def test_hint_requests_are_padded_to_one_count_per_batch(self):
        body = json.loads(
            serving_client.request_body([b'a', b'b'], [_HINTS, []])
        )
        self.assertEqual(body['signature_name'], 'colorize_with_hints')
        self.assertEqual(
            body['instances'][0],
            {
                'image_bytes': {'b64': 'YQ=='},
                'hint_points': [[20, 30], [90, 60]],
                'hint_colors': [[200, 40, 30], [20, 60, 220]],
            },
        )
        self.assertEqual(
            body['instances'][1]['hint_points'], [[-1, -1], [-1, -1]]
        )
        # TF Serving's row format stacks each input over the instances.
        for hint_lists, count in (
            ([_HINTS, []], 2),
            ([[], []], 1),
            ([[]], 1),
        ):
            instances = json.loads(
                serving_client.request_body(
                    [b'a', b'b'][: len(hint_lists)], hint_lists
                )
            )['instances']
            for key, width in (
                (signatures.HINT_POINTS, 2),
                (signatures.HINT_COLORS, 3),
            ):
                stacked = np.asarray([row[key] for row in instances])
                self.assertEqual(
                    stacked.shape, (len(hint_lists), count, width), key
                )
        self.assertEqual(serving_client.HINT_POINTS_KEY, signatures.HINT_POINTS)
        self.assertEqual(serving_client.HINT_COLORS_KEY, signatures.HINT_COLORS)
