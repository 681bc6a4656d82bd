"""Video benchmark: flicker, colour error, cut response, speed and memory.

Usage:

  python -m bench.bench_video [--size=320x240] [--render_size=N]
      [--memory_frames=100,1000] [--skip_memory] [--output_json=r.json]
  python -m bench.bench_video --strip=docs/video_strip.jpg  # README strip
  python -m bench.bench_video --speed_size=1280x720  # speed at one size
  python -m bench.bench_video --skip_memory --output_crf=8  # coding floor
  python -m bench.bench_video --skip_memory --strengths=0.9,0.95,0.97
  python -m bench.bench_video --skip_memory \
      --clips=sunset.jpg:astronaut.jpg,rocket.jpg:brushes.jpg  # other clips

Test videos with known ground truth (tests/video_fixtures.py):
each clip is a Ken Burns pan and then a zoom over one sample photo, a hard
cut, and a pan and zoom over another; the colour clip is encoded (x264,
CRF 18) as the ground-truth video, its gray version is encoded the same
way and colorized by the bundled model with --temporal=none, flow (at each
--strengths), and flow without the cut reset (an ablation). A last row,
"stable colours", shows the flicker that the coding alone adds: the model
colorizes each gray photo once, those a*b* are carried over the frames by
the exact camera motion (no flicker before coding), and the frames go
through the same writer. (Its colours are not any smoother's output, so
it indicates the floor rather than bounding it.)

Measures, per clip and mode, averaged over the clips:
  flicker     mean |a*b*(t) - a*b*(t-1) warped by the exact camera flow|
              over consecutive frames of a shot (the same ground-truth
              flow for every mode), measured twice: on the decoded output
              video (against the encoded ground-truth video), and on the
              smoother's a*b* before rounding and H.264 coding
              (against the ground-truth frames), and after only rounding
              that to the writer's integer RGB (uint8; uint16 for a
              10-bit --output_pixel_format, whose video is also read
              back in 16 bits); the excess over the
              truth's own value is shown, and per clip the none / flow
              ratios of the raw values and of the excess over the stable
              colours' value;
  ab MAE, PSNR against the ground-truth frames (PSNR on RGB);
  settle      frames after the cut until the output's a*b* is within 1 ab
              unit of its steady distance from the per-frame (none)
              prediction, for 3 frames in a row (0: the cut frame itself);
  speed       frames/s of the whole run (decode, network, smoothing,
              encode), the network's and the smoother's ms per frame.
Memory: peak RSS of colorize_video, each length in a fresh process, on a
long pan at 160x120.
"""

import os
import tempfile

from absl import app
from absl import flags
import numpy as np

from bench import common
from chromagen_tf import video

