"""Constants of the remaining-useful-life (RUL) models."""

from __future__ import annotations

from pathlib import Path

# The vendored NASA C-MAPSS FD001 training file (see datasets/cmapss/README.md).
FD001_TRAIN = Path(__file__).resolve().parents[2] / "datasets" / "cmapss" / "train_FD001.txt.gz"

# Piecewise-linear RUL target: early in life the remaining life is not observable from the
# signals (the asset looks healthy), so labels are capped; 125 cycles is the usual C-MAPSS choice.
DEFAULT_CAP = 125.0
# Rows (cycles / samples) per feature window. On FD001 held-out engines 60 beat 20, 30, 40 and 80.
DEFAULT_WINDOW = 60
# The "recent" level of a signal is the mean of its last rows: a single last value is too noisy.
RECENT_ROWS = 5
DEFAULT_SEED = 0

# Share of the units held out (by unit, never by row) for validation, and, for split-conformal
# calibration (CONFORMAL_FOLDS = 0), for calibration.
VALIDATION_FRACTION = 0.15
CALIBRATION_FRACTION = 0.15
# Cross-conformal: out-of-fold residuals of smaller forests over all training units calibrate
# the interval, and every training unit fits the final forest.
CONFORMAL_FOLDS = 5
FOLD_ESTIMATORS = 30

# Nominal coverage of the prediction interval and the number of predicted-RUL bins in which the
# conformal residual quantiles are taken (uncertainty shrinks close to failure).
INTERVAL_COVERAGE = 0.8
CONFORMAL_BINS = 4

# Signal selection: a signal with at most this many distinct values (flags, constants) cannot
# show a degradation trend; a signal whose |correlation| with the capped RUL is below the
# threshold carries no usable information for a windowed model.
MAX_DISTINCT_FOR_CONSTANT = 2
MIN_ABS_CORRELATION = 0.05

# Statistics computed over the window for every signal, in feature order.
FEATURE_STATS = ("recent", "mean", "slope", "std")

# Test-style validation: random truncations of every held-out unit, repeated to reduce noise.
TRUNCATION_REPEATS = 10
# A truncated history keeps at least this many rows (the official test set has >= 31 cycles).
MIN_TRUNCATED_ROWS = 31

# Extra validation figure: rows whose uncapped true RUL is in the official FD001 test range.
LATE_LIFE_MAX = 145.0

# PHM08 score: late predictions (d > 0) are penalised more than early ones.
PHM_EARLY_DIVISOR = 13.0
PHM_LATE_DIVISOR = 10.0

# C-MAPSS file format.
CMAPSS_COLUMNS = 26
CMAPSS_SIGNALS = tuple(
    [f"setting_{i}" for i in range(1, 4)] + [f"sensor_{i}" for i in range(1, 22)]
)

# Artifact layout.
MODEL_FILENAME = "model.onnx"
META_FILENAME = "meta.json"
FORMAT_VERSION = 1
ONNX_INPUT_NAME = "features"
ONNX_OPSET = 15

# The regressor: a random forest converts to ONNX with scikit-learn 1.9.1 / skl2onnx 1.20
# (HistGradientBoosting does not), and beat ExtraTrees on FD001 held-out engines.
N_ESTIMATORS = 100
MIN_SAMPLES_LEAF = 10  # as accurate as 2 or 5 on FD001, and a smaller ONNX file
MAX_FEATURES = 0.33

# Degradation rate: a line through the health at the latest row and RATE_POINTS - 1 earlier
# rows, RATE_STRIDE rows apart.
RATE_POINTS = 5
RATE_STRIDE = 5
