"""The two channels: email through Django's mail framework (SMTP), webhooks as signed JSON POSTs.

Each raises on failure (SMTP refusal, connection error, HTTP status >= 300); the caller
records the error and retries with backoff.
"""

from __future__ import annotations

import json
import time
import urllib.request

from django.conf import settings
from django.core.mail import EmailMessage

from notify import const, targets
from notify.compose import Message
from notify.models import Subscription
from notify.signing import sign_body


class DeliveryFailed(Exception):
    pass


def send_email(sub: Subscription, message: Message) -> None:
    EmailMessage(message.subject, message.text, settings.DEFAULT_FROM_EMAIL, [sub.target]).send(fail_silently=False)


def webhook_body(sub: Subscription, message: Message) -> bytes:
    if sub.payload_format == const.FORMAT_CHAT:
        # Slack incoming webhooks and Teams (workflows) both read a top-level "text".
        return json.dumps({"text": message.text}).encode()
    return json.dumps(message.payload, separators=(",", ":")).encode()


def send_webhook(sub: Subscription, message: Message, delivery_id: int) -> None:
    targets.check_resolved(sub.target)
    body = webhook_body(sub, message)
    ts = int(time.time())
    request = urllib.request.Request(sub.target, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "aiot-notify/1",
        const.HEADER_TIMESTAMP: str(ts), const.HEADER_SIGNATURE: sign_body(sub.secret, ts, body), const.HEADER_EVENT: str(delivery_id),
    })
    # No redirects followed: a redirect could lead back to the platform the URL check refused.
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=settings.NOTIFY_WEBHOOK_TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"HTTP {exc.code} from the receiver") from None
    except OSError as exc:
        raise DeliveryFailed(f"cannot reach the receiver: {exc}") from None
    if status >= 300:
        raise DeliveryFailed(f"HTTP {status} from the receiver")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
