"""Tests for colorize_video: round trips, temporal smoothing, bad inputs."""

import os
import re
import subprocess
import sys

import av
import cv2
import numpy as np
from PIL import Image
import pytest

from chromagen_tf import color
from chromagen_tf import errors
from chromagen_tf.inference import colorize_lib
from chromagen_tf.video import pipeline
from chromagen_tf.video import reader
from chromagen_tf.video import temporal
from chromagen_tf.video import writer
from tests import video_fixtures as synthetic
from tests.conftest import REPO_ROOT
from tests.conftest import SAMPLE_PHOTOS

_RENDER_SIZE = 64  # The bundled model, small and fast enough here.
_RATE = 12


@pytest.fixture(scope='module')
def colorizer():
    return colorize_lib.load_colorizer(render_size=_RENDER_SIZE)


def _photo(name='stream.jpg', height=108):
    with Image.open(SAMPLE_PHOTOS / name) as image:
        photo = np.asarray(image.convert('RGB'))
    scale = height / photo.shape[0]
    return cv2.resize(
        photo,
        (round(photo.shape[1] * scale), height),
        interpolation=cv2.INTER_AREA,
    )


def _pan(width=64, height=48, frames=12, name='stream.jpg'):
    """Ground-truth frames of a left-to-right pan, and its exact flows."""
    photo = _photo(name, round(height * 1.5))
    scale = 1.4
    half = width * scale / 2 + 2
    cameras = synthetic.camera_path(
        synthetic.Camera(half, photo.shape[0] / 2, scale),
        synthetic.Camera(half + 2.0 * frames, photo.shape[0] / 2, scale),
        frames,
    )
    return (
        list(synthetic.ken_burns(photo, cameras, width, height)),
        synthetic.backward_flows(cameras, width, height),
    )


def _gray_video(path, frames, **kwargs):
    synthetic.write_video(
        path, (synthetic.gray(f) for f in frames), rate=_RATE, **kwargs
    )
    return path


def _ab(frames):
    return [
        color.rgb_to_lab_numpy(f.astype(np.float32) / 255.0)[..., 1:]
        for f in frames
    ]


def _run(colorizer, input_path, output_path, **overrides):
    config = pipeline.VideoConfig(
        input_path, output_path, show_progress=False, batch_size=5, **overrides
    )
    return pipeline.colorize_video(colorizer, config)


def _audio_packets(path):
    with av.open(path) as container:
        return [
            bytes(packet)
            for packet in container.demux(container.streams.audio[0])
            if packet.size
        ]


def test_round_trip_keeps_frames_rate_size_audio_and_lightness(
    colorizer, tmp_path
):
    frames, _ = _pan(64, 48, 12)
    source = _gray_video(str(tmp_path / 'in.mp4'), frames, audio_seconds=1.0)
    output = str(tmp_path / 'out.mp4')
    summary = _run(colorizer, source, output)
    assert summary.frames == 12
    with av.open(source) as original, av.open(output) as result:
        video_in, video_out = original.streams.video[0], result.streams.video[0]
        assert video_out.average_rate == video_in.average_rate == _RATE
        assert (video_out.width, video_out.height) == (64, 48)
        assert video_out.codec_context.pix_fmt == 'yuv420p'
        assert len(result.streams.audio) == 1
        assert (
            result.streams.audio[0].codec_context.name
            == original.streams.audio[0].codec_context.name
            == 'aac'
        )
        assert abs(result.duration - original.duration) < 0.1 * av.time_base
    assert _audio_packets(output) == _audio_packets(source)
    gray_frames = synthetic.read_video(source)
    colour_frames = synthetic.read_video(output)
    assert len(colour_frames) == 12
    lab_out = [color.rgb_to_lab_numpy(f / 255.0) for f in colour_frames]
    lab_in = [color.rgb_to_lab_numpy(f / 255.0) for f in gray_frames]
    chroma = np.mean([np.hypot(lab[..., 1], lab[..., 2]) for lab in lab_out])
    assert chroma > 4.0, f'output is nearly gray: mean chroma {chroma:.2f}'
    assert (
        np.mean(
            [
                np.abs(o[..., 0] - i[..., 0]).mean()
                for o, i in zip(lab_out, lab_in)
            ]
        )
        < 2.5
    )  # L is kept.
    assert sorted(os.listdir(tmp_path)) == ['in.mp4', 'out.mp4']