_SIZE = flags.DEFINE_string('size', '320x240', 'Frame size of the clips, WxH.')
_RENDER_SIZE = flags.DEFINE_integer(
    'render_size', None, "Working size of the model (default: the model's)."
)
_MEMORY_FRAMES = flags.DEFINE_list(
    'memory_frames',
    ['100', '1000'],
    'Lengths of the long videos whose peak memory is compared.',
)
_SKIP_MEMORY = flags.DEFINE_bool(
    'skip_memory', False, 'Skip the memory comparison.'
)
_OUTPUT_JSON = flags.DEFINE_string(
    'output_json', '', 'Also write the report here.'
)
_STRIP = flags.DEFINE_string(
    'strip', '', "Only write the README's frame strip to this path."
)
_STRIP_PHOTO = flags.DEFINE_string(
    'strip_photo', 'stream.jpg', 'Sample photo the strip pans over.'
)
_SPEED_SIZE = flags.DEFINE_string(
    'speed_size', '', 'Only time a 24-frame pan at this size (WxH), twice.'
)
_OUTPUT_CRF = flags.DEFINE_integer(
    'output_crf',
    video.DEFAULT_CRF,
    "x264 CRF of the colorized videos "
    "(colorize_video's default); lower keeps more of the a*b* through the "
    'coding.',
    lower_bound=0,
    upper_bound=51,
)
_OUTPUT_PIXEL_FORMAT = flags.DEFINE_enum(
    'output_pixel_format',
    'auto',
    video.PIXEL_FORMATS,
    'colorize_video --pixel_format of the colorized videos, to measure how '
    'much of the decoded-video flicker comes from chroma sampling and bit '
    'depth.',
)
# (first shot, second shot) photo pairs, landscapes and close-ups mixed.
CLIPS = (
    ('stream.jpg', 'chelsea.jpg'),
    ('picos_de_europa.jpg', 'coffee.jpg'),
    ('aitzgorri.jpg', 'fig_bowl.jpg'),
)
_CLIPS = flags.DEFINE_list(
    'clips',
    [f'{first}:{second}' for first, second in CLIPS],
    'FIRST:SECOND sample photos of each clip (a pan and zoom over each, a '
    'cut between them).',
)
flags.register_validator(
    'clips',
    lambda clips: (
        bool(clips) and all(len(clip.split(':')) == 2 for clip in clips)
    ),
    'Each --clips entry is FIRST:SECOND, two file names in '
    'chromagen_tf/sample_photos/.',
)
_STRENGTHS = flags.DEFINE_list(
    'strengths',
    [str(video.DEFAULT_TEMPORAL_STRENGTH)],
    'Smoother strengths (colorize_video --temporal_strength) to measure, '
    'one flow row each.',
)
_MEMORY_CHILD = flags.DEFINE_list(
    'memory_child', None, 'Internal: INPUT,OUTPUT of one memory run.'
)


_STABLE = 'stable colours'
_RATE = 12


def _modes() -> list:
    """(name, temporal mode, TemporalConfig overrides) of the rows."""
    modes = [('none', 'none', {})]
    # dict.fromkeys: each strength once, in the order given.
    for strength in dict.fromkeys(float(v) for v in _STRENGTHS.value):
        name = 'flow'
        if strength != video.DEFAULT_TEMPORAL_STRENGTH:
            name = f'flow, strength {strength:g}'
        modes.append((name, 'flow', {'strength': strength}))
    modes.append(('flow, no cut reset', 'flow', {'detect_cuts': False}))
    return modes


class _GivenColours:
    """A Colorizer whose predict_ab returns given a*b*, frame by frame."""

    def __init__(self, colorizer, abs_):
        self._colorizer = colorizer
        self._abs = iter(abs_)

    def lightness(self, image):
        return self._colorizer.lightness(image)

    def to_uint8(self, l_channel, ab):
        return self._colorizer.to_uint8(l_channel, ab)

    def to_uint16(self, l_channel, ab):
        return self._colorizer.to_uint16(l_channel, ab)

    def predict_ab(self, l_channels):
        import tensorflow as tf  # pylint: disable=g-import-not-at-top

        return [tf.constant(next(self._abs)[np.newaxis]) for _ in l_channels]


def _photo(name: str, height: int) -> np.ndarray:
    import cv2  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top

    with Image.open(os.path.join(common.SAMPLE_PHOTOS, name)) as image:
        photo = np.asarray(image.convert('RGB'))
    scale = height / photo.shape[0]
    return cv2.resize(
        photo,
        (round(photo.shape[1] * scale), height),
        interpolation=cv2.INTER_AREA,
    )


def shot_cameras(
    photo: np.ndarray, width: int, height: int, pan: int, zoom: int
) -> list:
    """A left-to-right pan at 1.4 photo pixels per pixel, then a zoom in."""
    # pylint: disable-next=g-import-not-at-top
    from tests import video_fixtures as synthetic

    photo_height, photo_width = photo.shape[:2]
    scale = min(1.4, (photo_height - 2) / height)
    half = width * scale / 2 + 2
    left = synthetic.Camera(half, photo_height / 2, scale)
    right = synthetic.Camera(photo_width - half, photo_height / 2, scale)
    close = synthetic.Camera(photo_width - half, photo_height / 2, 0.8)
    return (
        synthetic.camera_path(left, right, pan)
        + synthetic.camera_path(right, close, zoom + 1)[1:]
    )


