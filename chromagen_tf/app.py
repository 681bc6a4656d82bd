"""Serves ChromaGen as a web page and an HTTP API on this machine.

Usage:

  pip install ".[app]"
  python -m chromagen_tf.app                       # http://127.0.0.1:8080/
  python -m chromagen_tf.app --model=models/chromagen --port=9000

  curl -fsS -F image=@old_photo.jpg -F render_size=384 \
      http://127.0.0.1:8080/api/colorize -o colorized.png
  curl -fsS -F image=@old_photo.jpg -F "hints=<old_photo.jpg.hints.json" \
      http://127.0.0.1:8080/api/colorize -o colorized.png
  curl -fsS -F image=@old_photo.jpg -F x=120 -F y=45 \
      http://127.0.0.1:8080/api/suggest
  curl -fsS http://127.0.0.1:8080/healthz

Without --model the bundled model is served; --model takes what the
colorize tool takes. The model is loaded once, before the server listens;
the URL is printed when it does. The page colorizes one or many photos with
a before/after slider and downloads results as PNG or as one zip. Results
have the photo's full size and its own lightness. With a hint model, a
click on a photo adds a colour hint (the model's suggested colours first);
the result updates after each change, and downloads carry the hints as a
sidecar for `colorize --hints=sidecar`. Only --host opens the app
to other machines: it listens on 127.0.0.1 by default.
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
from absl import app
from absl import flags

from chromagen_tf import errors
from chromagen_tf import webapp
from chromagen_tf.data import imaging
from chromagen_tf.inference import model_flags

_HOST = flags.DEFINE_string(
    'host',
    '127.0.0.1',
    'Address to listen on. The default serves this machine only; 0.0.0.0 '
    '(or ::) opens the app to the network, without any authentication.',
)
_PORT = flags.DEFINE_integer(
    'port',
    8080,
    'TCP port to listen on; 0 picks a free one.',
    lower_bound=0,
    upper_bound=65535,
)
_MAX_CONCURRENT = flags.DEFINE_integer(
    'max_concurrent',
    1,
    'Photos decoded and colorized at once. Each needs up to about 100 bytes '
    'per pixel while it runs (a 12-megapixel photo raised the peak memory '
    'by 1.2 GB), so raise it only with memory to spare.',
    lower_bound=1,
)
_MAX_QUEUE = flags.DEFINE_integer(
    'max_queue',
    4,
    'Uploads that may wait for a free slot, holding only their file bytes; '
    'requests beyond --max_concurrent plus this get 503 at once.',
    lower_bound=0,
)
_MAX_UPLOAD_MB = flags.DEFINE_float(
    'max_upload_mb',
    50.0,
    'Largest upload accepted, in megabytes (10^6 bytes); larger ones get '
    '413 without being kept.',
    lower_bound=0.001,
)
_MAX_PIXELS = flags.DEFINE_integer(
    'max_pixels',
    imaging.COLORIZE_MAX_PIXELS,
    'Photos with more pixels get 413, judged from the header before '
    'decoding (decompression bombs).',
    lower_bound=1,
)

# --help lists the model flags the app uses as its own.
for _name in (
    'model',
    'stage',
    'render_size',
    'temperature',
    'prior_strength',
    'hint_correction',
):
    flags.declare_key_flag(_name, flag_values=flags.FLAGS)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
    try:
        webapp.check_dependencies()
    except errors.ChromaGenError as error:
        errors.fail('app', error)
    # Imported here so that --help works without the app extra installed.
    from chromagen_tf.webapp import jobs  # pylint: disable=g-import-not-at-top
    from chromagen_tf.webapp import server  # pylint: disable=g-import-not-at-top

    config = server.AppConfig(
        host=_HOST.value,
        port=_PORT.value,
        max_concurrent=_MAX_CONCURRENT.value,
        max_queue=_MAX_QUEUE.value,
        max_upload_bytes=int(_MAX_UPLOAD_MB.value * 1e6),
        max_pixels=_MAX_PIXELS.value,
    )
    try:
        with webapp.private_temporary_directory():
            service = jobs.ColorizeService(
                model_flags.load_colorizer(), config.max_pixels
            )
            service.warm_up()
            server.serve(
                service, config, announce=lambda line: print(line, flush=True)
            )
    except errors.ChromaGenError as error:
        errors.fail('app', error)


if __name__ == '__main__':
    app.run(main)
