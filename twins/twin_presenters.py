"""What the pages show of a twin: plain dicts for json_script and short texts with honest units.

The same wording is produced by static/js/twin_format.js for live updates."""

from __future__ import annotations

from typing import Any

from twins import twin_const as tc
from twins.models import RulModel, TwinSnapshot, TwinState
from twins.twin_live import twin_figures


def _num(value: float, unit: str = "") -> str:
    """12,400 h / 380 h / 12.5 h / 0.4 h: a practitioner's precision at every scale."""
    a = abs(value)
    text = f"{value:,.0f}" if a >= 100 else f"{value:.1f}"
    return f"{text} {unit}".rstrip()


def _pm(value: Any, sd: Any, digits: int) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{digits}f}"
    return text if sd is None else f"{text} ± {sd:.{digits}f}"


def validation_texts(metrics: dict[str, Any]) -> dict[str, str]:
    """The validation protocol's figures as 'mean ± sd' (sd over the protocol's seeds); models of
    the former single-split validation have no sd and show the bare figure."""
    return {
        "rmse": _pm(metrics.get("rmse"), metrics.get("rmse_sd"), 1),
        "phm_score": "n/a (defined on cycles)" if metrics.get("phm_score") is None else _pm(metrics["phm_score"], metrics.get("phm_score_sd"), 0),
        "coverage80": _pm(metrics.get("coverage80"), metrics.get("coverage80_sd"), 2),
        "interval_width": _pm(metrics.get("interval_width_mean"), metrics.get("interval_width_mean_sd"), 1),
        "engines": str(metrics.get("engines", "n/a")),
    }


def _days(days: float) -> str:
    return f"{days:,.0f}" if days >= 100 else f"{days:.1f}"


def _get(state: TwinState | dict[str, Any]):
    return state.get if isinstance(state, dict) else lambda k: getattr(state, k)


def at_cap(figures: dict[str, Any]) -> bool:
    """The median sits at the model's cap: the RUL is at least that (no visible wear yet)."""
    cap, median = figures.get("rul_cap"), figures.get("rul_median")
    return cap is not None and median is not None and median >= cap * tc.AT_CAP_SHARE


def health_text(health: float, figures: dict[str, Any] | None = None) -> str:
    """'87 %'; at the model's cap (no wear visible) 100 %, as the RUL text says."""
    if figures is not None and at_cap(figures):
        return "100 %"
    return f"{health * 100:.0f} %"


def rul_text(figures: dict[str, Any]) -> str:
    """'5,200 h (80%: 3,100–7,400 h), about 217 days at the current profile', or, at the model's
    cap, 'more than 10,000 h (beyond what wear shows yet), over 417 days'."""
    get = _get(figures)
    if get("rul_median") is None:
        return "not estimated"
    unit, days = get("rul_unit"), get("rul_days_median")
    if at_cap(figures):
        text = f"more than {_num(get('rul_cap'), unit)} (no wear visible yet: the model's horizon)"
        return text + (f", over {_days(days)} days" if days is not None else "")
    text = f"{_num(get('rul_median'), unit)} (80%: {_num(get('rul_low'))}–{_num(get('rul_high'), unit)})"
    return text + (f", about {_days(days)} days" if days is not None else "")


def rul_short(figures: dict[str, Any]) -> str:
    """'5,200 h ≈ 217 d' (the fleet tile's line); '> 10,000 h' at the model's cap."""
    get = _get(figures)
    if get("rul_median") is None:
        return "–"
    days = get("rul_days_median")
    if at_cap(figures):
        return f"> {_num(get('rul_cap'), get('rul_unit'))}"
    return _num(get("rul_median"), get("rul_unit")) + (f" ≈ {_days(days)} d" if days is not None else "")


def rate_text(figures: dict[str, Any]) -> str:
    """Health lost per operating hour (and per day at 24 h), the pace of the RUL estimate."""
    rate = figures.get("degradation_rate")
    if at_cap(figures):
        return "none visible yet"
    if rate is None:
        return "–"
    return f"{rate * 100:.3g} % of health per operating hour ({rate * 2400:.2g} % per 24 h)"


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
    figures = twin_figures(state)
    return {
        "figures": figures,
        "health_text": health_text(state.health, figures),
        "rul_text": rul_text(figures),
        "rate_text": rate_text(figures),
        "hours_per_day": hours_per_day,
        "model": {
            "version": state.model_version, "trained_on": details.get("trained_on", ""), "metrics": details.get("metrics", {}),
            "texts": validation_texts(details.get("metrics", {})), "protocol": details.get("protocol"),
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
        figures = twin_figures(state)
        out[state.asset_id] = {**figures, "health_text": health_text(state.health, figures), "rul_short": rul_short(figures)}
    return out


def model_rows() -> list[dict[str, Any]]:
    """Every registered RUL model with its validation figures (the Models page)."""
    rows = []
    for m in RulModel.objects.all():
        serving = m.meta.get("serving", {})
        training = m.meta.get("training", {})
        rows.append({
            "version": m.version, "asset_type": m.asset_type_key, "rul_unit": m.rul_unit, "active": m.is_active, "metrics": m.metrics,
            "texts": validation_texts(m.metrics), "protocol": m.meta.get("validation", {}).get("protocol", {}).get("protocol"),
            "late_life": m.meta.get("validation", {}).get("late_life", {}), "trained_on": m.trained_on, "created_at": m.created_at,
            "cap_rul": (m.meta.get("cap") or 0) * (1.0 if m.rul_unit == "cycles" else serving.get("hours_per_row", 1.0)),
            "window": m.meta.get("window"), "signals": m.meta.get("signals", []),
            "units": training.get("units"), "rows": training.get("rows"), "seconds": training.get("seconds"),
            "assumptions": serving.get("assumptions", []),
        })
    return rows