def test_variable_frame_rate_timestamps_are_kept(colorizer, tmp_path):
    frames, _ = _pan(64, 48, 7)
    times = [0, 83, 167, 400, 450, 500, 900]
    source = _gray_video(str(tmp_path / 'vfr.mkv'), frames, timestamps_ms=times)
    output = str(tmp_path / 'vfr_out.mp4')
    _run(colorizer, source, output, temporal_mode='none')
    with av.open(output) as container:
        seconds = [
            float(f.pts * f.time_base) for f in container.decode(video=0)
        ]
    np.testing.assert_allclose(seconds, np.array(times) / 1000.0, atol=0.002)


def test_odd_size_is_kept_as_yuv444p(colorizer, tmp_path):
    frames, _ = _pan(63, 47, 4)
    source = _gray_video(
        str(tmp_path / 'odd.mp4'), frames, pixel_format='yuv444p'
    )
    output = str(tmp_path / 'odd_out.mp4')
    summary = _run(colorizer, source, output)
    assert summary.pixel_format == 'yuv444p'
    result = synthetic.read_video(output)
    assert [f.shape for f in result] == [(47, 63, 3)] * 4


def _write_through(tmp_path, frame, pixel_format) -> str:
    """Three copies of an RGB frame through VideoWriter, losslessly coded."""
    source = str(tmp_path / 'in.mp4')
    synthetic.write_video(source, [frame] * 3, rate=_RATE)
    output = str(tmp_path / f'{pixel_format}.mp4')
    with (
        reader.VideoReader(source) as video_in,
        writer.VideoWriter(
            output, video_in.info, crf=0, pixel_format=pixel_format
        ) as out,
    ):
        for item in video_in.items():
            out.write_frame(frame, item.pts)
        out.commit()
    with av.open(output) as container:
        assert container.streams.video[0].codec_context.pix_fmt == pixel_format
    return output


@pytest.mark.parametrize(
    'pixel_format', ['yuv420p', 'yuv444p', 'yuv420p10le', 'yuv444p10le']
)
def test_pixel_format_sets_the_chroma_resolution(tmp_path, pixel_format):
    # Columns alternating red and green at one lightness: only 4:4:4 can
    # hold colour that changes from one pixel to the next.
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, 0::2] = (200, 60, 60)
    frame[:, 1::2] = (60, 140, 60)
    output = _write_through(tmp_path, frame, pixel_format)

    def detail(frames):
        return float(np.abs(np.diff(_ab(frames)[0][..., 0], axis=-1)).mean())

    kept = detail(synthetic.read_video(output)) / detail([frame])
    if '444' in pixel_format:
        assert kept > 0.8, kept
    else:
        assert kept < 0.2, kept


def test_ten_bit_keeps_a_b_finer_than_eight_bit(tmp_path):
    # A slow gradient of colour: 8-bit YCbCr rounds it into steps.
    ramp = np.linspace(0.0, 1.0, 64)[np.newaxis, :, np.newaxis]
    frame = np.round(
        np.array([120, 110, 100])
        + ramp * np.array([40, -20, 10])
        + np.zeros((48, 1, 1))
    ).astype(np.uint8)
    truth = _ab([frame])[0]
    errors_by_format = {
        name: float(
            np.abs(
                _ab(
                    synthetic.read_video(_write_through(tmp_path, frame, name))
                )[0]
                - truth
            ).mean()
        )
        for name in ('yuv444p', 'yuv444p10le')
    }
    assert (
        errors_by_format['yuv444p10le'] < 0.5 * errors_by_format['yuv444p']
    ), errors_by_format


