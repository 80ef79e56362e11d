"""The platform's WSGI app on a free local port, threaded and quiet, for benchmarks whose
simulated nodes download from it (bench/rollout.py, bench/abuse.py)."""

from __future__ import annotations

import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 512


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve_platform() -> WSGIServer:
    """Start serving Django's WSGI application on 127.0.0.1 in a daemon thread; return the server."""
    from django.core.wsgi import get_wsgi_application

    httpd = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd
