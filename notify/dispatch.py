"""From events to messages: who receives an event, when a subscription's waiting events go
out (coalesced), and one delivery attempt with backoff and a final 'failed'.

Each step is a plain function that owns its transaction; the Celery tasks in tasks.py only
call them, and wake each other by task name after commit.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from notify import const
from notify.compose import compose
from notify.models import Delivery, Event, Pending, Subscription
from notify.senders import send_email, send_webhook

log = logging.getLogger(__name__)


def _send_task(name: str, args: list[Any], countdown: float = 0.0) -> None:
    from web.celery import app

    app.send_task(name, args=args, countdown=countdown or None)


# --- who receives an event ---------------------------------------------------------------


def wants(sub: Subscription, event: Event, site_ids: set[int] | None) -> bool:
    """Whether ``sub`` receives ``event``; ``site_ids``: the sites the user may see (None: all)."""
    if const.SEVERITY_RANK.get(event.severity, 0) < const.SEVERITY_RANK.get(sub.min_severity, 0):
        return False
    if event.kind not in (sub.kinds or const.DEFAULT_KINDS):
        return False
    if event.site_id is not None:
        if site_ids is not None and event.site_id not in site_ids:
            return False
        chosen = [s.id for s in sub.sites.all()]
        if chosen and event.site_id not in chosen:
            return False
    return True


ADMIN_KINDS = (const.ROLLOUT_AWAITING_APPROVAL, const.ROLLOUT_ROLLED_BACK)  # what only admins may be told


def _visible_site_ids(user) -> set[int] | None:
    from web.roles import ADMIN, roles_of, visible_sites

    if ADMIN in roles_of(user):
        return None
    return set(visible_sites(user).values_list("id", flat=True))


def _may_know(user, event: Event) -> bool:
    """The UI's rule: a role is needed to see anything, the admin role for rollouts."""
    from web.roles import ADMIN, roles_of

    roles = roles_of(user)
    return bool(roles) and (event.kind not in ADMIN_KINDS or ADMIN in roles)


def record_event(kind: str, *, title: str, severity: str = "warning", site_id: int | None = None, text: str = "", path: str = "",
                 alert_id: int | None = None, data: dict | None = None, dedupe_key: str | None = None) -> Event | None:
    """Store an event and queue it for every subscription that wants it; the flushes are
    woken after commit. None when ``dedupe_key`` was told already."""
    try:
        with transaction.atomic():
            event = Event.objects.create(kind=kind, title=title[:300], severity=severity, site_id=site_id, text=text, path=path,
                                         alert_id=alert_id, data=data or {}, dedupe_key=dedupe_key)
            subs = [s for s in Subscription.objects.filter(enabled=True).select_related("user").prefetch_related("sites")
                    if s.user.is_active and _may_know(s.user, event) and wants(s, event, _visible_site_ids(s.user))]
            Pending.objects.bulk_create([Pending(subscription=s, event=event) for s in subs])
            immediate = [s.id for s in subs if s.mode == const.MODE_IMMEDIATE]
            flushes = _flush_delays(immediate)
            transaction.on_commit(lambda: [_send_task("notify.flush", [sid], delay) for sid, delay in flushes])
    except IntegrityError:
        if dedupe_key is None:
            raise
        return None
    return event


def _flush_delays(subscription_ids: list[int]) -> list[tuple[int, float]]:
    """Leading and trailing edge: a subscription outside a coalescing window is flushed at once
    (the first alert of the night arrives without waiting) and opens a window; events within
    it wait for its end and go out together (the rest of a storm is one message). At most
    one message per window per subscription; the conditional update decides races."""
    window = settings.NOTIFY_COALESCE_S
    if window <= 0:
        return [(sid, 0.0) for sid in subscription_ids]
    now = timezone.now()
    out = []
    for sid in subscription_ids:
        opened = Subscription.objects.filter(id=sid).filter(Q(coalesce_until__isnull=True) | Q(coalesce_until__lte=now)).update(
            coalesce_until=now + timedelta(seconds=window))
        if opened:
            out.append((sid, 0.0))
        else:
            until = Subscription.objects.filter(id=sid).values_list("coalesce_until", flat=True).first() or now
            out.append((sid, max(0.0, (until - now).total_seconds())))
    return out


# --- when waiting events go out ----------------------------------------------------------


def in_quiet_hours(sub: Subscription, now: datetime) -> bool:
    if sub.quiet_start is None or sub.quiet_end is None or sub.quiet_start == sub.quiet_end:
        return False
    try:
        local: time = now.astimezone(ZoneInfo(sub.quiet_timezone)).time()
    except (KeyError, ValueError):
        local = now.time()
    if sub.quiet_start < sub.quiet_end:
        return sub.quiet_start <= local < sub.quiet_end
    return local >= sub.quiet_start or local < sub.quiet_end  # over midnight


def due(sub: Subscription, now: datetime) -> bool:
    if not sub.enabled or in_quiet_hours(sub, now):
        return False
    if sub.mode == const.MODE_DIGEST:
        return sub.last_digest_at is None or now - sub.last_digest_at >= timedelta(seconds=sub.digest_every_s)
    return True


