"""The subscription form: targets validated (email, or a webhook URL that is not ours)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from notify import const
from notify.models import Subscription
from notify.targets import validate_target


class SubscriptionForm(forms.ModelForm):
    kinds = forms.MultipleChoiceField(choices=const.EVENT_KINDS, required=False, widget=forms.CheckboxSelectMultiple,
                                      help_text="None ticked: every kind except escalations.")

    class Meta:
        model = Subscription
        fields = ["name", "channel", "target", "payload_format", "sites", "min_severity", "kinds", "quiet_start", "quiet_end",
                  "quiet_timezone", "mode", "digest_every_s", "enabled"]
        widgets = {"sites": forms.CheckboxSelectMultiple, "quiet_start": forms.TimeInput(attrs={"type": "time"}),
                   "quiet_end": forms.TimeInput(attrs={"type": "time"})}

    def __init__(self, *args, sites=None, request_host: str = "", request_scheme: str = "http", **kwargs):
        super().__init__(*args, **kwargs)
        self.request_host, self.request_scheme = request_host, request_scheme
        if sites is not None:
            self.fields["sites"].queryset = sites

    def clean(self):
        data = super().clean()
        channel, target = data.get("channel"), data.get("target")
        if channel and target:
            try:
                data["target"] = validate_target(channel, target, self.request_host, self.request_scheme)
            except ValidationError as exc:
                self.add_error("target", exc)
        return data
