"""Tests for data_prep.coco and coco_download: listing and downloading.

Downloads are served by a real HTTP server on 127.0.0.1 that supports Range
requests, from zips the tests build out of the bundled photos.
"""

import hashlib
import http.server
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import zipfile

import pytest

from chromagen_tf.data import imaging
from data_prep import coco
from data_prep import coco_download
from data_prep import convert_config
from data_prep import convert_lib
from tests import conftest

_PHOTOS = sorted(conftest.SAMPLE_PHOTOS.glob('*.jpg'))[:4]
_IDS = (9, 25, 30, 34)


def _annotations(file_names, ids=_IDS, images_first=True) -> dict:
    images = [
        {'id': image_id, 'file_name': name, 'width': 640, 'height': 480}
        for image_id, name in zip(ids, file_names)
    ]
    # Real instance files hold far more annotations than images; a long
    # value before "images" exercises the streaming reader's buffering.
    annotations = [
        {
            'id': index,
            'image_id': 9,
            'segmentation': [[1.5] * 50],
            'bbox': [0, 0, 1, 1],
        }
        for index in range(300)
    ]
    parts = [('info', {'year': 2017}), ('licenses', [])]
    parts += (
        [('images', images), ('annotations', annotations)]
        if images_first
        else [('annotations', annotations), ('images', images)]
    )
    return dict(parts + [('categories', [{'id': 1, 'name': 'person'}])])


def _coco_file_name(image_id: int) -> str:
    return f'{image_id:012d}.jpg'


