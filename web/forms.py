"""Forms of the dashboard pages: alert filters, acknowledgement, alert rules."""

from __future__ import annotations

from django import forms

from twins.alerting import ACK_COMMENT_MAX
from twins.models import Alert, AlertRule, Metric
from web.dashboards import ALERT_STATE_FILTERS, AlertFilters


class AlertFilterForm(forms.Form):
    site = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    asset = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    severity = forms.ChoiceField(required=False, choices=[("", "Any severity"), *Alert.Severity.choices])
    state = forms.ChoiceField(required=False, choices=[(s, "Active and cleared in the last 24 h" if s == "recent" else s.capitalize()) for s in ALERT_STATE_FILTERS])

    def __init__(self, *args, sites=None, assets=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["site"].choices = [("", "All sites"), *((s.id, s.name) for s in sites or ())]
        self.fields["asset"].choices = [("", "All assets"), *((a.id, f"{a.name} ({a.site.name})") for a in assets or ())]

    def filters(self) -> AlertFilters:
        if not self.is_valid():
            return AlertFilters()
        d = self.cleaned_data
        return AlertFilters(site=d.get("site"), asset=d.get("asset"), severity=d.get("severity") or None, state=d.get("state") or "recent")


class AcknowledgeForm(forms.Form):
    comment = forms.CharField(max_length=ACK_COMMENT_MAX, required=False, widget=forms.Textarea(attrs={"rows": 2, "placeholder": "What are you doing about it?"}))


class MetricChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Metric) -> str:
        unit = f" [{obj.unit}]" if obj.unit else ""
        return f"{obj.asset_type.name}: {obj.label or obj.key}{unit}"


class AlertRuleForm(forms.ModelForm):
    """The rule editor. Every refusal is worded for the admin who typed the value: the database's
    own constraints (named like ``alert_rule_hysteresis_not_negative``) are never what they read."""

    metric = MetricChoiceField(
        queryset=Metric.objects.select_related("asset_type").order_by("asset_type__name", "id"), label="Asset type and metric",
        error_messages={"required": "Choose the asset type and metric this rule watches.", "unique": "This metric has a rule already: edit that one."},
    )
    hysteresis = forms.FloatField(
        min_value=0.0, initial=0.0, label="Hysteresis",
        help_text="In the metric's unit: how far back inside a threshold a value must come to count as normal again.",
        error_messages={"min_value": "The hysteresis cannot be negative: it is a distance back inside the threshold.", "required": "Give a hysteresis (0 for none)."},
    )
    min_duration_s = forms.FloatField(
        min_value=0.0, initial=10.0, label="Minimum duration (s)",
        help_text="Seconds a condition must hold before an alert opens, escalates or clears.",
        error_messages={"min_value": "The minimum duration cannot be negative.", "required": "Give a minimum duration in seconds (0 for at once)."},
    )

    class Meta:
        model = AlertRule
        fields = ("metric", "warning_above", "critical_above", "warning_below", "critical_below", "hysteresis", "min_duration_s",
                  "escalate_after_s", "deescalate_after_s", "enabled")
        error_messages = {  # noqa: RUF012 (Django reads it once)
            "metric": {"unique": "This metric has a rule already: edit that one."},
        }
