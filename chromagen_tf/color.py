"""CIELAB colour maths: the one home for conversions and normalisation.

Everything in ChromaGen that moves between sRGB and CIELAB, or between real
Lab units and the normalised values the networks see, goes through this
module: the TFRecord converter, the tf.data pipeline, the trainer, the
SavedModel export and the evaluation tool.

Conventions:
  * sRGB (IEC 61966-2-1) with its piecewise gamma, values in [0, 1].
  * D65 reference white, CIE 1931 2-degree observer.
  * L in [0, 100]; a and b roughly in [-128, 127] (the sRGB gamut spans about
    [-86, 98] for a and [-108, 95] for b).
  * Network inputs: L / 50 - 1 in [-1, 1]; network outputs: ab / 110.
    Both scalings come from the colorization tutorial this project follows
    (Shariatnia, "Colorizing black & white images with U-Net and conditional
    GAN", 2020), itself after Zhang et al. 2016.

The TensorFlow functions accept batched ([B, H, W, 3]) and unbatched
([H, W, 3]) tensors of float16, bfloat16, float32 or float64. Half-precision
inputs are computed in float32 and returned in the input dtype. They are
written with "safe" branches so that gradients are finite everywhere,
including at black pixels and at L=0, where a naive `tf.where` over
`pow(x, 1/3)` gives NaN gradients.

NumPy twins (`rgb_to_lab_numpy`, `lab_to_rgb_numpy`) use the same constants
for the offline converter, which runs in worker processes without building
TF graphs per image.
"""

from typing import Union

import numpy as np
import tensorflow as tf

# --- Normalisation (model space) -------------------------------------------

# L in [0, 100] <-> [-1, 1]: L / 50 - 1 (tutorial, after Zhang et al. 2016).
L_SCALE = 50.0
L_OFFSET = 1.0
# ab <-> ab / 110 (tutorial; 110 bounds the sRGB gamut's |a|, |b|).
AB_SCALE = 110.0

# --- Colourimetric constants -----------------------------------------------

# Linear sRGB -> XYZ (D65), IEC 61966-2-1; the same values as scikit-image
# and tensorflow-io, so that all three agree to float precision.
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float64,
)
# The exact inverse, so that RGB -> Lab -> RGB round-trips to float precision.
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)

# D65 white point, 2-degree observer (CIE 15:2004), Y normalised to 1.
D65_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float64)

# CIE Lab piecewise function f(t): cube root above (6/29)^3, linear below.
_DELTA = 6.0 / 29.0
_EPSILON = _DELTA**3  # 0.008856...
_LINEAR_SLOPE = 1.0 / (3.0 * _DELTA**2)  # 7.787...
_LINEAR_OFFSET = 4.0 / 29.0  # 16/116

# sRGB transfer function breakpoints (IEC 61966-2-1).
_SRGB_LINEAR_BREAK = 0.04045
_SRGB_ENCODED_BREAK = 0.0031308

TensorLike = Union[tf.Tensor, np.ndarray]


def _to_float32(x: TensorLike) -> tuple[tf.Tensor, tf.DType]:
    """Returns x as a float tensor computed in >= float32, and its dtype."""
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        raise TypeError(f'Expected a floating-point tensor, got {x.dtype}.')
    if x.dtype in (tf.float16, tf.bfloat16):
        return tf.cast(x, tf.float32), x.dtype
    return x, x.dtype


def _safe_pow(x: tf.Tensor, exponent: float, floor: float) -> tf.Tensor:
    """pow(max(x, floor), exponent): finite value and gradient for x >= 0."""
    return tf.pow(tf.maximum(x, floor), exponent)


def _srgb_to_linear(rgb: tf.Tensor) -> tf.Tensor:
    high = _safe_pow((rgb + 0.055) / 1.055, 2.4, 1e-6)
    return tf.where(rgb > _SRGB_LINEAR_BREAK, high, rgb / 12.92)


def _linear_to_srgb(linear: tf.Tensor) -> tf.Tensor:
    high = 1.055 * _safe_pow(linear, 1.0 / 2.4, _SRGB_ENCODED_BREAK) - 0.055
    return tf.where(linear > _SRGB_ENCODED_BREAK, high, linear * 12.92)


