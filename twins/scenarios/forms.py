"""The planner's scenario form. Django checks types; the engine's validate_scenario checks the
bounds, and its ScenarioError.errors ({field path: message}) become field errors here."""

from __future__ import annotations

from typing import Any

from django import forms

from twins.models import Asset, Site
from twins.scenarios import const
from twins.scenarios.calibration import (
    build_scenarios,
    calibrate_assets,
    current_hours_per_day,
)
from twins.sim import ScenarioError, validate_scenario
from twins.sim import const as sim_const
from web.roles import visible_sites

POLICY_CHOICES = [
    (sim_const.POLICY_RUN_TO_FAILURE, "Run to failure"),
    (sim_const.POLICY_TIME_BASED, "Time-based (replace at an age)"),
    (sim_const.POLICY_CONDITION_BASED, "Condition-based (replace at a health threshold)"),
    (sim_const.POLICY_RUL_BASED, "RUL-based (replace when predicted RUL falls below a lead time)"),
]
# The threshold each policy needs (the other two are ignored).
POLICY_FIELD = {
    sim_const.POLICY_TIME_BASED: "interval_hours",
    sim_const.POLICY_CONDITION_BASED: "health_threshold",
    sim_const.POLICY_RUL_BASED: "lead_time_hours",
}
ENGINE_FIELDS = ("load_factor", "speed_factor", "hours_per_day", "days_per_week", "ambient_delta_c", "crew_size", "spare_stock",
                 "spare_lead_time_days", "horizon_days", "replications", "seed", "pm_cost", "cm_cost", "downtime_cost_per_hour")


class AssetChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Asset) -> str:
        return f"{obj.site.name} · {obj.name}"


