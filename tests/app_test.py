"""Tests for the web app's HTTP API, against a real server process.

One server with the bundled model serves the whole file, started with
small limits (1 running job, 1 waiting, 1 MB uploads, 4 MP photos) so that
every limit can be reached with small files, deterministically.
"""

import concurrent.futures
import http.client
import io
import os
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
from PIL import Image
import pytest
import requests
import uvicorn

from chromagen_tf import color
from chromagen_tf.data import imaging
from chromagen_tf.inference import colorize_lib
from chromagen_tf.webapp import server as server_lib
from tests import conftest
from tests import utils

_MAX_PIXELS = 4_000_000
_FLAGS = ('--max_concurrent=1', '--max_queue=1', '--max_upload_mb=1',
          f'--max_pixels={_MAX_PIXELS}')
_TIMEOUT = 120  # Seconds for one request: a hang fails, speed never does.


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    yield from utils.running_app(str(tmp_path_factory.mktemp('app')), *_FLAGS)


@pytest.fixture(scope='module')
def colorizer():
    """The bundled model in this process, to check the app agrees with it."""
    return colorize_lib.load_colorizer()


def _photo_bytes(name: str) -> bytes:
    return (conftest.SAMPLE_PHOTOS / name).read_bytes()


def _post(server, data: bytes, filename='photo.jpg', **fields):
    return requests.post(server.url + '/api/colorize',
                         files={'image': (filename, data)}, data=fields,
                         timeout=_TIMEOUT)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return buffer.getvalue()


def _decoded(response) -> np.ndarray:
    assert response.status_code == 200, response.text[:500]
    assert response.headers['content-type'] == 'image/png'
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.format == 'PNG'
        return np.asarray(image.convert('RGB'))


def _assert_json_error(response, status: int, reason: str):
    assert response.status_code == status, response.text[:500]
    assert response.headers['content-type'] == 'application/json'
    body = response.json()
    assert body['reason'] == reason, body
    assert len(body['error']) > 10, body


def test_healthz_reports_the_model_and_limits(server):
    health = server.health()
    assert health['status'] == 'ok'
    assert 'bundled model' in health['model']
    assert health['render_size'] == 256
    assert (health['max_concurrent'], health['max_queue']) == (1, 1)
    assert health['max_upload_bytes'] == 1_000_000
    assert health['max_pixels'] == _MAX_PIXELS
    assert 'ChromaGen app: http://127.0.0.1:' in server.log()


def test_round_trip_keeps_size_and_lightness(server, colorizer):
    for name in ('chelsea.jpg', 'picos_de_europa.jpg'):
        original = np.asarray(imaging.load_rgb(
            conftest.SAMPLE_PHOTOS / name).image)
        colorized = _decoded(_post(server, _photo_bytes(name)))
        assert colorized.shape == original.shape, name
        l_in = color.rgb_to_lab_numpy(original)[..., 0]
        lab_out = color.rgb_to_lab_numpy(colorized)
        error = np.abs(lab_out[..., 0] - l_in)
        # L is kept up to uint8 rounding (the gamut mapping keeps L).
        assert np.percentile(error, 99) < 0.6, name
        assert error.mean() < 0.3, name
        # Coloured, not gray.
        assert np.hypot(lab_out[..., 1], lab_out[..., 2]).mean() > 3, name
        # The same pixels as the colorize tool's Colorizer.
        expected = colorizer.colorize([original])[0]
        assert np.abs(colorized.astype(int) - expected).max() <= 1, name


def test_odd_sizes_gray_inputs_and_render_size(server, colorizer):
    photo = Image.open(conftest.SAMPLE_PHOTOS / 'coffee.jpg')
    gray = photo.convert('L').crop((3, 5, 304, 222))  # 301x217.
    response = _post(server, _png(gray), 'gray.png', render_size='128')
    colorized = _decoded(response)
    assert colorized.shape == (217, 301, 3)
    expected = colorizer.with_render_size(128).colorize(
        [np.asarray(gray)[..., None]])[0]
    assert np.abs(colorized.astype(int) - expected).max() <= 1
    default = _decoded(_post(server, _png(gray), 'gray.png'))
    assert np.abs(default.astype(int) - colorized).mean() > 0.5


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: a decompression bomb."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data)))
    return (b'\x89PNG\r\n\x1a\n' +
            chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0,
                                       0)) +
            chunk(b'IDAT', zlib.compress(b'\0' * 1024)) + chunk(b'IEND', b''))


