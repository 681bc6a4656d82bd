"""The COCO layout: listing the photos of a split.

A COCO folder looks like this, as unpacked from the official zips (which
`coco_download` fetches):

  COCO_DIR/train2017/000000000009.jpg ...
  COCO_DIR/annotations/instances_train2017.json   (or image_info_*.json)

The annotation file is read as a stream, and only its "images" list, so the
448 MB instances_train2017.json costs neither gigabytes of memory nor the
time to build its 860k segmentation entries.
"""

import json
import os
import re
from typing import Iterator, TextIO

from absl import logging

from chromagen_tf import errors
from chromagen_tf.data import image_folders
from chromagen_tf.data import imaging
from data_prep import shard_files

# What the annotation reader reads at a time.
_CHUNK_BYTES = 1 << 20
_NOT_WHITESPACE = re.compile(r'\S')


class CocoError(errors.ChromaGenError):
    """A COCO folder or annotation file that cannot be used."""


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


def list_split(
    coco_dir: str, split: str
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
        logging.info(
            'No annotations for %s: using every image in %s.', split, image_dir
        )
        return [
            shard_files.Source(
                _key_from_file_name(name), os.path.join(image_dir, name)
            )
            for name in sorted(present)
            if image_folders.is_image_name(name)
        ], []
    sources, skipped = [], []
    for entry in iter_annotation_images(annotations):
        try:
            key, file_name = str(int(entry['id'])), str(entry['file_name'])
        except (KeyError, TypeError, ValueError):
            raise CocoError(
                f'{annotations}: bad image entry {entry!r:.200}'
            ) from None
        if file_name in present:
            sources.append(
                shard_files.Source(key, os.path.join(image_dir, file_name))
            )
        else:
            skipped.append(
                {
                    'key': key,
                    'path': file_name,
                    'split': None,
                    'reason': imaging.MISSING_FILE,
                    'detail': 'named by the annotations, not found',
                }
            )
    if skipped:
        logging.warning(
            '%d photos named by %s are missing from %s.',
            len(skipped),
            annotations,
            image_dir,
        )
    return sources, skipped


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
                value, end = self._decoder.raw_decode(
                    self._buffer, self._position
                )
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
        self._buffer = self._buffer[self._position :]
        self._position = 0
        chunk = self._file.read(max(_CHUNK_BYTES, at_least))
        if not chunk:
            self._end_of_file = True
            return False
        self._buffer += chunk
        return True
