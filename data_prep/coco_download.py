"""Downloading a COCO split: the official archives, resumably.

`download_split` fetches the archives a split needs into a COCO folder (the
layout `coco` reads). Downloads resume from a `.part` file with an HTTP
Range request, are checked against the size and SHA-1 where these are known
(otherwise against the server's Content-Length), and are unpacked into a
hidden folder that is renamed into place, so a split folder either exists
complete or not at all.
"""

import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from typing import Mapping
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from absl import logging

from chromagen_tf import errors
from data_prep import coco

DEFAULT_BASE_URL = 'http://images.cocodataset.org'

# (size in bytes, SHA-1) of the official archives. Sizes are the
# Content-Length served by images.cocodataset.org; the SHA-1 values are
# those published by GluonCV's MS COCO preparation script. None: unknown,
# so only the server's Content-Length is checked.
KNOWN_FILES = {
    'zips/train2017.zip': (
        19336861798,
        '10ad623668ab00c62c096f0ed636d6aff41faca5',
    ),
    'zips/val2017.zip': (815585330, '4950dc9d00dbe1c933ee0170f5797584351d2a41'),
    'zips/test2017.zip': (None, None),
    'annotations/annotations_trainval2017.zip': (
        252907541,
        '8551ee4bb5860311e79dace7e79cb91e432e78b3',
    ),
    'annotations/image_info_test2017.zip': (None, None),
}

# The image archive and the annotation archive of each split.
SPLIT_ARCHIVES = {
    'train2017': (
        'zips/train2017.zip',
        'annotations/annotations_trainval2017.zip',
    ),
    'val2017': ('zips/val2017.zip', 'annotations/annotations_trainval2017.zip'),
    'test2017': ('zips/test2017.zip', 'annotations/image_info_test2017.zip'),
}

# What downloading and hashing read at a time.
_CHUNK_BYTES = 1 << 20
_LOG_INTERVAL_SECONDS = 10.0


class DownloadError(errors.ChromaGenError):
    """A download that failed; the message is one line for the user."""


def download_split(
    coco_dir: str,
    split: str,
    base_url: str = DEFAULT_BASE_URL,
    known_files: Mapping[str, tuple] = KNOWN_FILES,
    timeout: float = 60.0,
) -> None:
    """Downloads and unpacks what `split` needs into `coco_dir`.

    Parts already present (the split folder, the annotation file) are not
    fetched again. Archives are deleted once unpacked.

    Raises:
      DownloadError: if the network is unreachable, a file does not match
        its known size or checksum, or an archive is not a valid zip.
    """
    if split not in SPLIT_ARCHIVES:
        raise DownloadError(
            f'cannot download split {split!r}; known splits: '
            f'{", ".join(SPLIT_ARCHIVES)}'
        )
    os.makedirs(coco_dir, exist_ok=True)
    images_zip, annotations_zip = SPLIT_ARCHIVES[split]
    wanted = []
    if not os.path.isdir(os.path.join(coco_dir, split)):
        wanted.append(images_zip)
    if coco.find_annotation_file(coco_dir, split) is None:
        wanted.append(annotations_zip)
    for remote in wanted:
        size, sha1 = known_files.get(remote, (None, None))
        archive = os.path.join(coco_dir, os.path.basename(remote))
        download_file(
            f'{base_url.rstrip("/")}/{remote}', archive, size, sha1, timeout
        )
        unpack_zip_atomically(archive, coco_dir)
        os.remove(archive)


def download_file(
    url: str,
    destination: str,
    expected_size: int | None = None,
    expected_sha1: str | None = None,
    timeout: float = 60.0,
) -> None:
    """Downloads `url` to `destination`, resuming from `destination`.part.

    Args:
      url: What to fetch.
      destination: Where the verified file ends up.
      expected_size: Size in bytes, if known; otherwise the server's
        Content-Length is the reference.
      expected_sha1: Hex SHA-1, if known.
      timeout: Seconds to wait for the server.

    Raises:
      DownloadError: with a one-line explanation.
    """
    if os.path.exists(destination):
        return  # Only verified downloads are ever renamed to this name.
    partial = destination + '.part'
    offset = os.path.getsize(partial) if os.path.exists(partial) else 0
    if expected_size is not None and offset > expected_size:
        os.remove(partial)
        offset = 0
    if expected_size is None or offset < expected_size:
        total = _fetch(url, partial, offset, expected_size, timeout)
    else:
        total = expected_size
    size = os.path.getsize(partial)
    if total is not None and size != total:
        raise DownloadError(
            f'{url}: got {size} of {total} bytes; run again to resume'
        )
    if expected_sha1 is not None:
        actual = _sha1(partial)
        if actual != expected_sha1:
            os.remove(partial)
            raise DownloadError(
                f'{url}: SHA-1 {actual} does not match the '
                f'expected {expected_sha1}; the file was '
                'deleted, run again to download it again'
            )
    os.replace(partial, destination)


