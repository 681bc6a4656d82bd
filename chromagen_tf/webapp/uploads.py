"""Reading one photo upload (multipart/form-data) into memory, with limits.

Starlette's own form parser spools any file above 1 MB to a temporary file
on disk. The app never writes an upload anywhere, so it parses the body
itself with python-multipart's streaming parser and keeps the photo's bytes
in memory, stopping as soon as the body passes the size limit. A client's
file name is read by nobody: only the field names count.

Every problem with a request is an `UploadError`: an HTTP status, a short
machine-readable reason and a message for the person who sent it.
"""

import dataclasses
from typing import AsyncIterator, Optional

import python_multipart
from python_multipart import exceptions as multipart_exceptions

from chromagen_tf import errors

IMAGE_FIELD = 'image'
RENDER_SIZE_FIELD = 'render_size'

# Room for the multipart framing and the small fields around the photo.
_FRAMING_BYTES = 64 * 1024
# A small field's value (render_size) never needs more than this.
_MAX_FIELD_BYTES = 64
# A refused body is read on (and dropped) up to this many more bytes (see
# `drain`); beyond it the app stops reading.
_DRAIN_BYTES = 32 * 1024 * 1024
_MAX_PARTS = 8


class UploadError(errors.ChromaGenError):
    """A request the app cannot use, with the HTTP answer it gets."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Upload:
    """What a colorize request carried."""
    image: bytes
    render_size: Optional[str]


def too_large(max_bytes: int) -> UploadError:
    return UploadError(
        413, 'upload_too_large',
        f'The upload is larger than the limit of {_megabytes(max_bytes)}.')


def _megabytes(count: int) -> str:
    return f'{count / 1e6:g} MB'


class _Parts:
    """python-multipart callbacks that keep the fields this app reads."""

    def __init__(self, max_image_bytes: int):
        self.max_image_bytes = max_image_bytes
        self.fields: dict[str, bytearray] = {}
        self.count = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._name: Optional[str] = None

    def callbacks(self) -> dict:
        return {
            'on_part_begin': self._part_begin,
            'on_header_field': self._append(self._header_field),
            'on_header_value': self._append(self._header_value),
            'on_header_end': self._header_end,
            'on_headers_finished': self._headers_finished,
            'on_part_data': self._part_data,
        }

    @staticmethod
    def _append(buffer: bytearray):
        def append(data: bytes, start: int, end: int) -> None:
            buffer.extend(data[start:end])
        return append

    def _part_begin(self) -> None:
        self.count += 1
        if self.count > _MAX_PARTS:
            raise UploadError(400, 'bad_request',
                              'The request has too many form fields.')
        self._headers = {}
        self._name = None

    def _header_end(self) -> None:
        name = bytes(self._header_field).decode('latin-1').strip().lower()
        self._headers[name] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = python_multipart.multipart.parse_options_header(
            self._headers.get('content-disposition', b''))
        name = options.get(b'name', b'').decode('latin-1')
        if name in (IMAGE_FIELD, RENDER_SIZE_FIELD):
            if name in self.fields:
                raise UploadError(
                    400, 'bad_request',
                    f'Send one "{name}" field per request.')
            self.fields[name] = bytearray()
            self._name = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._name is None:
            return  # A field this app does not read.
        value = self.fields[self._name]
        value.extend(data[start:end])
        if self._name == IMAGE_FIELD:
            if len(value) > self.max_image_bytes:
                raise too_large(self.max_image_bytes)
        elif len(value) > _MAX_FIELD_BYTES:
            raise UploadError(400, 'bad_request',
                              f'The "{self._name}" field is too long.')


async def drain(chunks: AsyncIterator[bytes]) -> None:
    """Reads the rest of a refused request's body, up to a limit, and drops
    it: a client that sends its whole body before reading the answer then
    gets the answer rather than a reset connection."""
    drained = 0
    try:
        async for chunk in chunks:
            drained += len(chunk)
            if drained > _DRAIN_BYTES:
                return
    except Exception:  # pylint: disable=broad-except
        return  # The client went away; nobody reads the answer.


async def read_upload(content_type: str, content_length: Optional[str],
                      chunks: AsyncIterator[bytes],
                      max_image_bytes: int) -> Upload:
    """Reads a multipart body with an `image` and an optional `render_size`.

    Args:
      content_type: The request's Content-Type header.
      content_length: Its Content-Length header, if any.
      chunks: The body, as it arrives.
      max_image_bytes: The largest photo accepted, in bytes.

    Returns:
      The photo's bytes and the render_size field's text (None if absent).

    Raises:
      UploadError: for a body that is not such a form, or is too large.
    """
    media_type, options = python_multipart.multipart.parse_options_header(
        content_type)
    boundary = options.get(b'boundary')
    if media_type != b'multipart/form-data' or not boundary:
        raise UploadError(
            400, 'bad_request',
            'Send the photo as multipart/form-data in a field named '
            f'"{IMAGE_FIELD}".')
    max_body = max_image_bytes + _FRAMING_BYTES
    if content_length and content_length.isdigit() and (
            int(content_length) > max_body + _DRAIN_BYTES):
        raise too_large(max_image_bytes)  # Not worth reading at all.
    parts = _Parts(max_image_bytes)
    try:
        parser = python_multipart.MultipartParser(
            boundary, parts.callbacks())
    except (ValueError, multipart_exceptions.FormParserError) as error:
        raise UploadError(400, 'bad_request',
                          f'Bad multipart boundary: {error}') from None
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > max_body:
                raise too_large(max_image_bytes)
            parser.write(chunk)
        parser.finalize()
    except multipart_exceptions.MultipartParseError as error:
        raise UploadError(400, 'bad_request',
                          f'The form data is malformed: {error}') from None
    image = parts.fields.get(IMAGE_FIELD)
    if image is None:
        raise UploadError(400, 'bad_request',
                          f'No "{IMAGE_FIELD}" field in the form.')
    if not image:
        raise UploadError(400, 'empty_file', 'The uploaded file is empty.')
    render_size = parts.fields.get(RENDER_SIZE_FIELD)
    return Upload(
        bytes(image),
        None if render_size is None else render_size.decode('latin-1'))
