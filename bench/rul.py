"""RUL model: the validation protocol's figures and training time on FD001, inference in ONNX
(onnxruntime) vs LightGBM, a 1,000-twin refresh, and per-regime normalisation on a synthetic
multi-regime fleet made from the FD001 training file.

Run from the repo root: ``.venv/bin/python bench/rul.py [--model DIR] [--no-regimes]``. It trains
the turbofan model (the platform's sensors) on the full FD001 training file first: the protocol's
figures (mean ± sd over its seeds) and the training time are printed.

The ONNX and LightGBM timings cover model inference only: both get the same precomputed
float32 feature matrix, so feature extraction is in neither (it is timed on its own line).
refresh_1000_twins_ms times ``RulPredictor.assess_many`` on 1,000 assets' recent histories given as
dicts of signal -> values: features at 5 recent rows + one onnxruntime call + health + rate.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from twins import twin_const as tc
from twins.rul import load_cmapss, load_model, save_model, train_rul
from twins.rul.const import FD001_TRAIN, RATE_POINTS, RATE_STRIDE
from twins.rul.features import histories_features
from twins.rul.regimes import synthetic_multi_regime

FD001 = FD001_TRAIN


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="model directory (default: train one on FD001)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-regimes", action="store_true", help="skip the synthetic multi-regime comparison")
    args = parser.parse_args()

    data = load_cmapss(FD001)
    sensors = [s for s in data.signals if s in tc.CMAPSS_SIGNAL_METRICS]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        trained = train_rul(data, signals=sensors, seed=args.seed)
        train_s = time.perf_counter() - started
        protocol = trained.validation["protocol"]
        print(
            f"trained on full FD001 in {train_s:.1f} s wall, {trained.training['cpu_seconds']:.1f} s CPU "
            f"(one thread), protocol included: {protocol['protocol']}"
        )
        print(
            f"protocol: RMSE {protocol['rmse']:.2f} ± {protocol['rmse_sd']:.2f}, PHM08 {protocol['phm_score']:.0f} ± "
            f"{protocol['phm_score_sd']:.0f}, coverage80 {protocol['coverage80']:.3f} ± {protocol['coverage80_sd']:.3f}, "
            f"mean width {protocol['interval_width_mean']:.1f} ± {protocol['interval_width_mean_sd']:.1f} cycles; "
            f"per seed {json.dumps(trained.validation['per_seed'])}"
        )
        model_dir = Path(args.model) if args.model else Path(tmp)
        if not args.model:
            save_model(trained, model_dir)
        predictor = load_model(model_dir)
        size_mb = (model_dir / "model.onnx").stat().st_size / 1e6
    if args.model:
        print("note: LightGBM timings use the freshly trained model of the default size")
    estimator = trained.estimator
    estimator.n_jobs = 1
    signals = predictor.signals
    print(
        f"model {predictor.version}: {len(signals)} signals, window {predictor.window}, onnx {size_mb:.1f} MB"
    )

    # 1,000 assets: each a random engine cut at a random cycle, with up to the rows of a full
    # refresh (window + the rate's offsets; engines shorter than that give all their rows).
    rng = np.random.default_rng(args.seed)
    span = predictor.window + (RATE_POINTS - 1) * RATE_STRIDE
    values = data.select_signals(signals)
    bounds = data.unit_bounds()
    histories = []
    for _ in range(1000):
        start, stop = bounds[int(rng.integers(len(bounds)))]
        end = int(rng.integers(start + min(span, stop - start), stop + 1))
        histories.append(
            {name: values[max(start, end - span) : end, j] for j, name in enumerate(signals)}
        )

    x1000 = histories_features(predictor.spec, histories)
    x1 = np.ascontiguousarray(x1000[:1])
    feed = {predictor.input_name: x1}
    session = predictor.session

    onnx_one = median_seconds(lambda: session.run(None, feed), 2000)
    sklearn_one = median_seconds(lambda: estimator.predict(x1), 200)
    onnx_1000 = median_seconds(lambda: predictor.predict_features(x1000), 30)
    sklearn_1000 = median_seconds(lambda: estimator.predict(x1000), 10)
    features_one = median_seconds(
        lambda: histories_features(predictor.spec, histories[:1]), 500
    )
    features_1000 = median_seconds(
        lambda: histories_features(predictor.spec, histories), 20
    )
    refresh = median_seconds(lambda: predictor.assess_many(histories), 10)

    agree = np.max(np.abs(predictor.predict_features(x1000) - estimator.predict(x1000)))
    diff = np.abs(predictor.predict_features(x1000) - estimator.predict(x1000))
    print(f"|onnx - lightgbm| over 1,000 windows: max {agree:.2e}, mean {diff.mean():.2e} cycles (float32 thresholds)")
    print(
        f"one window (inference only): onnx {onnx_one * 1e6:.1f} us, lightgbm {sklearn_one * 1e6:.1f} us, "
        f"speed-up {sklearn_one / onnx_one:.0f}x"
    )
    print(
        f"1,000 windows (inference only): onnx {onnx_1000 * 1e3:.2f} ms, lightgbm {sklearn_1000 * 1e3:.2f} ms, "
        f"speed-up {sklearn_1000 / onnx_1000:.1f}x"
    )
    print(
        f"feature extraction: one history {features_one * 1e6:.0f} us, 1,000 histories {features_1000 * 1e3:.2f} ms"
    )
    print(
        f"refresh of 1,000 twins (features at {RATE_POINTS} rows + onnx + health + rate): {refresh * 1e3:.1f} ms"
    )
    regimes = {}
    if not args.no_regimes:
        # The same engines run at the six FD002 operating points (sensors shifted per row by up
        # to 8 sd): per-regime standardisation against one global scaling, one protocol seed each.
        fleet = synthetic_multi_regime(data, seed=args.seed)
        for label, kw in (("per_regime", {}), ("global", {"regime_signals": ()})):
            t0 = time.perf_counter()
            model = train_rul(fleet, signals=sensors, seed=args.seed, protocol_seeds=2, **kw)
            p = model.validation["protocol"]
            regimes[label] = {"rmse": p["rmse"], "rmse_sd": p["rmse_sd"], "phm_score": p["phm_score"],
                              "coverage80": p["coverage80"], "regimes": model.training["regimes"],
                              "train_s": round(time.perf_counter() - t0, 1)}
            print(f"synthetic multi-regime FD001, {label} standardisation: {json.dumps(regimes[label])}")
    print(
        json.dumps(
            {
                "protocol_rmse": protocol["rmse"],
                "protocol_rmse_sd": protocol["rmse_sd"],
                "protocol_phm_score": protocol["phm_score"],
                "protocol_phm_score_sd": protocol["phm_score_sd"],
                "protocol_coverage80": protocol["coverage80"],
                "protocol_coverage80_sd": protocol["coverage80_sd"],
                "protocol_interval_width_mean": protocol["interval_width_mean"],
                "protocol_interval_width_mean_sd": protocol["interval_width_mean_sd"],
                "protocol_seeds": protocol["seeds"],
                "onnx_one_us": round(onnx_one * 1e6, 1),
                "lightgbm_one_us": round(sklearn_one * 1e6, 1),
                "onnx_1000_ms": round(onnx_1000 * 1e3, 2),
                "lightgbm_1000_ms": round(sklearn_1000 * 1e3, 2),
                "refresh_1000_twins_ms": round(refresh * 1e3, 1),
                "speedup_one": round(sklearn_one / onnx_one, 1),
                "features_included": False,
                "train_s": round(train_s, 1),
                "train_cpu_s": trained.training["cpu_seconds"],
                "onnx_max_abs_diff": round(float(agree), 4),
                "multi_regime_rmse": regimes.get("per_regime", {}).get("rmse"),
                "multi_regime_global_rmse": regimes.get("global", {}).get("rmse"),
            }
        )
    )


if __name__ == "__main__":
    main()
