"""Tests for the REST client against TF Serving's documented REST protocol.

The expected requests and the answers are literals in the form of TF
Serving's REST API documentation (tensorflow_serving/g3doc/api_rest.md):
the row format `{"instances": [{<input name>: <value>}, ...]}`; binary
values as `{"b64": <base64>}`, for inputs and outputs whose names end in
`_bytes`; `{"predictions": [<value>, ...]}` when the model has one output,
a list of objects when it has several; `{"error": <message>}` on failure.
The server on 127.0.0.1 only records what it is sent and answers what a
test tells it to: nothing here re-implements TF Serving.
"""

import base64
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest
import tensorflow as tf

from chromagen_tf import serving_client
from chromagen_tf.serving import signatures
from tests.conftest import REPO_ROOT
from tests.conftest import SAMPLE_PHOTOS

# The documentation's own binary values ("Encoding binary values").
_IMAGE = b'image bytes'
_IMAGE_B64 = 'aW1hZ2UgYnl0ZXM='
_OTHER = b'awesome image bytes'
_OTHER_B64 = 'YXdlc29tZSBpbWFnZSBieXRlcw=='


class _RecordingServer(http.server.ThreadingHTTPServer):
    """Records each request and answers with `answer` (status, JSON)."""

    def __init__(self):
        super().__init__(('127.0.0.1', 0), _Handler)
        self.received = []
        self.answer = (200, {})


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # Keep test output quiet.
        del args

    def do_POST(self):  # pylint: disable=invalid-name
        length = int(self.headers['Content-Length'])
        self.server.received.append(
            (self.path, self.headers['Content-Type'], self.rfile.read(length))
        )
        status, body = self.server.answer
        data = json.dumps(body).encode('utf-8')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ServingClientTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = _RecordingServer()
        cls.thread = threading.Thread(
            target=cls.server.serve_forever, daemon=True
        )
        cls.thread.start()
        cls.address = f'http://127.0.0.1:{cls.server.server_address[1]}'

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(timeout=10)
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.server.received.clear()

    def test_sends_the_documented_row_format(self):
        self.server.answer = (
            200,
            {'predictions': [{'b64': _IMAGE_B64}, {'b64': _OTHER_B64}]},
        )
        serving_client.colorize([_IMAGE, _OTHER], self.address, 'chromagen')
        ((path, content_type, body),) = self.server.received
        self.assertEqual(path, '/v1/models/chromagen:predict')
        self.assertEqual(content_type, 'application/json')
        self.assertEqual(
            json.loads(body),
            {
                'instances': [
                    {'image_bytes': {'b64': _IMAGE_B64}},
                    {'image_bytes': {'b64': _OTHER_B64}},
                ]
            },
        )

    def test_decodes_one_output_and_several_outputs_answers(self):
        answers = {
            # One output tensor: its name is left out.
            'one output': {
                'predictions': [{'b64': _IMAGE_B64}, {'b64': _OTHER_B64}]
            },
            # Several: one object per instance, by output name.
            'several outputs': {
                'predictions': [
                    {'colorized_png_bytes': {'b64': _IMAGE_B64}, 'extra': 1},
                    {'colorized_png_bytes': {'b64': _OTHER_B64}, 'extra': 2},
                ]
            },
        }
        for case, answer in answers.items():
            with self.subTest(case):
                self.server.answer = (200, answer)
                self.assertEqual(
                    serving_client.colorize([b'a', b'b'], self.address),
                    [_IMAGE, _OTHER],
                )

    def test_names_follow_the_bytes_rule_of_the_export(self):
        # TF Serving base64-wraps only tensors named '..._bytes'; the
        # client's names are the exported signature's.
        self.assertEqual(serving_client.INPUT_KEY, signatures.IMAGE_BYTES)
        self.assertEqual(serving_client.OUTPUT_KEY, signatures.COLORIZED_PNG)
        for name in (serving_client.INPUT_KEY, serving_client.OUTPUT_KEY):
            self.assertTrue(name.endswith('_bytes'), name)

    def test_server_errors_are_reported(self):
        self.server.answer = (
            400,
            {'error': 'image_bytes is not a JPEG, PNG, GIF or BMP image'},
        )
        with self.assertRaisesRegex(
            serving_client.ServingError,
            'HTTP 400: image_bytes is not a JPEG, PNG, GIF or BMP',
        ):
            serving_client.colorize([b'garbage'], self.address)
        self.server.answer = (
            404,
            {'error': 'Servable not found for request: Latest(other)'},
        )
        with self.assertRaisesRegex(
            serving_client.ServingError, 'HTTP 404: Servable not found'
        ):
            serving_client.colorize([b'x'], self.address, 'other')

    def test_unexpected_answers_are_reported(self):
        for answer in (
            {'predictions': [{'b64': _IMAGE_B64}]},  # One short.
            {'outputs': [{'b64': _IMAGE_B64}] * 2},
            {'predictions': ['raw bytes', 'raw bytes']},
        ):
            with self.subTest(answer=answer):
                self.server.answer = (200, answer)
                with self.assertRaises(serving_client.ServingError):
                    serving_client.colorize([b'a', b'b'], self.address)

    def test_unreachable_server(self):
        with self.assertRaisesRegex(
            serving_client.ServingError, 'Cannot reach'
        ):
            serving_client.colorize([b'x'], 'http://127.0.0.1:9', timeout=5)

    @pytest.mark.slow  # A subprocess.
    def test_command_line(self):
        photo = SAMPLE_PHOTOS / 'coffee.jpg'
        self.server.answer = (200, {'predictions': [{'b64': _IMAGE_B64}]})
        output_dir = self.get_temp_dir()
        result = subprocess.run(
            [
                sys.executable,
                '-m',
                'chromagen_tf.serving_client',
                f'--server={self.address}',
                f'--output_dir={output_dir}',
                str(photo),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        ((_, _, body),) = self.server.received
        self.assertEqual(
            json.loads(body),
            {
                'instances': [
                    {
                        'image_bytes': {
                            'b64': base64.b64encode(photo.read_bytes()).decode(
                                'ascii'
                            )
                        }
                    }
                ]
            },
        )
        output = os.path.join(output_dir, 'coffee.png')
        self.assertEqual(result.stdout.strip(), output)
        with open(output, 'rb') as f:
            self.assertEqual(f.read(), _IMAGE)


if __name__ == '__main__':
    tf.test.main()
