"""Tests for data_prep.beam_pipeline and make_tfrecords --runner.

The Beam DirectRunner converts the bundled photos plus broken files, and its
shards must equal, byte for byte, those of the in-process converter. The
gs:// code path runs against TensorFlow's in-memory ram:// file system, which
the in-process DirectRunner shares with the test.
"""

import dataclasses
import json
import shutil
import subprocess
import sys
import uuid

from PIL import Image
import pytest
import tensorflow as tf

from chromagen_tf.data import imaging
from data_prep import beam_pipeline
from data_prep import convert_config
from data_prep import convert_lib
from data_prep import shard_files
from tests import conftest

_PHOTOS = sorted(conftest.SAMPLE_PHOTOS.glob('*.jpg'))
_SETTINGS = dict(
    image_size=64,
    min_size=64,
    images_per_shard=4,
    val_fraction=0.25,
    num_processes=0,
)


@pytest.fixture(name='photo_dir')
def _photo_dir(tmp_path):
    """The bundled photos, a zero-byte JPEG and a gray photo in a subfolder."""
    root = tmp_path / 'photos'
    (root / 'more').mkdir(parents=True)
    for photo in _PHOTOS:
        shutil.copy(photo, root / photo.name)
    (root / 'empty.jpg').write_bytes(b'')
    gray = Image.open(_PHOTOS[0]).convert('L').convert('RGB')
    gray.save(root / 'more' / 'gray.jpg')
    return root


def _in_process(image_dir, output_dir) -> dict:
    config = convert_config.ConvertConfig(
        output_dir=str(output_dir), image_dir=str(image_dir), **_SETTINGS
    )
    return convert_lib.run(
        config, shard_files.list_image_dir(str(image_dir)), show_progress=False
    )


def _beam(image_dir, output_dir, **overrides) -> dict:
    config = convert_config.ConvertConfig(
        output_dir=str(output_dir),
        image_dir=str(image_dir),
        **{**_SETTINGS, **overrides},
    )
    sources = shard_files.list_image_dir(str(image_dir))
    return beam_pipeline.run(config, sources, runner='DirectRunner')


def _shards(output_dir) -> dict[str, bytes]:
    names = tf.io.gfile.glob(f'{output_dir}/*.tfrecord')
    return {
        name.rsplit('/', 1)[-1]: tf.io.gfile.GFile(name, 'rb').read()
        for name in names
    }


def _without_config(manifest: dict) -> dict:
    return {key: value for key, value in manifest.items() if key != 'config'}


def test_direct_runner_writes_the_same_shards(tmp_path, photo_dir):
    expected = _in_process(photo_dir, tmp_path / 'in_process')
    manifest = _beam(photo_dir, tmp_path / 'beam')
    reference = _shards(tmp_path / 'in_process')
    # 11 train and 4 val inputs, of which 13 photos and 2 skips.
    assert sorted(reference) == [
        'train-00000-of-00003.tfrecord',
        'train-00001-of-00003.tfrecord',
        'train-00002-of-00003.tfrecord',
        'val-00000-of-00001.tfrecord',
    ]
    assert _shards(tmp_path / 'beam') == reference
    assert _without_config(manifest) == _without_config(expected)
    assert manifest['skipped_counts'] == {
        imaging.EMPTY_FILE: 1,
        imaging.GRAYSCALE: 1,
    }
    assert sorted(entry['path'] for entry in manifest['skipped']) == [
        'empty.jpg',
        'more/gray.jpg',
    ]
    on_disk = json.loads((tmp_path / 'beam' / 'manifest.json').read_text())
    assert on_disk == manifest
    leftovers = [
        path.name
        for path in (tmp_path / 'beam').iterdir()
        if path.name.endswith('.tmp')
    ]
    assert not leftovers


def test_remote_folders(tmp_path, photo_dir):
    remote = f'ram://beam-test-{uuid.uuid4().hex}'
    for path in photo_dir.rglob('*'):
        if path.is_file():
            target = f'{remote}/photos/{path.relative_to(photo_dir)}'
            tf.io.gfile.makedirs(target.rsplit('/', 1)[0])
            tf.io.gfile.copy(str(path), target)
    expected = _in_process(photo_dir, tmp_path / 'in_process')
    manifest = _beam(f'{remote}/photos', f'{remote}/out')
    assert _shards(f'{remote}/out') == _shards(tmp_path / 'in_process')
    assert _without_config(manifest) == _without_config(expected)
    with tf.io.gfile.GFile(f'{remote}/out/manifest.json') as file:
        assert json.load(file) == manifest