def _unit(frame: np.ndarray) -> np.ndarray:
    """uint8 or uint16 RGB -> float32 in [0, 1]."""
    return frame.astype(np.float32) / np.iinfo(frame.dtype).max


def _ab(frames) -> list:
    from chromagen_tf import color  # pylint: disable=g-import-not-at-top

    return [color.rgb_to_lab_numpy(_unit(f))[..., 1:] for f in frames]


def _through_ycbcr(rgb: np.ndarray, pixel_format: str) -> np.ndarray:
    """RGB through the writer's YCbCr (`writer.to_ycbcr`) and back."""
    from chromagen_tf.video import writer  # pylint: disable=g-import-not-at-top

    return (
        writer.to_ycbcr(rgb, pixel_format)
        .reformat(
            format='rgb48le' if rgb.dtype == np.uint16 else 'rgb24',
            src_colorspace='ITU709',
        )
        .to_ndarray()
    )


def _settle(flow_ab, none_ab, cut: int, end: int) -> int:
    distance = [
        float(np.abs(f - n).mean())
        for f, n in zip(flow_ab[cut:end], none_ab[cut:end])
    ]
    steady = float(np.median(distance[5:])) + 1.0
    for k in range(len(distance) - 2):
        if all(d <= steady for d in distance[k : k + 3]):
            return k
    return len(distance)


