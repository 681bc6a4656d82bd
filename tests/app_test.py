"""Tests for the web app's HTTP API.

The slow tests run a real server process with the bundled model, one for
the whole file, started with small limits (1 running job, 1 waiting, 1 MB
uploads, 4 MP photos) so that every limit can be reached with small files,
deterministically. The fast ones serve the app in this process with a
stand-in for the model, for what happens before a photo reaches it.
"""

import concurrent.futures
import contextlib
import http.client
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Iterator, Optional
import zlib

import numpy as np
from PIL import Image
import pytest
import requests
import tensorflow as tf
import uvicorn

from chromagen_tf import bundled
from chromagen_tf import color
from chromagen_tf import configs
from chromagen_tf import hint_format
from chromagen_tf import models
from chromagen_tf.data import imaging
from chromagen_tf.inference import colorize_lib
from chromagen_tf.webapp import jobs
from chromagen_tf.webapp import server as server_lib
from chromagen_tf.webapp import uploads
from tests import conftest
from tests import utils

_MULTIPART = 'multipart/form-data; boundary=chromagen-test-boundary'

_MAX_PIXELS = 4_000_000
_FLAGS = (
    '--max_concurrent=1',
    '--max_queue=1',
    '--max_upload_mb=1',
    f'--max_pixels={_MAX_PIXELS}',
)
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
    return requests.post(
        server.url + '/api/colorize',
        files={'image': (filename, data)},
        data=fields,
        timeout=_TIMEOUT,
    )


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


@pytest.mark.slow  # The server process.
def test_healthz_reports_the_model_and_limits(server):
    health = server.health()
    assert health['status'] == 'ok'
    assert 'bundled model' in health['model']
    assert health['render_size'] == bundled.read_info()['render_size']
    assert (health['max_concurrent'], health['max_queue']) == (1, 1)
    assert health['max_upload_bytes'] == 1_000_000
    assert health['max_pixels'] == _MAX_PIXELS
    assert 'ChromaGen app: http://127.0.0.1:' in server.log()


@pytest.mark.slow  # The server process.
def test_round_trip_keeps_size_and_lightness(server, colorizer):
    for name in ('chelsea.jpg', 'picos_de_europa.jpg'):
        original = np.asarray(
            imaging.load_rgb(conftest.SAMPLE_PHOTOS / name).image
        )
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


