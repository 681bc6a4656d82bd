"""Comparison sheets: gray input | colorized | original, in a tidy grid.

The colorize tool's `--compare` writes one image per photo, its three
panels side by side at the photo's own size. `grid` lays several of them
out for a page: each panel is centre-cropped to 4:3 and scaled to one
size, photos go `columns` to a row, and a header names the panels, so the
sheet has no empty areas whatever the photos' shapes.
"""

import os
from typing import Sequence

from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

PANEL_TITLES = ('gray input', 'ChromaGen', 'original')
_GAP = 6
_HEADER = 24
_WHITE = (255, 255, 255)


def _crop_to_aspect(image: Image.Image, aspect: float) -> Image.Image:
    width, height = image.size
    if width / height > aspect:
        new_width = round(height * aspect)
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = round(width / aspect)
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


def panels_of(compare_image: Image.Image, count: int = 3) -> list[Image.Image]:
    """The `count` equal-width panels of a --compare image.

    Colour photos give three (gray, colorized, original); gray ones two.
    """
    width, height = compare_image.size
    panel = width // count
    return [
        compare_image.crop((i * panel, 0, (i + 1) * panel, height))
        for i in range(count)
    ]


def grid(
    compare_paths: Sequence[str],
    output_path: str,
    *,
    columns: int = 2,
    panel_size: tuple[int, int] = (240, 180),
) -> str:
    """Writes a sheet of --compare images to output_path (PNG or JPEG).

    Raises:
      ValueError: there is no image.
    """
    if not compare_paths:
        raise ValueError('No comparison images.')
    panel_width, panel_height = panel_size
    columns = min(columns, len(compare_paths))
    rows = -(-len(compare_paths) // columns)
    cell_width = 3 * panel_width + 2 * (_GAP // 2)
    width = columns * cell_width + (columns - 1) * _GAP
    height = _HEADER + rows * panel_height + (rows - 1) * _GAP
    sheet = Image.new('RGB', (width, height), _WHITE)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for column in range(columns):
        for index, title in enumerate(PANEL_TITLES):
            left = column * (cell_width + _GAP) + index * (
                panel_width + _GAP // 2
            )
            draw.text((left + 4, 6), title, fill=(60, 60, 60), font=font)
    for number, path in enumerate(compare_paths):
        row, column = divmod(number, columns)
        with Image.open(path) as image:
            panels = panels_of(image.convert('RGB'))  # Colour photos.
        top = _HEADER + row * (panel_height + _GAP)
        for index, panel in enumerate(panels):
            panel = _crop_to_aspect(panel, panel_width / panel_height).resize(
                panel_size, Image.Resampling.LANCZOS
            )
            left = column * (cell_width + _GAP) + index * (
                panel_width + _GAP // 2
            )
            sheet.paste(panel, (left, top))
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    sheet.save(output_path, quality=90)
    return output_path


def compare_images(compare_dir: str) -> list[str]:
    """The --compare images of a folder, sorted by name."""
    return [
        os.path.join(compare_dir, name)
        for name in sorted(os.listdir(compare_dir))
        if not name.startswith('.')
    ]


def with_hints(image: Image.Image, hint_list, radius: int = 0) -> Image.Image:
    """A copy of `image` with each hint drawn as a dot of its colour.

    hint_list: `hint_format.Hint`s in pixels of `image`.
    """
    image = image.convert('RGB').copy()
    radius = radius or max(4, round(max(image.size) / 80))
    draw = ImageDraw.Draw(image)
    for hint in hint_list:
        box = (
            hint.x - radius,
            hint.y - radius,
            hint.x + radius,
            hint.y + radius,
        )
        draw.ellipse(
            box, fill=hint.rgb, outline=_WHITE, width=max(1, radius // 3)
        )
    return image


def rows(
    images: Sequence[Sequence[Image.Image]],
    titles: Sequence[str],
    output_path: str,
    panel_height: int = 200,
) -> str:
    """Writes a sheet with one row of panels per photo, titled above.

    Every panel keeps its aspect ratio at panel_height; a row's panels are
    one photo's, so they share a shape.
    """
    scaled = [
        [
            panel.convert('RGB').resize(
                (
                    round(panel.width * panel_height / panel.height),
                    panel_height,
                ),
                Image.Resampling.LANCZOS,
            )
            for panel in row
        ]
        for row in images
    ]
    width = max(
        sum(panel.width for panel in row) + _GAP * (len(row) - 1)
        for row in scaled
    )
    height = _HEADER + len(scaled) * (panel_height + _GAP) - _GAP
    sheet = Image.new('RGB', (width, height), _WHITE)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    first = scaled[0]
    left = 0
    for title, panel in zip(titles, first):
        draw.text((left + 4, 6), title, fill=(60, 60, 60), font=font)
        left += panel.width + _GAP
    for number, row in enumerate(scaled):
        left, top = 0, _HEADER + number * (panel_height + _GAP)
        for panel in row:
            sheet.paste(panel, (left, top))
            left += panel.width + _GAP
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    sheet.save(output_path, quality=90)
    return output_path
