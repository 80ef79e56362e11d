"""The platform's WSGI app on a free local port, threaded and quiet, for benchmarks whose
simulated nodes download from it (bench/rollout.py, bench/abuse.py)."""

from __future__ import annotations

import socketserver
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 512
    cpu_seconds = 0.0  # CPU time of every request thread so far (a bench splits its process's CPU by role)
    _cpu_lock = threading.Lock()

    def process_request_thread(self, request, client_address):  # noqa: ANN001 - socketserver's signature
        t0 = time.thread_time()
        try:
            super().process_request_thread(request, client_address)
        finally:
            spent = time.thread_time() - t0
            with self._cpu_lock:
                self.cpu_seconds += spent


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _PooledWSGIServer(_ThreadingWSGIServer):
    """A fixed pool of request threads (as gunicorn's threads or daphne's executor): each thread
    keeps its database connection between requests."""

    threads = 16

    def process_request(self, request, client_address):  # noqa: ANN001 - socketserver's signature
        if not hasattr(self, "_pool"):
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="web")
        self._pool.submit(self.process_request_thread, request, client_address)

    def server_close(self) -> None:
        super().server_close()
        if hasattr(self, "_pool"):
            self._pool.shutdown(wait=False, cancel_futures=True)


def serve_platform(threads: int = 0) -> WSGIServer:
    """Start serving Django's WSGI application on 127.0.0.1 in a daemon thread; return the server.
    ``threads``: a pool of that many request threads; 0: a new thread per request."""
    from django.core.wsgi import get_wsgi_application

    server_class = _ThreadingWSGIServer
    if threads > 0:
        server_class = type("PooledWSGIServer", (_PooledWSGIServer,), {"threads": threads})
    httpd = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=server_class, handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd
