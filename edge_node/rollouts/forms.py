from __future__ import annotations

import json

from django import forms

from twins.models import Site

from . import const


def _json_field(value: str, what: str) -> dict:
    if not value.strip():
        return {}
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise forms.ValidationError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise forms.ValidationError(f"{what} must be a JSON object")
    return data


class UploadModelForm(forms.Form):
    file = forms.FileField(label="model.onnx")
    name = forms.CharField(max_length=100)
    version = forms.CharField(max_length=64)
    # Chosen explicitly: a default would silently register an anomaly model as something edge
    # agents cannot run (and the rollout form would be missing for a reason nobody sees).
    kind = forms.ChoiceField(
        choices=[("", "— choose what the model does —"), (const.KIND_ANOMALY, "Anomaly detection (runs on edge agents, can be rolled out)"),
                 (const.KIND_RUL, "Remaining useful life (runs on the platform's twins, not on edge agents)")],
        error_messages={"required": "Choose the kind of model: edge agents run anomaly models only."},
    )
    metadata = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False,
                               help_text='meta.json, e.g. {"asset_type": "induction_motor", "features": [...], "threshold": 0.1}')
    declared = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="Declared signature",
                               help_text='{"inputs": [{"name": "X", "type": "tensor(float)", "shape": [null, 8]}], "outputs": [...]}')
    quantize = forms.BooleanField(required=False, help_text="Also register a dynamic int8 variant.")

    def clean_metadata(self) -> dict:
        return _json_field(self.cleaned_data["metadata"], "metadata")

    def clean_declared(self) -> dict | None:
        return _json_field(self.cleaned_data["declared"], "declared signature") or None


class ProposeForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.objects.all(), required=False)
    tag = forms.CharField(max_length=64, required=False)
    node_ids = forms.CharField(required=False, help_text="Comma-separated node ids")
    canary_share = forms.FloatField(initial=0.1, min_value=0.01, max_value=1.0)
    max_p99_latency_ms = forms.FloatField(initial=50.0, min_value=0.0, max_value=const.MAX_P99_GATE_MS)
    min_agreement = forms.FloatField(initial=0.9, min_value=0.0, max_value=1.0)
    max_load_failures = forms.IntegerField(initial=0, min_value=0, max_value=const.MAX_LOAD_FAILURES_GATE)
    allow_downgrade = forms.BooleanField(required=False, label="Explicit rollback to an older version",
                                         help_text="Nodes refuse a version older than the one they run unless this is set "
                                                   "(the signed command says so; audited).")