def unpack_zip_atomically(archive: str, destination_dir: str) -> None:
    """Extracts a zip next to its final place, then renames it into place.

    Each top-level entry of the archive appears at once; a top-level folder
    that already exists (such as annotations/ shared by two archives) gets
    the new files moved in one by one.

    Raises:
      DownloadError: if the archive is not a valid zip (it is deleted).
    """
    for name in os.listdir(destination_dir):
        if name.startswith('.unpack-'):  # Left by a killed run.
            shutil.rmtree(os.path.join(destination_dir, name), True)
    staging = tempfile.mkdtemp(prefix='.unpack-', dir=destination_dir)
    try:
        try:
            with zipfile.ZipFile(archive) as zipped:
                # extractall drops absolute paths and '..' components.
                zipped.extractall(staging)
        except zipfile.BadZipFile as error:
            os.remove(archive)
            raise DownloadError(
                f'{archive} is not a valid zip ({error}); it '
                'was deleted, run again'
            ) from None
        for name in sorted(os.listdir(staging)):
            source = os.path.join(staging, name)
            target = os.path.join(destination_dir, name)
            if os.path.isdir(source) and os.path.isdir(target):
                for child in sorted(os.listdir(source)):
                    os.replace(
                        os.path.join(source, child), os.path.join(target, child)
                    )
            else:
                os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch(
    url: str,
    partial: str,
    offset: int,
    expected_size: int | None,
    timeout: float,
) -> int | None:
    """Appends the rest of `url` to `partial`; returns the full size."""
    headers = {'Range': f'bytes={offset}-'} if offset else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            return None  # Nothing left to fetch; the checks below decide.
        raise DownloadError(
            f'{url}: HTTP {error.code} {error.reason}'
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, 'reason', error)
        host = urllib.parse.urlsplit(url).netloc
        raise DownloadError(
            f'cannot reach {host} ({reason}): is this machine online?'
        ) from None
    with response:
        if offset and response.status == 206:
            total = _total_from_content_range(
                response.headers.get('Content-Range', ''), offset, url
            )
            mode = 'ab'
        else:
            offset, mode = 0, 'wb'  # The server ignored the Range request.
            length = response.headers.get('Content-Length')
            total = int(length) if length is not None else None
        if (
            expected_size is not None
            and total is not None
            and total != expected_size
        ):
            raise DownloadError(
                f'{url}: the server has {total} bytes, expected {expected_size}'
            )
        _copy(response, partial, mode, offset, total, url)
    return total if total is not None else expected_size


def _copy(
    response, partial: str, mode: str, offset: int, total: int | None, url: str
) -> None:
    received = offset
    last_log = time.monotonic()
    try:
        with open(partial, mode) as file:
            while chunk := response.read(_CHUNK_BYTES):
                file.write(chunk)
                received += len(chunk)
                if time.monotonic() - last_log > _LOG_INTERVAL_SECONDS:
                    last_log = time.monotonic()
                    logging.info(
                        '%s: %d of %s MB',
                        url,
                        received >> 20,
                        total >> 20 if total else '?',
                    )
    except (OSError, socket.timeout) as error:
        raise DownloadError(
            f'{url}: interrupted after {received} bytes '
            f'({error}); run again to resume'
        ) from None


def _total_from_content_range(header: str, offset: int, url: str) -> int | None:
    match = re.fullmatch(r'bytes (\d+)-\d+/(\d+|\*)', header.strip())
    if not match or int(match.group(1)) != offset:
        raise DownloadError(f'{url}: unexpected Content-Range {header!r}')
    return None if match.group(2) == '*' else int(match.group(2))


def _sha1(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, 'rb') as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
