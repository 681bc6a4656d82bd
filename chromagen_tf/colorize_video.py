r"""Colorizes a black-and-white video with a ChromaGen model.

Usage:

  python -m chromagen_tf.colorize_video old_film.mp4 --output=colour.mp4
  python -m chromagen_tf.colorize_video clip.mkv --output=clip_colour.mkv \
      --model=models/chromagen --temporal=none --batch_size=4
  python -m chromagen_tf.colorize_video reel.mp4 --output=reel_colour.mp4 \
      --temporal_strength=0.9

Each frame's lightness goes through the same model path as a photo (the
bundled model unless --model is given): the network sees a --render_size
working copy, and its a*b* is laid over the frame's own full-resolution L.
With --temporal=flow (the default) the a*b* is first made stable over time
at the working size, along the optical flow, resetting at scene cuts
(docs/video.md).

The output keeps the input's frame size (upright, if the input carries a
rotation), frame timestamps (so also variable frame rates) and audio
streams (copied, not re-encoded). It is H.264, yuv420p, or yuv444p when a
side is odd (--pixel_format chooses another). It is written under a
temporary name in the output's folder and renamed when complete: a failed
run leaves no file at --output.

Needs the video extra: pip install '.[video]' (PyAV and OpenCV).
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
from absl import app
from absl import flags

from chromagen_tf import errors
from chromagen_tf import video
from chromagen_tf.inference import model_flags

_TOOL = 'colorize_video'

_OUTPUT = flags.DEFINE_string(
    'output',
    None,
    'The colorized video to write (.mp4, .mov or .mkv; the container is '
    'chosen by the extension).',
)
_TEMPORAL = flags.DEFINE_enum(
    'temporal',
    'flow',
    list(video.TEMPORAL_MODES),
    'flow: smooth a*b* over time along the optical flow, with a per-pixel '
    'confidence and a reset at scene cuts; none: colorize every frame on '
    'its own.',
)
_TEMPORAL_STRENGTH = flags.DEFINE_float(
    'temporal_strength',
    video.DEFAULT_TEMPORAL_STRENGTH,
    'With --temporal=flow: how much of the previous frame\'s colour, '
    'carried along the flow, each pixel keeps where the flow is trusted '
    '(0 to 0.99). Higher is steadier but follows a real colour change '
    'more slowly: the colour is averaged over about 1 / (1 - S) frames, '
    '20 at the default.',
    lower_bound=0.0,
    upper_bound=0.99,
)
_OVERWRITE = flags.DEFINE_boolean(
    'overwrite', False, 'Replace --output if it exists.'
)
_MAX_PIXELS = flags.DEFINE_integer(
    'max_pixels',
    video.MAX_PIXELS,
    'Refuse videos whose frames have more pixels than this (default: '
    'DCI 4K, 4096x2160), judged from the header before decoding.',
    lower_bound=1,
)
_CRF = flags.DEFINE_integer(
    'crf',
    video.DEFAULT_CRF,
    'x264 constant-rate factor of the output: lower is better quality and '
    'larger files (18 is about visually lossless, 0 lossless).',
    lower_bound=0,
    upper_bound=51,
)

_PIXEL_FORMAT = flags.DEFINE_enum(
    'pixel_format',
    'auto',
    video.PIXEL_FORMATS,
    'Chroma sampling of the output. auto: yuv420p, which every player '
    'takes, or yuv444p when the width or height is odd. yuv444p: '
    'full-resolution colour at any size (H.264 High 4:4:4, which some '
    'browsers and hardware players refuse). The 10le variants store 10 '
    'bits (High 10, High 4:4:4), which keeps a*b* finer than 8-bit YCbCr '
    'and plays on even fewer players.',
)

# --help lists the shared model flags (--model, --stage, --render_size,
# --batch_size) as this tool's own.
flags.adopt_module_key_flags(model_flags)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError('Give exactly one INPUT_VIDEO.')
    if not _OUTPUT.value:
        raise app.UsageError('--output is required.')
    if _TEMPORAL.value == 'none' and flags.FLAGS['temporal_strength'].present:
        errors.fail(
            _TOOL,
            errors.UsageError('--temporal_strength needs --temporal=flow.'),
        )
    try:
        from chromagen_tf.video import pipeline  # pylint: disable=g-import-not-at-top
        from chromagen_tf.video import temporal  # pylint: disable=g-import-not-at-top
    except ImportError as error:
        errors.fail(
            _TOOL,
            errors.UsageError(
                f'the video extra is not installed ({error}); run: '
                "pip install '.[video]'"
            ),
        )
    config = pipeline.VideoConfig(
        input_path=argv[1],
        output_path=_OUTPUT.value,
        temporal_mode=_TEMPORAL.value,
        batch_size=model_flags.BATCH_SIZE.value,
        max_pixels=_MAX_PIXELS.value,
        overwrite=_OVERWRITE.value,
        crf=_CRF.value,
        pixel_format=_PIXEL_FORMAT.value,
        temporal_config=temporal.TemporalConfig(
            strength=_TEMPORAL_STRENGTH.value
        ),
    )
    try:
        pipeline.check_input(config)  # Fails before the model loads.
        colorizer = model_flags.load_colorizer()
        summary = pipeline.colorize_video(colorizer, config)
    except errors.ChromaGenError as error:
        errors.fail(_TOOL, error)
    print(f'{config.output_path}: {summary} ({colorizer.description})')


if __name__ == '__main__':
    app.run(main)
