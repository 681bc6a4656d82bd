"""The web app's ASGI application and its server.

Routes:
  GET  /               the page (static/index.html, app.js, app.css)
  GET  /healthz        200 and JSON (model, limits, jobs) once the model is
                       loaded; the server listens only after that
  POST /api/colorize   multipart `image` (+ optional `render_size`, `hints`
                       in the JSON hint format of chromagen_tf/hints.py,
                       `preview=1`) -> image/png at the photo's own size, or
                       for a preview image/jpeg of at most
                       jobs.PREVIEW_MAX_SIDE; X-Photo-Width and
                       X-Photo-Height give the photo's size
  POST /api/suggest    multipart `image`, `x`, `y` (+ `hints`,
                       `render_size`) -> {"suggestions": [{"color":
                       "#rrggbb", "probability": p}, ...]}, likeliest first,
                       for a model with the colour-bins head

Errors are JSON {"error": message, "reason": code} with a 4xx status, 503
when too many jobs are running and waiting, never a traceback.

`serve` binds the socket itself, so that a bad --host or a port in use is
one clear error before anything runs, and the URL it prints is live.
"""

import dataclasses
import importlib.resources
import signal
import socket
from typing import Callable

import anyio
import anyio.to_thread
from starlette import applications
from starlette import exceptions
from starlette import requests
from starlette import responses
from starlette import routing
import uvicorn

from chromagen_tf import errors
from chromagen_tf.data import imaging
from chromagen_tf.webapp import jobs
from chromagen_tf.webapp import limits
from chromagen_tf.webapp import uploads