def _bt709_limited_range(rgb: np.ndarray, bits: int) -> np.ndarray:
    """Y'CbCr planes [3, H, W] of an RGB image, unrounded, from the standard.

    ITU-R BT.709-6, Part 2, items 3.2 (Y' = 0.2126 R' + 0.7152 G' + 0.0722 B'),
    3.3 (C'B = (B' - Y') / 1.8556, C'R = (R' - Y') / 1.5748) and 3.4
    (narrow-range quantisation: D = (219 Y' + 16) * 2^(n-8) and
    (224 C' + 128) * 2^(n-8)).
    """
    red, green, blue = np.moveaxis(
        rgb.astype(np.float64) / np.iinfo(rgb.dtype).max, -1, 0
    )
    luma = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    scale = 2 ** (bits - 8)
    return np.stack(
        [
            (219 * luma + 16) * scale,
            (224 * (blue - luma) / 1.8556 + 128) * scale,
            (224 * (red - luma) / 1.5748 + 128) * scale,
        ]
    )


def test_ten_bit_output_is_written_from_sixteen_bit_rgb(colorizer, tmp_path):
    # Lossless 10-bit 4:4:4: the decoded planes are the BT.709 coding of
    # the colorizer's 16-bit RGB to within rounding, which the coding of
    # its 8-bit RGB is not (one 8-bit step is 3.4 10-bit luma codes).
    frames, _ = _pan(64, 48, 3)
    source = _gray_video(str(tmp_path / 'pan.mp4'), frames)
    output = str(tmp_path / 'out.mkv')
    _run(
        colorizer,
        source,
        output,
        temporal_mode='none',
        crf=0,
        pixel_format='yuv444p10le',
    )

    def planes(frame):  # PyAV has no to_ndarray for yuv444p10le.
        return np.stack(
            [
                np.frombuffer(plane, np.uint16).reshape(
                    plane.height, plane.line_size // 2
                )[:, : plane.width]
                for plane in frame.planes
            ]
        )

    with av.open(output) as container:
        decoded = [planes(frame) for frame in container.decode(video=0)]
    errors_by_bits = {8: [], 16: []}
    for gray, decoded_planes in zip(synthetic.read_video(source), decoded):
        l_channel = colorizer.lightness(gray)
        ab = colorizer.predict_ab([l_channel])[0]
        for bits, to_rgb in (
            (8, colorizer.to_uint8),
            (16, colorizer.to_uint16),
        ):
            expected = _bt709_limited_range(to_rgb(l_channel, ab), 10)
            errors_by_bits[bits].append(
                float(np.abs(decoded_planes - expected).max())
            )
    assert max(errors_by_bits[16]) <= 0.6, errors_by_bits
    assert min(errors_by_bits[8]) > 1.0, errors_by_bits


def test_yuv420p_at_an_odd_size_fails_before_the_model(tmp_path):
    frames, _ = _pan(63, 47, 2)
    source = _gray_video(
        str(tmp_path / 'odd.mp4'), frames, pixel_format='yuv444p'
    )
    config = pipeline.VideoConfig(
        source, str(tmp_path / 'out.mp4'), pixel_format='yuv420p'
    )
    with pytest.raises(errors.UsageError, match='even width and height'):
        pipeline.check_input(config)
    assert sorted(os.listdir(tmp_path)) == ['odd.mp4']