@pytest.mark.slow  # The server process.
def test_odd_sizes_gray_inputs_and_render_size(server, colorizer):
    photo = Image.open(conftest.SAMPLE_PHOTOS / 'coffee.jpg')
    gray = photo.convert('L').crop((3, 5, 304, 222))  # 301x217.
    # Not the bundled model's own render size, so that it must matter.
    response = _post(server, _png(gray), 'gray.png', render_size='192')
    colorized = _decoded(response)
    assert colorized.shape == (217, 301, 3)
    expected = colorizer.with_render_size(192).colorize(
        [np.asarray(gray)[..., None]]
    )[0]
    assert np.abs(colorized.astype(int) - expected).max() <= 1
    default = _decoded(_post(server, _png(gray), 'gray.png'))
    assert np.abs(default.astype(int) - colorized).mean() > 0.5


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: a decompression bomb."""

    def chunk(kind, data):
        return (
            struct.pack('>I', len(data))
            + kind
            + data
            + struct.pack('>I', zlib.crc32(kind + data))
        )

    return (
        b'\x89PNG\r\n\x1a\n'
        + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
        + chunk(b'IDAT', zlib.compress(b'\0' * 1024))
        + chunk(b'IEND', b'')
    )


@pytest.mark.slow  # The server process.
@pytest.mark.parametrize(
    'case, status, reason',
    [
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
    ],
)
def test_bad_uploads_get_a_json_error(server, case, status, reason):
    jpeg = _photo_bytes('chelsea.jpg')
    png = _png(Image.open(io.BytesIO(jpeg)))
    fields = {}
    if case == 'text':
        data = b'just some text, not a photo\n' * 10
    elif case == 'html_named_jpg':
        data = b'<html><script>alert(1)</script></html>'
    elif case == 'eps':  # Pillow opens EPS, through Ghostscript: refused.
        data = (
            b'%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n'
            b'showpage\n%%EOF\n'
        )
    elif case == 'truncated_jpeg':
        data = jpeg[: len(jpeg) // 2]
    elif case == 'truncated_png':
        data = png[: len(png) // 2]
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
    _assert_json_error(
        _post(server, data, '../../etc/passwd', **fields), status, reason
    )


@pytest.mark.slow  # The server process.
def test_http_errors_get_a_json_error(server):
    url = server.url + '/api/colorize'
    _assert_json_error(requests.get(url, timeout=_TIMEOUT), 405, 'http_error')
    _assert_json_error(
        requests.get(server.url + '/static/../app.py', timeout=_TIMEOUT),
        404,
        'http_error',
    )


def _held_request(server, data: bytes):
    """A colorize request whose body stops halfway: it holds its place in
    the server until `finish` sends the rest."""
    boundary = 'chromagen-test-boundary'
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="held.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + data
        + f'\r\n--{boundary}--\r\n'.encode()
    )
    connection = http.client.HTTPConnection(
        '127.0.0.1', server.port, timeout=_TIMEOUT
    )
    connection.putrequest('POST', '/api/colorize')
    connection.putheader(
        'Content-Type', f'multipart/form-data; boundary={boundary}'
    )
    connection.putheader('Content-Length', str(len(body)))
    connection.endheaders()
    connection.send(body[: len(body) // 2])

    def finish():
        connection.send(body[len(body) // 2 :])
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


@pytest.mark.slow  # The server process.
def test_a_burst_beyond_the_job_limits_gets_503(server):
    photo = _photo_bytes('rocket.jpg')
    # Fill the one running slot and the one waiting place with two uploads
    # that are still arriving: the server admits a request when it starts.
    held = [_held_request(server, photo) for _ in range(2)]
    _wait_for(
        server,
        lambda health: health['waiting'] == 2,
        'admitted both held uploads',
    )
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
    health = _wait_for(
        server, lambda health: health['waiting'] == 0, 'emptied its queue'
    )
    assert health['running'] == 0


@pytest.mark.slow  # The server process.
def test_page_and_assets_are_served(server):
    page = requests.get(server.url + '/', timeout=_TIMEOUT)
    assert page.status_code == 200
    assert 'type="file"' in page.text and 'multiple' in page.text
    assert "default-src 'self'" in page.headers['content-security-policy']
    for name in ('app.js', 'hints.js', 'app.css'):
        asset = requests.get(f'{server.url}/static/{name}', timeout=_TIMEOUT)
        assert asset.status_code == 200 and len(asset.content) > 1000, name


@pytest.mark.slow  # The server process.
@pytest.mark.slow  # A server process of its own, which it stops.
def test_nothing_written_and_clean_stop(tmp_path):
    app = utils.AppServer(str(tmp_path), *_FLAGS)
    try:
        app.wait_until_ready()
        _decoded(_post(app, _photo_bytes('chelsea.jpg')))
        assert os.listdir(app.work_dir) == []
        entries = os.listdir(app.temp_dir)
        # Only the app's own private directory, holding only what
        # TensorFlow's autograph writes; never an upload.
        assert len(entries) == 1 and entries[0].startswith('chromagen-app-')
        private = os.path.join(app.temp_dir, entries[0])
        assert os.stat(private).st_mode & 0o077 == 0
        for _, _, files in os.walk(private):
            for name in files:
                assert name.startswith('__autograph_generated_file'), name
        assert 'Traceback' not in app.log()
    finally:
        assert app.stop() == 0, app.log()[-3000:]
    assert os.listdir(app.temp_dir) == []
    assert os.listdir(app.work_dir) == []


@pytest.mark.slow  # Two processes that import TensorFlow.
def test_help_and_bad_flags(tmp_path):
    command = [sys.executable, '-m', 'chromagen_tf.app']
    # Both at once: each spends its time importing TensorFlow.
    shown, missing = [
        subprocess.Popen(
            command + arguments,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=conftest.REPO_ROOT,
        )
        for arguments in (['--help'], [f'--model={tmp_path}', '--port=0'])
    ]
    text = ''.join(shown.communicate(timeout=120))
    for name in (
        'model',
        'stage',
        'render_size',
        'host',
        'port',
        'max_concurrent',
        'max_queue',
        'max_upload_mb',
        'max_pixels',
    ):
        assert f'--{name}:' in text, name
    _, stderr = missing.communicate(timeout=120)
    assert missing.returncode == 2, stderr[-2000:]
    assert 'app: error: ' in stderr
    assert 'Traceback' not in stderr


class _EchoService:
    """Stands in for the model: answers with the photo's own bytes."""

    render_size = 256
    parse_render_size = jobs.ColorizeService.parse_render_size

    def __init__(self):
        self.render_sizes = []

    def parse_hints(self, text):
        return [] if text is None else [text]

    def colorize(
        self, data: bytes, render_size: int, hint_list=(), preview=False
    ) -> jobs.Result:
        del hint_list, preview  # Unused.
        self.render_sizes.append(render_size)
        return jobs.Result(data, 'image/png', 1, 1)


