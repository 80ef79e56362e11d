"""The validation protocol: figures made the way the official C-MAPSS test set is made.

Every unit is cut at random rows like a test engine (at least MIN_TRUNCATED_ROWS rows kept, a
true RUL between CUT_RUL_LOW_SHARE and CUT_RUL_HIGH_SHARE of the cap: 7..145 cycles at a cap of
125), and predicted by a model fitted without any row of that unit (grouped K-fold over all
units). The interval of a fold is calibrated on the other folds' cuts only. This is repeated for
several seeds (new folds, new cuts, new model seeds); the figures are the mean and the standard
deviation over the seeds. RMSE and coverage are against the uncapped true RUL, as the official
truth file gives it; the PHM08 score is summed over one cut per unit (like one test set).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from . import const
from .conformal import NormalisedBands, calibrate_normalised
from .data import RunToFailureData
from .metrics import coverage, phm_score, rmse


def cut_range(cap: float) -> tuple[float, float]:
    """True RUL of a test-like cut, in the data's time units (7..145 cycles at a cap of 125)."""
    return const.CUT_RUL_LOW_SHARE * cap, const.CUT_RUL_HIGH_SHARE * cap


def cut_like_test_set(
    data: RunToFailureData, cap: float, seed: int, per_unit: int = const.PROTOCOL_CUTS,
    min_rows: int = const.MIN_TRUNCATED_ROWS,
) -> np.ndarray:
    """Row indices [per_unit * units] where units are cut like test engines (unit order, repeated).

    Features only look back, so a prediction at a cut row equals one on the truncated history.
    A unit too short for the range is cut at any row with >= min(min_rows, its rows) rows kept.
    """
    rng = np.random.default_rng(seed)
    low, high = cut_range(cap)
    raw = data.rul()
    out = np.empty((per_unit, len(data.unit_ids)), dtype=np.int64)
    for u, (start, stop) in enumerate(data.unit_bounds()):
        first = start + min(min_rows, stop - start) - 1
        rows = np.arange(first, stop)
        ok = rows[(raw[rows] >= low) & (raw[rows] <= high)]
        pool = ok if len(ok) else rows
        out[:, u] = pool[rng.integers(len(pool), size=per_unit)]
    return out.reshape(-1)