_STATIC_FILES = {
    'app.js': 'text/javascript; charset=utf-8',
    'hints.js': 'text/javascript; charset=utf-8',
    'app.css': 'text/css; charset=utf-8',
}
# The page needs nothing from elsewhere; results are shown from blob: URLs.
_SECURITY_HEADERS = {
    'Content-Security-Policy': (
        "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
}
# Connections uvicorn serves at once before it answers 503 itself: far
# above any job limit, it only guards against a flood of idle sockets.
_MAX_CONNECTIONS = 200
_RETRY_AFTER_SECONDS = 2
# An upload holds its place (see limits.JobLimiter) while it arrives; one
# that trickles in for longer loses it, so slow clients cannot hold every
# place. 50 MB in 5 minutes is 1.3 Mbit/s.
UPLOAD_TIMEOUT_SECONDS = 300


@dataclasses.dataclass(frozen=True)
class AppConfig:
    """Where the app listens and what it accepts; see chromagen_tf/app.py."""

    host: str = '127.0.0.1'
    port: int = 8080
    max_concurrent: int = 1
    max_queue: int = 4
    max_upload_bytes: int = 50_000_000
    max_pixels: int = imaging.COLORIZE_MAX_PIXELS


def _error(
    status: int, reason: str, message: str, headers: dict | None = None
) -> responses.JSONResponse:
    return responses.JSONResponse(
        {'error': message, 'reason': reason},
        status_code=status,
        headers=headers,
    )


def create_app(
    service: jobs.ColorizeService, config: AppConfig
) -> applications.Starlette:
    """The ASGI app around one loaded model."""
    limiter = limits.JobLimiter(config.max_concurrent, config.max_queue)
    static = importlib.resources.files(__package__) / 'static'
    page = (static / 'index.html').read_bytes()
    assets = {name: (static / name).read_bytes() for name in _STATIC_FILES}

    async def index(request: requests.Request) -> responses.Response:
        del request  # Unused.
        return responses.Response(
            page, media_type='text/html', headers=_SECURITY_HEADERS
        )

    async def asset(request: requests.Request) -> responses.Response:
        name = request.path_params['name']
        if name not in assets:  # Only these names: never a path.
            return _error(404, 'http_error', f'No such file: {name}.')
        return responses.Response(
            assets[name],
            media_type=_STATIC_FILES[name],
            headers=_SECURITY_HEADERS,
        )

    async def healthz(request: requests.Request) -> responses.Response:
        del request  # Unused.
        return responses.JSONResponse(
            {
                'status': 'ok',
                'model': service.colorizer.description,
                'render_size': service.render_size,
                'takes_hints': service.colorizer.takes_hints,
                'suggests_colors': service.suggests_colors,
                'min_render_size': jobs.MIN_RENDER_SIZE,
                'max_render_size': jobs.MAX_RENDER_SIZE,
                'max_upload_bytes': config.max_upload_bytes,
                'max_pixels': config.max_pixels,
                'max_concurrent': config.max_concurrent,
                'max_queue': config.max_queue,
                'running': limiter.running,
                'waiting': limiter.waiting,
                'refused': limiter.refused,
            },
            headers={'Cache-Control': 'no-store'},
        )

    async def answer(
        request: requests.Request,
        work: Callable[[uploads.Upload], responses.Response],
    ) -> responses.Response:
        """Reads a request's form within the limits, and runs `work` on it
        in a worker thread when a job slot is free."""
        reader = uploads.UploadReader(request, config.max_upload_bytes)
        try:
            async with limiter.admit():
                with anyio.fail_after(UPLOAD_TIMEOUT_SECONDS):
                    upload = await reader.read()
                async with limiter.run():
                    return await anyio.to_thread.run_sync(work, upload)
        except limits.Busy:
            await reader.drain()
            return _error(
                503,
                'busy',
                f'The server is busy: {config.max_concurrent} photo(s) '
                f'colorizing and {config.max_queue} waiting, the most it '
                f'takes. Try again in a few seconds.',
                headers={'Retry-After': str(_RETRY_AFTER_SECONDS)},
            )
        except uploads.UploadError as error:
            await reader.drain()
            return _error(error.status, error.reason, str(error))
        except TimeoutError:
            return _error(
                408,
                'upload_timeout',
                f'The upload took longer than '
                f'{UPLOAD_TIMEOUT_SECONDS} s; try again.',
            )
        except requests.ClientDisconnect:
            return responses.Response(status_code=400)  # Nobody reads it.
        except MemoryError:
            return _error(
                503,
                'out_of_memory',
                'The server ran out of memory for this photo; try '
                'a smaller one or try again later.',
            )

    def colorize_work(upload: uploads.Upload) -> responses.Response:
        render_size = service.parse_render_size(upload.render_size)
        hint_list = service.parse_hints(upload.hints)
        result = service.colorize(
            upload.image, render_size, hint_list, preview=upload.preview
        )
        return responses.Response(
            result.data,
            media_type=result.media_type,
            headers={
                'Cache-Control': 'no-store',
                'X-Photo-Width': str(result.width),
                'X-Photo-Height': str(result.height),
            },
        )

    def suggest_work(upload: uploads.Upload) -> responses.Response:
        render_size = service.parse_render_size(upload.render_size)
        hint_list = service.parse_hints(upload.hints)
        x, y = service.parse_point(
            upload.fields.get(uploads.X_FIELD),
            upload.fields.get(uploads.Y_FIELD),
        )
        suggestions = service.suggest(
            upload.image, render_size, x, y, hint_list
        )
        return responses.JSONResponse(
            {
                'suggestions': [
                    {'color': hex_color, 'probability': round(probability, 4)}
                    for hex_color, probability in suggestions
                ]
            },
            headers={'Cache-Control': 'no-store'},
        )

    async def colorize(request: requests.Request) -> responses.Response:
        return await answer(request, colorize_work)

    async def suggest(request: requests.Request) -> responses.Response:
        return await answer(request, suggest_work)

    async def http_error(
        request: requests.Request, error: exceptions.HTTPException
    ):
        message = f'{error.detail}: {request.method} {request.url.path}.'
        if error.status_code == 404:
            message = f'No such page: {request.url.path}.'
        return _error(
            error.status_code, 'http_error', message, headers=error.headers
        )

    app = applications.Starlette(
        routes=[
            routing.Route('/', index, methods=['GET']),
            routing.Route('/static/{name}', asset, methods=['GET']),
            routing.Route('/healthz', healthz, methods=['GET']),
            routing.Route('/api/colorize', colorize, methods=['POST']),
            routing.Route('/api/suggest', suggest, methods=['POST']),
        ],
        exception_handlers={exceptions.HTTPException: http_error},
    )
    app.state.limiter = limiter
    return app


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        raise errors.UsageError(
            f'Cannot listen on {host}:{port}: '
            f'{errors.one_line(error.strerror or error)}'
        ) from None
    return sock


def url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ':' in host:
        host = f'[{host}]'
    return f'http://{host}:{port}/'


def serve(
    service: jobs.ColorizeService,
    config: AppConfig,
    announce: Callable[[str], None] = print,
) -> None:
    """Listens on config.host:port and serves the app until interrupted.

    Raises:
      errors.UsageError: the address cannot be listened on.
    """
    sock = _listen(config.host, config.port)
    app = create_app(service, config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            lifespan='off',
            limit_concurrency=_MAX_CONNECTIONS,
            log_level='info',
            timeout_graceful_shutdown=5,
        )
    )
    announce(
        f'ChromaGen app: {url_for(sock)} ({service.colorizer.description}'
        f', render size {service.render_size})'
    )
    # uvicorn shuts down gracefully on SIGINT and SIGTERM, then raises the
    # signal again for the handler it found: both end up here as _Stopped.
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


class _Stopped(Exception):
    """SIGTERM, once uvicorn has finished the requests in flight."""


def _raise_stopped(signum, frame):
    del signum, frame  # Unused.
    raise _Stopped()