class _InProcessServer:
    """The app served by uvicorn in a thread of this process."""

    def __init__(self, app, port: int):
        self.app = app
        self.url = f'http://127.0.0.1:{port}'
        self.port = port


@contextlib.contextmanager
def _in_process(
    service, config: server_lib.AppConfig
) -> Iterator[_InProcessServer]:
    app = server_lib.create_app(service, config)
    sock = server_lib._listen('127.0.0.1', 0)  # pylint: disable=protected-access
    runner = uvicorn.Server(
        uvicorn.Config(app, lifespan='off', log_level='warning')
    )
    thread = threading.Thread(target=runner.run, kwargs={'sockets': [sock]})
    thread.start()
    try:
        while not runner.started:
            time.sleep(0.05)
        yield _InProcessServer(app, sock.getsockname()[1])
    finally:
        runner.should_exit = True
        thread.join(timeout=30)
        sock.close()


_SMALL_LIMIT = 100_000  # Bytes: the in-process app's upload limit.


@pytest.fixture(scope='module')
def echo_server():
    service = _EchoService()
    config = server_lib.AppConfig(max_upload_bytes=_SMALL_LIMIT)
    with _in_process(service, config) as app:
        app.service = service
        yield app


def _multipart(parts: list[tuple[str, Optional[str], bytes]]) -> bytes:
    boundary = 'chromagen-test-boundary'
    body = b''
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n'
            ).encode()
            + value
            + b'\r\n'
        )
    return body + f'--{boundary}--\r\n'.encode()


def _post_multipart(server, parts) -> requests.Response:
    return requests.post(
        server.url + '/api/colorize',
        data=_multipart(parts),
        headers={'Content-Type': _MULTIPART},
        timeout=_TIMEOUT,
    )


def test_upload_reaches_the_model_whole_and_in_memory(echo_server, monkeypatch):
    # Larger than the 1 MiB that Starlette's parser keeps in memory by
    # default; rolling over to a file would call TemporaryFile.
    photo = np.random.default_rng(1).bytes(1_500_000)

    def no_file(*args, **kwargs):
        raise AssertionError('an upload was spooled to disk')

    monkeypatch.setattr(tempfile, 'TemporaryFile', no_file)
    config = server_lib.AppConfig(max_upload_bytes=2_000_000)
    service = _EchoService()
    with _in_process(service, config) as app:
        response = _post(app, photo, render_size='128')
    assert response.status_code == 200, response.text[:500]
    assert response.content == photo
    assert service.render_sizes == [128]


