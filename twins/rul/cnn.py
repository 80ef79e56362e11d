"""A small 1D-CNN on the standardised signals of the feature window (optional: needs PyTorch).

Inputs: ``window`` float32 [N, window // CNN_BLOCK, S], the means of consecutive blocks of
CNN_BLOCK rows of the standardised model signals over the feature window (latest block last;
rows before a history's first row count as 0), and ``age`` float32 [N, 1], the rows of history
seen (the ``history_rows`` feature; the net standardises it itself). Output: the RUL [N, 1].

Trained on the CPU with PyTorch, exported to ONNX with torch.onnx: the platform and edge nodes
serve it with onnxruntime only, so torch is a training dependency (requirements-train.txt).
Without torch, ``fit_cnn`` raises ``CnnUnavailable`` and callers fall back to LightGBM.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np

from . import const
from .features import block_means

try:  # torch is optional: without it, training falls back to LightGBM alone
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - depends on the environment
    torch = None
    nn = None


class CnnUnavailable(RuntimeError):
    """PyTorch is not installed: the CNN cannot be trained (serving needs onnxruntime only)."""


def torch_available() -> bool:
    return torch is not None


def rows_cnn_windows(z: np.ndarray, bounds: Sequence[tuple[int, int]], width: int, block: int = const.CNN_BLOCK) -> np.ndarray:
    """The CNN's ``window`` input at every row of many units (``z`` standardised [rows, S]).

    Block means of row windows (the latest row-by-row windows of 30 or 60 rows that papers use
    overfit the ~80 engines of a fold: RMSE 19-20 under the protocol).
    """
    out = np.empty((len(z), width // block, z.shape[1]), dtype=np.float32)
    for start, stop in bounds:
        padded = np.vstack([np.zeros((width - 1, z.shape[1])), z[start:stop]])
        view = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0).transpose(0, 2, 1)
        out[start:stop] = block_means(view, block)
    return out


if torch is not None:

    class RulCnn(nn.Module):
        """Three convolutions over the blocks, then a dense head on the channels' mean and
        latest state plus the age (one number per channel, not one per step: flattening every
        step overfits)."""

        def __init__(self, signals: int, cap: float, age_mean: float, age_scale: float) -> None:
            super().__init__()
            channels, k = const.CNN_CHANNELS, const.CNN_KERNEL
            self.cap = float(cap)  # the net learns RUL / cap, of order 1
            self.age_mean, self.age_scale = float(age_mean), float(age_scale)
            self.conv = nn.Sequential(
                nn.Conv1d(signals, channels, k, padding=k // 2),
                nn.ReLU(),
                nn.Conv1d(channels, channels, k, padding=k // 2),
                nn.ReLU(),
                nn.Conv1d(channels, channels, 3, padding=1),
                nn.ReLU(),
            )
            self.head = nn.Sequential(
                nn.Linear(2 * channels + 1, const.CNN_HIDDEN),
                nn.ReLU(),
                nn.Dropout(const.CNN_DROPOUT),
                nn.Linear(const.CNN_HIDDEN, 1),
            )

        def forward(self, window, age):
            h = self.conv(window.transpose(1, 2))
            a = (age - self.age_mean) / self.age_scale
            return self.head(torch.cat([h.mean(dim=2), h[:, :, -1], a], dim=1)) * self.cap


def asymmetric_loss(predicted, target, late_weight: float, cap: float):
    """Squared error (in caps), ``late_weight`` times heavier where the prediction is late
    (above the truth): the PHM08 score punishes late predictions more than early ones."""
    d = (predicted - target) / cap
    return torch.mean(torch.where(d > 0, late_weight, 1.0) * d * d)


def fit_cnn(
    window: np.ndarray,
    age: np.ndarray,
    target: np.ndarray,
    cap: float,
    seed: int,
    *,
    epochs: int = const.CNN_EPOCHS,
    late_weight: float = const.CNN_LATE_WEIGHT,
    on_epoch: Callable[[object], None] | None = None,
):
    """A RulCnn fitted on windows [N, steps, S], ages [N, 1] and the capped RUL [N].

    One CPU thread, deterministic per seed. Regularised against the few engines of a fold:
    Gaussian input noise (CNN_INPUT_NOISE sd), dropout and weight decay.
    """
    if torch is None:
        raise CnnUnavailable("PyTorch is not installed: pip install -r requirements-train.txt")
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(seed)
    age = np.asarray(age, dtype=np.float32).reshape(-1, 1)
    model = RulCnn(window.shape[2], cap, float(age.mean()), float(age.std()) or 1.0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=const.CNN_LEARNING_RATE, weight_decay=const.CNN_WEIGHT_DECAY)
    batches = -(-len(window) // const.CNN_BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=const.CNN_LEARNING_RATE, total_steps=epochs * batches)
    x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))
    a = torch.from_numpy(age)
    y = torch.from_numpy(np.asarray(target, dtype=np.float32).reshape(-1, 1))
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(window)))
        for i in range(0, len(order), const.CNN_BATCH):
            idx = order[i : i + const.CNN_BATCH]
            xb = x[idx] + const.CNN_INPUT_NOISE * torch.randn(len(idx), *x.shape[1:])
            optimiser.zero_grad()
            asymmetric_loss(model(xb, a[idx]), y[idx], late_weight, cap).backward()
            optimiser.step()
            schedule.step()
        if on_epoch is not None:
            model.eval()
            on_epoch(model)
            model.train()
    model.eval()
    return model


def predict_cnn(model, window: np.ndarray, age: np.ndarray) -> np.ndarray:
    """The fitted net's RUL [N] (unclipped), in chunks."""
    age = np.asarray(age, dtype=np.float32).reshape(-1, 1)
    with torch.no_grad():
        out = [
            model(
                torch.from_numpy(np.ascontiguousarray(window[i : i + 4096], dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(age[i : i + 4096])),
            )
            .numpy()
            .reshape(-1)
            for i in range(0, len(window), 4096)
        ]
    return np.concatenate(out) if out else np.empty(0)


def cnn_to_onnx(model, steps: int, signals: int) -> bytes:
    """Inputs ``window`` [N, steps, S] and ``age`` [N, 1] (float32), output the RUL [N, 1]."""
    buffer = io.BytesIO()
    example = (torch.zeros(1, steps, signals), torch.zeros(1, 1))
    torch.onnx.export(
        model,
        example,
        buffer,
        input_names=[const.CNN_WINDOW_INPUT, const.CNN_AGE_INPUT],
        output_names=["rul"],
        dynamic_axes={const.CNN_WINDOW_INPUT: {0: "n"}, const.CNN_AGE_INPUT: {0: "n"}, "rul": {0: "n"}},
        opset_version=const.ONNX_OPSET,
        dynamo=False,  # the TorchScript exporter (deprecated): the new one needs onnxscript, not a dependency
    )
    return buffer.getvalue()