def run_quality(size, render_size, work_dir) -> dict:
    from chromagen_tf.inference import colorize_lib  # pylint: disable=g-import-not-at-top
    from chromagen_tf.serving import full_resolution  # pylint: disable=g-import-not-at-top
    from chromagen_tf.video import pipeline  # pylint: disable=g-import-not-at-top
    from chromagen_tf.video import temporal  # pylint: disable=g-import-not-at-top

    # pylint: disable-next=g-import-not-at-top
    from tests import video_fixtures as synthetic

    width, height = size
    colorizer = colorize_lib.load_colorizer(render_size=render_size)
    modes = _modes()
    results = {mode: [] for mode, _, _ in modes}
    results[_STABLE] = []
    results['ground truth'] = []
    for first, second in (clip.split(':') for clip in _CLIPS.value):
        photos = [_photo(name, round(height * 1.5)) for name in (first, second)]
        cameras = [
            shot_cameras(photos[0], width, height, 20, 12),
            shot_cameras(photos[1], width, height, 16, 10),
        ]
        truth = [
            frame
            for photo, path in zip(photos, cameras)
            for frame in synthetic.ken_burns(photo, path, width, height)
        ]
        flows = [
            flow
            for path in cameras
            for flow in synthetic.backward_flows(path, width, height)
        ]
        cut = len(cameras[0])
        stem = os.path.join(work_dir, first.split('.')[0])
        synthetic.write_video(stem + '_truth.mp4', truth, rate=_RATE)
        synthetic.write_video(
            stem + '_gray.mp4', (synthetic.gray(f) for f in truth), rate=_RATE
        )
        truth_ab = _ab(truth)
        results['ground truth'].append(
            {
                'flicker_video': synthetic.warped_flicker(
                    _ab(synthetic.read_video(stem + '_truth.mp4')), flows
                ),
                'flicker_ab': synthetic.warped_flicker(truth_ab, flows),
            }
        )
        # The same Colorizer and smoother on the decoded gray frames, with
        # a*b* taken before uint8 rounding and H.264 coding.
        gray_frames = synthetic.read_video(stem + '_gray.mp4')
        l_channels = [colorizer.lightness(f) for f in gray_frames]
        predicted = [ab[0].numpy() for ab in colorizer.predict_ab(l_channels)]
        # What colorize_video smooths: the working-size a*b*.
        working = [
            ab[0].numpy() for ab in colorizer.predict_working_ab(l_channels)
        ]
        l_arrays = [l[0, ..., 0].numpy() for l in l_channels]
        # The model's colours of each whole photo, moved with the camera.
        stable = []
        for photo, path in zip(photos, cameras):
            photo_ab = colorizer.predict_ab(
                [colorizer.lightness(synthetic.gray(photo))]
            )[0][0].numpy()
            stable.extend(synthetic.ken_burns(photo_ab, path, width, height))
        outputs = {}
        for index, (mode, temporal_mode, overrides) in enumerate(
            modes + [(_STABLE, 'none', {})]
        ):
            config = pipeline.VideoConfig(
                stem + '_gray.mp4',
                f'{stem}_{index}.mp4',
                temporal_mode=temporal_mode,
                overwrite=True,
                show_progress=False,
                crf=_OUTPUT_CRF.value,
                pixel_format=_OUTPUT_PIXEL_FORMAT.value,
                temporal_config=temporal.TemporalConfig(**overrides),
            )
            ab_arrays = predicted
            if mode == _STABLE:
                ab_arrays = stable
                summary = pipeline.colorize_video(
                    _GivenColours(colorizer, stable), config
                )
            else:
                summary = pipeline.colorize_video(colorizer, config)
            ten_bit = summary.pixel_format.endswith('10le')
            # A 10-bit output is written from, and read back as, 16-bit RGB.
            frames = synthetic.read_video(
                config.output_path, bits=16 if ten_bit else 8
            )
            ab = _ab(frames)
            outputs[mode] = ab
            if temporal_mode == 'flow':
                smoothed = temporal.smooth_sequence(
                    l_arrays, working, config.temporal_config
                )[0]
                ab_arrays = [
                    colorizer.ab_to_full_resolution(ab[np.newaxis], l)[
                        0
                    ].numpy()
                    for ab, l in zip(smoothed, l_channels)
                ]
            mae = [float(np.abs(a - t).mean()) for a, t in zip(ab, truth_ab)]
            mse = [
                float(np.mean(np.square(_unit(f) - _unit(t))))
                for f, t in zip(frames, truth)
            ]
            to_rgb = (
                full_resolution.lab_to_uint16
                if ten_bit
                else full_resolution.lab_to_uint8
            )
            rounded = [
                to_rgb(l, a[np.newaxis])[0].numpy()
                for l, a in zip(l_channels, ab_arrays)
            ]
            results[mode].append(
                {
                    'flicker_video': synthetic.warped_flicker(ab, flows),
                    'flicker_ab': synthetic.warped_flicker(ab_arrays, flows),
                    'flicker_uint8': synthetic.warped_flicker(
                        _ab(rounded), flows
                    ),
                    # The same frames in the writer's YCbCr, before x264.
                    'flicker_ycbcr': synthetic.warped_flicker(
                        _ab(
                            [
                                _through_ycbcr(f, summary.pixel_format)
                                for f in rounded
                            ]
                        ),
                        flows,
                    ),
                    'ab_mae': float(np.mean(mae)),
                    'bytes': os.path.getsize(config.output_path),
                    'psnr': float(np.mean([10 * np.log10(1 / m) for m in mse])),
                    'mae_around_cut': [
                        round(m, 2) for m in mae[cut - 2 : cut + 5]
                    ],
                    'cuts_detected': summary.cuts,
                    'fps': summary.frames_per_second,
                    'network_ms': 1000
                    * summary.network_seconds
                    / summary.frames,
                    'temporal_ms': 1000
                    * summary.temporal_seconds
                    / summary.frames,
                }
            )
        for mode, _, _ in modes[1:]:
            results[mode][-1]['settle'] = _settle(
                outputs[mode], outputs['none'], cut, len(truth)
            )
    return results