@pytest.mark.parametrize(
    'case',
    [
        'not_multipart',
        'no_image',
        'two_images',
        'image_not_a_file',
        'too_many_fields',
        'long_field',
        'two_render_sizes',
        'truncated_form',
        'empty',
        'over_byte_limit',
        'just_over_byte_limit',
    ],
)
def test_bad_forms_get_a_json_error(echo_server, case):
    photo = b'not checked before the model' * 10
    status, reason = 400, 'bad_request'
    echo_server.service.render_sizes.clear()
    if case == 'not_multipart':
        response = requests.post(
            echo_server.url + '/api/colorize', data=photo, timeout=_TIMEOUT
        )
    elif case == 'truncated_form':
        body = _multipart([('image', 'a.jpg', photo)])
        response = requests.post(
            echo_server.url + '/api/colorize',
            data=body[:-30],
            headers={'Content-Type': _MULTIPART},
            timeout=_TIMEOUT,
        )
    else:
        parts = {
            'no_image': [('photo', 'a.jpg', photo)],
            'two_images': [
                ('image', 'a.jpg', photo),
                ('image', 'b.jpg', photo),
            ],
            'image_not_a_file': [('image', None, photo)],
            'too_many_fields': [('image', 'a.jpg', photo)]
            + [(f'note{i}', None, b'1') for i in range(5)],
            'long_field': [
                ('image', 'a.jpg', photo),
                ('render_size', None, b'1' * 2000),
            ],
            'two_render_sizes': [
                ('image', 'a.jpg', photo),
                ('render_size', None, b'128'),
                ('render_size', None, b'256'),
            ],
            'empty': [('image', 'a.jpg', b'')],
            'over_byte_limit': [('image', 'a.jpg', b'x' * 1_000_000)],
            # Within the body's allowance for framing, over the photo's.
            'just_over_byte_limit': [
                ('image', 'a.jpg', b'x' * (_SMALL_LIMIT + 1))
            ],
        }[case]
        if case == 'empty':
            status, reason = 400, 'empty_file'
        elif case.endswith('over_byte_limit'):
            status, reason = 413, 'upload_too_large'
        response = _post_multipart(echo_server, parts)
    _assert_json_error(response, status, reason)
    assert echo_server.service.render_sizes == []


@pytest.mark.parametrize(
    'name, data',
    [
        ('text', b'just some text, not a photo\n' * 10),
        ('eps', b'%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n'),
    ],
)
def test_other_formats_never_reach_a_pillow_plugin(monkeypatch, name, data):
    # EPS runs Ghostscript; no plugin outside ACCEPTED_FORMATS may even
    # parse an upload's header.
    from PIL import EpsImagePlugin  # pylint: disable=g-import-not-at-top

    opened = []
    original = EpsImagePlugin.EpsImageFile._open  # pylint: disable=protected-access

    def recording_open(image):
        opened.append(name)
        return original(image)

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, '_open', recording_open)
    with pytest.raises(imaging.BadImageError) as raised:
        jobs._check_format(data)  # pylint: disable=protected-access
    assert raised.value.reason == imaging.NOT_AN_IMAGE
    assert opened == []


def test_a_stalled_upload_loses_its_place(monkeypatch):
    # In this process, with a 1 s timeout: the upload never needs a model.
    monkeypatch.setattr(server_lib, 'UPLOAD_TIMEOUT_SECONDS', 1)
    with _in_process(None, server_lib.AppConfig(max_queue=0)) as app:
        connection = http.client.HTTPConnection(
            '127.0.0.1', app.port, timeout=_TIMEOUT
        )
        connection.putrequest('POST', '/api/colorize')
        connection.putheader('Content-Type', 'multipart/form-data; boundary=b')
        connection.putheader('Content-Length', '100000')
        connection.endheaders()
        connection.send(b'--b\r\n')  # And nothing more.
        response = connection.getresponse()
        assert response.status == 408
        assert b'upload_timeout' in response.read()
        assert app.app.state.limiter.admitted == 0


# The API with hints, on a tiny colour-bins hint model in this process.
_TINY_HINT_MODEL = configs.ModelConfig(
    generator='resnet18_unet_lite', width=8, color_head='bins', hints=True
)
_RED, _BLUE = '#d02020', '#2040e0'