def _lab_f(t: tf.Tensor) -> tf.Tensor:
    cube_root = _safe_pow(t, 1.0 / 3.0, _EPSILON)
    return tf.where(t > _EPSILON, cube_root, t * _LINEAR_SLOPE + _LINEAR_OFFSET)


def _lab_f_inverse(f: tf.Tensor) -> tf.Tensor:
    return tf.where(
        f > _DELTA, tf.pow(f, 3.0), (f - _LINEAR_OFFSET) / _LINEAR_SLOPE
    )


def _matmul_last_axis(x: tf.Tensor, matrix: np.ndarray) -> tf.Tensor:
    # x[..., i] * M[j, i] summed over i; tensordot keeps any leading shape.
    kernel = tf.constant(matrix.T, dtype=x.dtype)
    return tf.tensordot(x, kernel, axes=[[-1], [0]])


def rgb_to_lab(rgb: TensorLike, name: str = 'rgb_to_lab') -> tf.Tensor:
    """Converts sRGB in [0, 1] to CIELAB (D65, 2-degree observer).

    Args:
      rgb: A float tensor of shape [..., 3] with sRGB values in [0, 1].
      name: Op name scope.

    Returns:
      A tensor of the same shape and dtype holding L in [0, 100] and a, b in
      real Lab units.
    """
    with tf.name_scope(name):
        rgb, dtype = _to_float32(rgb)
        xyz = _matmul_last_axis(_srgb_to_linear(rgb), _RGB_TO_XYZ)
        xyz = xyz / tf.constant(D65_WHITE, dtype=xyz.dtype)
        fx, fy, fz = tf.unstack(_lab_f(xyz), axis=-1)
        lab = tf.stack(
            [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1
        )
        return tf.cast(lab, dtype)


def _lab_to_linear_rgb(lab: tf.Tensor) -> tf.Tensor:
    """float32 Lab [..., 3] -> linear sRGB [..., 3], not clipped."""
    l_channel, a, b = tf.unstack(lab, axis=-1)
    fy = (l_channel + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = tf.maximum(fy - b / 200.0, 0.0)
    xyz = _lab_f_inverse(tf.stack([fx, fy, fz], axis=-1))
    xyz = xyz * tf.constant(D65_WHITE, dtype=xyz.dtype)
    return _matmul_last_axis(xyz, _XYZ_TO_RGB)


def lab_to_rgb(lab: TensorLike, name: str = 'lab_to_rgb') -> tf.Tensor:
    """Converts CIELAB (D65, 2-degree observer) to sRGB clipped to [0, 1].

    This is the reference conversion, which clips each channel as
    scikit-image and tensorflow-io do; that changes the lightness of
    out-of-gamut colours. Pictures for people go through
    `lab_to_rgb_in_gamut` instead.

    Args:
      lab: A float tensor of shape [..., 3]: L in [0, 100], a and b in real
        Lab units.
      name: Op name scope.

    Returns:
      sRGB in [0, 1], same shape and dtype as `lab`.
    """
    with tf.name_scope(name):
        lab, dtype = _to_float32(lab)
        linear = _lab_to_linear_rgb(lab)
        rgb = tf.clip_by_value(_linear_to_srgb(linear), 0.0, 1.0)
        return tf.cast(rgb, dtype)


# --- Gamut mapping ------------------------------------------------------------

# Bisection steps on the chroma scale: 2^-14 of the predicted chroma, under
# 0.01 ab units for any chroma the networks predict.
_GAMUT_STEPS = 14
# Linear-RGB slack before a colour counts as out of gamut: float32 noise of
# colours that came from sRGB pixels, well below one 8-bit step.
_GAMUT_TOLERANCE = 1e-5


def _in_gamut(linear: tf.Tensor) -> tf.Tensor:
    return tf.reduce_all(
        (linear >= -_GAMUT_TOLERANCE) & (linear <= 1.0 + _GAMUT_TOLERANCE),
        axis=-1,
    )


def _clip_lightness(lab: tf.Tensor) -> tf.Tensor:
    return tf.concat(
        [tf.clip_by_value(lab[..., :1], 0.0, 100.0), lab[..., 1:]], -1
    )


def _fit_colours(colours: tf.Tensor) -> tf.Tensor:
    """[N, 3] out-of-gamut Lab -> the same L and hue, largest chroma in."""
    lightness, ab = colours[:, :1], colours[:, 1:]
    low = tf.zeros_like(lightness)
    high = tf.ones_like(lightness)
    for _ in range(_GAMUT_STEPS):
        middle = (low + high) / 2.0
        fits = _in_gamut(
            _lab_to_linear_rgb(tf.concat([lightness, ab * middle], -1))
        )[:, tf.newaxis]
        low = tf.where(fits, middle, low)
        high = tf.where(fits, high, middle)
    return tf.concat([lightness, ab * tf.stop_gradient(low)], -1)


def fit_to_srgb_gamut(
    lab: TensorLike, name: str = 'fit_to_srgb_gamut'
) -> tf.Tensor:
    """Brings Lab colours into the sRGB gamut at fixed L and hue.

    Each out-of-gamut colour keeps its L and its hue angle atan2(b, a); its
    chroma is scaled by the largest factor in [0, 1] that lands in the gamut,
    found by bisection (every neutral colour with L in [0, 100] is in the
    gamut, so the factor 0 always fits). Colours already in the gamut are
    returned unchanged, and only the out-of-gamut pixels are computed on,
    which keeps well-predicted photos cheap. L is clipped to [0, 100].

    The chroma factor is piecewise constant, so gradients through the
    output are finite (the factor itself passes no gradient).

    Args:
      lab: A float tensor [..., 3], L in [0, 100], a and b in Lab units.
      name: Op name scope.

    Returns:
      Lab of the same shape and dtype, inside the sRGB gamut.
    """
    with tf.name_scope(name):
        lab, dtype = _to_float32(lab)
        lab = _clip_lightness(lab)
        outside = tf.where(tf.logical_not(_in_gamut(_lab_to_linear_rgb(lab))))
        fitted = _fit_colours(tf.gather_nd(lab, outside))
        return tf.cast(tf.tensor_scatter_nd_update(lab, outside, fitted), dtype)


def lab_to_rgb_in_gamut(
    lab: TensorLike, name: str = 'lab_to_rgb_in_gamut'
) -> tf.Tensor:
    """Lab -> sRGB in [0, 1] that keeps every pixel's L (`fit_to_srgb_gamut`).

    This is how every picture ChromaGen shows is made: the serving
    signatures, the colorize tool, the evaluation tool and TensorBoard. The
    linear RGB of the whole image is computed once; only the out-of-gamut
    pixels are fitted and converted again.
    """
    with tf.name_scope(name):
        lab, dtype = _to_float32(lab)
        lab = _clip_lightness(lab)
        linear = _lab_to_linear_rgb(lab)
        outside = tf.where(tf.logical_not(_in_gamut(linear)))
        fitted = _fit_colours(tf.gather_nd(lab, outside))
        linear = tf.tensor_scatter_nd_update(
            linear, outside, _lab_to_linear_rgb(fitted)
        )
        rgb = tf.clip_by_value(_linear_to_srgb(linear), 0.0, 1.0)
        return tf.cast(rgb, dtype)


# --- Normalisation helpers -------------------------------------------------


def normalize_l(l_channel: TensorLike) -> tf.Tensor:
    """L in [0, 100] -> [-1, 1]."""
    return tf.convert_to_tensor(l_channel) / L_SCALE - L_OFFSET


def denormalize_l(l_normalized: TensorLike) -> tf.Tensor:
    """[-1, 1] -> L in [0, 100]."""
    return (tf.convert_to_tensor(l_normalized) + L_OFFSET) * L_SCALE


def normalize_ab(ab: TensorLike) -> tf.Tensor:
    """ab in Lab units -> ab / 110."""
    return tf.convert_to_tensor(ab) / AB_SCALE


def denormalize_ab(ab_normalized: TensorLike) -> tf.Tensor:
    """ab / 110 -> ab in Lab units."""
    return tf.convert_to_tensor(ab_normalized) * AB_SCALE


def split_lab(lab: TensorLike) -> tuple[tf.Tensor, tf.Tensor]:
    """Splits [..., 3] Lab into L [..., 1] and ab [..., 2]."""
    lab = tf.convert_to_tensor(lab)
    return lab[..., :1], lab[..., 1:]


def normalized_to_rgb(
    l_normalized: TensorLike, ab_normalized: TensorLike
) -> tf.Tensor:
    """Joins normalised L [..., 1] and ab [..., 2] and returns sRGB in [0, 1].

    This is the inverse of the model's input/output space: it is how a
    prediction becomes a picture, gamut-mapped at fixed L and hue.
    Computed in float32.
    """
    l_channel = denormalize_l(tf.cast(l_normalized, tf.float32))
    ab = denormalize_ab(tf.cast(ab_normalized, tf.float32))
    return lab_to_rgb_in_gamut(tf.concat([l_channel, ab], axis=-1))


def rgb_to_normalized(rgb: TensorLike) -> tuple[tf.Tensor, tf.Tensor]:
    """sRGB in [0, 1] -> (normalised L [..., 1], normalised ab [..., 2])."""
    l_channel, ab = split_lab(rgb_to_lab(tf.cast(rgb, tf.float32)))
    return normalize_l(l_channel), normalize_ab(ab)


# --- NumPy twins for the offline converter ---------------------------------

_SRGB_UINT8_TO_LINEAR = None  # Lazily built 256-entry lookup table.


def _srgb_to_linear_numpy(rgb: np.ndarray) -> np.ndarray:
    global _SRGB_UINT8_TO_LINEAR
    if rgb.dtype == np.uint8:
        # A uint8 input has only 256 values: a table lookup is exact and ~10x
        # faster than evaluating the power function per pixel.
        if _SRGB_UINT8_TO_LINEAR is None:
            _SRGB_UINT8_TO_LINEAR = _srgb_to_linear_numpy(
                np.arange(256, dtype=np.float64) / 255.0
            ).astype(np.float32)
        return np.take(_SRGB_UINT8_TO_LINEAR, rgb)
    rgb = rgb.astype(np.float64, copy=False)
    high = np.power((np.maximum(rgb, 0.0) + 0.055) / 1.055, 2.4)
    return np.where(rgb > _SRGB_LINEAR_BREAK, high, rgb / 12.92)


def rgb_to_lab_numpy(rgb: np.ndarray) -> np.ndarray:
    """NumPy twin of `rgb_to_lab`.

    Args:
      rgb: [..., 3] array, either uint8 in [0, 255] or float in [0, 1].

    Returns:
      float32 Lab array of the same leading shape.
    """
    rgb = np.asarray(rgb)
    linear = _srgb_to_linear_numpy(rgb)
    matrix = (_RGB_TO_XYZ / D65_WHITE[:, None]).T.astype(linear.dtype)
    # Row by row for an image: one [H*W, 3] product would be handed to a
    # multi-threaded BLAS, whose spinning threads cost more than they save.
    xyz = (linear @ matrix).reshape(-1, 3)
    # cbrt everywhere, then the linear segment only where it applies: an
    # np.where over both branches costs three more full-size temporaries.
    f = np.cbrt(xyz)
    dark = xyz <= _EPSILON
    if dark.any():
        f[dark] = xyz[dark] * _LINEAR_SLOPE + _LINEAR_OFFSET
    fx, fy, fz = f.T
    # Channel by channel: NumPy's inner loops are slow over a length-3 axis.
    lab = np.empty(xyz.shape, dtype=np.float32)
    l_channel, a, b = lab.T
    np.multiply(fy, 116.0, out=l_channel, casting='unsafe')
    l_channel -= 16.0
    np.subtract(fx, fy, out=a, casting='unsafe')
    a *= 500.0
    np.subtract(fy, fz, out=b, casting='unsafe')
    b *= 200.0
    return lab.reshape(rgb.shape)


def lab_to_rgb_numpy(lab: np.ndarray) -> np.ndarray:
    """NumPy twin of `lab_to_rgb`: float Lab [..., 3] -> float32 sRGB [0, 1]."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = np.maximum(fy - lab[..., 2] / 200.0, 0.0)
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f > _DELTA, f**3, (f - _LINEAR_OFFSET) / _LINEAR_SLOPE)
    linear = (xyz * D65_WHITE) @ _XYZ_TO_RGB.T
    high = (
        1.055 * np.power(np.maximum(linear, _SRGB_ENCODED_BREAK), 1.0 / 2.4)
        - 0.055
    )
    rgb = np.where(linear > _SRGB_ENCODED_BREAK, high, linear * 12.92)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)
