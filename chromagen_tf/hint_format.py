"""The colour-hint format, read and written without TensorFlow.

One format for every way in (colorize --hints, the web app, the serving
client):

    {"hints": [{"x": 120, "y": 45, "color": "#d04020"}]}

x and y are pixels of the photo as displayed (after EXIF orientation),
origin at the top-left; color is sRGB. `chromagen_tf/hints.py` turns hints
into what a model reads.
"""

import dataclasses
import json
import math
import re
from typing import Any, Sequence

from chromagen_tf import errors

# The largest number of hints a hint file may hold.
MAX_FILE_HINTS = 256
SIDECAR_SUFFIX = '.hints.json'

_HEX = re.compile(r'^#?([0-9a-fA-F]{6})$')


class HintFormatError(errors.UsageError, ValueError):
    """A hint file or field that does not follow the hint format."""


@dataclasses.dataclass(frozen=True)
class Hint:
    """A point of the photo as displayed, and its sRGB colour."""

    x: float
    y: float
    rgb: tuple[int, int, int]

    @property
    def hex(self) -> str:
        return '#{:02x}{:02x}{:02x}'.format(*self.rgb)


def parse_color(value: Any) -> tuple[int, int, int]:
    """'#d04020' (or 'd04020') -> (208, 64, 32)."""
    match = _HEX.match(value) if isinstance(value, str) else None
    if not match:
        raise HintFormatError(
            f'colour {value!r} is not an sRGB hex colour like "#d04020"'
        )
    digits = match.group(1)
    return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))


def parse(document: Any, source: str = 'hints') -> list[Hint]:
    """Reads the hint format from JSON text or its parsed object.

    Raises:
      HintFormatError: naming `source` and the first problem.
    """
    try:
        if isinstance(document, (str, bytes)):
            document = json.loads(document)
        if not isinstance(document, dict) or not isinstance(
            document.get('hints'), list
        ):
            raise HintFormatError(
                'expected {"hints": [{"x": ..., "y": ..., '
                '"color": "#rrggbb"}, ...]}'
            )
        entries = document['hints']
        if len(entries) > MAX_FILE_HINTS:
            raise HintFormatError(
                f'{len(entries)} hints; at most {MAX_FILE_HINTS} are read'
            )
        hints = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise HintFormatError(f'hint {index} is not an object')
            for key in ('x', 'y'):
                value = entry.get(key)
                if (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not math.isfinite(value)
                ):
                    raise HintFormatError(
                        f'hint {index} has no numeric "{key}"'
                    )
            try:
                rgb = parse_color(entry.get('color'))
            except HintFormatError as error:
                raise HintFormatError(f'hint {index}: {error}') from None
            hints.append(Hint(float(entry['x']), float(entry['y']), rgb))
        return hints
    except json.JSONDecodeError as error:
        raise HintFormatError(f'{source}: not JSON ({error})') from None
    except HintFormatError as error:
        raise HintFormatError(f'{source}: {error}') from None


def read_file(path: str) -> list[Hint]:
    """Reads a hint file. Raises HintFormatError naming the file."""
    try:
        with open(path, 'rb') as f:
            text = f.read()
    except FileNotFoundError:
        raise errors.NotFoundError(f'{path}: no such hint file') from None
    return parse(text, path)


def sidecar_path(image_path: str) -> str:
    """photo.jpg -> photo.jpg.hints.json."""
    return image_path + SIDECAR_SUFFIX


def to_json(hints: Sequence[Hint]) -> str:
    """The hint format, for a sidecar or an API field."""
    return (
        json.dumps(
            {
                'hints': [
                    {
                        'x': _plain_number(hint.x),
                        'y': _plain_number(hint.y),
                        'color': hint.hex,
                    }
                    for hint in hints
                ]
            },
            indent=1,
        )
        + '\n'
    )


def _plain_number(value: float):
    return int(value) if float(value).is_integer() else round(value, 2)


def check_inside(
    hints: Sequence[Hint], width: int, height: int, source: str = 'hints'
) -> None:
    """Raises HintFormatError for a point outside a width x height photo."""
    for index, hint in enumerate(hints):
        if not (0 <= hint.x < width and 0 <= hint.y < height):
            raise HintFormatError(
                f'{source}: hint {index} at ({hint.x:g}, {hint.y:g}) is '
                f'outside the {width}x{height} photo'
            )