@pytest.fixture(scope='module')
def hint_server(tmp_path_factory):
    """A width-8 bins hint model whose hint weights are random, not zero,
    so that hints change its output."""
    tf.keras.utils.set_random_seed(1)
    generator = models.build_from_config(_TINY_HINT_MODEL)
    kernel = generator.get_layer('hint_conv').kernel
    kernel.assign(tf.random.stateless_normal(kernel.shape, [0, 1], stddev=0.5))
    bundle = bundled.save(
        generator,
        _TINY_HINT_MODEL,
        str(tmp_path_factory.mktemp('bundle')),
        render_size=64,
    )
    service = jobs.ColorizeService(
        colorize_lib.load_colorizer(bundle), _MAX_PIXELS
    )
    service.warm_up()
    with _in_process(service, server_lib.AppConfig()) as app:
        app.service = service
        yield app


def _gray_photo(width=160, height=120) -> bytes:
    with Image.open(conftest.SAMPLE_PHOTOS / 'chelsea.jpg') as photo:
        return _png(photo.convert('L').resize((width, height)))


def _hints_json(*points) -> str:
    return json.dumps(
        {
            'hints': [
                {'x': x, 'y': y, 'color': colour} for x, y, colour in points
            ]
        }
    )


def test_hints_change_the_result_near_them(hint_server):
    photo = _gray_photo()
    plain = _decoded(_post(hint_server, photo))
    response = _post(
        hint_server, photo, hints=_hints_json((40, 60, _RED), (120, 60, _BLUE))
    )
    hinted = _decoded(response)
    assert hinted.shape == plain.shape == (120, 160, 3)
    assert (
        response.headers['x-photo-width'],
        response.headers['x-photo-height'],
    ) == ('160', '120')
    difference = np.abs(hinted.astype(int) - plain).sum(-1)
    assert difference[50:70, 30:50].mean() > 3
    # An empty list is no hint at all: the automatic result.
    empty = _decoded(_post(hint_server, photo, hints='{"hints": []}'))
    np.testing.assert_array_equal(empty, plain)


def test_preview_is_a_small_jpeg_with_the_hints_in_place(hint_server):
    large = _gray_photo(1600, 1200)
    hints = _hints_json((400, 600, _RED), (1200, 600, _BLUE))
    response = _post(hint_server, large, hints=hints, preview='1')
    assert response.status_code == 200, response.text[:500]
    assert response.headers['content-type'] == 'image/jpeg'
    assert (
        response.headers['x-photo-width'],
        response.headers['x-photo-height'],
    ) == ('1600', '1200')
    preview = np.asarray(Image.open(io.BytesIO(response.content)))
    assert preview.shape == (768, 1024, 3)
    # The same colours as the full result, at the same places.
    full = _decoded(_post(hint_server, large, hints=hints))
    shrunk = np.asarray(Image.fromarray(full).resize((1024, 768)))
    lab_preview = color.rgb_to_lab_numpy(preview)
    lab_full = color.rgb_to_lab_numpy(shrunk)
    for x, y in ((256, 384), (768, 384)):
        window = np.s_[y - 8 : y + 8, x - 8 : x + 8, 1:]
        assert (
            np.abs(
                lab_preview[window].mean((0, 1)) - lab_full[window].mean((0, 1))
            ).max()
            < 3
        ), (x, y)


@pytest.mark.parametrize(
    'hints, reason',
    [
        ('not json', 'bad_hints'),
        ('{"points": []}', 'bad_hints'),
        ('{"hints": [{"x": 1, "y": 2, "color": "red"}]}', 'bad_hints'),
        ('{"hints": [{"x": "1", "y": 2, "color": "#ff0000"}]}', 'bad_hints'),
        (_hints_json((160, 10, _RED)), 'hint_outside'),
        (_hints_json((10, -1, _RED)), 'hint_outside'),
    ],
)
def test_bad_hints_get_a_400(hint_server, hints, reason):
    response = _post(hint_server, _gray_photo(), hints=hints)
    _assert_json_error(response, 400, reason)
    assert 'hint' in response.json()['error']