def test_rotated_input_is_written_upright(colorizer, tmp_path):
    frames, _ = _pan(64, 48, 4)
    # Stored as 64x48 with a display matrix turning it 90 degrees clockwise.
    source = _gray_video(str(tmp_path / 'rot.mp4'), frames, rotation=-90)
    output = str(tmp_path / 'rot_out.mp4')
    _run(colorizer, source, output, temporal_mode='none')
    with av.open(output) as container:
        decoded = list(container.decode(video=0))
    assert decoded[0].rotation == 0
    upright = decoded[0].to_ndarray(format='rgb24')
    assert upright.shape == (64, 48, 3)
    expected = np.rot90(synthetic.gray(frames[0]), -1)[..., 0]
    luma = cv2.cvtColor(upright, cv2.COLOR_RGB2GRAY).astype(np.float32)
    assert np.abs(luma - expected).mean() < 6.0
    # The other way round would be a different picture altogether.
    assert (
        np.abs(luma - np.rot90(synthetic.gray(frames[0]), 1)[..., 0]).mean()
        > 15.0
    )


def _noisy_predictions(truth_ab, seed=0, amplitude=4.0):
    """Ground truth a*b* plus smooth noise that changes every frame."""
    rng = np.random.default_rng(seed)
    height, width = truth_ab[0].shape[:2]
    noisy = []
    for ab in truth_ab:
        noise = cv2.resize(
            rng.normal(0, amplitude, (6, 8, 2)).astype(np.float32),
            (width, height),
            interpolation=cv2.INTER_CUBIC,
        )
        noisy.append(ab + noise)
    return noisy


def test_smoothing_lowers_flicker_on_a_pan():
    frames, flows = _pan(128, 96, 12)
    lab = [color.rgb_to_lab_numpy(f / 255.0).astype(np.float32) for f in frames]
    l_channels = [x[..., 0] for x in lab]
    predicted = _noisy_predictions([x[..., 1:] for x in lab])
    smoothed, infos = temporal.smooth_sequence(l_channels, predicted)
    assert [info.cut for info in infos] == [True] + [False] * 11
    assert min(info.mean_weight for info in infos[1:]) > 0.6
    flicker_none = synthetic.warped_flicker(predicted, flows)
    flicker_flow = synthetic.warped_flicker(smoothed, flows)
    assert flicker_flow < 0.5 * flicker_none, (flicker_flow, flicker_none)
    # Colour is not smeared away from the truth on the way.
    truth = [x[..., 1:] for x in lab]

    def error(abs_):
        return np.mean([np.abs(a - t).mean() for a, t in zip(abs_, truth)])

    assert error(smoothed) < error(predicted)


def test_strength_sets_how_much_is_smoothed():
    frames, flows = _pan(128, 96, 12)
    lab = [color.rgb_to_lab_numpy(f / 255.0).astype(np.float32) for f in frames]
    l_channels = [x[..., 0] for x in lab]
    predicted = _noisy_predictions([x[..., 1:] for x in lab], seed=2)
    flicker = {}
    for strength in (0.0, 0.9, 0.95):
        smoothed, infos = temporal.smooth_sequence(
            l_channels, predicted, temporal.TemporalConfig(strength=strength)
        )
        assert max(info.mean_weight for info in infos) <= strength
        flicker[strength] = synthetic.warped_flicker(smoothed, flows)
        if strength == 0.0:
            for output, prediction in zip(smoothed, predicted):
                np.testing.assert_array_equal(output, prediction)
    assert flicker[0.95] < flicker[0.9] < flicker[0.0], flicker
    # Without a config the smoother smooths.
    smoothed, _ = temporal.smooth_sequence(l_channels, predicted)
    assert synthetic.warped_flicker(smoothed, flows) < 0.5 * flicker[0.0]