def _table(results) -> str:
    rows = [
        '| mode | flicker, video (excess over truth) | flicker, a*b* '
        'before coding (excess) | ab MAE | PSNR dB | settle (frames) | '
        'frames/s | network ms/frame | smoothing ms/frame |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    truth = results['ground truth']
    for mode, clips in results.items():

        def mean(key, clips=clips):
            values = [c[key] for c in clips if key in c]
            return np.mean(values) if values else float('nan')

        flicker = []
        for key in ('flicker_video', 'flicker_ab'):
            excess = mean(key) - np.mean([c[key] for c in truth])
            flicker.append(f'{mean(key):.3f} ({excess:+.3f})')
        settle = ', '.join(str(c['settle']) for c in clips if 'settle' in c)
        rows.append(
            f'| {mode} | {flicker[0]} | {flicker[1]} | '
            f'{mean("ab_mae"):.2f} | {mean("psnr"):.2f} | {settle or "-"} | '
            f'{mean("fps"):.1f} | {mean("network_ms"):.1f} | '
            f'{mean("temporal_ms"):.1f} |'
        )

    def per_clip(values, form='{:.3f}'):
        return ', '.join(
            'n/a' if np.isnan(v) else form.format(v) for v in values
        )

    none, stable = results['none'], results[_STABLE]
    for key in (
        'flicker_video',
        'flicker_ycbcr',
        'flicker_uint8',
        'flicker_ab',
    ):
        rows.append(
            f'\n{key} per clip: none {per_clip(c[key] for c in none)}'
            f'; {_STABLE} {per_clip(c[key] for c in stable)}'
        )
        for mode, clips in results.items():
            if not mode.startswith('flow'):
                continue
            raw = [n[key] / f[key] for n, f in zip(none, clips)]
            # Only meaningful while flow stays above the floor.
            above_stable = [
                (n[key] - s[key]) / (f[key] - s[key])
                if f[key] > s[key]
                else float('nan')
                for n, f, s in zip(none, clips, stable)
            ]
            rows.append(
                f'  {mode}: {per_clip(c[key] for c in clips)}; none / flow '
                f'{per_clip(raw, "{:.2f}x")}; above {_STABLE}: '
                f'{per_clip(above_stable, "{:.2f}x")}'
            )
    return '\n'.join(rows)


def _memory_child(path: str, output: str) -> None:
    from chromagen_tf.inference import colorize_lib  # pylint: disable=g-import-not-at-top
    from chromagen_tf.video import pipeline  # pylint: disable=g-import-not-at-top

    colorizer = colorize_lib.load_colorizer()
    summary = pipeline.colorize_video(
        colorizer,
        pipeline.VideoConfig(path, output, overwrite=True, show_progress=False),
    )
    common.print_result(
        {
            'frames': summary.frames,
            'peak_rss_mb': common.peak_rss_mb(),
            'fps': summary.frames_per_second,
        }
    )


def run_memory(lengths, work_dir) -> list:
    # pylint: disable-next=g-import-not-at-top
    from tests import video_fixtures as synthetic

    photo = _photo('sunset.jpg', 180)
    width, height = 160, 120
    rows = []
    for length in lengths:
        # Back and forth over the photo, so a long video stays one shot.
        one_way = shot_cameras(photo, width, height, 50, 0)
        cameras = (one_way + one_way[::-1]) * (length // 100 + 1)
        path = os.path.join(work_dir, f'long_{length}.mp4')
        synthetic.write_video(
            path,
            synthetic.ken_burns(photo, cameras[:length], width, height),
            rate=25,
            audio_seconds=1,
        )
        rows.append(
            common.run_child(
                'bench_video',
                '--memory_child='
                + ','.join(
                    [path, os.path.join(work_dir, f'long_{length}_out.mp4')]
                ),
            )
        )
    return rows


def make_strip(path: str, photo_name: str, work_dir: str) -> None:
    """README's frame strip: gray input, colorized (flow) and original rows."""
    from PIL import Image  # pylint: disable=g-import-not-at-top

    from chromagen_tf.inference import colorize_lib  # pylint: disable=g-import-not-at-top
    from chromagen_tf.video import pipeline  # pylint: disable=g-import-not-at-top

    # pylint: disable-next=g-import-not-at-top
    from tests import video_fixtures as synthetic

    width, height, columns, gap = 320, 240, 5, 4
    photo = _photo(photo_name, round(height * 1.5))
    cameras = shot_cameras(photo, width, height, 24, 0)
    truth = list(synthetic.ken_burns(photo, cameras, width, height))
    gray_path = os.path.join(work_dir, 'strip_gray.mp4')
    synthetic.write_video(
        gray_path, (synthetic.gray(f) for f in truth), rate=_RATE
    )
    colour_path = os.path.join(work_dir, 'strip_colour.mp4')
    pipeline.colorize_video(
        colorize_lib.load_colorizer(),
        pipeline.VideoConfig(
            gray_path, colour_path, overwrite=True, show_progress=False
        ),
    )
    picks = np.linspace(0, len(truth) - 1, columns).round().astype(int)
    rows = [
        synthetic.read_video(gray_path),
        synthetic.read_video(colour_path),
        truth,
    ]
    sheet = np.full(
        (3 * height + 2 * gap, columns * width + (columns - 1) * gap, 3),
        255,
        np.uint8,
    )
    for row, frames in enumerate(rows):
        for column, index in enumerate(picks):
            top, left = row * (height + gap), column * (width + gap)
            sheet[top : top + height, left : left + width] = frames[index]
    Image.fromarray(sheet).save(path, quality=88)
    print(f'{path}: frames {list(picks)} of {len(truth)}')


def run_speed(size, work_dir) -> None:
    """A 24-frame pan at one size: twice (the second warm), then once
    without the forward-backward test."""
    from chromagen_tf.inference import colorize_lib  # pylint: disable=g-import-not-at-top
    from chromagen_tf.video import pipeline  # pylint: disable=g-import-not-at-top
    from chromagen_tf.video import temporal  # pylint: disable=g-import-not-at-top

    # pylint: disable-next=g-import-not-at-top
    from tests import video_fixtures as synthetic

    width, height = size
    photo = _photo('stream.jpg', round(height * 1.5))
    path = os.path.join(work_dir, 'speed_gray.mp4')
    synthetic.write_video(
        path,
        (
            synthetic.gray(f)
            for f in synthetic.ken_burns(
                photo, shot_cameras(photo, width, height, 24, 0), width, height
            )
        ),
        rate=_RATE,
    )
    colorizer = colorize_lib.load_colorizer()
    for check in (True, True, False):
        summary = pipeline.colorize_video(
            colorizer,
            pipeline.VideoConfig(
                path,
                os.path.join(work_dir, 'speed.mp4'),
                overwrite=True,
                show_progress=False,
                temporal_config=temporal.TemporalConfig(
                    forward_backward_check=check
                ),
            ),
        )
        print(f'forward-backward test {check}: {summary}')


def main(argv: list[str]) -> None:
    common.check_no_arguments(argv)
    if _SPEED_SIZE.value:
        with tempfile.TemporaryDirectory() as work_dir:
            run_speed(
                tuple(int(v) for v in _SPEED_SIZE.value.split('x')), work_dir
            )
        return
    if _STRIP.value:
        with tempfile.TemporaryDirectory() as work_dir:
            make_strip(_STRIP.value, _STRIP_PHOTO.value, work_dir)
        return
    if _MEMORY_CHILD.value:
        _memory_child(*_MEMORY_CHILD.value)
        return
    size = tuple(int(v) for v in _SIZE.value.split('x'))
    report = {'machine': common.machine(), 'load_before': common.load_average()}
    with tempfile.TemporaryDirectory() as work_dir:
        report['quality'] = run_quality(size, _RENDER_SIZE.value, work_dir)
        print(_table(report['quality']))
        if not _SKIP_MEMORY.value:
            report['memory'] = run_memory(
                [int(v) for v in _MEMORY_FRAMES.value], work_dir
            )
            for row in report['memory']:
                print(
                    f'{row["frames"]} frames at 160x120: peak RSS '
                    f'{row["peak_rss_mb"]:.0f} MB, {row["fps"]:.1f} frames/s'
                )
    report['load_after'] = common.load_average()
    print(
        f'load average before {report["load_before"]:.2f}, '
        f'after {report["load_after"]:.2f}'
    )
    common.write_report(report, _OUTPUT_JSON.value)


if __name__ == '__main__':
    app.run(main)