def _build_zips() -> dict[str, bytes]:
    """The archives of val2017 and test2017, as served at their paths."""
    names = [_coco_file_name(image_id) for image_id in _IDS]
    served = {}
    for split, labels_zip, labels_json in (
        ('val2017', 'annotations_trainval2017.zip', 'instances_val2017.json'),
        ('test2017', 'image_info_test2017.zip', 'image_info_test2017.json'),
    ):
        images = io.BytesIO()
        with zipfile.ZipFile(images, 'w') as archive:
            for photo, name in zip(_PHOTOS, names):
                archive.write(photo, f'{split}/{name}')
        labels = io.BytesIO()
        with zipfile.ZipFile(labels, 'w') as archive:
            archive.writestr(
                f'annotations/{labels_json}', json.dumps(_annotations(names))
            )
        served[f'/zips/{split}.zip'] = images.getvalue()
        served[f'/annotations/{labels_zip}'] = labels.getvalue()
    return served


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files`, honouring 'Range: bytes=N-' like a real CDN."""

    files: dict[str, bytes] = {}
    ranges: list = []

    def do_GET(self):  # pylint: disable=invalid-name
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        requested = self.headers.get('Range')
        self.ranges.append(requested)
        match = re.fullmatch(r'bytes=(\d+)-', requested or '')
        if match:
            start = int(match.group(1))
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header(
                'Content-Range', f'bytes {start}-{len(body) - 1}/{len(body)}'
            )
            body = body[start:]
        else:
            self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # Quiet test output.
        del args


@pytest.fixture(name='server')
def _server():
    handler = type(
        'Handler', (_RangeHandler,), {'files': _build_zips(), 'ranges': []}
    )
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}', handler
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.slow  # A converter process and a file server.
def test_command_line_download_and_convert(tmp_path, server):
    # test2017 has no published checksums, so the real table applies and
    # the server's Content-Length is the reference.
    base_url, _ = server
    process = subprocess.run(
        [
            sys.executable,
            '-m',
            'data_prep.make_tfrecords',
            '--download',
            f'--coco_dir={tmp_path / "coco"}',
            '--split=test2017',
            f'--coco_base_url={base_url}',
            f'--output_dir={tmp_path / "out"}',
            '--image_size=32',
            '--num_val=1',
            '--num_processes=0',
        ],
        cwd=conftest.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.splitlines() == [
        'train: 3 records in 1 shards, '
        f'{os.path.getsize(tmp_path / "out" / "train-00000-of-00001.tfrecord")}'
        ' bytes',
        'val: 1 records in 1 shards, '
        f'{os.path.getsize(tmp_path / "out" / "val-00000-of-00001.tfrecord")}'
        ' bytes',
        'skipped: 0',
    ]
    assert (
        tmp_path / 'coco' / 'annotations' / 'image_info_test2017.json'
    ).exists()


def _known(handler) -> dict:
    return {
        path.lstrip('/'): (len(body), hashlib.sha1(body).hexdigest())
        for path, body in handler.files.items()
    }


def _write_split(root, with_annotations=True, images_first=True):
    (root / 'val2017').mkdir(parents=True)
    names = [_coco_file_name(image_id) for image_id in _IDS]
    for photo, name in zip(_PHOTOS[:3], names[:3]):  # The fourth is missing.
        shutil.copy(photo, root / 'val2017' / name)
    if with_annotations:
        (root / 'annotations').mkdir()
        (root / 'annotations' / 'instances_val2017.json').write_text(
            json.dumps(_annotations(names, images_first=images_first))
        )


@pytest.mark.parametrize('images_first', [True, False])
def test_list_split_from_annotations(tmp_path, monkeypatch, images_first):
    # A tiny read size forces values to straddle many buffer refills.
    monkeypatch.setattr(coco, '_CHUNK_BYTES', 7)
    _write_split(tmp_path, images_first=images_first)
    sources, skipped = coco.list_split(str(tmp_path), 'val2017')
    assert [source.key for source in sources] == ['9', '25', '30']
    assert sources[0].path == str(tmp_path / 'val2017' / '000000000009.jpg')
    assert skipped == [
        {
            'key': '34',
            'path': '000000000034.jpg',
            'split': None,
            'reason': imaging.MISSING_FILE,
            'detail': 'named by the annotations, not found',
        }
    ]


def test_list_split_without_annotations(tmp_path):
    _write_split(tmp_path, with_annotations=False)
    (tmp_path / 'val2017' / 'extra_photo.png').write_bytes(b'')
    sources, skipped = coco.list_split(str(tmp_path), 'val2017')
    assert [source.key for source in sources] == [
        '9',
        '25',
        '30',
        'extra_photo.png',
    ]
    assert not skipped


def test_broken_annotations_and_missing_split(tmp_path):
    with pytest.raises(coco.CocoError, match='no such folder'):
        coco.list_split(str(tmp_path), 'val2017')
    _write_split(tmp_path)
    annotation = tmp_path / 'annotations' / 'instances_val2017.json'
    annotation.write_text('{"images": [{"id": 9, "file_name": ')
    with pytest.raises(coco.CocoError, match='cannot parse'):
        coco.list_split(str(tmp_path), 'val2017')


def test_download_unpack_and_convert(tmp_path, server):
    base_url, handler = server
    coco_dir = tmp_path / 'coco'
    coco_download.download_split(
        str(coco_dir), 'val2017', base_url, _known(handler)
    )
    assert sorted(path.name for path in coco_dir.iterdir()) == [
        'annotations',
        'val2017',
    ]  # No archives or staging folders left.
    assert len(list((coco_dir / 'val2017').iterdir())) == 4
    # Everything present: a second call fetches nothing.
    requests = len(handler.ranges)
    coco_download.download_split(
        str(coco_dir), 'val2017', base_url, _known(handler)
    )
    assert len(handler.ranges) == requests

    sources, skipped = coco.list_split(str(coco_dir), 'val2017')
    config = convert_config.ConvertConfig(
        output_dir=str(tmp_path / 'out'),
        coco_dir=str(coco_dir),
        split='val2017',
        image_size=32,
        num_val=1,
        num_shards=1,
    )
    manifest = convert_lib.run(config, sources, skipped, show_progress=False)
    assert manifest['splits']['train']['records'] == 3
    assert manifest['splits']['val']['records'] == 1
    assert manifest['skipped'] == []


def test_download_resumes_a_partial_file(tmp_path, server):
    base_url, handler = server
    body = handler.files['/zips/val2017.zip']
    destination = tmp_path / 'val2017.zip'
    (tmp_path / 'val2017.zip.part').write_bytes(body[:1000])
    coco_download.download_file(
        f'{base_url}/zips/val2017.zip',
        str(destination),
        len(body),
        hashlib.sha1(body).hexdigest(),
    )
    assert handler.ranges == ['bytes=1000-']
    assert destination.read_bytes() == body
    assert not (tmp_path / 'val2017.zip.part').exists()


def test_download_size_and_checksum_mismatch(tmp_path, server):
    base_url, handler = server
    url = f'{base_url}/zips/val2017.zip'
    body = handler.files['/zips/val2017.zip']
    destination = tmp_path / 'val2017.zip'
    with pytest.raises(coco_download.DownloadError, match='expected 123'):
        coco_download.download_file(url, str(destination), expected_size=123)
    with pytest.raises(coco_download.DownloadError, match='does not match'):
        coco_download.download_file(url, str(destination), len(body), '0' * 40)
    # The corrupt file is gone, so the next run starts afresh.
    assert not list(tmp_path.iterdir())
    # Unknown checksum: the server's Content-Length is the reference.
    coco_download.download_file(url, str(destination))
    assert destination.read_bytes() == body


def test_unreachable_network_is_one_clear_line(tmp_path):
    with socket.socket() as probe:  # A port that nothing listens on.
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    with pytest.raises(coco_download.DownloadError) as caught:
        coco_download.download_split(
            str(tmp_path / 'coco'),
            'val2017',
            f'http://127.0.0.1:{port}',
            timeout=5,
        )
    message = str(caught.value)
    assert message.startswith(f'cannot reach 127.0.0.1:{port}')
    assert 'online' in message and '\n' not in message


def test_bad_zip_is_deleted(tmp_path):
    archive = tmp_path / 'val2017.zip'
    archive.write_bytes(b'PK\x03\x04 but not really a zip')
    with pytest.raises(coco_download.DownloadError, match='not a valid zip'):
        coco_download.unpack_zip_atomically(str(archive), str(tmp_path))
    assert not list(tmp_path.iterdir())
