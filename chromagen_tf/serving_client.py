"""A client for a ChromaGen model served by TF Serving's REST API.

It needs only the Python standard library. The request body is TF Serving's
row format with base64-wrapped bytes:

  POST http://HOST:8501/v1/models/chromagen:predict
  {"instances": [{"image_bytes": {"b64": "<base64 of a JPEG/PNG/...>"}}]}

and the answer holds one PNG per instance:

  {"predictions": [{"b64": "<base64 of a PNG>"}]}

(with several outputs a prediction would be
{"colorized_png_bytes": {"b64": ...}}; both forms are accepted). The output
is named with the "_bytes" suffix because TF Serving's REST server
base64-wraps a string output only then (tensorflow_serving/util/
json_tensor.cc, IsNamedTensorBytes); under any other name it would write
raw PNG bytes into the JSON text. The same request with curl:

  printf '{"instances": [{"image_bytes": {"b64": "%s"}}]}' \
      "$(base64 -w0 old.jpg)" > request.json
  curl -s -d @request.json http://localhost:8501/v1/models/chromagen:predict

With --hints, a hint model's `colorize_with_hints` signature is called
instead; each instance also carries its hints, padded to the batch's
largest count (at least one) with points at (-1, -1), which the signature
ignores:

  {"signature_name": "colorize_with_hints",
   "instances": [{"image_bytes": {"b64": "..."},
                  "hint_points": [[120, 45]], "hint_colors": [[208, 64, 32]]}]}

Usage:

  python -m chromagen_tf.serving_client --server=http://localhost:8501 \
      --model_name=chromagen old.jpg --output_dir=colorized
  python -m chromagen_tf.serving_client old.jpg --hints=old.jpg.hints.json
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
import base64
import json
import os
from typing import Any, Sequence
import urllib.error
import urllib.request

from absl import app
from absl import flags

from chromagen_tf import errors
from chromagen_tf import hint_format

OUTPUT_KEY = 'colorized_png_bytes'
INPUT_KEY = 'image_bytes'
HINT_SIGNATURE = 'colorize_with_hints'
HINT_POINTS_KEY = 'hint_points'
HINT_COLORS_KEY = 'hint_colors'
# A padding point: outside every image, so the signature ignores it.
_PADDING = ([-1.0, -1.0], [0, 0, 0])


class ServingError(errors.ChromaGenError, RuntimeError):
    """The server refused the request or answered something unexpected."""


def predict_url(server: str, model_name: str) -> str:
    """The REST predict endpoint of a model."""
    return f'{server.rstrip("/")}/v1/models/{model_name}:predict'


def request_body(images: Sequence[bytes], hint_lists=None) -> bytes:
    """The JSON body TF Serving expects for a batch of encoded images.

    hint_lists: one list of `hint_format.Hint` per image, for the
    colorize_with_hints signature; None calls the default signature.
    """
    instances = [
        {INPUT_KEY: {'b64': base64.b64encode(image).decode('ascii')}}
        for image in images
    ]
    if hint_lists is None:
        return json.dumps({'instances': instances}).encode('utf-8')
    # Row format batches the instances: every one needs the same count, and
    # at least one point, since an empty list has no [N, 2] shape to batch.
    count = max([1] + [len(hint_list) for hint_list in hint_lists])
    for instance, hint_list in zip(instances, hint_lists, strict=True):
        padding = [_PADDING] * (count - len(hint_list))
        pairs = [([h.x, h.y], list(h.rgb)) for h in hint_list] + padding
        instance[HINT_POINTS_KEY] = [point for point, _ in pairs]
        instance[HINT_COLORS_KEY] = [rgb for _, rgb in pairs]
    return json.dumps(
        {'signature_name': HINT_SIGNATURE, 'instances': instances}
    ).encode('utf-8')


def _decode_prediction(prediction: Any) -> bytes:
    if isinstance(prediction, dict) and OUTPUT_KEY in prediction:
        prediction = prediction[OUTPUT_KEY]
    if isinstance(prediction, dict) and 'b64' in prediction:
        return base64.b64decode(prediction['b64'])
    raise ServingError(f'Unexpected prediction format: {str(prediction)[:80]}')


def colorize(
    images: Sequence[bytes],
    server: str = 'http://localhost:8501',
    model_name: str = 'chromagen',
    timeout: float = 60.0,
    hint_lists=None,
) -> list[bytes]:
    """Sends encoded images to the server and returns colorized PNG bytes.

    hint_lists: see `request_body`.

    Raises:
      ServingError: the server answered with an error (e.g. an undecodable
        image) or could not be reached.
    """
    request = urllib.request.Request(
        predict_url(server, model_name),
        data=request_body(images, hint_lists),
        headers={'Content-Type': 'application/json'},
        method='POST',
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode('utf-8', 'replace')
        try:
            detail = json.loads(detail).get('error', detail)
        except ValueError:
            pass
        raise ServingError(f'HTTP {error.code}: {detail}') from None
    except (urllib.error.URLError, OSError) as error:
        raise ServingError(f'Cannot reach {server}: {error}') from None
    predictions = answer.get('predictions')
    if not isinstance(predictions, list) or len(predictions) != len(images):
        raise ServingError(f'Unexpected answer: {str(answer)[:200]}')
    return [_decode_prediction(p) for p in predictions]


_SERVER = flags.DEFINE_string(
    'server', 'http://localhost:8501', 'TF Serving REST address.'
)
_MODEL_NAME = flags.DEFINE_string(
    'model_name', 'chromagen', 'Model name the server was started with.'
)
_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', '.', 'Where <input name>.png files are written.'
)
_HINTS = flags.DEFINE_string(
    'hints',
    '',
    'Colour hints for a hint model: a JSON hint file for the one input, or '
    '"sidecar" to read <input file name>.hints.json beside each input (none '
    'where missing). Calls the colorize_with_hints signature.',
)
_TIMEOUT = flags.DEFINE_float(
    'timeout', 60.0, 'Seconds to wait for the answer.', lower_bound=0.1
)


def _hint_lists(paths: Sequence[str]):
    """Each input's hints as --hints says, or None without --hints."""
    if not _HINTS.value:
        return None
    if _HINTS.value != 'sidecar':
        if len(paths) != 1:
            raise errors.UsageError(
                f'--hints={_HINTS.value} is for one image; use '
                '--hints=sidecar for several.'
            )
        return [hint_format.read_file(_HINTS.value)]
    return [
        hint_format.read_file(hint_format.sidecar_path(path))
        if os.path.isfile(hint_format.sidecar_path(path))
        else []
        for path in paths
    ]


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError('Give at least one image file.')
    try:
        images = []
        for path in paths:
            with open(path, 'rb') as f:
                images.append(f.read())
        pngs = colorize(
            images,
            _SERVER.value,
            _MODEL_NAME.value,
            _TIMEOUT.value,
            _hint_lists(paths),
        )
    except errors.ChromaGenError as error:
        errors.fail('serving_client', error)
    except OSError as error:  # An input file cannot be read.
        errors.fail('serving_client', error, errors.USAGE_EXIT_CODE)
    os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
    for path, png in zip(paths, pngs):
        name = os.path.splitext(os.path.basename(path))[0] + '.png'
        output = os.path.join(_OUTPUT_DIR.value, name)
        with open(output, 'wb') as f:
            f.write(png)
        print(output)


if __name__ == '__main__':
    app.run(main)
