"""A WSGI app served on a local port from a background thread (tests, benchmarks, replays).

``sim api`` serves in the foreground with the same werkzeug server; this wrapper lets one
process run the webhook and the fake API side by side, as tests of the real protocol need.
"""

from __future__ import annotations

import threading
from types import TracebackType

from werkzeug.serving import make_server

POLL_SECONDS = 0.05
"""How often the serving loop checks whether :meth:`BackgroundServer.stop` was called."""


class BackgroundServer:
    """``with BackgroundServer(app) as server: requests.get(server.url + "/")``."""

    def __init__(self, app: object, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server = make_server(host, port, app, threaded=True)  # type: ignore[arg-type]
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_SECONDS,),
                                        daemon=True,
                                        name=f"server-{self._server.server_port}")

    def start(self) -> BackgroundServer:
        """Begin serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()
