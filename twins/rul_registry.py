"""The RUL model registry: artifacts under VAR_DIR/models/rul/<version>/, RulModel rows, the
active version per asset type, and loaded predictors cached per version."""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from twins import twin_const as tc
from twins.models import RulModel
from twins.rul import RulPredictor, TrainedRul, load_model, save_model
from twins.rul.artifact import read_artifact
from web.file_store import keep_directory, local_directory

log = logging.getLogger(__name__)


class RegistryError(ValueError):
    """A model cannot be registered, activated or served (the message says why)."""


def models_root() -> Path:
    return Path(settings.VAR_DIR) / "models" / "rul"


@dataclass(frozen=True)
class Serving:
    """How the platform feeds a model and reads its output (stored in RulModel.meta['serving'])."""

    rul_unit: str  # 'hours' or 'cycles'
    row_seconds: float | None  # operating seconds per row; None = one row per reading (a cycle)
    hours_per_row: float  # operating hours one row stands for
    signal_metrics: dict[str, str]  # model signal -> metric key of the asset type
    assumptions: list[str] = field(default_factory=list)
    # What the training data says about lives (operating hours), for the what-if: the median life
    # of a new component, and the remaining life (p10, p50, p90) of one whose RUL is beyond the
    # model's cap (no visible wear yet). None when unknown (C-MAPSS: lives in cycles only).
    life_hours: float | None = None
    beyond_cap_hours: dict[str, float] | None = None

    @property
    def rul_per_row(self) -> float:
        """RUL units one model row stands for: 1 for cycles, the row's hours for hours."""
        return 1.0 if self.rul_unit == "cycles" else self.hours_per_row

    def to_json(self) -> dict[str, Any]:
        return {
            "rul_unit": self.rul_unit, "row_seconds": self.row_seconds, "hours_per_row": self.hours_per_row,
            "signal_metrics": self.signal_metrics, "assumptions": self.assumptions,
            "life_hours": self.life_hours, "beyond_cap_hours": self.beyond_cap_hours,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Serving:
        return cls(
            rul_unit=obj["rul_unit"], row_seconds=obj.get("row_seconds"), hours_per_row=float(obj["hours_per_row"]),
            signal_metrics=dict(obj["signal_metrics"]), assumptions=list(obj.get("assumptions", [])),
            life_hours=obj.get("life_hours"), beyond_cap_hours=obj.get("beyond_cap_hours"),
        )


def store_trained(
    trained: TrainedRul, asset_type_key: str, serving: Serving, trained_on: str, activate: bool = True, name: str | None = None,
) -> RulModel:
    """Export a trained model into VAR_DIR/models/rul/<version>/ and register it."""
    root = models_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
    try:
        meta = save_model(trained, tmp, name=name)
        final = root / meta["version"]
        if final.exists():  # same second, same weights: the artifact is identical
            shutil.rmtree(tmp)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return register_model(final, asset_type_key, serving, trained_on, activate)


def register_model(path: str | Path, asset_type_key: str, serving: Serving, trained_on: str, activate: bool = True) -> RulModel:
    """A RulModel row for an artifact directory (meta.json checked against model.onnx)."""
    path = Path(path).resolve()
    _onnx, meta = read_artifact(path)
    missing = sorted(set(meta["signals"]) - set(serving.signal_metrics))
    if missing:
        raise RegistryError(f"model signals without a metric of {asset_type_key}: {', '.join(missing)}")
    # The RUL package measures in model rows; the registry states RUL in the serving unit.
    metrics = dict(meta["metrics"])
    if serving.rul_per_row != 1.0:
        for key in ("rmse", "rmse_sd", "interval_width_mean", "interval_width_mean_sd"):
            if metrics.get(key) is not None:
                metrics[key] = round(metrics[key] * serving.rul_per_row, 4)
                metrics[f"{key}_rows"] = meta["metrics"][key]
        # PHM08 is defined on engine cycles (exp of the error in cycles): on minute rows it
        # explodes and in hours it means nothing comparable; it is kept for the record only.
        metrics["phm_score_rows"] = meta["metrics"]["phm_score"]
        metrics["phm_score"] = None
        metrics["phm_score_sd"] = None
    with transaction.atomic():
        model, _created = RulModel.objects.update_or_create(
            version=meta["version"],
            defaults={
                "asset_type_key": asset_type_key, "artifact_path": str(path), "rul_unit": serving.rul_unit,
                "metrics": finite_json(metrics), "meta": finite_json({**meta, "serving": serving.to_json()}), "trained_on": trained_on[:300],
            },
        )
        keep_directory(model.artifact_path, path)  # every process on every host can load it
        if activate:
            model = activate_model(model.version)
    return model


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (a PHM08 score that overflowed on long lives) as
    None: JSON has no Infinity, and SQLite's JSON columns refuse it."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


@transaction.atomic
def activate_model(version: str) -> RulModel:
    """Make ``version`` the one twins of its asset type use (one active version per type)."""
    try:
        model = RulModel.objects.select_for_update().get(version=version)
    except RulModel.DoesNotExist:
        raise RegistryError(f"no RUL model version {version!r}") from None
    RulModel.objects.filter(asset_type_key=model.asset_type_key, is_active=True).exclude(pk=model.pk).update(is_active=False)
    if not model.is_active:
        model.is_active = True
        model.save(update_fields=["is_active"])
    log.info("RUL model %s active for %s", version, model.asset_type_key)
    return model


@dataclass(frozen=True)
class ServingModel:
    """An active model ready to serve: its predictor and everything shown next to an estimate."""

    version: str
    asset_type_key: str
    predictor: RulPredictor
    serving: Serving
    metrics: dict[str, Any]
    trained_on: str

    def details(self) -> dict[str, Any]:
        validation = self.predictor.meta.get("validation", {})
        return {
            "model_version": self.version, "trained_on": self.trained_on, "metrics": self.metrics,
            "late_life": _late_life(validation, self.serving.rul_per_row),
            "protocol": validation.get("protocol", {}).get("protocol"),
            "rul_unit": self.serving.rul_unit, "cap": self.predictor.cap, "cap_rul": self.predictor.cap * self.serving.rul_per_row,
            "window": self.predictor.window,
            "hours_per_row": self.serving.hours_per_row, "assumptions": self.serving.assumptions,
            "life_hours": self.serving.life_hours, "beyond_cap_hours": self.serving.beyond_cap_hours,
        }


def _late_life(validation: dict[str, Any], rul_per_row: float) -> dict[str, Any]:
    late = validation.get("late_life", {})
    rmse = late.get("rmse")
    return {"rmse": None if rmse is None else round(rmse * rul_per_row, 4), "coverage80": late.get("coverage80"), "rows": late.get("rows")}


_cache: dict[str, RulPredictor] = {}
_cache_lock = threading.Lock()


def predictor_for(model: RulModel) -> RulPredictor:
    """The loaded predictor of a version (loaded once per process; the sha256 is checked on load)."""
    with _cache_lock:
        predictor = _cache.get(model.version)
        if predictor is None:
            predictor = load_model(local_directory(model.artifact_path))
            if predictor.version != model.version:
                raise RegistryError(f"{model.artifact_path} holds {predictor.version}, not {model.version}")
            _cache[model.version] = predictor
        return predictor


def active_models(asset_type_keys: list[str] | None = None) -> dict[str, ServingModel]:
    """{asset type key: ServingModel} of the active versions (one query; artifacts cached).

    A model whose artifact is missing or tampered with is logged and left out: its twins keep
    their last state instead of the whole refresh failing.
    """
    qs = RulModel.objects.filter(is_active=True)
    if asset_type_keys is not None:
        qs = qs.filter(asset_type_key__in=asset_type_keys)
    out: dict[str, ServingModel] = {}
    for model in qs:
        try:
            predictor = predictor_for(model)
            serving = Serving.from_json(model.meta["serving"])
        except Exception:
            log.exception("RUL model %s (%s) cannot be served", model.version, model.asset_type_key)
            continue
        out[model.asset_type_key] = ServingModel(model.version, model.asset_type_key, predictor, serving, model.metrics, model.trained_on)
    return out


def cmapss_serving(hours_per_cycle: float = tc.DEFAULT_HOURS_PER_CYCLE) -> Serving:
    return Serving(
        rul_unit="cycles", row_seconds=None, hours_per_row=hours_per_cycle, signal_metrics=dict(tc.CMAPSS_SIGNAL_METRICS),
        assumptions=[
            "One row per engine cycle (one reading of the C-MAPSS replay = one cycle).",
            f"Calendar days assume {hours_per_cycle:g} operating hours per cycle and the asset's hours per day.",
            "RUL above the model's cap is not observable: a healthy engine shows the cap.",
            "The model reads the rows of history seen (up to its window) as the engine's age: an engine whose telemetry began mid-life looks younger.",
            "Trained on NASA C-MAPSS run-to-failure engines; valid for the same operating conditions and fault mode.",
        ],
    )


def simulated_serving(
    metric_keys: list[str], row_seconds: float = tc.SIM_ROW_SECONDS, life_hours: tuple[float, float] | None = None, cap_hours: float | None = None,
) -> Serving:
    life, beyond = None, None
    assumptions = [
        f"Telemetry averaged over {row_seconds:g} s buckets: one row per {row_seconds:g} s of operating time.",
        "Trained on run-to-failure histories of the platform's simulator (not field data).",
        "RUL above the model's cap is not observable: a healthy asset shows the cap.",
        "Calendar days = operating hours / the asset's current hours per day.",
        "Degradation rate = health / RUL: the pace at which health reaches 0 when the RUL runs out; none while the RUL is beyond the cap.",
    ]
    if life_hours is not None and cap_hours is not None:
        life, beyond = life_statistics(life_hours, cap_hours)
        assumptions.append(
            f"Lives of the simulated units: {life_hours[0]:,.0f}-{life_hours[1]:,.0f} operating hours (median {life:,.0f}); "
            f"an asset beyond the cap has {beyond['p50']:,.0f} h left at the median (80%: {beyond['p10']:,.0f}-{beyond['p90']:,.0f} h)."
        )
    return Serving(
        rul_unit="hours", row_seconds=row_seconds, hours_per_row=row_seconds / 3600.0, signal_metrics={k: k for k in metric_keys},
        assumptions=assumptions, life_hours=life, beyond_cap_hours=beyond,
    )


def life_statistics(life_hours: tuple[float, float], cap_hours: float, draws: int = 200_000) -> tuple[float, dict[str, float]]:
    """Median life, and the remaining life of a component whose RUL is beyond ``cap_hours``, for
    lives uniform in ``life_hours`` and an age uniform over the part of the life before the cap
    (nothing is known of it but that wear does not show yet). Seeded: the same every time."""
    rng = np.random.default_rng(12345)
    lives = rng.uniform(life_hours[0], life_hours[1], draws)
    ages = rng.uniform(0.0, 1.0, draws) * np.maximum(lives - cap_hours, 0.0)
    left = lives - ages
    p10, p50, p90 = (float(round(v, -1)) for v in np.percentile(left, [10, 50, 90]))
    return float(round(np.median(lives), -1)), {"p10": p10, "p50": p50, "p90": p90, "cap": float(cap_hours)}
