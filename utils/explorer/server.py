"""The explorer's local HTTP server (stdlib ``http.server``): the page and a small JSON API.

Routes (all GET):

* ``/``: the page (``page.html``, plain HTML and JavaScript, nothing fetched from elsewhere);
* ``/api/info``: the model, the note on its content/motion split, and the grid videos as PNG sprite sheets
  (the frames side by side) in ``data:`` URLs;
* ``/api/swap?content=video:I&motion=video:J[&content_to=...&content_t=W&motion_to=...&motion_t=W]``: the
  frames of :class:`utils.explorer.session.SwapRequest` as one sprite sheet, with the seconds the model took.

A bad request gets HTTP 400 (an unknown path 404) and ``{"error": "one line"}``, which the page shows.
"""

from __future__ import annotations

import base64
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from utils.explorer.session import ExplorerSession, RequestError, SwapRequest, sprite_png

PAGE = Path(__file__).with_name("page.html")


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class ExplorerServer(ThreadingHTTPServer):
    """Binds ``host:port`` at construction (so a port in use fails at once, before the model loads); serves
    once :meth:`attach` has given it a session. Model calls take turns under one lock."""

    daemon_threads = True

    def __init__(self, host: str, port: int) -> None:
        super().__init__((host, port), ExplorerHandler)
        self.session: ExplorerSession | None = None
        self.lock = threading.Lock()
        self.info: bytes = b""

    def attach(self, session: ExplorerSession) -> None:
        """Serve ``session``; encodes the grid's sprite sheets once."""
        info = session.describe()
        info["sprites"] = [data_url(sprite_png(session.video_pixels(i))) for i in range(session.num_videos)]
        self.session, self.info = session, json.dumps(info).encode()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class ExplorerHandler(BaseHTTPRequestHandler):
    server: ExplorerServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        parts = urlsplit(self.path)
        if parts.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif parts.path == "/api/info":
            self._send(HTTPStatus.OK, self.server.info, "application/json")
        elif parts.path == "/api/swap":
            self._swap(parts.query)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page {parts.path!r}; try / or /api/swap")

    def _swap(self, query: str) -> None:
        session = self.server.session
        try:
            request = SwapRequest.parse(parse_qs(query, keep_blank_values=True), session.num_videos)
            with self.server.lock:
                pixels, seconds = session.render(request)
        except RequestError as error:
            self._error(HTTPStatus.BAD_REQUEST, str(error))
            return
        body = {"sprite": data_url(sprite_png(pixels)), "frames": int(pixels.shape[0]), "seconds": seconds,
                "request": {key: str(value) for key, value in vars(request).items() if value is not None}}
        self._send(HTTPStatus.OK, json.dumps(body).encode(), "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        pass  # one line per request would bury the URL the person needs
