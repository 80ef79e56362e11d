"""Windowed features: the one numpy implementation shared by training and serving.

Signals are standardised (per-signal mean and standard deviation of the training rows, or of the
row's operating regime when the fleet runs at several: see ``regimes.py``), then for every
signal, over the last ``window`` rows of a history: the recent level (mean of the last few
rows), the window mean, the least-squares slope per row, the standard deviation, and the slope
and mean over the last ``short_rows`` rows; last, one feature: the number of rows of history
seen (at most ``window``), which tells a young asset from a worn one. A history shorter than
the window uses the rows it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .const import FEATURE_STATS, LEGACY_FEATURE_STATS, RECENT_ROWS, SHORT_ROWS
from .regimes import Regimes

History = Mapping[str, np.ndarray | Sequence[float]] | np.ndarray


@dataclass(frozen=True)
class FeatureSpec:
    """What the model was trained on: which signals, how they are scaled, which window.

    Without regimes ``means``/``scales`` are [S]; with regimes they are [K, S] (one row per
    regime) and the setting signals follow the model's signals in ``inputs``.
    """

    signals: tuple[str, ...]
    means: np.ndarray
    scales: np.ndarray
    window: int
    recent_rows: int = RECENT_ROWS
    stats: tuple[str, ...] = FEATURE_STATS
    short_rows: int = SHORT_ROWS
    regimes: Regimes | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        """The signals a history must carry: the model's, then the regimes' settings."""
        return self.signals + (self.regimes.signals if self.regimes else ())

    @property
    def signal_stats(self) -> tuple[str, ...]:
        return tuple(s for s in self.stats if s != "rows")

    @property
    def feature_names(self) -> list[str]:
        names = [f"{s}:{stat}" for stat in self.signal_stats for s in self.signals]
        return names + (["history_rows"] if "rows" in self.stats else [])

    @property
    def n_features(self) -> int:
        return len(self.signal_stats) * len(self.signals) + int("rows" in self.stats)

    def to_json(self) -> dict:
        return {
            "signals": list(self.signals),
            "means": np.asarray(self.means).tolist(),
            "scales": np.asarray(self.scales).tolist(),
            "window": self.window,
            "recent_rows": self.recent_rows,
            "stats": list(self.stats),
            "short_rows": self.short_rows,
            "regimes": self.regimes.to_json() if self.regimes else None,
        }

    @classmethod
    def from_json(cls, obj: Mapping) -> FeatureSpec:
        stats = tuple(obj.get("stats", LEGACY_FEATURE_STATS))
        if stats not in (FEATURE_STATS, LEGACY_FEATURE_STATS):
            raise ValueError(
                f"model uses feature statistics {list(stats)}, this code computes {list(FEATURE_STATS)}"
            )
        regimes = obj.get("regimes")
        return cls(
            signals=tuple(obj["signals"]),
            means=np.asarray(obj["means"], dtype=np.float64),
            scales=np.asarray(obj["scales"], dtype=np.float64),
            window=int(obj["window"]),
            recent_rows=int(obj["recent_rows"]),
            stats=stats,
            short_rows=int(obj.get("short_rows", SHORT_ROWS)),
            regimes=Regimes.from_json(regimes) if regimes else None,
        )

    def pad_row(self) -> np.ndarray:
        """A raw input row used to fill windows before the first row (never read)."""
        base = self.means if self.regimes is None else self.means[0]
        return np.r_[base, self.regimes.means] if self.regimes else np.asarray(base)

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """Raw inputs [..., len(inputs)] -> standardised model signals [..., S]."""
        s = len(self.signals)
        x = values[..., :s]
        if self.regimes is None:
            return (x - self.means) / self.scales
        regime = self.regimes.assign(values[..., s:])
        return (x - self.means[regime]) / self.scales[regime]


def window_features(
    windows: np.ndarray,
    lengths: np.ndarray,
    recent_rows: int = RECENT_ROWS,
    stats: Sequence[str] = FEATURE_STATS,
    short_rows: int = SHORT_ROWS,
) -> np.ndarray:
    """Features of right-aligned windows.

    ``windows`` is [N, W, S] standardised values whose last row is the latest one; only the
    last ``lengths[i]`` rows of window i are valid (1 <= lengths[i] <= W; the rest is ignored).
    Returns float32 [N, F], ordered stat-major as ``FeatureSpec.feature_names``.
    """
    width = windows.shape[1]
    n = np.clip(np.asarray(lengths, dtype=np.float64), 1, width)[:, None]
    pos = np.arange(width, dtype=np.float64)[None, :]
    x = np.where((pos >= width - n)[:, :, None], windows, 0.0)

    def level_and_slope(tail: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and least-squares slope over the last ``tail`` rows (of those valid): rows
        outside the valid part are 0 in ``x``, so a slice of the tail is all it reads."""
        xs, rows = x[:, width - tail :, :], np.minimum(n, tail)
        p = np.arange(tail, dtype=np.float64)[None, :]
        # weights: the centred positions of the valid rows
        centred = np.where(p >= tail - rows, p - tail + (rows + 1.0) / 2.0, 0.0)
        sxx = rows * (rows * rows - 1.0) / 12.0
        return xs.sum(axis=1) / rows, np.einsum("nw,nws->ns", centred, xs) / np.where(sxx > 0, sxx, 1.0)

    mean, slope = level_and_slope(width)
    var = np.maximum(np.einsum("nws,nws->ns", x, x) / n - mean * mean, 0.0)
    k = min(recent_rows, width)
    recent = x[:, width - k :, :].sum(axis=1) / np.minimum(n, k)
    by_stat = {"recent": recent, "mean": mean, "slope": slope, "std": np.sqrt(var)}
    if "slope_short" in stats or "mean_short" in stats:
        by_stat["mean_short"], by_stat["slope_short"] = level_and_slope(min(short_rows, width))
    by_stat["rows"] = n
    return np.hstack([by_stat[s] for s in stats]).astype(np.float32)


