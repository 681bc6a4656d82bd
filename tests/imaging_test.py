"""Tests for chromagen_tf.data.imaging on real files written by the tests."""

import io
import struct
import zlib

import numpy as np
from PIL import Image
import pytest

from chromagen_tf.data import imaging
from tests import conftest

_PHOTO = conftest.SAMPLE_PHOTOS / 'coffee.jpg'  # 600x400, colourful.

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255,) * 3


def _bands(colours, band_width=20, height=20):
    """An RGB image of vertical bands, one per colour."""
    array = np.zeros((height, band_width * len(colours), 3), np.uint8)
    for index, colour in enumerate(colours):
        array[:, index * band_width : (index + 1) * band_width] = colour
    return Image.fromarray(array)


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
    return (
        struct.pack('>I', len(payload)) + tag + payload + struct.pack('>I', crc)
    )


def _png(width, height, bit_depth, colour_type, raw_rows: bytes) -> bytes:
    header = struct.pack(
        '>IIBBBBB', width, height, bit_depth, colour_type, 0, 0, 0
    )
    return (
        b'\x89PNG\r\n\x1a\n'
        + _png_chunk(b'IHDR', header)
        + _png_chunk(b'IDAT', zlib.compress(raw_rows))
        + _png_chunk(b'IEND', b'')
    )


def _reason(path, **kwargs):
    with pytest.raises(imaging.BadImageError) as caught:
        imaging.load_for_storage(str(path), 64, **kwargs)
    return caught.value.reason


def test_zero_byte_file(tmp_path):
    path = tmp_path / 'empty.jpg'
    path.write_bytes(b'')
    assert _reason(path) == imaging.EMPTY_FILE


def test_missing_file(tmp_path):
    assert _reason(tmp_path / 'nowhere.jpg') == imaging.MISSING_FILE


def test_truncated_jpeg(tmp_path):
    path = tmp_path / 'truncated.jpg'
    data = _PHOTO.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert _reason(path) == imaging.DECODE_ERROR


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / 'notes.jpg'
    path.write_text('This is not a photo.\n' * 20)
    assert _reason(path) == imaging.NOT_AN_IMAGE


def test_too_small(tmp_path):
    path = tmp_path / 'small.png'
    _bands([RED, BLUE], band_width=25, height=50).save(path)
    assert _reason(path, min_size=64) == imaging.TOO_SMALL
    # The same file passes with a lower limit (and is upscaled).
    loaded = imaging.load_for_storage(str(path), 64, min_size=32)
    assert loaded.image.size == (64, 64)


@pytest.mark.parametrize('width,height', [(11000, 10000), (20000, 20000)])
def test_png_bomb_rejected_from_header(tmp_path, width, height):
    # The header claims 110 or 400 megapixels but the data is a few bytes:
    # decoding would fail with a decode error, so 'too_large' proves the
    # image was rejected from its header alone. 110 MP is below Pillow's own
    # guard (179 MP), so it is this module's check that fires.
    path = tmp_path / 'bomb.png'
    path.write_bytes(_png(width, height, 8, 2, b'\x00' * 64))
    assert _reason(path) == imaging.TOO_LARGE
    assert _reason(path, max_pixels=10**9) == (
        imaging.DECODE_ERROR
        if width * height < 179_000_000
        else imaging.TOO_LARGE
    )


def test_jpeg_bomb_rejected_from_header(tmp_path):
    data = bytearray(_PHOTO.read_bytes())
    start_of_frame = data.index(b'\xff\xc0')
    # SOF0: marker, length (2), precision (1), height (2), width (2).
    struct.pack_into('>HH', data, start_of_frame + 5, 10000, 12000)
    path = tmp_path / 'bomb.jpg'
    path.write_bytes(bytes(data))
    with pytest.warns(Image.DecompressionBombWarning):
        with Image.open(path) as image:
            assert image.size == (12000, 10000)
    assert _reason(path) == imaging.TOO_LARGE


def test_cmyk_jpeg_keeps_its_colours(tmp_path):
    path = tmp_path / 'cmyk.jpg'
    _bands([RED, GREEN, BLUE, WHITE]).convert('CMYK').save(path, quality=95)
    with Image.open(path) as image:
        assert image.mode == 'CMYK'
    rgb = np.asarray(imaging.load_rgb(str(path)).image, np.int32)
    for index, colour in enumerate([RED, GREEN, BLUE, WHITE]):
        centre = rgb[10, index * 20 + 10]
        np.testing.assert_allclose(centre, colour, atol=12)