def unit_folds(unit_ids: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """The units shuffled and dealt into ``folds`` groups of near-equal size."""
    ids = np.array(sorted(set(np.asarray(unit_ids).tolist())))
    if folds < 2 or folds > len(ids):
        raise ValueError(f"cannot make {folds} folds of {len(ids)} units")
    ids = ids[np.random.default_rng(seed).permutation(len(ids))]
    return [ids[k::folds] for k in range(folds)]


@dataclass
class ProtocolResult:
    """Per-seed figures, their summary, and the out-of-fold cuts (for the final interval)."""

    per_seed: list[dict]
    summary: dict
    cut_predicted: np.ndarray
    cut_true: np.ndarray
    folds: list[list[list]]
    cut_members: np.ndarray | None = None  # [cuts, M] the members' predictions (clipped to the cap)


WEIGHT_STEP = 0.05


def choose_weights(members: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Weights (>= 0, summing to 1) of the members' average with the least squared error.

    A grid of WEIGHT_STEP for two members; one member gets weight 1.
    """
    m = members.shape[1]
    if m == 1:
        return np.ones(1)
    if m != 2:
        raise ValueError(f"ensembles of {m} members are not supported (1 or 2)")
    grid = np.linspace(0.0, 1.0, round(1 / WEIGHT_STEP) + 1)
    errors = [np.mean((members @ np.array([w, 1 - w]) - true) ** 2) for w in grid]
    w = float(grid[int(np.argmin(errors))])
    return np.array([w, 1.0 - w])


@dataclass(frozen=True)
class Calibration:
    """What turns the members' predictions into the served estimate: their weights and the
    interval, both fitted on out-of-fold cuts."""

    weights: np.ndarray
    bands: NormalisedBands

    def point(self, members: np.ndarray) -> np.ndarray:
        return np.asarray(members, dtype=np.float64).reshape(len(members), -1) @ self.weights


def fit_calibration(
    members: np.ndarray, true: np.ndarray, coverage_level: float, offset: float
) -> Calibration:
    """Weights and interval from cuts' member predictions [n, M] (clipped) and their true RUL."""
    weights = choose_weights(members, true)
    return Calibration(weights, calibrate_normalised(members @ weights, true, coverage_level, offset))


FIGURES = ("rmse", "phm_score", "coverage80", "interval_width_mean")


def run_protocol(
    data: RunToFailureData,
    features: np.ndarray,
    target: np.ndarray,
    fit_predict: Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray],
    cap: float,
    *,
    seeds: Sequence[int],
    folds: int = const.PROTOCOL_FOLDS,
    cuts: int = const.PROTOCOL_CUTS,
    coverage_level: float = const.INTERVAL_COVERAGE,
) -> ProtocolResult:
    """Repeated grouped K-fold of test-like cuts.

    ``fit_predict(train_features, train_target, predict_features, seed)`` fits a model and
    returns its (unclipped) predictions. ``features``/``target`` are every row's (target capped).
    An ensemble's fit_predict returns [n, M], one column per member. Everything applied to a
    fold's predictions (the members' weights, the interval) is fitted on the other folds' cuts,
    never on the fold itself.
    """
    raw = data.rul()
    folds = min(folds, len(data.unit_ids))
    offset = const.CONFORMAL_OFFSET_SHARE * cap
    per_seed, all_pred, all_true, all_folds, all_members = [], [], [], [], []
    for seed in seeds:
        groups = unit_folds(data.unit_ids, folds, seed)
        cut = cut_like_test_set(data, cap, seed, cuts)
        cut_fold = np.empty(len(cut), dtype=np.int64)
        members = None
        for k, group in enumerate(groups):
            held_rows = np.isin(data.units, group)
            mine = np.isin(data.units[cut], group)
            cut_fold[mine] = k
            out = np.asarray(fit_predict(features[~held_rows], target[~held_rows], features[cut[mine]], seed * 101 + k))
            out = out.reshape(int(mine.sum()), -1)
            if members is None:
                members = np.empty((len(cut), out.shape[1]))
            members[mine] = out
        members = np.clip(members, 0.0, cap)
        true = raw[cut]
        pred, low, high = np.empty(len(cut)), np.empty(len(cut)), np.empty(len(cut))
        weights = []
        for k in range(len(groups)):
            mine = cut_fold == k
            calibration = fit_calibration(members[~mine], true[~mine], coverage_level, offset)
            pred[mine] = calibration.point(members[mine])
            low[mine], high[mine] = calibration.bands.interval(pred[mine])
            weights.append(calibration.weights.round(3).tolist())
        low = np.maximum(low, 0.0)
        per_seed.append({
            "seed": int(seed),
            "rmse": round(rmse(pred, true), 4),
            "phm_score": round(phm_score(pred, true) / cuts, 4),
            "coverage80": round(coverage(low, high, true), 4),
            "interval_width_mean": round(float(np.mean(high - low)), 4),
            **({
                "weights": weights,
                "members": [
                    {"rmse": round(rmse(col, true), 4), "phm_score": round(phm_score(col, true) / cuts, 4)}
                    for col in members.T
                ],
            } if members.shape[1] > 1 else {}),
        })
        all_members.append(members)
        all_pred.append(pred)
        all_true.append(true)
        all_folds.append([g.tolist() for g in groups])
    summary: dict = {"engines": len(data.unit_ids)}
    for name in FIGURES:
        values = np.array([s[name] for s in per_seed])
        if not np.isfinite(values).all():  # a PHM08 score that overflowed on fine rows
            summary[name], summary[f"{name}_sd"] = float("inf"), None
            continue
        summary[name] = round(float(values.mean()), 4)
        summary[f"{name}_sd"] = round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4)
    summary.update({
        "seeds": len(per_seed), "folds": folds, "cuts_per_unit": cuts,
        "protocol": (
            f"{len(per_seed)} seeds x {folds}-fold grouped by unit over all {len(data.unit_ids)} units; "
            f"{cuts} test-like cuts per unit (>= {const.MIN_TRUNCATED_ROWS} rows kept, true RUL "
            f"{const.CUT_RUL_LOW_SHARE:.0%}..{const.CUT_RUL_HIGH_SHARE:.0%} of the cap, as 7..145 cycles at C-MAPSS's 125); figures = mean and sd over seeds, against the uncapped true RUL"
        ),
    })
    if per_seed and "members" in per_seed[0]:
        summary["members"] = [
            {
                name: round(float(np.mean([s["members"][i][name] for s in per_seed])), 4)
                for name in ("rmse", "phm_score")
            }
            for i in range(len(per_seed[0]["members"]))
        ]
    return ProtocolResult(
        per_seed, summary, np.concatenate(all_pred), np.concatenate(all_true), all_folds,
        np.concatenate(all_members),
    )
