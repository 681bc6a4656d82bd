"""The COCO layout: listing a split, and downloading the official archives.

A COCO folder looks like this, as unpacked from the official zips:

  COCO_DIR/train2017/000000000009.jpg ...
  COCO_DIR/annotations/instances_train2017.json   (or image_info_*.json)

The annotation file is read as a stream, and only its "images" list, so the
448 MB instances_train2017.json costs neither gigabytes of memory nor the
time to build its 860k segmentation entries.

`download_split` fetches the archives a split needs. Downloads resume from a
`.part` file with an HTTP Range request, are checked against the size and
SHA-1 where these are known (otherwise against the server's Content-Length),
and are unpacked into a hidden folder that is renamed into place, so a split
folder either exists complete or not at all.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from typing import Iterator, Mapping, TextIO

from absl import logging

from chromagen_tf import imaging
from data_prep import shard_files

DEFAULT_BASE_URL = 'http://images.cocodataset.org'

# (size in bytes, SHA-1) of the official archives. Sizes are the
# Content-Length served by images.cocodataset.org; the SHA-1 values are
# those published by GluonCV's MS COCO preparation script. None: unknown,
# so only the server's Content-Length is checked.
KNOWN_FILES = {
    'zips/train2017.zip':
        (19336861798, '10ad623668ab00c62c096f0ed636d6aff41faca5'),
    'zips/val2017.zip': (815585330, '4950dc9d00dbe1c933ee0170f5797584351d2a41'),
    'zips/test2017.zip': (None, None),
    'annotations/annotations_trainval2017.zip':
        (252907541, '8551ee4bb5860311e79dace7e79cb91e432e78b3'),
    'annotations/image_info_test2017.zip': (None, None),
}

# The image archive and the annotation archive of each split.
SPLIT_ARCHIVES = {
    'train2017': ('zips/train2017.zip',
                  'annotations/annotations_trainval2017.zip'),
    'val2017': ('zips/val2017.zip', 'annotations/annotations_trainval2017.zip'),
    'test2017': ('zips/test2017.zip', 'annotations/image_info_test2017.zip'),
}

_CHUNK_BYTES = 1 << 20
_LOG_INTERVAL_SECONDS = 10.0
_NOT_WHITESPACE = re.compile(r'\S')


class CocoError(Exception):
    """A COCO folder or annotation file that cannot be used."""


class DownloadError(Exception):
    """A download that failed; the message is one line for the user."""


def find_annotation_file(coco_dir: str, split: str) -> str | None:
    """The annotation file of `split`, or None if there is none."""
    for name in (f'instances_{split}.json', f'image_info_{split}.json'):
        path = os.path.join(coco_dir, 'annotations', name)
        if os.path.isfile(path):
            return path
    return None


def iter_annotation_images(path: str) -> Iterator[dict]:
    """Streams the entries of the top-level "images" list of a COCO file.

    Raises:
      CocoError: if the file is not valid JSON of the expected shape.
    """
    try:
        with open(path, encoding='utf-8') as file:
            yield from _images_from_stream(_JsonStream(file))
    except (ValueError, UnicodeDecodeError) as error:
        raise CocoError(f'cannot parse {path}: {error}') from None


def list_split(coco_dir: str, split: str
               ) -> tuple[list[shard_files.Source], list[dict]]:
    """Lists the photos of one COCO split.

    With an annotation file the photos are those it names, keyed by image id;
    without one, every image in COCO_DIR/SPLIT, keyed by the id in its name.

    Returns:
      (sources, skipped): the photos, and one manifest entry per annotated
      photo whose file is missing.

    Raises:
      CocoError: if the split folder does not exist or the annotations are
        unreadable.
    """
    image_dir = os.path.join(coco_dir, split)
    if not os.path.isdir(image_dir):
        raise CocoError(f'no such folder: {image_dir}')
    present = set(os.listdir(image_dir))
    annotations = find_annotation_file(coco_dir, split)
    if annotations is None:
        logging.info('No annotations for %s: using every image in %s.', split,
                     image_dir)
        return [
            shard_files.Source(_key_from_file_name(name),
                               os.path.join(image_dir, name))
            for name in sorted(present)
            if name.lower().endswith(imaging.IMAGE_EXTENSIONS)
        ], []
    sources, skipped = [], []
    for entry in iter_annotation_images(annotations):
        try:
            key, file_name = str(int(entry['id'])), str(entry['file_name'])
        except (KeyError, TypeError, ValueError):
            raise CocoError(f'{annotations}: bad image entry {entry!r:.200}'
                           ) from None
        if file_name in present:
            sources.append(
                shard_files.Source(key, os.path.join(image_dir, file_name)))
        else:
            skipped.append({'key': key, 'path': file_name, 'split': None,
                            'reason': imaging.MISSING_FILE,
                            'detail': 'named by the annotations, not found'})
    if skipped:
        logging.warning('%d photos named by %s are missing from %s.',
                        len(skipped), annotations, image_dir)
    return sources, skipped


def download_split(coco_dir: str,
                   split: str,
                   base_url: str = DEFAULT_BASE_URL,
                   known_files: Mapping[str, tuple] = KNOWN_FILES,
                   timeout: float = 60.0) -> None:
    """Downloads and unpacks what `split` needs into `coco_dir`.

    Parts already present (the split folder, the annotation file) are not
    fetched again. Archives are deleted once unpacked.

    Raises:
      DownloadError: if the network is unreachable, a file does not match
        its known size or checksum, or an archive is not a valid zip.
    """
    if split not in SPLIT_ARCHIVES:
        raise DownloadError(f'cannot download split {split!r}; known splits: '
                            f'{", ".join(SPLIT_ARCHIVES)}')
    os.makedirs(coco_dir, exist_ok=True)
    images_zip, annotations_zip = SPLIT_ARCHIVES[split]
    wanted = []
    if not os.path.isdir(os.path.join(coco_dir, split)):
        wanted.append(images_zip)
    if find_annotation_file(coco_dir, split) is None:
        wanted.append(annotations_zip)
    for remote in wanted:
        size, sha1 = known_files.get(remote, (None, None))
        archive = os.path.join(coco_dir, os.path.basename(remote))
        download_file(f'{base_url.rstrip("/")}/{remote}', archive, size, sha1,
                      timeout)
        unpack_zip_atomically(archive, coco_dir)
        os.remove(archive)


def download_file(url: str,
                  destination: str,
                  expected_size: int | None = None,
                  expected_sha1: str | None = None,
                  timeout: float = 60.0) -> None:
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
        raise DownloadError(f'{url}: got {size} of {total} bytes; run again '
                            'to resume')
    if expected_sha1 is not None:
        actual = _sha1(partial)
        if actual != expected_sha1:
            os.remove(partial)
            raise DownloadError(f'{url}: SHA-1 {actual} does not match the '
                                f'expected {expected_sha1}; the file was '
                                'deleted, run again to download it again')
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
            raise DownloadError(f'{archive} is not a valid zip ({error}); it '
                                'was deleted, run again') from None
        for name in sorted(os.listdir(staging)):
            source = os.path.join(staging, name)
            target = os.path.join(destination_dir, name)
            if os.path.isdir(source) and os.path.isdir(target):
                for child in sorted(os.listdir(source)):
                    os.replace(os.path.join(source, child),
                               os.path.join(target, child))
            else:
                os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch(url: str, partial: str, offset: int, expected_size: int | None,
           timeout: float) -> int | None:
    """Appends the rest of `url` to `partial`; returns the full size."""
    headers = {'Range': f'bytes={offset}-'} if offset else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            return None  # Nothing left to fetch; the checks below decide.
        raise DownloadError(f'{url}: HTTP {error.code} {error.reason}'
                           ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, 'reason', error)
        host = urllib.parse.urlsplit(url).netloc
        raise DownloadError(f'cannot reach {host} ({reason}): is this machine '
                            'online?') from None
    with response:
        if offset and response.status == 206:
            total = _total_from_content_range(
                response.headers.get('Content-Range', ''), offset, url)
            mode = 'ab'
        else:
            offset, mode = 0, 'wb'  # The server ignored the Range request.
            length = response.headers.get('Content-Length')
            total = int(length) if length is not None else None
        if (expected_size is not None and total is not None and
                total != expected_size):
            raise DownloadError(f'{url}: the server has {total} bytes, '
                                f'expected {expected_size}')
        _copy(response, partial, mode, offset, total, url)
    return total if total is not None else expected_size


def _copy(response, partial: str, mode: str, offset: int, total: int | None,
          url: str) -> None:
    received = offset
    last_log = time.monotonic()
    try:
        with open(partial, mode) as file:
            while chunk := response.read(_CHUNK_BYTES):
                file.write(chunk)
                received += len(chunk)
                if time.monotonic() - last_log > _LOG_INTERVAL_SECONDS:
                    last_log = time.monotonic()
                    logging.info('%s: %d of %s MB', url, received >> 20,
                                 total >> 20 if total else '?')
    except (OSError, socket.timeout) as error:
        raise DownloadError(f'{url}: interrupted after {received} bytes '
                            f'({error}); run again to resume') from None


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


def _key_from_file_name(name: str) -> str:
    stem = os.path.splitext(name)[0]
    return str(int(stem)) if stem.isdigit() else name


def _images_from_stream(stream: '_JsonStream') -> Iterator[dict]:
    stream.expect('{')
    if stream.peek() == '}':
        return
    while True:
        key = stream.value()
        stream.expect(':')
        if key == 'images':
            stream.expect('[')
            if stream.peek() == ']':
                return
            while True:
                yield stream.value()
                if stream.peek() != ',':
                    stream.expect(']')
                    return  # Nothing after "images" is needed.
                stream.expect(',')
        stream.value()  # A value we do not need, e.g. "info".
        if stream.peek() != ',':
            stream.expect('}')
            return
        stream.expect(',')


class _JsonStream:
    """Reads one JSON value at a time from a file, keeping little in memory."""

    def __init__(self, file: TextIO):
        self._file = file
        self._buffer = ''
        self._position = 0
        self._end_of_file = False
        self._decoder = json.JSONDecoder()

    def peek(self) -> str:
        """The next non-whitespace character, or '' at the end."""
        while True:
            match = _NOT_WHITESPACE.search(self._buffer, self._position)
            if match:
                self._position = match.start()
                return self._buffer[self._position]
            self._position = len(self._buffer)
            if not self._read_more(0):
                return ''

    def expect(self, character: str) -> None:
        found = self.peek()
        if found != character:
            raise ValueError(f'expected {character!r}, found {found!r}')
        self._position += 1

    def value(self):
        self.peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer,
                                                      self._position)
                # A number cut by the buffer's end would decode too early.
                if end < len(self._buffer) or self._end_of_file:
                    self._position = end
                    return value
            except json.JSONDecodeError:
                if self._end_of_file:
                    raise
            # Read at least as much again, so a huge value costs O(n).
            self._read_more(len(self._buffer) - self._position)

    def _read_more(self, at_least: int) -> bool:
        if self._end_of_file:
            return False
        self._buffer = self._buffer[self._position:]
        self._position = 0
        chunk = self._file.read(max(_CHUNK_BYTES, at_least))
        if not chunk:
            self._end_of_file = True
            return False
        self._buffer += chunk
        return True