def test_sixteen_bit_rgb_png(tmp_path):
    rng = np.random.default_rng(0)
    high = rng.integers(0, 256, (32, 40, 3)).astype(np.uint16)
    wide = (high << 8) | rng.integers(0, 256, (32, 40, 3)).astype(np.uint16)
    rows = b''.join(b'\x00' + row.astype('>u2').tobytes() for row in wide)
    path = tmp_path / 'deep.png'
    path.write_bytes(_png(40, 32, 16, 2, rows))
    rgb = np.asarray(imaging.load_rgb(str(path)).image)
    assert rgb.dtype == np.uint8
    # Rounding 16 bits to 8 stays within one step of the high byte.
    assert np.abs(rgb.astype(np.int32) - high).max() <= 1


def test_sixteen_bit_gray_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / 'deep_gray.png'
    Image.fromarray(np.full((20, 30), 40000, np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith('I')
    rgb = np.asarray(imaging.load_rgb(str(path)).image)
    assert np.all(rgb == round(40000 * 255 / 65535))
    assert imaging.is_grayscale(rgb)


def test_palette_png(tmp_path):
    path = tmp_path / 'palette.png'
    _bands([RED, GREEN, BLUE]).convert(
        'P', palette=Image.Palette.ADAPTIVE, colors=4
    ).save(path)
    with Image.open(path) as image:
        assert image.mode == 'P'
    rgb = np.asarray(imaging.load_rgb(str(path)).image)
    np.testing.assert_array_equal(rgb[10, [10, 30, 50]], [RED, GREEN, BLUE])


def test_transparent_palette_and_rgba_on_white(tmp_path):
    rgba = np.zeros((20, 60, 4), np.uint8)
    rgba[:, :20] = (255, 0, 0, 255)  # Opaque red.
    rgba[:, 20:40] = (255, 0, 0, 128)  # Half-transparent red.
    rgba[:, 40:] = (0, 0, 255, 0)  # Invisible blue.
    path = tmp_path / 'alpha.png'
    Image.fromarray(rgba).save(path)
    rgb = np.asarray(imaging.load_rgb(str(path)).image, np.int32)
    np.testing.assert_allclose(rgb[10, 10], RED, atol=1)
    np.testing.assert_allclose(rgb[10, 30], (255, 127, 127), atol=2)
    np.testing.assert_allclose(rgb[10, 50], WHITE, atol=1)

    gif = tmp_path / 'transparent.gif'
    image = _bands([RED, BLUE]).convert(
        'P', palette=Image.Palette.ADAPTIVE, colors=2
    )
    transparent_index = image.getpixel((30, 10))
    image.save(gif, transparency=transparent_index)
    rgb = np.asarray(imaging.load_rgb(str(gif)).image)
    np.testing.assert_array_equal(rgb[10, [10, 30]], [RED, WHITE])

    gray_alpha = tmp_path / 'gray_alpha.png'
    Image.fromarray(
        np.dstack([np.zeros((20, 20), np.uint8), np.zeros((20, 20), np.uint8)])
    ).save(gray_alpha)
    np.testing.assert_array_equal(
        np.asarray(imaging.load_rgb(str(gray_alpha)).image)[5, 5], WHITE
    )


def test_gif_first_frame(tmp_path):
    path = tmp_path / 'animated.gif'
    frames = [Image.new('RGB', (32, 32), colour) for colour in (RED, BLUE)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    with Image.open(path) as image:
        assert image.n_frames == 2
    rgb = np.asarray(imaging.load_rgb(str(path)).image)
    np.testing.assert_array_equal(rgb[16, 16], RED)


def test_exif_orientation_is_applied(tmp_path):
    # Stored 64 wide x 32 high, red left and blue right. Orientation 6 means
    # "rotate 90 degrees clockwise to display": 32 wide x 64 high, red on
    # top.
    path = tmp_path / 'rotated.jpg'
    exif = Image.Exif()
    exif[0x0112] = 6
    _bands([RED, BLUE], band_width=32, height=32).save(
        path, exif=exif, quality=95
    )
    loaded = imaging.load_rgb(str(path))
    assert loaded.image.size == (32, 64)
    assert (loaded.original_height, loaded.original_width) == (64, 32)
    rgb = np.asarray(loaded.image, np.int32)
    np.testing.assert_allclose(rgb[8, 16], RED, atol=12)
    np.testing.assert_allclose(rgb[56, 16], BLUE, atol=12)


@pytest.mark.parametrize('extension', ['webp', 'bmp', 'tiff', 'png'])
def test_other_formats_load_like_the_jpeg(tmp_path, extension):
    reference = Image.open(_PHOTO).convert('RGB')
    path = tmp_path / f'photo.{extension}'
    reference.save(path, **({'lossless': True} if extension == 'webp' else {}))
    loaded = imaging.load_rgb(str(path))
    np.testing.assert_array_equal(
        np.asarray(loaded.image), np.asarray(reference)
    )
    assert (loaded.original_height, loaded.original_width) == (400, 600)


def test_grayscale_detection():
    photo = np.asarray(Image.open(_PHOTO).convert('RGB'))
    assert not imaging.is_grayscale(photo)
    gray = np.repeat(photo.mean(axis=-1, keepdims=True), 3, axis=-1)
    assert imaging.is_grayscale(gray.astype(np.uint8))
    noisy = gray + np.random.default_rng(0).integers(-1, 2, gray.shape)
    assert imaging.is_grayscale(np.clip(noisy, 0, 255).astype(np.uint8))
    # A speck of colour (0.5% of the pixels) is ignored; a patch of 3% is
    # colour a colorizer can learn from.
    speck = gray.astype(np.uint8).copy()
    speck[:20, :60] = RED  # 1200 of 240000 pixels.
    assert imaging.is_grayscale(speck)
    patch = gray.astype(np.uint8).copy()
    patch[:60, :120] = RED  # 7200 of 240000 pixels.
    assert not imaging.is_grayscale(patch)


def test_grayscale_rgb_jpeg_is_detected(tmp_path):
    path = tmp_path / 'gray_rgb.jpg'
    Image.open(_PHOTO).convert('L').convert('RGB').save(path, quality=90)
    with Image.open(path) as image:
        assert image.mode == 'RGB'
    loaded = imaging.load_for_storage(str(path), 64)
    assert imaging.is_grayscale(np.asarray(loaded.image))
    colour = imaging.load_for_storage(str(_PHOTO), 64)
    assert not imaging.is_grayscale(np.asarray(colour.image))


def test_crop_takes_the_centre_and_stretch_keeps_everything():
    image = _bands([RED, GREEN, BLUE], band_width=100, height=100)  # 300x100
    cropped = np.asarray(imaging.resize_for_storage(image, 32, 'crop'))
    assert cropped.shape == (32, 32, 3)
    np.testing.assert_allclose(
        cropped[:, 4:-4], np.broadcast_to(GREEN, (32, 24, 3)), atol=2
    )
    stretched = np.asarray(imaging.resize_for_storage(image, 30, 'stretch'))
    assert stretched.shape == (30, 30, 3)
    np.testing.assert_allclose(
        stretched[15, [2, 15, 27]], [RED, GREEN, BLUE], atol=2
    )
    with pytest.raises(ValueError):
        imaging.resize_for_storage(image, 32, 'squash')


@pytest.mark.parametrize('policy', imaging.RESIZE_POLICIES)
def test_draft_decode_matches_full_decode(tmp_path, policy):
    # 1800x1200: the JPEG can be decoded at 1/4 scale for a 256 crop.
    big = Image.open(_PHOTO).convert('RGB').resize((1800, 1200))
    path = tmp_path / 'big.jpg'
    big.save(path, quality=95)
    fast = imaging.load_for_storage(str(path), 256, policy)
    assert (fast.original_height, fast.original_width) == (1200, 1800)
    with Image.open(path) as image:
        image.draft(None, imaging.draft_size(1800, 1200, 256, policy))
        assert image.size[0] < 1800  # The draft really reduces the decode.
    slow = imaging.resize_for_storage(
        imaging.load_rgb(str(path)).image, 256, policy
    )
    difference = np.abs(
        np.asarray(fast.image, np.int32) - np.asarray(slow, np.int32)
    )
    assert fast.image.size == (256, 256)
    assert difference.mean() < 2.0


def test_file_object_source():
    with open(_PHOTO, 'rb') as file:
        loaded = imaging.load_for_storage(io.BytesIO(file.read()), 48)
    assert loaded.image.size == (48, 48)
    assert loaded.image.mode == 'RGB'
