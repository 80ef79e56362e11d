from __future__ import annotations

from django import forms
from django.conf import settings

from edge_node.models import EdgeNode
from twins.models import Site, key_validator


class EnrollmentTokenForm(forms.Form):
    site = forms.ModelChoiceField(queryset=Site.objects.all())
    node_id = forms.CharField(required=False, max_length=64, validators=[key_validator], label="Node id (optional)",
                              help_text="Blank: generated from the site key. An existing node of this site is re-enrolled (new credentials).")
    tags = forms.CharField(required=False, max_length=200, help_text="Comma-separated, used to target rollouts.")
    ttl_hours = forms.IntegerField(min_value=1, max_value=24 * 30, label="Valid for (hours)")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["ttl_hours"].initial = max(1, settings.ENROLLMENT_TOKEN_TTL_S // 3600)

    def clean(self):
        data = super().clean()
        node_id, site = data.get("node_id"), data.get("site")
        if node_id and site:
            node = EdgeNode.objects.filter(node_id=node_id).first()
            if node is not None and node.revoked_at is not None:
                self.add_error("node_id", f"Node {node_id} is revoked; choose another id.")
            elif node is not None and node.site_id != site.pk:
                self.add_error("node_id", f"Node {node_id} belongs to another site.")
        return data


class AuditFilterForm(forms.Form):
    node = forms.CharField(required=False, max_length=200, label="Node / target")
    action = forms.CharField(required=False, max_length=64)