class ScenarioForm(forms.Form):
    name = forms.CharField(max_length=200, initial="What if")
    site = forms.ModelChoiceField(queryset=Site.objects.none(), required=False, empty_label="(pick assets instead)",
                                  help_text="Every asset of the site, or pick one or several assets below.")
    assets = AssetChoiceField(queryset=Asset.objects.none(), required=False, help_text="Assets of one site.")
    load_factor = forms.FloatField(initial=1.0, help_text=f"x current load, {sim_const.LOAD_FACTOR_RANGE[0]:g}-{sim_const.LOAD_FACTOR_RANGE[1]:g}")
    speed_factor = forms.FloatField(initial=1.0, help_text=f"x current speed, {sim_const.SPEED_FACTOR_RANGE[0]:g}-{sim_const.SPEED_FACTOR_RANGE[1]:g}")
    hours_per_day = forms.FloatField(required=False, help_text="Operating hours a day; blank keeps the current profile")
    days_per_week = forms.IntegerField(initial=7)
    ambient_delta_c = forms.FloatField(initial=0.0, label="Ambient temperature change (°C)")
    policy = forms.ChoiceField(choices=POLICY_CHOICES, initial=sim_const.POLICY_RUN_TO_FAILURE, label="Maintenance policy")
    interval_hours = forms.FloatField(required=False, label="Replacement age (operating hours)", help_text="time-based policy")
    health_threshold = forms.FloatField(required=False, label="Health threshold (0-1)", help_text="condition-based policy")
    lead_time_hours = forms.FloatField(required=False, label="RUL lead time (operating hours)", help_text="RUL-based policy")
    inspection_interval_hours = forms.FloatField(required=False, label="Inspection interval (operating hours)",
                                                 help_text="condition-based policy; blank: monitored continuously")
    detection_probability = forms.FloatField(required=False, label="Detection probability per inspection (0-1)",
                                             help_text="condition-based policy with inspections; blank: 1")
    off_shift = forms.BooleanField(required=False, label="Preventive jobs wait for the end of the shift",
                                   help_text="start planned jobs off-shift; the asset runs (and may fail) until then")
    crew_size = forms.IntegerField(initial=2, label="Repair crews")
    spare_stock = forms.IntegerField(required=False, initial=2, help_text="Spare parts in stock; blank: unlimited")
    spare_lead_time_days = forms.FloatField(initial=14.0, label="Spare lead time (days)")
    pm_cost = forms.FloatField(initial=1000.0, label="Preventive job cost")
    cm_cost = forms.FloatField(initial=5000.0, label="Corrective repair cost")
    downtime_cost_per_hour = forms.FloatField(initial=500.0, label="Downtime cost per hour")
    horizon_days = forms.IntegerField(initial=365, help_text=f"1-{sim_const.MAX_HORIZON_DAYS} days")
    replications = forms.IntegerField(initial=1000, help_text=f"1-{sim_const.MAX_REPLICATIONS:,}")
    seed = forms.IntegerField(initial=0, help_text="The same seed gives the same result")
    compare_baseline = forms.BooleanField(required=False, initial=True, label="Also simulate the baseline (the twins as they are, run to failure) and compare")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sites = visible_sites(user)
        self.fields["site"].queryset = sites
        self.fields["assets"].queryset = Asset.objects.filter(site__in=sites).select_related("site").order_by("site__name", "name")
        self.chosen_site: Site | None = None
        self.chosen_assets: list[Asset] = []
        self.params: dict[str, Any] = {}

    def _scope(self, data: dict[str, Any]) -> None:
        site, assets = data.get("site"), list(data.get("assets") or [])
        if assets:
            sites = {a.site_id for a in assets}
            if len(sites) > 1:
                self.add_error("assets", "Pick assets of one site (or a whole site).")
                return
            if site is not None and site.id not in sites:
                self.add_error("assets", "These assets are not at the chosen site.")
                return
            self.chosen_site, self.chosen_assets = assets[0].site, sorted(assets, key=lambda a: (a.name, a.id))
        elif site is not None:
            self.chosen_site, self.chosen_assets = site, list(site.assets.order_by("name", "id"))
            if not self.chosen_assets:
                self.add_error("site", "This site has no assets.")
        else:
            self.add_error("site", "Pick a site or one or more assets.")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        self._scope(data)
        if self.errors:
            return data
        policy = {"name": data["policy"]}
        needed = POLICY_FIELD.get(data["policy"])
        if needed:
            policy[needed] = data.get(needed)
        if data["policy"] == sim_const.POLICY_CONDITION_BASED:
            for name in ("inspection_interval_hours", "detection_probability"):
                if data.get(name) is not None:
                    policy[name] = data[name]
        if data.get("off_shift") and data["policy"] != sim_const.POLICY_RUN_TO_FAILURE:
            policy["off_shift"] = True
        self.params = {name: data.get(name) for name in ENGINE_FIELDS}
        self.params["policy"] = policy
        if len(self.chosen_assets) > sim_const.MAX_ASSETS:
            self.add_error("site" if data.get("site") else "assets", f"At most {sim_const.MAX_ASSETS} assets per scenario.")
            return data
        calibrated = calibrate_assets(self.chosen_assets)
        hours, _note = current_hours_per_day(self.chosen_assets)
        variants = build_scenarios(data["name"], self.params, calibrated, hours, data.get("compare_baseline", False))
        try:
            validate_scenario(variants[const.VARIANT_SCENARIO])
            if const.VARIANT_BASELINE in variants:
                validate_scenario(variants[const.VARIANT_BASELINE])
        except ScenarioError as exc:
            self._add_engine_errors(exc.errors, calibrated)
        return data

    def _add_engine_errors(self, errors: dict[str, str], calibrated: list) -> None:
        for path, message in errors.items():
            field = path.split(".", 1)[1] if path.startswith("policy.") else path
            if field == "name" and path == "policy.name":
                field = "policy"
            text = message[0].upper() + message[1:] + ("" if message.endswith(".") else ".")
            if path.startswith("assets["):
                index = path[len("assets["):].split("]", 1)[0]
                who = calibrated[int(index)].asset.name if index.isdigit() and int(index) < len(calibrated) else "an asset"
                self.add_error(None, f"The twin of {who} cannot be simulated ({path.split('.', 1)[-1]}): {message}.")
            elif field in self.fields:
                self.add_error(field, text)
            else:
                self.add_error(None, f"{path}: {message}")


FIELD_GROUPS = [
    ("Name and assets", ("name", "site", "assets")),
    ("Operating profile", ("load_factor", "speed_factor", "hours_per_day", "days_per_week", "ambient_delta_c")),
    ("Maintenance", ("policy", "interval_hours", "health_threshold", "lead_time_hours", "inspection_interval_hours",
                     "detection_probability", "off_shift", "crew_size", "spare_stock", "spare_lead_time_days")),
    ("Costs", ("pm_cost", "cm_cost", "downtime_cost_per_hour")),
    ("Simulation", ("horizon_days", "replications", "seed", "compare_baseline")),
]


def field_groups(form: ScenarioForm) -> list[tuple[str, list[forms.BoundField]]]:
    """The form's fields in the fieldsets the page shows (every field exactly once)."""
    return [(legend, [form[name] for name in names]) for legend, names in FIELD_GROUPS]
