"""The combined-rule editor: the rule (asset type, AND/OR, severity, timing) and its conditions
(a formset: metric, value or rate of change, above or below, threshold, hysteresis). Every
refusal names the field and says what to do; metrics must belong to the rule's asset type."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.forms import BaseInlineFormSet, inlineformset_factory

from twins.models import AssetType, CombinedRule, Metric, RuleCondition

MAX_CONDITIONS = 8


class CombinedRuleForm(forms.ModelForm):
    name = forms.CharField(max_length=200, label="Name", help_text="What the alert is called, e.g. “Winding hot or vibration high”.",
                           error_messages={"required": "Give the rule a name: it is the alert's title."})
    asset_type = forms.ModelChoiceField(queryset=AssetType.objects.order_by("name"), label="Asset type",
                                        error_messages={"required": "Choose the asset type whose metrics the conditions watch."})
    min_duration_s = forms.FloatField(
        min_value=0.0, initial=10.0, label="Minimum duration (s)", help_text="Seconds the combination must hold before the alert opens, and be over before it clears.",
        error_messages={"min_value": "The minimum duration cannot be negative.", "required": "Give a minimum duration in seconds (0 for at once)."},
    )
    escalate_after_s = forms.FloatField(
        required=False, min_value=0.0, label="Escalate to critical after (s)",
        help_text="Warning rules: an alert still open this long becomes critical (empty: never).",
        error_messages={"min_value": "The escalation time cannot be negative."},
    )

    class Meta:
        model = CombinedRule
        fields = ("name", "asset_type", "combine", "severity", "min_duration_s", "escalate_after_s", "enabled")
        labels = {"combine": "Opens when", "severity": "Severity"}  # noqa: RUF012 (Django reads it once)

    def clean(self):
        data = super().clean()
        if data.get("escalate_after_s") is not None and data.get("severity") == "critical":
            self.add_error("escalate_after_s", "A critical rule cannot escalate further: leave this empty, or make the rule a warning.")
        return data


class ConditionForm(forms.ModelForm):
    metric = forms.ModelChoiceField(queryset=Metric.objects.select_related("asset_type"), label="Metric",
                                    error_messages={"required": "Choose the metric this condition watches."})
    threshold = forms.FloatField(label="Threshold", error_messages={"required": "Give a threshold (per minute for a rate of change).",
                                                                     "invalid": "The threshold is a number, e.g. 120 or 7.1."})
    hysteresis = forms.FloatField(min_value=0.0, initial=0.0, label="Hysteresis",
                                  error_messages={"min_value": "The hysteresis cannot be negative: it is a distance back inside the threshold.",
                                                  "required": "Give a hysteresis (0 for none)."})

    class Meta:
        model = RuleCondition
        fields = ("metric", "measure", "op", "threshold", "hysteresis")
        labels = {"measure": "Of its", "op": "Is"}  # noqa: RUF012

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        groups: dict[str, list[tuple[int, str]]] = {}
        for m in self.fields["metric"].queryset.order_by("asset_type__name", "id"):
            groups.setdefault(m.asset_type.name, []).append((m.id, f"{m.label or m.key}" + (f" [{m.unit}]" if m.unit else "")))
        self.fields["metric"].choices = [("", "---------"), *groups.items()]


class BaseConditionFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        asset_type = getattr(self, "asset_type", None)
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if not kept:
            raise ValidationError("Give at least one condition.")
        for f in kept:
            metric = f.cleaned_data["metric"]
            if asset_type is not None and metric.asset_type_id != asset_type.id:
                f.add_error("metric", f"{metric.label or metric.key} is a metric of {metric.asset_type.name}, not of {asset_type.name}: choose one of the rule's asset type.")
        if any(self.errors):
            raise ValidationError("Fix the conditions marked below.")

    def kept(self) -> list[RuleCondition]:
        return [f.instance for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]

    def removed(self) -> list[RuleCondition]:
        return [f.instance for f in self.deleted_forms if f.instance.pk is not None]


ConditionFormSet = inlineformset_factory(
    CombinedRule, RuleCondition, form=ConditionForm, formset=BaseConditionFormSet, extra=2, max_num=MAX_CONDITIONS, validate_max=True,
    can_delete=True,
)


def rule_forms(data, rule: CombinedRule | None) -> tuple[CombinedRuleForm, BaseConditionFormSet]:
    """The rule form and its conditions (three blank rows for a new rule, two more on an edit)."""
    instance = rule or CombinedRule()
    form = CombinedRuleForm(data, instance=instance)
    formset = ConditionFormSet(data, instance=instance, prefix="conditions")
    if rule is None:
        formset.extra = 3
    return form, formset


def valid(form: CombinedRuleForm, formset: BaseConditionFormSet) -> bool:
    """Both valid; the conditions are checked against the asset type chosen in the form."""
    form_ok = form.is_valid()
    formset.asset_type = form.cleaned_data.get("asset_type")
    return formset.is_valid() and form_ok
