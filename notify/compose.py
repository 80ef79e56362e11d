"""The message for a delivery: one event, or a storm of them coalesced into one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse

from notify.models import Event
from notify.signing import link_token


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    payload: dict[str, Any]


def signed_link(path: str) -> str:
    base = settings.PLATFORM_PUBLIC_URL.rstrip("/")
    return base + reverse("notify-link", args=[link_token(path or "/alerts/")])


def _event_json(event: Event, link: str) -> dict[str, Any]:
    return {
        "id": event.id, "kind": event.kind, "severity": event.severity, "title": event.title, "text": event.text,
        "site": event.site.name if event.site_id else None, "alert": event.alert_id, "at": event.created_at.isoformat(),
        "link": link, "data": event.data,
    }


def compose(events: list[Event], delivery_id: int) -> Message:
    events = sorted(events, key=lambda e: (e.created_at, e.id))
    links = [signed_link(e.path) for e in events]
    if len(events) == 1:
        e = events[0]
        where = f" at {e.site.name}" if e.site_id else ""
        subject = f"[{e.severity}] {e.title}{where}"
        lines = [subject, "", e.text, "", f"Open it (login required): {links[0]}"] if e.text else [subject, "", f"Open it (login required): {links[0]}"]
    else:
        worst = max(events, key=lambda e: {"info": 0, "warning": 1, "critical": 2}.get(e.severity, 0)).severity
        sites = sorted({e.site.name for e in events if e.site_id})
        subject = f"[{worst}] {len(events)} events" + (f" at {', '.join(sites)}" if sites else "")
        lines = [subject, ""]
        for e, link in zip(events, links, strict=True):
            lines.append(f"- [{e.severity}] {e.kind}: {e.title}" + (f" ({e.site.name})" if e.site_id else "") + f"\n  {link}")
    text = "\n".join(lines)
    payload = {"delivery": delivery_id, "subject": subject, "events": [_event_json(e, link) for e, link in zip(events, links, strict=True)]}
    return Message(subject[:300], text, payload)
