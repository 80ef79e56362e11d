"""Real receivers for notifications: an SMTP server (aiosmtpd) and an HTTP webhook receiver,
each on a free localhost port, recording what arrives and when (the tests and bench/api.py)."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage as Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.helpers import free_port


@dataclass
class Mail:
    at: float
    to: list[str]
    message: Message

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return self.message.get_content()


class _Collect:
    def __init__(self, inbox: list[Mail]) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.inbox.append(Mail(time.time(), list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.inbox: list[Mail] = []
        self.port = free_port()
        self.controller = Controller(_Collect(self.inbox), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


@dataclass
class Hook:
    at: float
    headers: Any
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """POSTs recorded; ``status`` is what it answers (set 503 to play a failing receiver);
    stop()/start() play a receiver that is down (connection refused) and back."""

    port: int = field(default_factory=free_port)
    status: int = 200
    received: list[Hook] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.status < 300:
                    receiver.received.append(Hook(time.time(), self.headers, body))  # case-insensitive
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
