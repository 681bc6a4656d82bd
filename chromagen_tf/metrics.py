"""Image-quality metrics for colorization, batched and in TensorFlow.

Every function takes a batch ([B, H, W, C]) and returns one float32 value
per image ([B]), so that callers can average over a dataset however they
like (the evaluation tool averages over images; the trainer over a batch).
All functions work eagerly, inside `tf.function` and inside `tf.data`.

Metrics and their sources:
  * `ab_mae`: mean absolute error of the a and b channels, in real Lab units.
  * `psnr`, `ssim`: on sRGB in [0, 1] with max_val 1, as `tf.image.psnr` and
    `tf.image.ssim` (Wang et al. 2004, 11x11 Gaussian window, sigma 1.5).
  * `colorfulness`: Hasler and Suesstrunk, "Measuring colourfulness in
    natural images", SPIE 2003, Eq. 2 and the M^(3) metric:
        rg = R - G,  yb = (R + G) / 2 - B        (R, G, B in 0..255)
        sigma = sqrt(std(rg)^2 + std(yb)^2)
        mu = sqrt(mean(rg)^2 + mean(yb)^2)
        CF = sigma + 0.3 * mu
    The paper's scale puts "not colourful" near 0, "moderately" near 33 and
    "extremely colourful" above 109.
  * `ab_error_auc`: Zhang, Isola and Efros, "Colorful Image Colorization",
    ECCV 2016, Sec. 3.1 ("AuC"): the fraction of pixels whose Euclidean
    error in ab is within a threshold t, swept over t = 0, 1, ..., 150,
    gives a cumulative curve; its area (trapezoidal rule) divided by the
    range 150 is in [0, 1], and 1 means every pixel is exact.
"""

import tensorflow as tf

# Hasler and Suesstrunk 2003, M^(3): weight of the mean term.
_COLORFULNESS_MEAN_WEIGHT = 0.3
# Zhang et al. 2016: thresholds 0..150 in ab units.
DEFAULT_AUC_MAX_THRESHOLD = 150.0


def _float32(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def ab_mae(ab_pred: tf.Tensor, ab_true: tf.Tensor) -> tf.Tensor:
    """Mean absolute ab error per image.

    Args:
      ab_pred: [B, H, W, 2] predicted a and b in real Lab units.
      ab_true: [B, H, W, 2] ground truth, same units.

    Returns:
      float32 [B]: the mean over pixels and both channels of |pred - true|.
    """
    difference = tf.abs(_float32(ab_pred) - _float32(ab_true))
    return tf.reduce_mean(difference, axis=[1, 2, 3])


def psnr(rgb_pred: tf.Tensor, rgb_true: tf.Tensor) -> tf.Tensor:
    """Peak signal-to-noise ratio per image, in dB, for RGB in [0, 1].

    Identical images give +inf, as `tf.image.psnr` does.
    """
    return tf.image.psnr(_float32(rgb_pred), _float32(rgb_true), max_val=1.0)


def ssim(rgb_pred: tf.Tensor, rgb_true: tf.Tensor) -> tf.Tensor:
    """Structural similarity per image for RGB in [0, 1].

    The mean over channels of `tf.image.ssim` with its defaults (Wang et
    al. 2004). Images must be at least 11 pixels on each side (the window).
    """
    return tf.image.ssim(_float32(rgb_pred), _float32(rgb_true), max_val=1.0)


def colorfulness(rgb: tf.Tensor) -> tf.Tensor:
    """Colorfulness per image (Hasler and Suesstrunk 2003, M^(3)).

    Args:
      rgb: [B, H, W, 3] sRGB on the paper's 0..255 scale (float or uint8).
        Multiply [0, 1] images by 255 first.

    Returns:
      float32 [B]. A gray image scores 0.
    """
    rgb = _float32(rgb)
    red, green, blue = tf.unstack(rgb, axis=-1)
    rg = red - green
    yb = 0.5 * (red + green) - blue
    rg_mean, rg_variance = tf.nn.moments(rg, axes=[1, 2])
    yb_mean, yb_variance = tf.nn.moments(yb, axes=[1, 2])
    sigma = tf.sqrt(rg_variance + yb_variance)
    mu = tf.sqrt(tf.square(rg_mean) + tf.square(yb_mean))
    return sigma + _COLORFULNESS_MEAN_WEIGHT * mu


def ab_error_auc(
    ab_pred: tf.Tensor,
    ab_true: tf.Tensor,
    max_threshold: float = DEFAULT_AUC_MAX_THRESHOLD,
) -> tf.Tensor:
    """Area under the cumulative ab-error curve per image (Zhang et al. 2016).

    For each integer threshold t in [0, max_threshold] the curve is the
    fraction of pixels with ||ab_pred - ab_true||_2 <= t. The area under it
    (trapezoidal rule, unit steps) is divided by max_threshold.

    A histogram of ceil(error) gives the curve exactly (error <= t, for an
    integer t, iff ceil(error) <= t) without a [B, H, W, thresholds] tensor.

    Args:
      ab_pred: [B, H, W, 2] predicted ab in real Lab units.
      ab_true: [B, H, W, 2] ground truth.
      max_threshold: The largest threshold, a positive integer (150 in the
        paper).

    Returns:
      float32 [B] in [0, 1].
    """
    num_thresholds = int(max_threshold) + 1
    if num_thresholds < 2:
        raise ValueError(f'max_threshold must be >= 1, got {max_threshold}')
    difference = _float32(ab_pred) - _float32(ab_true)
    error = tf.sqrt(tf.reduce_sum(tf.square(difference), axis=-1))
    batch_size = tf.shape(error)[0]
    error = tf.reshape(error, [batch_size, -1])
    num_pixels = tf.cast(tf.shape(error)[1], tf.float32)
    # Errors above the last threshold land in an overflow bin, never counted.
    bins = tf.cast(
        tf.minimum(tf.math.ceil(error), float(num_thresholds)), tf.int32
    )
    counts = tf.math.bincount(
        bins,
        minlength=num_thresholds + 1,
        maxlength=num_thresholds + 1,
        axis=-1,
        dtype=tf.float32,
    )
    curve = tf.cumsum(counts[:, :num_thresholds], axis=-1) / tf.maximum(
        num_pixels, 1.0
    )
    area = tf.reduce_sum(curve, axis=-1) - 0.5 * (curve[:, 0] + curve[:, -1])
    return area / float(num_thresholds - 1)


# 100 dB is an RMS error of 1e-5 of the range, far below one uint8 step
# (48 dB): any exact image counts the same, and a mean stays finite.
PSNR_CAP_DB = 100.0
# Every per-image metric, in report order. delta_colorfulness is derived
# from the means of two of them (`delta_colorfulness`).
IMAGE_METRICS = (
    'ab_mae',
    'psnr',
    'ssim',
    'colorfulness',
    'colorfulness_gt',
    'auc',
)
# The cheaper ones the trainer evaluates on the val split every eval_every
# steps (SSIM and AuC cost more than the generator on small images).
TRAINING_EVAL_METRICS = ('ab_mae', 'psnr', 'colorfulness', 'colorfulness_gt')


def image_metrics(
    rgb_pred: tf.Tensor,
    rgb_true: tf.Tensor,
    ab_pred: tf.Tensor,
    ab_true: tf.Tensor,
    names=IMAGE_METRICS,
) -> dict[str, tf.Tensor]:
    """The named per-image metrics of a batch, each [B] float32.

    Args:
      rgb_pred, rgb_true: sRGB in [0, 1], [B, H, W, 3].
      ab_pred, ab_true: ab in real Lab units, [B, H, W, 2].
      names: Which of IMAGE_METRICS to compute.
    """
    functions = {
        'ab_mae': lambda: ab_mae(ab_pred, ab_true),
        'psnr': lambda: tf.minimum(psnr(rgb_pred, rgb_true), PSNR_CAP_DB),
        'ssim': lambda: ssim(rgb_pred, rgb_true),
        'colorfulness': lambda: colorfulness(255.0 * _float32(rgb_pred)),
        'colorfulness_gt': lambda: colorfulness(255.0 * _float32(rgb_true)),
        'auc': lambda: ab_error_auc(ab_pred, ab_true),
    }
    unknown = set(names) - set(functions)
    if unknown:
        raise ValueError(
            f'Unknown metrics {sorted(unknown)}; known: {IMAGE_METRICS}'
        )
    return {name: functions[name]() for name in names}


def delta_colorfulness(means: dict[str, float]) -> float:
    """|mean colourfulness - mean ground-truth colourfulness| (ΔCF)."""
    return abs(means['colorfulness'] - means['colorfulness_gt'])
