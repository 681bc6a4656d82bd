"""Tests for the REST client against a real HTTP server on 127.0.0.1.

The server speaks TF Serving's REST predict protocol: it decodes the b64
JSON body, runs the exported SavedModel's serving_default signature and
answers {"predictions": [{"b64": ...}]}, or {"error": ...} with status 400
for an InvalidArgument, as TF Serving does.
"""

import base64
import http.server
import json
import os
import subprocess
import sys
import threading

import keras
import numpy as np
from PIL import Image
import tensorflow as tf

from chromagen_tf import serving_client
from chromagen_tf.models import build_generator
from chromagen_tf.serving import export_lib
from tests.conftest import REPO_ROOT
from tests.conftest import SAMPLE_PHOTOS


def _make_handler(signature, model_name):

    class Handler(http.server.BaseHTTPRequestHandler):

        def log_message(self, *args):  # Keep test output quiet.
            del args

        def _answer(self, status, body):
            data = json.dumps(body).encode('utf-8')
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # pylint: disable=invalid-name
            if self.path != f'/v1/models/{model_name}:predict':
                self._answer(404, {'error': f'no model at {self.path}'})
                return
            length = int(self.headers['Content-Length'])
            body = json.loads(self.rfile.read(length))
            images = [base64.b64decode(instance['image_bytes']['b64'])
                      for instance in body['instances']]
            try:
                outputs = signature(
                    image_bytes=tf.constant(images, tf.string))
            except tf.errors.InvalidArgumentError as error:
                self._answer(400, {'error': error.message})
                return
            # TF Serving's rule (json_tensor.cc, IsNamedTensorBytes): only a
            # string output whose name ends in '_bytes' is base64-wrapped;
            # any other would be written raw, which is not JSON.
            (name, values), = outputs.items()
            if not name.endswith('_bytes'):
                self._answer(500, {'error': f'{name} would be raw bytes'})
                return
            self._answer(200, {'predictions': [
                {'b64': base64.b64encode(png).decode('ascii')}
                for png in values.numpy()
            ]})

    return Handler


class ServingClientTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(0)
        module = export_lib.ColorizationModule(
            build_generator('resnet18_unet', width=8), render_size=64)
        root = tf.test.TestCase().get_temp_dir()
        version_dir = export_lib.export_saved_model(
            module, os.path.join(root, 'chromagen'))
        cls.loaded = tf.saved_model.load(version_dir)
        handler = _make_handler(cls.loaded.signatures['serving_default'],
                                'chromagen')
        cls.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                     handler)
        cls.thread = threading.Thread(target=cls.server.serve_forever,
                                      daemon=True)
        cls.thread.start()
        cls.address = f'http://127.0.0.1:{cls.server.server_address[1]}'

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(timeout=10)
        super().tearDownClass()

    def test_request_body_is_tf_serving_row_format(self):
        body = json.loads(serving_client.request_body([b'\x00\xffab']))
        self.assertEqual(
            body, {'instances': [{'image_bytes': {'b64': 'AP9hYg=='}}]})
        self.assertEqual(
            serving_client.predict_url('http://h:8501/', 'chromagen'),
            'http://h:8501/v1/models/chromagen:predict')

    def test_colorizes_real_photos(self):
        names = ['chelsea.jpg', 'stream.jpg']
        images = [(SAMPLE_PHOTOS / name).read_bytes() for name in names]
        pngs = serving_client.colorize(images, self.address, 'chromagen')
        self.assertLen(pngs, 2)
        for name, png in zip(names, pngs):
            with Image.open(SAMPLE_PHOTOS / name) as original:
                decoded = tf.io.decode_png(png)
                self.assertEqual(decoded.shape,
                                 (original.height, original.width, 3))
        # The same bytes as calling the signature directly.
        direct = self.loaded.signatures['serving_default'](
            image_bytes=tf.constant(images[:1]))['colorized_png_bytes'][0]
        self.assertEqual(pngs[0], direct.numpy())

    def test_server_errors_are_reported(self):
        with self.assertRaisesRegex(
                serving_client.ServingError,
                '(?s)HTTP 400.*not a JPEG, PNG, GIF or BMP'):
            serving_client.colorize([b'garbage'], self.address, 'chromagen')
        with self.assertRaisesRegex(serving_client.ServingError, 'HTTP 404'):
            serving_client.colorize([b'x'], self.address, 'other_model')

    def test_unreachable_server(self):
        with self.assertRaisesRegex(serving_client.ServingError,
                                    'Cannot reach'):
            serving_client.colorize([b'x'], 'http://127.0.0.1:9', timeout=5)

    def test_command_line(self):
        output_dir = self.get_temp_dir()
        result = subprocess.run(
            [sys.executable, '-m', 'chromagen_tf.serving_client',
             f'--server={self.address}', f'--output_dir={output_dir}',
             str(SAMPLE_PHOTOS / 'coffee.jpg')],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
            check=False)
        self.assertEqual(result.returncode, 0, result.stderr)
        with Image.open(os.path.join(output_dir, 'coffee.png')) as output:
            with Image.open(SAMPLE_PHOTOS / 'coffee.jpg') as original:
                self.assertEqual(output.size, original.size)
                self.assertEqual(output.mode, 'RGB')
                self.assertGreater(np.asarray(output).std(), 1.0)


if __name__ == '__main__':
    tf.test.main()
