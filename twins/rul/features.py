"""Windowed features: the one numpy implementation shared by training and serving.

Signals are standardised (per-signal mean and standard deviation of the training rows), then
for every signal, over the last ``window`` rows of a history: the recent level (mean of the
last few rows), the window mean, the least-squares slope per row and the standard deviation.
A history shorter than the window uses the rows it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .const import FEATURE_STATS, RECENT_ROWS

History = Mapping[str, np.ndarray | Sequence[float]] | np.ndarray


@dataclass(frozen=True)
class FeatureSpec:
    """What the model was trained on: which signals, how they are scaled, which window."""

    signals: tuple[str, ...]
    means: np.ndarray
    scales: np.ndarray
    window: int
    recent_rows: int = RECENT_ROWS

    @property
    def feature_names(self) -> list[str]:
        return [f"{s}:{stat}" for stat in FEATURE_STATS for s in self.signals]

    @property
    def n_features(self) -> int:
        return len(FEATURE_STATS) * len(self.signals)

    def to_json(self) -> dict:
        return {
            "signals": list(self.signals),
            "means": [float(v) for v in self.means],
            "scales": [float(v) for v in self.scales],
            "window": self.window,
            "recent_rows": self.recent_rows,
            "stats": list(FEATURE_STATS),
        }

    @classmethod
    def from_json(cls, obj: Mapping) -> FeatureSpec:
        if list(obj.get("stats", FEATURE_STATS)) != list(FEATURE_STATS):
            raise ValueError(
                f"model uses feature statistics {obj.get('stats')}, this code computes {list(FEATURE_STATS)}"
            )
        return cls(
            signals=tuple(obj["signals"]),
            means=np.asarray(obj["means"], dtype=np.float64),
            scales=np.asarray(obj["scales"], dtype=np.float64),
            window=int(obj["window"]),
            recent_rows=int(obj["recent_rows"]),
        )

    def standardise(self, values: np.ndarray) -> np.ndarray:
        return (values - self.means) / self.scales


def window_features(
    windows: np.ndarray, lengths: np.ndarray, recent_rows: int = RECENT_ROWS
) -> np.ndarray:
    """Features of right-aligned windows.

    ``windows`` is [N, W, S] standardised values whose last row is the latest one; only the
    last ``lengths[i]`` rows of window i are valid (1 <= lengths[i] <= W; the rest is ignored).
    Returns float32 [N, len(FEATURE_STATS) * S], ordered stat-major as ``FeatureSpec.feature_names``.
    """
    width = windows.shape[1]
    n = np.clip(np.asarray(lengths, dtype=np.float64), 1, width)[:, None]
    pos = np.arange(width, dtype=np.float64)[None, :]
    valid = pos >= width - n
    x = np.where(valid[:, :, None], windows, 0.0)

    mean = x.sum(axis=1) / n
    var = np.maximum((x * x).sum(axis=1) / n - mean * mean, 0.0)
    # Least-squares slope against the row index: weights are the centred positions of valid rows.
    centred = np.where(valid, pos - width + (n + 1.0) / 2.0, 0.0)
    sxx = n * (n * n - 1.0) / 12.0
    slope = np.einsum("nw,nws->ns", centred, x) / np.where(sxx > 0, sxx, 1.0)
    k = np.minimum(n, recent_rows)
    recent = np.where((pos >= width - k)[:, :, None], x, 0.0).sum(axis=1) / k

    by_stat = {"recent": recent, "mean": mean, "slope": slope, "std": np.sqrt(var)}
    return np.hstack([by_stat[s] for s in FEATURE_STATS]).astype(np.float32)


def unit_windows(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows ending at every row of one unit's standardised [T, S] values (training)."""
    rows = len(values)
    padded = np.vstack([np.zeros((window - 1, values.shape[1])), values])
    windows = sliding_window_view(padded, window, axis=0).transpose(0, 2, 1)
    return windows, np.minimum(np.arange(1, rows + 1), window)