@pytest.mark.parametrize(
    'ab_size, flow_size',
    [
        ((64, 48), 256),  # colorize_video: the working size, below the frame's.
        ((128, 96), 32),  # a*b* larger than the flow image.
    ],
)
def test_smoother_works_at_the_size_of_the_given_ab(ab_size, flow_size):
    frames, flows = _pan(128, 96, 12)
    lab = [color.rgb_to_lab_numpy(f / 255.0).astype(np.float32) for f in frames]
    l_channels = [x[..., 0] for x in lab]
    predicted = [
        cv2.resize(ab, ab_size, interpolation=cv2.INTER_AREA)
        for ab in _noisy_predictions([x[..., 1:] for x in lab])
    ]
    smoothed, infos = temporal.smooth_sequence(
        l_channels, predicted, temporal.TemporalConfig(flow_size=flow_size)
    )
    assert [info.cut for info in infos] == [True] + [False] * 11
    assert {ab.shape for ab in smoothed} == {ab_size[::-1] + (2,)}

    def full_size(abs_):
        return [cv2.resize(ab, (128, 96)) for ab in abs_]

    flicker_none = synthetic.warped_flicker(full_size(predicted), flows)
    flicker_flow = synthetic.warped_flicker(full_size(smoothed), flows)
    assert flicker_flow < 0.5 * flicker_none, (flicker_flow, flicker_none)


