"""data_prep.open_photos: unpacks real .deb files and copies listed photos.

The packages are built here with dpkg-deb, so the test needs no network;
`apt-get download` itself is the one step it does not run.
"""

import json
import os
import shutil
import subprocess
import sys

import tensorflow as tf

from chromagen_tf import errors
from data_prep import open_photos_lib
from tests import conftest


def _build_deb(directory, package, version, files):
    root = os.path.join(directory, f'{package}-tree')
    os.makedirs(os.path.join(root, 'DEBIAN'))
    with open(os.path.join(root, 'DEBIAN', 'control'), 'w') as f:
        f.write(
            f'Package: {package}\nVersion: {version}\nArchitecture: all\n'
            'Maintainer: ChromaGen tests <tests@example.invalid>\n'
            'Description: photos for a test\n'
        )
    for path, source in files.items():
        target = os.path.join(root, path.lstrip('/'))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(source, target)
    quoted = version.replace(':', '%3a')
    deb = os.path.join(directory, f'{package}_{quoted}_all.deb')
    subprocess.run(
        ['dpkg-deb', '--root-owner-group', '--build', root, deb],
        check=True,
        capture_output=True,
    )
    return deb


class OpenPhotosTest(tf.test.TestCase):
    def setUp(self):
        super().setUp()
        self.debs = os.path.join(self.get_temp_dir(), 'debs')
        os.makedirs(self.debs)
        cat = str(conftest.SAMPLE_PHOTOS / 'chelsea.jpg')
        cup = str(conftest.SAMPLE_PHOTOS / 'coffee.jpg')
        _build_deb(
            self.debs, 'photo-pets', '2:1.0-1', {'/usr/share/pets/cat.jpg': cat}
        )
        puzzle = os.path.join(self.get_temp_dir(), 'cup.pzl')
        with open(cup, 'rb') as f:
            cup_bytes = f.read()
        with open(puzzle, 'wb') as f:
            f.write(
                b'PzlF\n0.1\ncup\nhttp://example.invalid/\n'
                b'cup.map\n5\nmap..'
                + f'cup-t.jpg\n{len(cup_bytes)}\n'.encode()
                + cup_bytes
                + b'cup.png\n3\nPNG'
            )
        _build_deb(
            self.debs,
            'photo-food',
            '0.5',
            {
                '/usr/share/doc/food/cup.jpg': cup,
                '/usr/share/games/food/cup.pzl': puzzle,
            },
        )
        self.photos = [
            {
                'file': 'photos/photo-pets__cat.jpg',
                'package': 'photo-pets',
                'version': '2:1.0-1',
                'original_path': '/usr/share/pets/cat.jpg',
            },
            {
                'file': 'photos/photo-food__cup.jpg',
                'package': 'photo-food',
                'version': '0.5',
                'original_path': '/usr/share/doc/food/cup.jpg',
            },
            {
                'file': 'photos/photo-food__cup-t.jpg',
                'package': 'photo-food',
                'version': '0.5',
                'original_path': '/usr/share/games/food/cup.pzl#cup-t.jpg',
            },
        ]
        self.expected = {
            'photo-pets__cat.jpg': cat,
            'photo-food__cup.jpg': cup,
            'photo-food__cup-t.jpg': cup,
        }

    def test_copies_the_listed_files_and_resumes(self):
        output = os.path.join(self.get_temp_dir(), 'out')
        self.assertEqual(
            open_photos_lib.fetch(self.photos, output, self.debs), 3
        )
        self.assertCountEqual(os.listdir(output), self.expected)
        for name, source in self.expected.items():
            with (
                open(os.path.join(output, name), 'rb') as got,
                open(source, 'rb') as want,
            ):
                self.assertEqual(got.read(), want.read())
        self.assertEqual(
            open_photos_lib.fetch(self.photos, output, self.debs), 0
        )

    def test_missing_file_in_a_package_is_a_clear_error(self):
        photos = [dict(self.photos[0], original_path='/usr/share/pets/dog.jpg')]
        with self.assertRaisesRegex(
            errors.ChromaGenError, 'photo-pets=2:1.0-1 has no .*dog.jpg'
        ):
            open_photos_lib.fetch(
                photos, os.path.join(self.get_temp_dir(), 'x'), self.debs
            )

    def test_command_line(self):
        sources = os.path.join(self.get_temp_dir(), 'sources.json')
        with open(sources, 'w') as f:
            json.dump({'photos': self.photos}, f)
        output = os.path.join(self.get_temp_dir(), 'cli')
        result = subprocess.run(
            [
                sys.executable,
                '-m',
                'data_prep.open_photos',
                f'--output_dir={output}',
                f'--sources={sources}',
                f'--debs_dir={self.debs}',
            ],
            cwd=conftest.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn('3 photos written', result.stdout)
        bad = subprocess.run(
            [
                sys.executable,
                '-m',
                'data_prep.open_photos',
                f'--output_dir={output}',
                f'--sources={output}',
            ],
            cwd=conftest.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(bad.returncode, 2)
        self.assertIn('open_photos: error:', bad.stderr)
        self.assertNotIn('Traceback', bad.stderr)

    def test_the_shipped_manifest_lists_the_training_set(self):
        photos = open_photos_lib.read_sources()
        self.assertLen(photos, 497)
        self.assertLen({photo['package'] for photo in photos}, 38)
        for photo in photos:
            self.assertTrue(photo['licence'])
            self.assertTrue(photo['original_path'].startswith('/'))


if __name__ == '__main__':
    tf.test.main()