def rows_features(
    spec: FeatureSpec, values: np.ndarray, bounds: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Features at every row of many units: ``values`` [rows, S] in spec signal order, raw."""
    z = spec.standardise(values)
    out = np.empty((len(values), spec.n_features), dtype=np.float32)
    for start, stop in bounds:
        windows, lengths = unit_windows(z[start:stop], spec.window)
        out[start:stop] = window_features(windows, lengths, spec.recent_rows)
    return out


def history_matrix(spec: FeatureSpec, history: History) -> np.ndarray:
    """One asset's history as raw [T, S] in the spec's signal order.

    A mapping gives one array per signal name (extra signals are ignored); a 2D array must
    already be [T, S] in ``spec.signals`` order.
    """
    if isinstance(history, Mapping):
        missing = [s for s in spec.signals if s not in history]
        if missing:
            raise ValueError(
                f"history lacks signals {missing} (model needs {list(spec.signals)})"
            )
        cols = [
            np.asarray(history[s], dtype=np.float64).reshape(-1) for s in spec.signals
        ]
        if len({len(c) for c in cols}) != 1:
            raise ValueError(
                "history signals differ in length: "
                + str({s: len(c) for s, c in zip(spec.signals, cols)})
            )
        matrix = np.column_stack(cols)
    else:
        matrix = np.asarray(history, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(spec.signals):
            raise ValueError(
                f"history array must be [rows, {len(spec.signals)}] ({list(spec.signals)}), got {matrix.shape}"
            )
    if len(matrix) == 0:
        raise ValueError("empty history: at least one row is needed")
    if not np.isfinite(matrix).all():
        raise ValueError("history contains non-finite values")
    return matrix


def stack_histories(
    spec: FeatureSpec, histories: Sequence[History] | np.ndarray, span: int
) -> tuple[np.ndarray, np.ndarray]:
    """The last ``span`` rows of many histories, standardised, right-aligned in [N, span, S].

    ``histories`` is a sequence of per-asset histories or a [N, T, S] array. Returns the block
    and each history's number of valid rows (at most ``span``); padding rows are never read.
    """
    if isinstance(histories, np.ndarray) and histories.ndim == 3:
        if histories.shape[2] != len(spec.signals) or histories.shape[1] == 0:
            raise ValueError(
                f"histories must be [N, T>0, {len(spec.signals)}], got {histories.shape}"
            )
        block = histories[:, -span:, :].astype(np.float64)
        if not np.isfinite(block).all():
            raise ValueError("histories contain non-finite values")
        lengths = np.full(len(block), block.shape[1], dtype=np.int64)
        if block.shape[1] < span:
            pad = np.broadcast_to(
                spec.means, (len(block), span - block.shape[1], block.shape[2])
            )
            block = np.concatenate([pad, block], axis=1)
    else:
        block = np.empty((len(histories), span, len(spec.signals)))
        block[:] = spec.means
        lengths = np.empty(len(histories), dtype=np.int64)
        for i, history in enumerate(histories):
            tail = history_matrix(spec, history)[-span:]
            block[i, span - len(tail) :] = tail
            lengths[i] = len(tail)
    return spec.standardise(block), lengths


def features_at(
    spec: FeatureSpec, block: np.ndarray, lengths: np.ndarray, rows_back: int = 0
) -> np.ndarray:
    """Features of windows ending ``rows_back`` rows before the latest row of each history.

    ``block`` and ``lengths`` come from ``stack_histories``; the caller ignores histories with
    ``lengths <= rows_back`` (they have no row there).
    """
    stop = block.shape[1] - rows_back
    windows = block[:, stop - spec.window : stop, :]
    return window_features(
        windows, np.clip(lengths - rows_back, 1, spec.window), spec.recent_rows
    )


def histories_features(
    spec: FeatureSpec, histories: Sequence[History] | np.ndarray
) -> np.ndarray:
    """Features of many assets at their latest row, vectorised: float32 [N, F]."""
    block, lengths = stack_histories(spec, histories, spec.window)
    return features_at(spec, block, lengths)