def flush(subscription_id: int, now: datetime | None = None) -> int | None:
    """Put every waiting event of a subscription into one delivery (a storm becomes one
    message) and wake its sender; the delivery's id, or None when nothing was waiting or it
    is not time yet (quiet hours, digest not due)."""
    now = now or timezone.now()
    sub = Subscription.objects.filter(id=subscription_id).first()
    if sub is None or not due(sub, now):
        return None
    with transaction.atomic():
        delivery = Delivery.objects.create(subscription=sub)
        # Claim atomically: two flushes racing each take only what they updated.
        claimed = Pending.objects.filter(subscription=sub, delivery__isnull=True).update(delivery=delivery)
        if not claimed:
            delivery.delete()
            return None
        delivery.events = claimed
        delivery.save(update_fields=["events"])
        if sub.mode == const.MODE_DIGEST:
            Subscription.objects.filter(id=sub.id).update(last_digest_at=now)
        transaction.on_commit(lambda: _send_task("notify.deliver", [delivery.id]))
    return delivery.id


def flush_waiting(now: datetime | None = None) -> list[int]:
    """Flush every subscription with waiting events (quiet hours over, digests due)."""
    now = now or timezone.now()
    ids = set(Pending.objects.filter(delivery__isnull=True).values_list("subscription_id", flat=True))
    return [d for d in (flush(i, now) for i in sorted(ids)) if d is not None]


# --- one delivery attempt ----------------------------------------------------------------


def backoff_s(attempts: int) -> float:
    return min(settings.NOTIFY_RETRY_BASE_S * 2 ** max(0, attempts - 1), settings.NOTIFY_RETRY_MAX_S)


def deliver(delivery_id: int) -> str | None:
    """Send one delivery; on failure record the error and schedule the next try (exponential
    backoff) until NOTIFY_MAX_ATTEMPTS, then mark it failed. Returns the state (None: gone)."""
    # Claim: only a pending delivery is sent, and only by one worker at a time.
    now = timezone.now()
    lease = now + timedelta(seconds=settings.NOTIFY_WEBHOOK_TIMEOUT_S + 30)
    claimed = Delivery.objects.filter(id=delivery_id, state=const.PENDING).exclude(next_attempt_at__gt=now).update(next_attempt_at=lease)
    if not claimed:
        return Delivery.objects.filter(id=delivery_id).values_list("state", flat=True).first()
    delivery = Delivery.objects.select_related("subscription").get(id=delivery_id)
    sub = delivery.subscription
    events = list(Event.objects.filter(id__in=Pending.objects.filter(delivery=delivery).values("event_id")).select_related("site"))
    if not events:  # its events were deleted meanwhile (their site went away): nothing to tell
        Delivery.objects.filter(id=delivery_id).update(state=const.FAILED, last_error="no events left to send", next_attempt_at=None)
        return const.FAILED
    message = compose(events, delivery.id)
    attempts = delivery.attempts + 1
    try:
        if sub.channel == const.CHANNEL_EMAIL:
            send_email(sub, message)
        else:
            send_webhook(sub, message, delivery.id)
    except Exception as exc:  # any failure of the receiver or the network: recorded, retried
        error = f"{type(exc).__name__}: {exc}"[:2000]
        if attempts >= settings.NOTIFY_MAX_ATTEMPTS:
            Delivery.objects.filter(id=delivery_id).update(state=const.FAILED, attempts=attempts, last_error=error, next_attempt_at=None, subject=message.subject)
            log.warning("notification delivery %s to %s failed after %s attempts: %s", delivery_id, sub.target, attempts, error)
            return const.FAILED
        wait = backoff_s(attempts)
        Delivery.objects.filter(id=delivery_id).update(attempts=attempts, last_error=error, subject=message.subject,
                                                       next_attempt_at=timezone.now() + timedelta(seconds=wait))
        log.info("notification delivery %s attempt %s failed (%s); next in %.0f s", delivery_id, attempts, error, wait)
        _send_task("notify.deliver", [delivery_id], wait)
        return const.PENDING
    Delivery.objects.filter(id=delivery_id).update(state=const.SENT, attempts=attempts, sent_at=timezone.now(), last_error="",
                                                   next_attempt_at=None, subject=message.subject)
    return const.SENT


def retry_overdue(now: datetime | None = None) -> list[int]:
    """Wake pending deliveries whose retry time passed without a sender (a lost task, a
    restarted worker): the sweep's safety net, so nothing waits forever."""
    now = now or timezone.now()
    ids = list(Delivery.objects.filter(state=const.PENDING, next_attempt_at__lt=now - timedelta(seconds=30)).values_list("id", flat=True))
    for i in ids:
        _send_task("notify.deliver", [i])
    return ids


def replay(delivery_id: int) -> bool:
    """A failed (or sent) delivery sent again from the delivery log: attempts start over."""
    changed = Delivery.objects.filter(id=delivery_id).exclude(state=const.PENDING).update(state=const.PENDING, attempts=0, next_attempt_at=None)
    if changed:
        transaction.on_commit(lambda: _send_task("notify.deliver", [delivery_id]))
    return bool(changed)
