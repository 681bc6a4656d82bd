"""Reading one photo upload (multipart/form-data) into memory, with limits.

Starlette's multipart parser reads the form, limited to one file, a few
known fields (`FIELDS`) and a body of the photo limit plus room for the
framing and the fields. Each field has its own size limit: a hint list
(`HINTS_FIELD`, the JSON of `chromagen_tf/hints.py`) may take
`MAX_HINTS_BYTES`, the others are a few characters. The
parser is built directly rather than through `Request.form()` so that its
spool size can be raised to the body limit: the photo then stays in
memory, never in a temporary file. A client's file name is read by nobody:
only the field names count.

Every problem with a request is an `UploadError`: an HTTP status, a short
machine-readable reason and a message for the person who sent it.
"""

import dataclasses
from typing import Mapping, Optional

from starlette import datastructures
from starlette import formparsers
from starlette import requests
from starlette import types

from chromagen_tf import errors

IMAGE_FIELD = 'image'
RENDER_SIZE_FIELD = 'render_size'
HINTS_FIELD = 'hints'
PREVIEW_FIELD = 'preview'
X_FIELD = 'x'
Y_FIELD = 'y'
# The text fields a form may carry beside the photo; others are refused.
FIELDS = (RENDER_SIZE_FIELD, HINTS_FIELD, PREVIEW_FIELD, X_FIELD, Y_FIELD)

# The hint list's limit: hints.MAX_FILE_HINTS (256) hints of about 50
# bytes of JSON each fit in 13 kB; 64 kB leaves room for indentation.
MAX_HINTS_BYTES = 64 * 1024
# Every other field (a number or a flag) and the count of fields.
_MAX_FIELD_BYTES = 1024
_MAX_FIELDS = len(FIELDS) + 1
# Room for the multipart framing and the fields around the photo.
_FRAMING_BYTES = 64 * 1024 + MAX_HINTS_BYTES
# A refused body is read on (and dropped) up to this many more bytes (see
# `UploadReader.drain`); beyond it the app stops reading.
_DRAIN_BYTES = 32 * 1024 * 1024


class UploadError(errors.ChromaGenError):
    """A request the app cannot use, with the HTTP answer it gets."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Upload:
    """What a request carried: the photo and its text fields by name."""

    image: bytes
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def render_size(self) -> Optional[str]:
        return self.fields.get(RENDER_SIZE_FIELD)

    @property
    def hints(self) -> Optional[str]:
        return self.fields.get(HINTS_FIELD)

    @property
    def preview(self) -> bool:
        return self.fields.get(PREVIEW_FIELD, '').strip() not in ('', '0')


def too_large(max_bytes: int) -> UploadError:
    return UploadError(
        413,
        'upload_too_large',
        f'The upload is larger than the limit of {_megabytes(max_bytes)}.',
    )


def _megabytes(count: int) -> str:
    return f'{count / 1e6:g} MB'


def _bad_request(message: str) -> UploadError:
    return UploadError(400, 'bad_request', message)


class UploadReader:
    """Reads one request's form, counting its body against the limit.

    Attributes:
      max_image_bytes: The largest photo accepted, in bytes.
    """

    def __init__(self, request: requests.Request, max_image_bytes: int):
        self.max_image_bytes = max_image_bytes
        self._request = request
        self._max_body = max_image_bytes + _FRAMING_BYTES
        self._received = 0
        self._complete = False

    async def _receive(self) -> types.Message:
        """The request's ASGI receive, noting where the body ends."""
        message = await self._request.receive()
        if message['type'] == 'http.request':
            self._received += len(message.get('body', b''))
            self._complete = not message.get('more_body', False)
        else:  # http.disconnect
            self._complete = True
        return message

    async def _receive_within_limit(self) -> types.Message:
        message = await self._receive()
        if self._received > self._max_body:
            raise too_large(self.max_image_bytes)
        return message

    async def read(self) -> Upload:
        """Reads a multipart body with an `image` and optional `FIELDS`.

        Returns:
          The photo's bytes and the text of the fields that were sent.

        Raises:
          UploadError: for a body that is not such a form, or is too large.
          starlette.requests.ClientDisconnect: the client went away.
        """
        headers = self._request.headers
        media_type = headers.get('content-type', '').partition(';')[0]
        if media_type.strip().lower() != 'multipart/form-data':
            raise _bad_request(
                'Send the photo as multipart/form-data in a field named '
                f'"{IMAGE_FIELD}".'
            )
        length = headers.get('content-length', '')
        if length.isdigit() and int(length) > self._max_body + _DRAIN_BYTES:
            raise too_large(self.max_image_bytes)  # Not worth reading at all.
        stream = requests.Request(
            self._request.scope, self._receive_within_limit
        ).stream()
        parser = formparsers.MultiPartParser(
            headers,
            stream,
            max_files=1,
            max_fields=_MAX_FIELDS,
            max_part_size=MAX_HINTS_BYTES,
        )
        parser.spool_max_size = self._max_body  # In memory, never on disk.
        try:
            form = await parser.parse()
        except formparsers.MultiPartException as error:
            raise _bad_request(
                f'The form data is malformed: {error.message}'
            ) from None
        try:
            return await _upload_from(form, self.max_image_bytes)
        finally:
            await form.close()

    async def drain(self) -> None:
        """Reads the rest of a refused request's body, up to a limit, and
        drops it: a client that sends its whole body before reading the
        answer then gets the answer rather than a reset connection."""
        limit = self._received + _DRAIN_BYTES
        try:
            while not self._complete and self._received <= limit:
                await self._receive()
        except Exception:  # pylint: disable=broad-except
            return  # The client went away; nobody reads the answer.


async def _upload_from(
    form: datastructures.FormData, max_image_bytes: int
) -> Upload:
    images = form.getlist(IMAGE_FIELD)
    if not images:
        raise _bad_request(f'No "{IMAGE_FIELD}" field in the form.')
    image = images[0]
    if not isinstance(image, datastructures.UploadFile):
        raise _bad_request(
            f'Send the photo as a file in the "{IMAGE_FIELD}" field.'
        )
    data = await image.read()
    if len(data) > max_image_bytes:
        raise too_large(max_image_bytes)
    if not data:
        raise UploadError(400, 'empty_file', 'The uploaded file is empty.')
    fields = {}
    for name in form.keys():
        if name == IMAGE_FIELD:
            continue
        if name not in FIELDS:
            raise _bad_request(
                f'Unknown field "{name}"; the form takes "{IMAGE_FIELD}" '
                f'and {", ".join(f"{field!r}" for field in FIELDS)}.'
            )
        values = form.getlist(name)
        if len(values) > 1:
            raise _bad_request(f'Send one "{name}" field per request.')
        if not isinstance(values[0], str):
            raise _bad_request(f'"{name}" is text, not a file.')
        limit = MAX_HINTS_BYTES if name == HINTS_FIELD else _MAX_FIELD_BYTES
        if len(values[0].encode()) > limit:
            raise _bad_request(
                f'The "{name}" field is longer than {limit} bytes.'
            )
        fields[name] = values[0]
    return Upload(data, fields)
