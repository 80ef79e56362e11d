"""Constants of the remaining-useful-life (RUL) models."""

from __future__ import annotations

from pathlib import Path

# The vendored NASA C-MAPSS FD001 training file (see datasets/cmapss/README.md).
FD001_TRAIN = Path(__file__).resolve().parents[2] / "datasets" / "cmapss" / "train_FD001.txt.gz"

# Piecewise-linear RUL target: early in life the remaining life is not observable from the
# signals (the asset looks healthy), so labels are capped; 125 cycles is the usual C-MAPSS choice.
DEFAULT_CAP = 125.0
# Rows (cycles / samples) per feature window. With the history-length feature, longer windows
# see the engine's age: under the test-like protocol on FD001 (LightGBM, 2 seeds x 5 folds),
# RMSE 12.6 at 60 rows, 11.8 at 150, 11.1 at 200, 10.8 at 300 (plain loss, older features);
# with the late-weighted loss, 3 seeds x 5 folds: 11.51 +- 0.35 at 200, 11.46 +- 0.39 at 300.
# 300 rows is a turbofan's first 300 cycles (FD001 lives are 128-362): a twin refresh reads 50 %
# more rows than at 200 for the C-MAPSS model only (the simulated types have their own window).
DEFAULT_WINDOW = 300
# The "recent" level of a signal is the mean of its last rows: a single last value is too noisy.
RECENT_ROWS = 5
DEFAULT_SEED = 0

# Nominal coverage of the prediction interval.
INTERVAL_COVERAGE = 0.8

# Signal selection: a signal with at most this many distinct values (flags, constants) cannot
# show a degradation trend; a signal whose |correlation| with the capped RUL is below the
# threshold carries no usable information for a windowed model.
MAX_DISTINCT_FOR_CONSTANT = 2
MIN_ABS_CORRELATION = 0.05

# Statistics computed over the window for every signal, in feature order ("*_short" over the
# last SHORT_ROWS rows), then the one "rows" feature: the rows of history seen (<= window).
# Models of format 1 used the first four per-signal statistics and no "rows".
FEATURE_STATS = ("recent", "mean", "slope", "std", "slope_short", "mean_short", "rows")
LEGACY_FEATURE_STATS = ("recent", "mean", "slope", "std")
SHORT_ROWS = 20

# A truncated history keeps at least this many rows (the official test set has >= 31 cycles).
MIN_TRUNCATED_ROWS = 31
# Test-like cuts: the official FD001 test engines end with a true RUL of 7..145 cycles; as a
# share of the cap (125) that is 0.056..1.16, which carries the protocol to other units.
CUT_RUL_LOW_SHARE = 7.0 / 125.0
CUT_RUL_HIGH_SHARE = 145.0 / 125.0

# The validation protocol: repeated grouped K-fold by unit, PROTOCOL_CUTS test-like cuts of every
# held-out unit per repeat; the figures are the mean and sd over the repeats (seeds).
PROTOCOL_FOLDS = 5
PROTOCOL_SEEDS = 3
PROTOCOL_CUTS = 5

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
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
ONNX_INPUT_NAME = "features"
ONNX_OPSET = 15

# The regressor: LightGBM (exported with onnxmltools). Under the test-like protocol on FD001 it
# beat the former random forest (100 trees, min_samples_leaf 10, max_features 0.33) on the same
# features; 7 leaves x 800 rounds and a Huber loss were no better (within the seeds' spread).
N_ESTIMATORS = 400  # boosting rounds
LEARNING_RATE = 0.03
MIN_TOTAL_STEP = 6.0  # fewer rounds take larger steps: rate = max(LEARNING_RATE, 6 / rounds)
NUM_LEAVES = 15
MIN_CHILD_SAMPLES = 50
SUBSAMPLE = 0.8
COLSAMPLE = 0.5
# Kept for the record of format-1 models (random forests).
MIN_SAMPLES_LEAF = 10
MAX_FEATURES = 0.33

# Normalised conformal interval: score = (true - predicted) / (predicted + CONFORMAL_OFFSET_SHARE
# * cap), so the width grows with the predicted RUL (tight near failure).
CONFORMAL_OFFSET_SHARE = 0.1

# Operating regimes: k-means on the operational settings for k = 1..MAX_REGIMES; the smallest k
# whose within-cluster sum of squares is below REGIME_INERTIA_SHARE of k = 1's is taken (distinct
# operating points collapse it to ~0; noise around one point never does).
MAX_REGIMES = 8
REGIME_INERTIA_SHARE = 0.01
# ... and k + 1 clusters leave at least this share of it (else two operating points share a cluster).
REGIME_NEXT_SPLIT_SHARE = 0.5
REGIME_SIGNAL_PREFIX = "setting_"

# Degradation rate: a line through the health at the latest row and RATE_POINTS - 1 earlier
# rows, RATE_STRIDE rows apart.
RATE_POINTS = 5
RATE_STRIDE = 5

# The optional 1D-CNN (cnn.py: PyTorch to train, ONNX to serve) over the feature window in blocks
# of CNN_BLOCK rows (block means), plus the age. Settings from a few runs on one 80/20 split of
# FD001: 30-row windows overfit (RMSE 19-20 on the held-out engines' test-like rows); 16
# channels, dropout 0.5, input noise 0.3 sd and 40 epochs did best (14.1; LightGBM 10.9).
CNN_BLOCK = 5
CNN_CHANNELS = 16
CNN_KERNEL = 5
CNN_HIDDEN = 64
CNN_DROPOUT = 0.5
CNN_INPUT_NOISE = 0.3
CNN_WEIGHT_DECAY = 1e-2
CNN_EPOCHS = 40
CNN_BATCH = 256
CNN_LEARNING_RATE = 3e-3
# Late predictions (above the truth) weigh this much more in the squared loss (PHM08 is asymmetric):
# under the protocol, 1.0 gave RMSE 14.11 ± 0.62 and PHM08 318 ± 20, 2.0 gave 14.11 ± 0.91 and 271 ± 31.
CNN_LATE_WEIGHT = 2.0
CNN_WINDOW_INPUT = "window"
CNN_AGE_INPUT = "age"


# LightGBM's loss: squared error with late predictions (above the truth) weighted LATE_WEIGHT
# times (booster.AsymmetricSquaredError). Under the protocol on FD001 (3 seeds, window 200):
# LightGBM's own squared error RMSE 11.63 ± 0.38, PHM08 228 ± 8; weight 1: 11.57 ± 0.33, 225 ± 10;
# 2: 11.58 ± 0.25, 211 ± 11; 3: 11.51 ± 0.35, 193 ± 5; 4: 11.58 ± 0.44, 190 ± 2; 5: 11.65, 187.
LATE_WEIGHT = 3.0