@pytest.mark.parametrize('case, status, reason', [
    ('text', 415, 'not_an_image'),
    ('html_named_jpg', 415, 'not_an_image'),
    ('eps', 415, 'not_an_image'),
    ('truncated_jpeg', 422, 'decode_error'),
    ('truncated_png', 422, 'decode_error'),
    ('bomb_header', 413, 'too_many_pixels'),
    ('bomb_real', 413, 'too_many_pixels'),
    ('over_byte_limit', 413, 'upload_too_large'),
    ('empty', 400, 'empty_file'),
    ('bad_render_size', 400, 'bad_render_size'),
    ('huge_render_size', 400, 'bad_render_size'),
])
def test_bad_uploads_get_a_json_error(server, case, status, reason):
    jpeg = _photo_bytes('chelsea.jpg')
    png = _png(Image.open(io.BytesIO(jpeg)))
    fields = {}
    if case == 'text':
        data = b'just some text, not a photo\n' * 10
    elif case == 'html_named_jpg':
        data = b'<html><script>alert(1)</script></html>'
    elif case == 'eps':  # Pillow opens EPS, through Ghostscript: refused.
        data = (b'%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n'
                b'showpage\n%%EOF\n')
    elif case == 'truncated_jpeg':
        data = jpeg[:len(jpeg) // 2]
    elif case == 'truncated_png':
        data = png[:len(png) // 2]
    elif case == 'bomb_header':
        data = _png_header_only(100_000, 100_000)
    elif case == 'bomb_real':  # 9 MP of zeros compress to a few kilobytes.
        data = _png(Image.new('L', (3000, 3000)))
        assert len(data) < 100_000
    elif case == 'over_byte_limit':
        data = np.random.default_rng(0).bytes(1_500_000)
    elif case == 'empty':
        data = b''
    elif case == 'bad_render_size':
        data, fields = jpeg, {'render_size': 'big'}
    else:
        data, fields = jpeg, {'render_size': '100000'}
    _assert_json_error(_post(server, data, '../../etc/passwd', **fields),
                       status, reason)


def test_malformed_requests_get_a_json_error(server):
    url = server.url + '/api/colorize'
    _assert_json_error(requests.post(url, data=b'raw', timeout=_TIMEOUT),
                       400, 'bad_request')
    _assert_json_error(requests.post(url, files={'photo': ('a.jpg', b'x')},
                                     timeout=_TIMEOUT), 400, 'bad_request')
    twice = [('image', ('a.jpg', b'1')), ('image', ('b.jpg', b'2'))]
    _assert_json_error(requests.post(url, files=twice, timeout=_TIMEOUT),
                       400, 'bad_request')
    _assert_json_error(requests.get(url, timeout=_TIMEOUT), 405, 'http_error')
    _assert_json_error(requests.get(server.url + '/static/../app.py',
                                    timeout=_TIMEOUT), 404, 'http_error')


def _held_request(server, data: bytes):
    """A colorize request whose body stops halfway: it holds its place in
    the server until `finish` sends the rest."""
    boundary = 'chromagen-test-boundary'
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="held.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
            ).encode() + data + f'\r\n--{boundary}--\r\n'.encode()
    connection = http.client.HTTPConnection('127.0.0.1', server.port,
                                            timeout=_TIMEOUT)
    connection.putrequest('POST', '/api/colorize')
    connection.putheader('Content-Type',
                         f'multipart/form-data; boundary={boundary}')
    connection.putheader('Content-Length', str(len(body)))
    connection.endheaders()
    connection.send(body[:len(body) // 2])

    def finish():
        connection.send(body[len(body) // 2:])
        response = connection.getresponse()
        result = (response.status, response.read())
        connection.close()
        return result

    return finish


def _wait_for(server, predicate, what: str):
    for _ in range(600):
        health = server.health()
        if predicate(health):
            return health
        if server.process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f'Never {what}: {server.health()}')


def test_a_burst_beyond_the_job_limits_gets_503(server):
    photo = _photo_bytes('rocket.jpg')
    # Fill the one running slot and the one waiting place with two uploads
    # that are still arriving: the server admits a request when it starts.
    held = [_held_request(server, photo) for _ in range(2)]
    _wait_for(server, lambda health: health['waiting'] == 2,
              'admitted both held uploads')
    refused_before = server.health()['refused']
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        burst = list(pool.map(lambda _: _post(server, photo), range(8)))
    for response in burst:
        _assert_json_error(response, 503, 'busy')
        assert response.headers['retry-after'] == '2'
    assert server.health()['refused'] == refused_before + 8
    # The held uploads were never disturbed, and are colorized in turn.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        finished = list(pool.map(lambda finish: finish(), held))
    size = Image.open(io.BytesIO(photo)).size
    for status, body in finished:
        assert status == 200, body[:300]
        assert Image.open(io.BytesIO(body)).size == size
    # A burst on a free server: every request is served or refused cleanly,
    # and whatever the timing at least the first one gets through.
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        burst = list(pool.map(lambda _: _post(server, photo), range(6)))
    statuses = sorted(response.status_code for response in burst)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[0] == 200, statuses
    for response in burst:
        if response.status_code == 200:
            assert Image.open(io.BytesIO(response.content)).size == size
        else:
            _assert_json_error(response, 503, 'busy')
    health = _wait_for(server, lambda health: health['waiting'] == 0,
                       'emptied its queue')
    assert health['running'] == 0


def test_page_and_assets_are_served(server):
    page = requests.get(server.url + '/', timeout=_TIMEOUT)
    assert page.status_code == 200
    assert 'type="file"' in page.text and 'multiple' in page.text
    assert "default-src 'self'" in page.headers['content-security-policy']
    for name in ('app.js', 'app.css'):
        asset = requests.get(f'{server.url}/static/{name}', timeout=_TIMEOUT)
        assert asset.status_code == 200 and len(asset.content) > 1000, name


def test_zz_nothing_written_and_clean_stop(server):
    # Runs last in this file: it stops the server.
    assert os.listdir(server.work_dir) == []
    entries = os.listdir(server.temp_dir)
    # Only the app's own private directory, holding only what TensorFlow's
    # autograph writes; never an upload.
    assert len(entries) == 1 and entries[0].startswith('chromagen-app-')
    private = os.path.join(server.temp_dir, entries[0])
    assert os.stat(private).st_mode & 0o077 == 0
    for _, _, files in os.walk(private):
        for name in files:
            assert name.startswith('__autograph_generated_file'), name
    assert 'Traceback' not in server.log()
    assert server.stop() == 0, server.log()[-3000:]
    assert os.listdir(server.temp_dir) == []
    assert os.listdir(server.work_dir) == []


def test_help_and_bad_flags(tmp_path):
    command = [sys.executable, '-m', 'chromagen_tf.app']
    # Both at once: each spends its time importing TensorFlow.
    shown, missing = [
        subprocess.Popen(command + arguments, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         cwd=conftest.REPO_ROOT)
        for arguments in (['--help'], [f'--model={tmp_path}', '--port=0'])]
    text = ''.join(shown.communicate(timeout=120))
    for name in ('model', 'stage', 'render_size', 'host', 'port',
                 'max_concurrent', 'max_queue', 'max_upload_mb',
                 'max_pixels'):
        assert f'--{name}:' in text, name
    _, stderr = missing.communicate(timeout=120)
    assert missing.returncode == 2, stderr[-2000:]
    assert 'app: error: ' in stderr
    assert 'Traceback' not in stderr


def test_a_stalled_upload_loses_its_place(monkeypatch):
    # In this process, with a 1 s timeout: the upload never needs a model.
    monkeypatch.setattr(server_lib, 'UPLOAD_TIMEOUT_SECONDS', 1)
    app = server_lib.create_app(None, server_lib.AppConfig(max_queue=0))
    sock = server_lib._listen('127.0.0.1', 0)  # pylint: disable=protected-access
    runner = uvicorn.Server(uvicorn.Config(app, lifespan='off',
                                           log_level='warning'))
    thread = threading.Thread(target=runner.run, kwargs={'sockets': [sock]})
    thread.start()
    try:
        while not runner.started:
            time.sleep(0.05)
        connection = http.client.HTTPConnection(
            '127.0.0.1', sock.getsockname()[1], timeout=_TIMEOUT)
        connection.putrequest('POST', '/api/colorize')
        connection.putheader('Content-Type',
                             'multipart/form-data; boundary=b')
        connection.putheader('Content-Length', '100000')
        connection.endheaders()
        connection.send(b'--b\r\n')  # And nothing more.
        response = connection.getresponse()
        assert response.status == 408
        assert b'upload_timeout' in response.read()
        assert app.state.limiter.admitted == 0
    finally:
        runner.should_exit = True
        thread.join(timeout=30)
        sock.close()