def test_finishes_a_conversion_started_in_process(tmp_path, photo_dir):
    output = tmp_path / 'out'
    expected = _in_process(photo_dir, output)
    reference = _shards(output)
    (output / 'train-00001-of-00003.tfrecord').unlink()
    (output / 'manifest.json').unlink()
    manifest = _beam(photo_dir, output)
    assert _shards(output) == reference
    assert manifest == expected
    with pytest.raises(convert_lib.ConversionError, match='image_size'):
        _beam(photo_dir, output, image_size=32)


def test_in_process_finishes_a_conversion_started_by_beam(tmp_path, photo_dir):
    output = tmp_path / 'out'
    expected = _beam(photo_dir, output)
    reference = _shards(output)
    # As a killed Beam attempt leaves it: under its unique temporary name.
    (output / 'val-00000-of-00001.tfrecord').rename(
        output / '.0123456789ab-val-00000-of-00001.tfrecord.tmp'
    )
    (output / 'manifest.json').unlink()
    manifest = _in_process(photo_dir, output)
    assert _shards(output) == reference
    assert manifest == expected
    assert not [
        path.name for path in output.iterdir() if path.name.endswith('.tmp')
    ]


def test_strict_fails_on_a_broken_photo(tmp_path, photo_dir):
    with pytest.raises(
        convert_lib.ConversionError,
        match=r'DirectRunner pipeline failed: .*empty\.jpg: '
        r'empty_file',
    ):
        _beam(photo_dir, tmp_path / 'strict', strict=True)
    assert not (tmp_path / 'strict' / 'manifest.json').exists()
    # Grayscale photos are filtered, not errors, as in the in-process path.
    (photo_dir / 'empty.jpg').unlink()
    manifest = _beam(photo_dir, tmp_path / 'strict_ok', strict=True)
    assert manifest['skipped_counts'] == {imaging.GRAYSCALE: 1}


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'data_prep.make_tfrecords', *args],
        cwd=conftest.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow  # A converter process running Beam.
def test_command_line(tmp_path, photo_dir):
    output = tmp_path / 'cli'
    settings = [f'--{name}={value}' for name, value in _SETTINGS.items()]
    result = _cli(
        f'--image_dir={photo_dir}',
        f'--output_dir={output}',
        '--runner=DirectRunner',
        *settings,
        '--beam_options=--direct_num_workers=1 --direct_running_mode=in_memory',
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        'skipped: 2 (empty_file=1, grayscale=1)'
    )
    _in_process(photo_dir, tmp_path / 'in_process')
    assert _shards(output) == _shards(tmp_path / 'in_process')
    # The manifest records how the shards were made, runner included.
    config = json.loads((output / 'manifest.json').read_text())['config']
    assert config == dataclasses.asdict(
        convert_config.ConvertConfig(
            output_dir=str(output),
            image_dir=str(photo_dir),
            **_SETTINGS,
            runner='DirectRunner',
            beam_options=(
                '--direct_num_workers=1 --direct_running_mode=in_memory'
            ),
        )
    )
    assert config['runner'] == 'DirectRunner'


@pytest.mark.slow  # A converter process, over 10 s.
def test_without_runner_beam_is_not_imported(tmp_path, photo_dir):
    # One subprocess checks both a plain conversion and a bad flag.
    script = f'''
import sys
from absl import flags
from data_prep import make_tfrecords
flags.FLAGS(['make_tfrecords', '--image_dir={photo_dir}',
             '--output_dir={tmp_path / "plain"}', '--num_processes=0'])
make_tfrecords.main(['make_tfrecords'])
print('beam imported:', 'apache_beam' in sys.modules)
flags.FLAGS.runner = 'TurboRunner'
make_tfrecords.main(['make_tfrecords'])
'''
    result = subprocess.run(
        [sys.executable, '-c', script],
        cwd=conftest.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 'beam imported: False' in result.stdout, result.stderr
    assert result.returncode == 2
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'make_tfrecords: error: --runner must be one of DirectRunner, '
        'DataflowRunner, FlinkRunner, SparkRunner, not TurboRunner'
    )
    assert (tmp_path / 'plain' / 'manifest.json').exists()
