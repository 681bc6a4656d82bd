"""Copying the open photos out of their Debian packages.

The library side of `python -m data_prep.open_photos`: `read_sources` reads
the manifest (`data_prep/open_photos_sources.json`), `fetch` downloads,
unpacks and copies. See data_prep/open_photos.py for the command.
"""

import glob
import json
import os
import shutil
import subprocess
import tempfile

import tqdm

from chromagen_tf import errors

SOURCES = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'open_photos_sources.json'
)


def read_sources(path: str = SOURCES) -> list[dict]:
    """The photo entries of a manifest."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)['photos']
    except (OSError, ValueError, KeyError) as error:
        raise errors.UsageError(
            f'{path}: not a photo manifest ({error})'
        ) from None


def _run(command: list[str], cwd: str) -> None:
    try:
        subprocess.run(
            command, cwd=cwd, check=True, capture_output=True, text=True
        )
    except FileNotFoundError as error:
        raise errors.ChromaGenError(
            f'{command[0]} is not installed: this needs a Debian system '
            f'({error}).'
        ) from None
    except subprocess.CalledProcessError as error:
        raise errors.ChromaGenError(
            f'{" ".join(command)} failed: '
            f'{errors.first_line(error.stderr or error.stdout)}'
        ) from None


def read_pzl_member(path: str, member: str) -> bytes:
    """A member of a jigzo puzzle file.

    The format: four header lines ("PzlF", version, name, URL), then for
    each member a name line, a byte-count line and that many bytes.
    """
    with open(path, 'rb') as f:
        data = f.read()
    position = 0
    try:
        for _ in range(4):
            position = data.index(b'\n', position) + 1
        while position < len(data):
            end = data.index(b'\n', position)
            name = data[position:end].decode('utf-8', 'replace')
            end_size = data.index(b'\n', end + 1)
            size = int(data[end + 1 : end_size])
            start = end_size + 1
            if name == member:
                return data[start : start + size]
            position = start + size
    except ValueError:
        pass
    raise errors.ChromaGenError(f'{path} holds no {member}')


def _copy_out(unpacked: str, original_path: str, target: str) -> None:
    path, _, member = original_path.partition('#')
    source = os.path.join(unpacked, path.lstrip('/'))
    if not os.path.isfile(source):
        raise FileNotFoundError(source)
    if member:
        with open(target + '.partial', 'wb') as f:
            f.write(read_pzl_member(source, member))
    else:
        shutil.copyfile(source, target + '.partial')
    os.replace(target + '.partial', target)


def _find_deb(directory: str, package: str, version: str) -> str | None:
    # apt-get download names files PACKAGE_VERSION_ARCH.deb, with the epoch's
    # colon written as %3a.
    quoted = version.replace(':', '%3a')
    for pattern in (f'{package}_{quoted}_*.deb', f'{package}_{version}_*.deb'):
        found = sorted(glob.glob(os.path.join(directory, pattern)))
        if found:
            return found[0]
    return None


def fetch(
    photos: list[dict], output_dir: str, debs_dir: str | None = None
) -> int:
    """Copies every listed photo into output_dir; returns how many it wrote.

    Raises:
      errors.ChromaGenError: a package cannot be had, or lacks a listed file.
    """
    os.makedirs(output_dir, exist_ok=True)
    by_package = {}
    for photo in photos:
        target = os.path.join(output_dir, os.path.basename(photo['file']))
        if not os.path.exists(target):
            by_package.setdefault(
                (photo['package'], photo['version']), []
            ).append(photo)
    written = 0
    bar = tqdm.tqdm(total=len(by_package), unit='package', desc='open photos')
    with tempfile.TemporaryDirectory(prefix='open-photos-') as work:
        for (package, version), wanted in sorted(by_package.items()):
            deb = debs_dir and _find_deb(debs_dir, package, version)
            if not deb:
                _run(['apt-get', 'download', f'{package}={version}'], work)
                deb = _find_deb(work, package, version)
            if not deb:
                raise errors.ChromaGenError(
                    f'no .deb of {package}={version} was found.'
                )
            unpacked = os.path.join(work, package)
            _run(['dpkg-deb', '-x', deb, unpacked], work)
            for photo in wanted:
                target = os.path.join(
                    output_dir, os.path.basename(photo['file'])
                )
                try:
                    _copy_out(unpacked, photo['original_path'], target)
                except FileNotFoundError:
                    raise errors.ChromaGenError(
                        f'{package}={version} has no {photo["original_path"]}'
                    ) from None
                written += 1
            shutil.rmtree(unpacked)
            bar.update(1)
    bar.close()
    return written
