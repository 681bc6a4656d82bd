"""Tests for data_prep.convert_lib and the make_tfrecords command line.

Conversions run on the bundled photos and on broken files the tests write;
the restart test kills a real converter process with SIGKILL.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import chromagen_tf
from chromagen_tf import color
from chromagen_tf.data import imaging
from chromagen_tf.data import records
from data_prep import convert_config
from data_prep import convert_lib
from data_prep import manifest_lib
from data_prep import shard_files
from tests import conftest

_PHOTOS = sorted(conftest.SAMPLE_PHOTOS.glob('*.jpg'))


def _config(tmp_path, image_dir, **overrides) -> convert_config.ConvertConfig:
    settings = dict(
        output_dir=str(tmp_path / 'out'),
        image_dir=str(image_dir),
        image_size=32,
        min_size=64,
        images_per_shard=4,
        val_fraction=0.25,
        num_processes=0,
    )
    settings.update(overrides)
    return convert_config.ConvertConfig(**settings)


def _run(config, source_dir=None):
    sources = shard_files.list_image_dir(source_dir or config.image_dir)
    return convert_lib.run(config, sources, show_progress=False)


def _shard_bytes(output_dir) -> dict[str, bytes]:
    return {
        path.name: path.read_bytes()
        for path in sorted(pathlib.Path(output_dir).glob('*.tfrecord'))
    }


def _without_config(manifest: dict) -> dict:
    return {key: value for key, value in manifest.items() if key != 'config'}


def _bomb_png() -> bytes:
    def chunk(tag, payload):
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return (
            struct.pack('>I', len(payload))
            + tag
            + payload
            + struct.pack('>I', crc)
        )

    header = struct.pack('>IIBBBBB', 11000, 10000, 8, 2, 0, 0, 0)
    return (
        b'\x89PNG\r\n\x1a\n'
        + chunk(b'IHDR', header)
        + chunk(b'IDAT', zlib.compress(b'\x00' * 64))
        + chunk(b'IEND', b'')
    )


@pytest.fixture(name='mixed_dir')
def _mixed_dir(tmp_path):
    """Three photos, inputs that convert after repair, and broken files."""
    root = tmp_path / 'mixed'
    (root / 'nested' / 'deeper').mkdir(parents=True)
    for photo in _PHOTOS[:3]:
        shutil.copy(photo, root / photo.name)
    colour = Image.open(_PHOTOS[3]).convert('RGB')
    colour.convert('CMYK').save(root / 'cmyk.jpg')
    colour.convert('RGBA').save(root / 'nested' / 'deeper' / 'rgba.png')
    colour.convert('L').convert('RGB').save(root / 'gray_rgb.jpg')
    colour.resize((60, 40)).save(root / 'small.png')
    (root / 'empty.jpg').write_bytes(b'')
    (root / 'notes.jpg').write_text('not a photo\n' * 10)
    photo_bytes = _PHOTOS[4].read_bytes()
    (root / 'truncated.jpg').write_bytes(photo_bytes[: len(photo_bytes) // 3])
    (root / 'bomb.png').write_bytes(_bomb_png())
    (root / 'README.txt').write_text('ignored: not an image extension')
    return root


def test_round_trip_matches_direct_conversion(tmp_path):
    config = _config(
        tmp_path,
        conftest.SAMPLE_PHOTOS,
        image_size=48,
        images_per_shard=5,
        val_fraction=0.1,
    )
    manifest = _run(config)
    files = sorted(str(path) for path in (tmp_path / 'out').glob('*.tfrecord'))
    assert [os.path.basename(name) for name in files] == [
        'train-00000-of-00003.tfrecord',
        'train-00001-of-00003.tfrecord',
        'train-00002-of-00003.tfrecord',
        'val-00000-of-00001.tfrecord',
    ]
    # Decoded inside tf.data, as the training pipeline does.
    dataset = tf.data.TFRecordDataset(files)
    decoded = dataset.map(records.decode_record)
    seen = set()
    for serialized, (l_channel, ab) in zip(dataset, decoded):
        features = records.parse_record(serialized)
        key = features[records.KEY].numpy().decode()
        seen.add(key)
        loaded = imaging.load_for_storage(str(conftest.SAMPLE_PHOTOS / key), 48)
        expected = color.rgb_to_lab_numpy(np.asarray(loaded.image))
        assert l_channel.shape == (48, 48, 1) and ab.shape == (48, 48, 2)
        np.testing.assert_allclose(
            l_channel.numpy(), expected[..., :1], atol=0.2
        )
        np.testing.assert_allclose(ab.numpy(), expected[..., 1:], atol=0.5)
        with Image.open(conftest.SAMPLE_PHOTOS / key) as image:
            size = (features[records.WIDTH], features[records.HEIGHT])
            assert size == image.size
        assert features[records.VERSION] == records.SCHEMA_VERSION
    assert seen == {photo.name for photo in _PHOTOS}
    assert manifest['splits']['train']['records'] == 13
    assert manifest['splits']['val']['records'] == 1
    assert manifest['bytes_written'] == sum(
        os.path.getsize(name) for name in files
    )


@pytest.mark.parametrize('show_progress', [True, False])
def test_progress_goes_to_stderr_only_when_asked(
    tmp_path, capsys, show_progress
):
    config = _config(tmp_path, conftest.SAMPLE_PHOTOS)
    sources = shard_files.list_image_dir(config.image_dir)
    convert_lib.run(config, sources, show_progress=show_progress)
    captured = capsys.readouterr()
    if show_progress:
        last = captured.err.rstrip().split('\r')[-1]
        assert last.startswith('convert: 100%'), last
        assert f' {len(_PHOTOS)}/{len(_PHOTOS)} [' in last, last
        assert 'images/s]' in last, last
    else:
        assert not captured.err


def test_bad_inputs_are_skipped_and_counted(tmp_path, mixed_dir):
    manifest = _run(_config(tmp_path, mixed_dir))
    assert manifest['skipped_counts'] == {
        imaging.DECODE_ERROR: 1,
        imaging.EMPTY_FILE: 1,
        imaging.GRAYSCALE: 1,
        imaging.NOT_AN_IMAGE: 1,
        imaging.TOO_LARGE: 1,
        imaging.TOO_SMALL: 1,
    }
    reasons = {entry['path']: entry['reason'] for entry in manifest['skipped']}
    assert reasons == {
        'truncated.jpg': imaging.DECODE_ERROR,
        'empty.jpg': imaging.EMPTY_FILE,
        'gray_rgb.jpg': imaging.GRAYSCALE,
        'notes.jpg': imaging.NOT_AN_IMAGE,
        'bomb.png': imaging.TOO_LARGE,
        'small.png': imaging.TOO_SMALL,
    }
    record_count = sum(
        manifest['splits'][split]['records'] for split in records.SPLITS
    )
    assert record_count == 5  # 3 photos, the CMYK JPEG and the nested RGBA PNG.
    assert (
        sum(manifest['splits'][split]['skipped'] for split in records.SPLITS)
        == 6
    )
    summary = manifest_lib.summary_lines(manifest)
    assert summary[-1] == (
        'skipped: 6 (decode_error=1, empty_file=1, '
        'grayscale=1, not_an_image=1, too_large=1, '
        'too_small=1)'
    )
    on_disk = json.loads((tmp_path / 'out' / 'manifest.json').read_text())
    assert on_disk == manifest
    assert on_disk['version'] == chromagen_tf.__version__
    assert on_disk['schema_version'] == records.SCHEMA_VERSION
    assert on_disk['config']['image_size'] == 32


def test_strict_stops_at_the_first_broken_input(tmp_path, mixed_dir):
    with pytest.raises(
        convert_lib.ConversionError,
        match=r'(truncated|empty|notes)\.jpg|bomb\.png',
    ):
        _run(_config(tmp_path, mixed_dir, strict=True))
    # Grayscale and small photos are filtered, not errors, even when strict.
    for name in ('truncated.jpg', 'empty.jpg', 'notes.jpg', 'bomb.png'):
        (mixed_dir / name).unlink()
    manifest = _run(
        _config(
            tmp_path,
            mixed_dir,
            strict=True,
            output_dir=str(tmp_path / 'strict'),
        )
    )
    assert manifest['skipped_counts'] == {'grayscale': 1, 'too_small': 1}


@pytest.mark.slow  # Worker processes, each importing TensorFlow.
def test_output_is_identical_for_any_process_count(tmp_path, mixed_dir):
    manifests = {}
    for processes in (0, 2):
        config = _config(
            tmp_path,
            mixed_dir,
            num_processes=processes,
            images_per_shard=2,
            output_dir=str(tmp_path / f'out{processes}'),
        )
        manifests[processes] = _run(config)
    assert _without_config(manifests[0]) == _without_config(manifests[2])
    first, second = (_shard_bytes(tmp_path / f'out{n}') for n in (0, 2))
    assert len(first) == 6 and first == second  # 4 train + 2 val.


def test_plan_is_a_reproducible_sample():
    sources = [
        shard_files.Source(f'{index:04d}.jpg', f'/in/{index:04d}.jpg')
        for index in range(100)
    ]
    config = convert_config.ConvertConfig(
        output_dir='unused',
        image_dir='/in',
        max_images=30,
        seed=7,
        num_val=6,
        num_shards=4,
    )
    plan = convert_lib.plan_shards(sources, config)
    # The order in which files were listed does not matter.
    assert convert_lib.plan_shards(sources[::-1], config) == plan
    assert [len(shard.sources) for shard in plan['train']] == [6, 6, 6, 6]
    assert [len(shard.sources) for shard in plan['val']] == [6]
    picked = [
        source
        for split in ('val', 'train')
        for shard in plan[split]
        for source in shard.sources
    ]
    assert len(set(picked)) == 30
    other_seed = convert_lib.plan_shards(
        sources, dataclasses.replace(config, seed=8)
    )
    assert other_seed != plan
    by_fraction = convert_lib.plan_shards(
        sources,
        dataclasses.replace(
            config,
            max_images=0,
            num_val=None,
            val_fraction=0.2,
            num_shards=None,
            images_per_shard=30,
        ),
    )
    train_sizes = [len(shard.sources) for shard in by_fraction['train']]
    assert train_sizes == [27, 27, 26]
    assert [len(shard.sources) for shard in by_fraction['val']] == [20]
    assert by_fraction['train'][1].name == 'train-00001-of-00003.tfrecord'


def test_restart_with_other_settings_is_refused(tmp_path, mixed_dir):
    config = _config(tmp_path, mixed_dir)
    first = _run(config)
    before = _shard_bytes(config.output_dir)
    # Another process count finds every shard complete and redoes nothing.
    again = _run(dataclasses.replace(config, num_processes=2))
    assert _without_config(again) == _without_config(first)
    assert _shard_bytes(config.output_dir) == before
    with pytest.raises(convert_lib.ConversionError, match='image_size'):
        _run(dataclasses.replace(config, image_size=64))


def test_convert_image_accepts_an_open_file():
    options = convert_config.ImageOptions(image_size=16)
    with open(_PHOTOS[0], 'rb') as file:
        from_file = convert_lib.convert_image(file, 'photo', options)
    assert from_file == convert_lib.convert_image(
        str(_PHOTOS[0]), 'photo', options
    )


def _cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, '-m', 'data_prep.make_tfrecords', *args],
        cwd=conftest.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


@pytest.mark.slow  # Kill and resume a converter and its worker.
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path):
    photos = tmp_path / 'photos'
    for copy in range(12):
        (photos / f'copy{copy:02d}').mkdir(parents=True)
        for photo in _PHOTOS:
            shutil.copy(photo, photos / f'copy{copy:02d}' / photo.name)
    output = tmp_path / 'killed'
    args = [
        f'--image_dir={photos}',
        f'--output_dir={output}',
        '--image_size=96',
        '--images_per_shard=12',
        '--val_fraction=0.1',
        '--num_processes=1',
        '--min_size=64',
    ]
    process = _cli(*args)
    deadline = time.monotonic() + 120
    while not list(output.glob('train-*.tfrecord')):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    os.killpg(process.pid, signal.SIGKILL)  # The converter and its worker.
    process.communicate()
    assert process.returncode == -signal.SIGKILL

    reference_config = convert_config.ConvertConfig(
        output_dir=str(tmp_path / 'reference'),
        image_dir=str(photos),
        image_size=96,
        images_per_shard=12,
        val_fraction=0.1,
        min_size=64,
    )
    reference = _run(reference_config)
    expected = _shard_bytes(reference_config.output_dir)
    assert len(expected) == 15  # 152 train + 16 val photos.

    survivors = _shard_bytes(output)
    assert 0 < len(survivors) < len(expected)  # Killed mid-run.
    for name, content in survivors.items():  # Complete, or not there.
        assert content == expected[name]
    assert not (output / 'manifest.json').exists()

    process = _cli(*args)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert 'skipped: 0' in stdout
    assert _shard_bytes(output) == expected
    assert not [name for name in os.listdir(output) if name.endswith('.tmp')]
    manifest = json.loads((output / 'manifest.json').read_text())
    assert _without_config(manifest) == _without_config(reference)


def test_missing_folder_is_one_error_line(tmp_path):
    process = _cli(
        f'--image_dir={tmp_path / "absent"}', f'--output_dir={tmp_path / "out"}'
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert 'Traceback' not in stderr
    assert stderr.strip().splitlines()[-1] == (
        f'make_tfrecords: error: --image_dir: no such folder: '
        f'{tmp_path / "absent"}'
    )
    assert not (tmp_path / 'out').exists()


def test_unwritable_output_is_one_error_line(tmp_path):
    output = tmp_path / 'out'
    output.mkdir()
    (output / '.shards').write_text('a file where a folder belongs')
    process = _cli(
        f'--image_dir={conftest.SAMPLE_PHOTOS}',
        f'--output_dir={output}',
        '--num_processes=0',
    )
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert 'Traceback' not in stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith(f'make_tfrecords: error: {output}: '), last_line


def test_restart_removes_temporary_files_of_a_killed_run(tmp_path):
    config = _config(tmp_path, conftest.SAMPLE_PHOTOS)
    _run(config)
    output = pathlib.Path(config.output_dir)
    leftovers = [
        output / '.0123456789ab-manifest.json.tmp',
        output / '.train-00000-of-00001.tfrecord.tmp',
        output / '.shards' / '.0123456789ab-config.json.tmp',
    ]
    for path in leftovers:
        path.write_bytes(b'partial')
    kept = output / '.notes.txt'
    kept.write_text('not ours')
    _run(config)
    assert not [path for path in leftovers if path.exists()]
    assert kept.exists()
