"""Colorizing video: reading and writing with PyAV, temporal smoothing.

  reader.py     decoded frames (upright, with their timestamps) and audio
                packets, with the input checks
  writer.py     H.264 output in the input's timing, audio copied, written
                under a temporary name and renamed on success
  temporal.py   flow-guided temporal smoothing of a*b* (OpenCV DIS)
  pipeline.py   colorize_video: batches of frames through a Colorizer
  synthetic.py  test videos with known motion, and the flicker measure

The command is `python -m chromagen_tf.colorize_video`; docs/video.md
describes the method. Needs the `video` extra (`pip install .[video]`).
"""

# These three live here, free of PyAV and OpenCV, so that the command can
# define its flags and say what to install when the extra is missing.

# The default pixel limit per frame: DCI 4K (4096x2160). A batch of 8 such
# frames holds about 0.9 GB of float32 L and a*b* (docs/video.md).
MAX_PIXELS = 4096 * 2160
# x264's constant-quality factor; 18 is about visually lossless (x264 docs).
DEFAULT_CRF = 18
TEMPORAL_MODES = ('flow', 'none')
# Weight of the warped previous output where the flow is trusted
# (temporal.TemporalConfig.strength). 0.95 cuts the flicker of a*b* before
# coding 3.6-4.7x on the benchmark clips, where 0.9 gave 2.7-3.6x, and
# loses at most 0.04 dB PSNR on one of them (BENCHMARKS.md, "Video").
DEFAULT_TEMPORAL_STRENGTH = 0.95
# auto: yuv420p (what every player takes) for even sizes, yuv444p for odd
# ones; yuv444p keeps full-resolution chroma at any size; the 10-bit
# formats (H.264 High 10 and High 4:4:4) keep a*b* finer than 8-bit YCbCr.
PIXEL_FORMATS = ('auto', 'yuv420p', 'yuv444p', 'yuv420p10le', 'yuv444p10le')
