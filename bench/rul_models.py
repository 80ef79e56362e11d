"""RUL model candidates under the validation protocol on FD001: LightGBM (the served loss, late
predictions weighted const.LATE_WEIGHT, and the plain squared error), the 1D-CNN, and the
weighted average of LightGBM and the CNN (weights chosen per fold on the other folds' cuts).

Run from the repo root: ``nice -n 10 .venv/bin/python bench/rul_models.py [--seeds 3]``. Every
model is fitted once per protocol fold (the same folds, cuts and seeds for all); each figure is
the mean ± sd over the seeds, with the CPU seconds of the fits. Needs PyTorch for the CNN
(requirements-train.txt); without it only LightGBM is reported, with a message. Also times one
window of the CNN in onnxruntime. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from twins import twin_const as tc
from twins.rul import const, load_cmapss
from twins.rul.booster import make_booster
from twins.rul.cnn import torch_available
from twins.rul.features import rows_features
from twins.rul.protocol import run_protocol
from twins.rul.train import fit_spec

log = logging.getLogger("bench.rul_models")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=const.PROTOCOL_SEEDS)
    parser.add_argument("--epochs", type=int, default=const.CNN_EPOCHS)
    parser.add_argument("--late-weight", type=float, default=const.CNN_LATE_WEIGHT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    data = load_cmapss(const.FD001_TRAIN)
    cap = const.DEFAULT_CAP
    sensors = [s for s in data.signals if s in tc.CMAPSS_SIGNAL_METRICS]
    target = np.minimum(data.rul(), cap)
    spec = fit_spec(data, sensors, const.DEFAULT_WINDOW)
    features = rows_features(spec, data.select_signals(spec.inputs), data.unit_bounds())
    rows = np.arange(len(data))[:, None]
    seeds = list(range(args.seeds))
    cpu: dict[str, float] = {"lightgbm": 0.0, "cnn": 0.0}
    cache: dict[tuple[str, int], np.ndarray] = {}

    def lightgbm_with(late_weight: float, key: str):
        def fit_predict(x, y, x_new, seed):
            if (key, seed) not in cache:
                started = time.process_time()
                model = make_booster(const.N_ESTIMATORS, seed, late_weight).fit(features[x[:, 0]], y)
                cache[key, seed] = model.predict(features[x_new[:, 0]])
                cpu["lightgbm"] += time.process_time() - started
            return cache[key, seed]

        return fit_predict

    # the served model (late predictions weighted const.LATE_WEIGHT) and the plain squared error
    lightgbm = lightgbm_with(const.LATE_WEIGHT, "lightgbm")
    candidates = {"lightgbm": lightgbm, "lightgbm_squared_error": lightgbm_with(1.0, "lightgbm_squared_error")}
    if torch_available():
        from twins.rul.cnn import cnn_to_onnx, fit_cnn, predict_cnn, rows_cnn_windows

        windows = rows_cnn_windows(spec.standardise(data.select_signals(spec.inputs)), data.unit_bounds(), spec.window)
        age = features[:, -1:]

        def cnn(x, y, x_new, seed):
            if ("cnn", seed) not in cache:
                started = time.process_time()
                model = fit_cnn(windows[x[:, 0]], age[x[:, 0]], y, cap, seed, epochs=args.epochs, late_weight=args.late_weight)
                cache["cnn", seed] = predict_cnn(model, windows[x_new[:, 0]], age[x_new[:, 0]])
                cpu["cnn"] += time.process_time() - started
                cache["cnn_model"] = model
            return cache["cnn", seed]

        candidates["cnn"] = cnn
        candidates["lightgbm+cnn"] = lambda x, y, x_new, seed: np.column_stack([lightgbm(x, y, x_new, seed), cnn(x, y, x_new, seed)])
    else:
        log.warning("PyTorch is not installed (pip install -r requirements-train.txt): LightGBM only")

    report: dict = {"seeds": len(seeds), "window": spec.window}
    for name, fit_predict in candidates.items():
        summary = run_protocol(data, rows, target, fit_predict, cap, seeds=seeds).summary
        figures = {k: summary[k] for k in summary if k.split("_sd")[0] in ("rmse", "phm_score", "coverage80", "interval_width_mean")}
        if "members" in summary:
            figures["members"] = summary["members"]
        report[name] = figures
        print(
            f"{name}: RMSE {summary['rmse']:.2f} ± {summary['rmse_sd']:.2f}, PHM08 {summary['phm_score']:.0f} ± "
            f"{summary['phm_score_sd']:.0f}, coverage80 {summary['coverage80']:.3f} ± {summary['coverage80_sd']:.3f}, "
            f"width {summary['interval_width_mean']:.1f} ± {summary['interval_width_mean_sd']:.1f}",
            flush=True,
        )
    fits = len(seeds) * const.PROTOCOL_FOLDS
    report["cpu_s_per_fit"] = {"lightgbm": round(cpu["lightgbm"] / (2 * fits), 1), **({"cnn": round(cpu["cnn"] / fits, 1)} if cpu["cnn"] else {})}
    print(f"CPU seconds per fit (one thread): {json.dumps(report['cpu_s_per_fit'])}")
    if "cnn_model" in cache:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(
            cnn_to_onnx(cache["cnn_model"], windows.shape[1], windows.shape[2]),
            options,
            providers=["CPUExecutionProvider"],
        )
        feed = {const.CNN_WINDOW_INPUT: windows[:1], const.CNN_AGE_INPUT: np.ascontiguousarray(age[:1])}
        session.run(None, feed)
        times = []
        for _ in range(500):
            started = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - started)
        report["cnn_onnx_one_us"] = round(statistics.median(times) * 1e6, 1)
        print(f"one window, CNN in onnxruntime: {report['cnn_onnx_one_us']} us (median of 500)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