def test_a_long_hints_field_gets_a_400(hint_server):
    hints = json.dumps(
        {'hints': [{'x': 1, 'y': 1, 'color': _RED}] * 200}, indent=40
    )
    assert len(hints) > uploads.MAX_HINTS_BYTES
    _assert_json_error(
        _post(hint_server, _gray_photo(), hints=hints), 400, 'bad_request'
    )


def test_suggest_lists_likely_colours(hint_server):
    photo = _gray_photo()
    response = requests.post(
        hint_server.url + '/api/suggest',
        files={'image': ('a.png', photo)},
        data={'x': '50', 'y': '40', 'hints': _hints_json((120, 60, _BLUE))},
        timeout=_TIMEOUT,
    )
    assert response.status_code == 200, response.text[:500]
    suggestions = response.json()['suggestions']
    assert len(suggestions) == jobs.SUGGESTIONS
    probabilities = [entry['probability'] for entry in suggestions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1.0001
    for entry in suggestions:
        assert re.fullmatch('#[0-9a-f]{6}', entry['color']), entry
    # The same as the Colorizer's own, for the same (unshrunk) photo.
    expected = hint_server.service.colorizer.suggest_colors(
        np.asarray(Image.open(io.BytesIO(photo)).convert('RGB')),
        50,
        40,
        [hint_format.Hint(120, 60, (0x20, 0x40, 0xE0))],
        k=jobs.SUGGESTIONS,
    )
    assert [entry['color'] for entry in suggestions] == [
        colour for colour, _ in expected
    ]


@pytest.mark.parametrize(
    'fields, reason',
    [
        ({'x': '500', 'y': '40'}, 'hint_outside'),
        ({'x': '50'}, 'bad_point'),
        ({'x': 'left', 'y': '40'}, 'bad_point'),
        ({'x': 'nan', 'y': '40'}, 'bad_point'),
        ({'x': '50', 'y': '40', 'hints': '{"hints": 3}'}, 'bad_hints'),
    ],
)
def test_bad_suggest_requests_get_a_400(hint_server, fields, reason):
    response = requests.post(
        hint_server.url + '/api/suggest',
        files={'image': ('a.png', _gray_photo())},
        data=fields,
        timeout=_TIMEOUT,
    )
    _assert_json_error(response, 400, reason)


def test_healthz_says_the_model_takes_hints(hint_server):
    health = requests.get(hint_server.url + '/healthz', timeout=_TIMEOUT).json()
    assert health['takes_hints'] is True
    assert health['suggests_colors'] is True


@pytest.fixture(scope='module')
def plain_server(tmp_path_factory):
    """A tiny regression-head model without hints."""
    config = configs.ModelConfig(generator='resnet18_unet_lite', width=8)
    bundle = bundled.save(
        models.build_from_config(config),
        config,
        str(tmp_path_factory.mktemp('plain')),
        render_size=64,
    )
    service = jobs.ColorizeService(
        colorize_lib.load_colorizer(bundle), _MAX_PIXELS
    )
    with _in_process(service, server_lib.AppConfig()) as app:
        yield app


def test_a_model_without_hints_refuses_them_clearly(plain_server):
    photo = _gray_photo()
    response = _post(plain_server, photo, hints=_hints_json((10, 10, _RED)))
    _assert_json_error(response, 422, 'hints_not_supported')
    assert 'does not take colour hints' in response.json()['error']
    # No hints is fine, and so is an empty list.
    assert _post(plain_server, photo, hints='{"hints": []}').ok
    response = requests.post(
        plain_server.url + '/api/suggest',
        files={'image': ('a.png', photo)},
        data={'x': '5', 'y': '5'},
        timeout=_TIMEOUT,
    )
    _assert_json_error(response, 422, 'suggestions_not_supported')
    health = requests.get(
        plain_server.url + '/healthz', timeout=_TIMEOUT
    ).json()
    assert (health['takes_hints'], health['suggests_colors']) == (False, False)