@pytest.mark.parametrize(
    'height, width',
    [(8, 8), (10, 10), (16, 128), (31, 256), (50, 1000), (1, 300)],
)
def test_smoother_takes_tiny_and_wide_frames(height, width):
    # OpenCV's DIS fails on these sizes, or kills the process, unless its
    # input is padded (temporal._DIS_MIN_SIDE).
    rng = np.random.default_rng(0)
    texture = cv2.resize(
        rng.uniform(0, 100, (height // 4 + 2, width // 4 + 2)),
        (width + 8, height),
    ).astype(np.float32)
    smoother = temporal.TemporalSmoother()
    for shift in range(3):
        l_channel = np.ascontiguousarray(texture[:, shift : shift + width])
        ab = rng.normal(0, 5, (height, width, 2)).astype(np.float32)
        output, info = smoother.step(l_channel, ab)
        assert output.shape == ab.shape and np.all(np.isfinite(output))
        if shift:  # The flow explains the shift: smoothed, not a cut.
            assert not info.cut and info.mean_weight > 0.4, info


def test_colorize_video_smooths_at_the_working_size(
    colorizer, tmp_path, monkeypatch
):
    shapes = []
    step = temporal.TemporalSmoother.step

    def recording_step(self, l_channel, ab):
        shapes.append((l_channel.shape, ab.shape))
        return step(self, l_channel, ab)

    monkeypatch.setattr(temporal.TemporalSmoother, 'step', recording_step)
    frames, _ = _pan(128, 96, 4)
    source = _gray_video(str(tmp_path / 'pan.mp4'), frames)
    _run(colorizer, source, str(tmp_path / 'out.mp4'))
    # L at the frame's size, a*b* at the working size (render size 64).
    assert shapes == [((96, 128), (48, 64, 2))] * 4
    assert [
        f.shape for f in synthetic.read_video(str(tmp_path / 'out.mp4'))
    ] == [(96, 128, 3)] * 4


def test_working_size_prediction_resized_is_predict_ab(colorizer):
    for height, width in ((96, 128), (40, 30)):
        image = cv2.resize(_photo(), (width, height))
        l_channel = colorizer.lightness(image)
        working = colorizer.predict_working_ab([l_channel])[0]
        assert max(working.shape[1:3]) == _RENDER_SIZE
        np.testing.assert_allclose(
            colorizer.ab_to_full_resolution(working, l_channel),
            colorizer.predict_ab([l_channel])[0],
            atol=1e-4,
        )


def test_a_cut_resets_the_smoothing():
    first, _ = _pan(128, 96, 6, name='stream.jpg')
    second, _ = _pan(128, 96, 6, name='chelsea.jpg')
    lab = [
        color.rgb_to_lab_numpy(f / 255.0).astype(np.float32)
        for f in first + second
    ]
    l_channels = [x[..., 0] for x in lab]
    predicted = _noisy_predictions([x[..., 1:] for x in lab], seed=1)
    smoothed, infos = temporal.smooth_sequence(l_channels, predicted)
    assert [i for i, info in enumerate(infos) if info.cut] == [0, 6]
    np.testing.assert_array_equal(smoothed[6], predicted[6])
    assert np.abs(smoothed[7] - predicted[7]).mean() > 0.1  # Smoothing again.
    # Without the reset, what the cut frame gets comes from the warp alone.
    smoother = temporal.TemporalSmoother()
    for l_channel, ab in zip(l_channels[:6], predicted[:6]):
        smoother.step(l_channel, ab)
    smoother.reset()
    _, info = smoother.step(l_channels[6], predicted[6])
    assert info.cut


def test_flow_flickers_less_than_none_end_to_end(colorizer, tmp_path):
    frames, flows = _pan(96, 72, 12, name='sunset.jpg')
    source = _gray_video(str(tmp_path / 'pan.mp4'), frames)
    flicker = {}
    for mode in ('none', 'flow'):
        output = str(tmp_path / f'{mode}.mp4')
        summary = _run(colorizer, source, output, temporal_mode=mode)
        flicker[mode] = synthetic.warped_flicker(
            _ab(synthetic.read_video(output)), flows
        )
    assert summary.cuts == [0]
    assert flicker['flow'] < 0.9 * flicker['none'], flicker


def _truncate(path, fraction):
    with open(path, 'rb') as f:
        data = f.read()
    truncated = path.replace('.', '_cut.')
    with open(truncated, 'wb') as f:
        f.write(data[: int(len(data) * fraction)])
    return truncated


def _bad_input(kind, folder):
    path = os.path.join(folder, 'bad')
    frames, _ = _pan(64, 48, 24)
    if kind == 'text':
        path += '.mp4'
        with open(path, 'w') as f:
            f.write('not a video\n' * 50)
    elif kind == 'zero_frames':
        path += '.mkv'  # A video stream, audio, and no video packet.
        synthetic.write_video(path, [], audio_seconds=0.5)
    elif kind == 'no_video_stream':
        path += '.mp4'  # MP4 drops a video track without frames.
        synthetic.write_video(path, [], audio_seconds=0.5)
    elif kind == 'too_large':
        path += '.mp4'  # One frame just above DCI 4K.
        synthetic.write_video(
            path, [np.zeros((2160, 4112, 3), np.uint8)], options={}
        )
    elif kind == 'truncated_mp4':
        full = _gray_video(
            path + '.mp4', frames, options={'movflags': 'faststart'}
        )
        path = _truncate(full, 0.6)
    elif kind == 'truncated_mkv':
        path = _truncate(_gray_video(path + '.mkv', frames), 0.5)
    return path


@pytest.mark.parametrize(
    'kind, error_type, words',
    [
        ('text', reader.NotAVideoError, 'is not a video'),
        ('zero_frames', reader.NotAVideoError, 'holds no video frames'),
        ('no_video_stream', reader.NotAVideoError, 'has no video stream'),
        ('too_large', reader.VideoTooLargeError, 'larger than the limit'),
        ('truncated_mp4', reader.TruncatedVideoError, 'truncated'),
        ('truncated_mkv', reader.TruncatedVideoError, 'truncated'),
    ],
)
def test_bad_input_fails_clearly_and_leaves_no_file(
    colorizer, tmp_path, kind, error_type, words
):
    source = _bad_input(kind, str(tmp_path))
    before = set(os.listdir(tmp_path))
    output = str(tmp_path / 'out.mp4')
    with pytest.raises(error_type, match=words) as raised:
        _run(colorizer, source, output)
    assert len(str(raised.value).splitlines()) == 1
    assert set(os.listdir(tmp_path)) == before  # No output, no temporary.


def test_existing_output_needs_overwrite(colorizer, tmp_path):
    frames, _ = _pan(64, 48, 3)
    source = _gray_video(str(tmp_path / 'in.mp4'), frames)
    output = tmp_path / 'out.mp4'
    output.write_bytes(b'keep me')
    with pytest.raises(errors.UsageError, match='--overwrite'):
        _run(colorizer, source, str(output))
    assert output.read_bytes() == b'keep me'
    _run(colorizer, source, str(output), overwrite=True)
    assert len(synthetic.read_video(str(output))) == 3


def test_audio_the_container_cannot_hold_is_refused(colorizer, tmp_path):
    frames, _ = _pan(64, 48, 3)
    source = _gray_video(
        str(tmp_path / 'flac.mkv'),
        frames,
        audio_seconds=0.5,
        audio_codec='flac',
    )
    with pytest.raises(errors.UsageError, match=r'flac.*\.mkv'):
        _run(colorizer, source, str(tmp_path / 'out.mov'))
    assert os.listdir(tmp_path) == ['flac.mkv']
    _run(colorizer, source, str(tmp_path / 'out.mkv'))  # Copied there.
    assert _audio_packets(str(tmp_path / 'out.mkv')) == _audio_packets(source)


def _command(*args):
    return subprocess.run(
        [sys.executable, '-m', 'chromagen_tf.colorize_video', *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow  # Four colorize_video processes.
def test_command_line_colorizes_and_fails_in_one_line(tmp_path):
    frames, _ = _pan(64, 48, 6)
    source = _gray_video(str(tmp_path / 'in.mp4'), frames, audio_seconds=0.5)
    output = str(tmp_path / 'out.mp4')
    result = _command(
        source,
        f'--output={output}',
        '--batch_size=4',
        f'--render_size={_RENDER_SIZE}',
        '--temporal_strength=0.3',
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'colorize_video' in result.stderr  # The progress bar.
    # The strength reaches the smoother: over 5 smoothed frames of 6, the
    # mean weight is at most 5/6 * 0.3 (0.72 at the default, measured).
    weight = float(
        re.search(
            r'mean weight of the previous colours '
            r'([0-9.]+)',
            result.stdout,
        ).group(1)
    )
    assert 0.0 < weight <= 0.25, result.stdout
    assert len(synthetic.read_video(output)) == 6
    text_file = tmp_path / 'notes.mp4'
    text_file.write_text('not a video')
    failed = _command(str(text_file), f'--output={tmp_path / "x.mp4"}')
    assert failed.returncode == errors.USAGE_EXIT_CODE
    assert 'Traceback' not in failed.stderr
    lines = [
        line
        for line in failed.stderr.splitlines()
        if line.startswith('colorize_video: error:')
    ]
    assert len(lines) == 1 and 'is not a video' in lines[0], failed.stderr
    assert not os.path.exists(tmp_path / 'x.mp4')
    # A strength for no smoothing is a mistake, not silently ignored.
    refused = _command(
        source,
        f'--output={tmp_path / "y.mp4"}',
        '--temporal=none',
        '--temporal_strength=0.5',
    )
    assert refused.returncode == errors.USAGE_EXIT_CODE
    assert refused.stderr.strip().splitlines()[-1] == (
        'colorize_video: error: --temporal_strength needs --temporal=flow.'
    ), refused.stderr
    assert 'Traceback' not in refused.stderr
    assert not os.path.exists(tmp_path / 'y.mp4')
    # --temporal=none alone is fine.
    plain = _command(
        source,
        f'--output={tmp_path / "z.mp4"}',
        '--temporal=none',
        f'--render_size={_RENDER_SIZE}',
    )
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert len(synthetic.read_video(str(tmp_path / 'z.mp4'))) == 6


@pytest.mark.slow  # A colorize_video process.
def test_help_documents_every_flag():
    result = _command('--help')
    text = result.stdout + result.stderr
    assert 'Traceback' not in text
    for name in (
        'output',
        'temporal',
        'temporal_strength',
        'overwrite',
        'max_pixels',
        'crf',
        'model',
        'stage',
        'render_size',
        'batch_size',
    ):
        assert f'--{name}' in text or f'--[no]{name}' in text, name