def block_means(windows: np.ndarray, block: int) -> np.ndarray:
    """[N, W, S] windows -> [N, W // block, S] means of consecutive blocks of ``block`` rows,
    the latest block last (the CNN's input, ``cnn.py``): the whole window in a fraction of the
    steps, with the row-to-row noise averaged out."""
    n, width, s = windows.shape
    steps = width // block
    tail = windows[:, width - steps * block :, :]
    return tail.reshape(n, steps, block, s).mean(axis=2).astype(np.float32)


def unit_windows(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows ending at every row of one unit's standardised [T, S] values (training)."""
    rows = len(values)
    padded = np.vstack([np.zeros((window - 1, values.shape[1])), values])
    windows = sliding_window_view(padded, window, axis=0).transpose(0, 2, 1)
    return windows, np.minimum(np.arange(1, rows + 1), window)


def spec_features(spec: FeatureSpec, windows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return window_features(windows, lengths, spec.recent_rows, spec.stats, spec.short_rows)


def rows_features(
    spec: FeatureSpec, values: np.ndarray, bounds: Sequence[tuple[int, int]]
) -> np.ndarray:
    """Features at every row of many units: ``values`` [rows, len(inputs)] in ``spec.inputs`` order, raw."""
    z = spec.standardise(values)
    out = np.empty((len(values), spec.n_features), dtype=np.float32)
    for start, stop in bounds:
        windows, lengths = unit_windows(z[start:stop], spec.window)
        out[start:stop] = spec_features(spec, windows, lengths)
    return out


def history_matrix(spec: FeatureSpec, history: History) -> np.ndarray:
    """One asset's history as raw [T, S] in the spec's signal order.

    A mapping gives one array per signal name (extra signals are ignored); a 2D array must
    already be [T, S] in ``spec.inputs`` order.
    """
    if isinstance(history, Mapping):
        missing = [s for s in spec.inputs if s not in history]
        if missing:
            raise ValueError(
                f"history lacks signals {missing} (model needs {list(spec.inputs)})"
            )
        cols = [
            np.asarray(history[s], dtype=np.float64).reshape(-1) for s in spec.inputs
        ]
        if len({len(c) for c in cols}) != 1:
            raise ValueError(
                "history signals differ in length: "
                + str({s: len(c) for s, c in zip(spec.inputs, cols)})
            )
        matrix = np.column_stack(cols)
    else:
        matrix = np.asarray(history, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(spec.inputs):
            raise ValueError(
                f"history array must be [rows, {len(spec.inputs)}] ({list(spec.inputs)}), got {matrix.shape}"
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

    ``histories`` is a sequence of per-asset histories or a [N, T, len(inputs)] array. Returns the block
    and each history's number of valid rows (at most ``span``); padding rows are never read.
    """
    if isinstance(histories, np.ndarray) and histories.ndim == 3:
        if histories.shape[2] != len(spec.inputs) or histories.shape[1] == 0:
            raise ValueError(
                f"histories must be [N, T>0, {len(spec.inputs)}], got {histories.shape}"
            )
        block = histories[:, -span:, :].astype(np.float64)
        if not np.isfinite(block).all():
            raise ValueError("histories contain non-finite values")
        lengths = np.full(len(block), block.shape[1], dtype=np.int64)
        if block.shape[1] < span:
            pad = np.broadcast_to(
                spec.pad_row(), (len(block), span - block.shape[1], block.shape[2])
            )
            block = np.concatenate([pad, block], axis=1)
    else:
        block = np.empty((len(histories), span, len(spec.inputs)))
        block[:] = spec.pad_row()
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
    return spec_features(spec, windows, np.clip(lengths - rows_back, 1, spec.window))


def histories_features(
    spec: FeatureSpec, histories: Sequence[History] | np.ndarray
) -> np.ndarray:
    """Features of many assets at their latest row, vectorised: float32 [N, F]."""
    block, lengths = stack_histories(spec, histories, spec.window)
    return features_at(spec, block, lengths)
