"""Thin views: a user's subscriptions, the delivery log (with replay), and signed links."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.signing import BadSignature
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from notify import dispatch
from notify.forms import SubscriptionForm
from notify.models import Delivery, Pending, Subscription
from notify.signing import path_from_token
from web.roles import ADMIN, FACILITY_MANAGER, PLANNER, require_role, roles_of, visible_sites

ROLES = (FACILITY_MANAGER, PLANNER, ADMIN)


def _own(request: HttpRequest):
    """Admins see every subscription's log; others their own."""
    qs = Subscription.objects.all()
    return qs if ADMIN in roles_of(request.user) else qs.filter(user=request.user)


@require_role(*ROLES)
def subscriptions(request: HttpRequest) -> HttpResponse:
    subs = Subscription.objects.filter(user=request.user).prefetch_related("sites")
    deliveries = Delivery.objects.filter(subscription__in=_own(request)).select_related("subscription", "subscription__user")[:100]
    return render(request, "notify/subscriptions.html", {"subs": subs, "deliveries": deliveries})


@require_role(*ROLES)
def subscription_edit(request: HttpRequest, sub_id: int | None = None) -> HttpResponse:
    sub = get_object_or_404(Subscription, id=sub_id, user=request.user) if sub_id else Subscription(user=request.user, target=request.user.email)
    form = SubscriptionForm(request.POST or None, instance=sub, sites=visible_sites(request.user), request_host=request.get_host(), request_scheme=request.scheme)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
        messages.success(request, f"Notifications '{form.instance.name}' saved.")
        return redirect("notify-subscriptions")
    return render(request, "notify/subscription_form.html", {"form": form, "sub": sub if sub_id else None})


@require_POST
@require_role(*ROLES)
def subscription_delete(request: HttpRequest, sub_id: int) -> HttpResponse:
    get_object_or_404(Subscription, id=sub_id, user=request.user).delete()
    messages.success(request, "Subscription deleted.")
    return redirect("notify-subscriptions")


@require_role(*ROLES)
def delivery_detail(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery.objects.select_related("subscription"), id=delivery_id, subscription__in=_own(request))
    items = Pending.objects.filter(delivery=delivery).select_related("event", "event__site").order_by("event__created_at")
    return render(request, "notify/delivery.html", {"d": delivery, "items": items})


@require_POST
@require_role(*ROLES)
def delivery_replay(request: HttpRequest, delivery_id: int) -> HttpResponse:
    get_object_or_404(Delivery, id=delivery_id, subscription__in=_own(request))
    if dispatch.replay(delivery_id):
        messages.success(request, f"Delivery {delivery_id} is sent again.")
    else:
        messages.warning(request, f"Delivery {delivery_id} is being sent already.")
    return redirect("notify-delivery", delivery_id)


def signed_link(request: HttpRequest, token: str) -> HttpResponse:
    """An email's link: the page it names, once the signature checks out (login still
    required by the middleware: this path is not public)."""
    try:
        path = path_from_token(token, settings.NOTIFY_LINK_MAX_AGE_S)
    except BadSignature:
        raise Http404("This link is not valid (or expired).") from None
    if not path.startswith("/") or not url_has_allowed_host_and_scheme(path, allowed_hosts=None):
        raise Http404("This link is not valid.")
    return redirect(path)
