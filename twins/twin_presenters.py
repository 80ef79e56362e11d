"""What the pages show of a twin: plain dicts for json_script and short texts with honest units.

The same wording is produced by static/js/twin_format.js for live updates."""

from __future__ import annotations

from typing import Any

from twins import twin_const as tc
from twins.models import RulModel, TwinSnapshot, TwinState
from twins.twin_live import twin_figures


def _num(value: float, unit: str) -> str:
    digits = 0 if abs(value) >= 100 else 1
    return f"{value:.{digits}f} {unit}".rstrip()


def health_text(health: float) -> str:
    return f"{health * 100:.0f} %"


def rul_text(state: TwinState | dict[str, Any]) -> str:
    """'31.5 h (80%: 20.1–40.2 h), about 1.3 days at 24 h/day' (operating units, then calendar)."""
    get = state.get if isinstance(state, dict) else lambda k: getattr(state, k)
    if get("rul_median") is None:
        return "not estimated"
    unit = get("rul_unit")
    text = f"{_num(get('rul_median'), unit)} (80%: {_num(get('rul_low'), '')}–{_num(get('rul_high'), unit)})"
    days = get("rul_days_median")
    if days is not None:
        text += f", about {days:.1f} days"
    return text


def rul_short(state: TwinState | dict[str, Any]) -> str:
    """'31.5 h ≈ 1.3 d': the fleet tile's line."""
    get = state.get if isinstance(state, dict) else lambda k: getattr(state, k)
    if get("rul_median") is None:
        return "–"
    days = get("rul_days_median")
    return _num(get("rul_median"), get("rul_unit")) + (f" ≈ {days:.1f} d" if days is not None else "")


def rate_text(rate: float | None) -> str:
    if rate is None:
        return "not enough history yet"
    return f"{rate * 100:+.2f} % health lost per operating hour"


def twin_panel(asset_id: int, hours_per_day: float) -> dict[str, Any] | None:
    """The asset page's twin panel: figures, model evidence and history; None before the first refresh."""
    state = TwinState.objects.filter(asset_id=asset_id).first()
    if state is None:
        return None
    details = state.details or {}
    history = list(
        TwinSnapshot.objects.filter(asset_id=asset_id).order_by("-computed_at").values_list("computed_at", "health", "rul_median", "rul_low", "rul_high")[: tc.HISTORY_MAX_POINTS]
    )
    history.reverse()
    return {
        "figures": twin_figures(state),
        "health_text": health_text(state.health),
        "rul_text": rul_text(state),
        "rate_text": rate_text(state.degradation_rate),
        "hours_per_day": hours_per_day,
        "model": {
            "version": state.model_version, "trained_on": details.get("trained_on", ""), "metrics": details.get("metrics", {}),
            "late_life": details.get("late_life", {}), "cap": details.get("cap"), "cap_rul": details.get("cap_rul"), "window": details.get("window"),
            "hours_per_row": details.get("hours_per_row"), "rows_used": details.get("rows_used"),
        },
        "assumptions": details.get("assumptions", []),
        "history": [[t.timestamp(), h, m, lo, hi] for t, h, m, lo, hi in history],
    }


def fleet_twins(asset_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{asset id: figures and texts} for the fleet tiles (one query)."""
    out = {}
    for state in TwinState.objects.filter(asset_id__in=asset_ids).only(
        "asset_id", "computed_at", "model_version", "health", "rul_median", "rul_low", "rul_high", "rul_unit",
        "rul_days_median", "rul_days_low", "rul_days_high", "degradation_rate", "details",
    ):
        out[state.asset_id] = {**twin_figures(state), "health_text": health_text(state.health), "rul_short": rul_short(state)}
    return out


def model_rows() -> list[dict[str, Any]]:
    """Every registered RUL model with its validation figures (the Models page)."""
    rows = []
    for m in RulModel.objects.all():
        serving = m.meta.get("serving", {})
        training = m.meta.get("training", {})
        rows.append({
            "version": m.version, "asset_type": m.asset_type_key, "rul_unit": m.rul_unit, "active": m.is_active, "metrics": m.metrics,
            "late_life": m.meta.get("validation", {}).get("late_life", {}), "trained_on": m.trained_on, "created_at": m.created_at,
            "cap_rul": (m.meta.get("cap") or 0) * (1.0 if m.rul_unit == "cycles" else serving.get("hours_per_row", 1.0)),
            "window": m.meta.get("window"), "signals": m.meta.get("signals", []),
            "units": training.get("units"), "rows": training.get("rows"), "seconds": training.get("seconds"),
            "assumptions": serving.get("assumptions", []),
        })
    return rows
