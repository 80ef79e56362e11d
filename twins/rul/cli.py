"""Command line: ``python -m twins.rul train|eval`` (wrapped by manage.py train_rul / eval_rul)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from . import const
from .artifact import ModelArtifactError, save_model
from .cmapss import CmapssFormatError, load_cmapss
from .evaluate import score_cmapss_test
from .tabular import load_history_csv
from .train import train_rul


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m twins.rul", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train", help="train on run-to-failure histories and write a model directory"
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--cmapss", help="C-MAPSS training file (e.g. train_FD001.txt)")
    source.add_argument(
        "--csv", help="CSV with a header: unit, time and numeric signal columns"
    )
    train.add_argument("--unit-col", default="unit", help="unit column of --csv")
    train.add_argument("--time-col", default="time", help="time column of --csv")
    train.add_argument(
        "--signals",
        help="comma-separated signals to use (default: chosen automatically)",
    )
    train.add_argument(
        "--out", required=True, help="model directory to write (model.onnx + meta.json)"
    )
    train.add_argument("--seed", type=int, default=const.DEFAULT_SEED)
    train.add_argument("--window", type=int, default=const.DEFAULT_WINDOW)
    train.add_argument("--cap", type=float, default=const.DEFAULT_CAP)
    train.add_argument("--trees", type=int, default=const.N_ESTIMATORS, help="boosting rounds")
    train.add_argument(
        "--folds", type=int, default=const.PROTOCOL_FOLDS,
        help="folds (grouped by unit) of the validation protocol",
    )
    train.add_argument(
        "--seeds", type=int, default=const.PROTOCOL_SEEDS,
        help="repeats of the validation protocol (figures = mean and sd over them)",
    )
    train.add_argument(
        "--name",
        default=None,
        help="model name stored in meta.json (default: the version)",
    )
    ev = sub.add_parser(
        "eval", help="score a model on a C-MAPSS test file and its true-RUL file"
    )
    ev.add_argument("--model", required=True, help="model directory")
    ev.add_argument(
        "--test", required=True, help="C-MAPSS test file (truncated histories)"
    )
    ev.add_argument(
        "--truth",
        required=True,
        help="true RUL file, one number per line in unit order",
    )
    ev.add_argument(
        "--cap-truth", action="store_true", help="cap the true RUL at the model's cap"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "train":
            if args.cmapss:
                data = load_cmapss(args.cmapss)
            else:
                data = load_history_csv(args.csv, args.unit_col, args.time_col)
            trained = train_rul(
                data,
                signals=args.signals.split(",") if args.signals else None,
                window=args.window,
                cap=args.cap,
                seed=args.seed,
                n_estimators=args.trees,
                protocol_folds=args.folds,
                protocol_seeds=args.seeds,
            )
            meta = save_model(trained, args.out, name=args.name)
            print(f"model {meta['version']} written to {args.out}")
            print(f"signals: {', '.join(meta['signals'])}")
            print(f"validation protocol: {json.dumps(meta['validation']['protocol'])}")
            print(
                json.dumps(
                    {
                        **meta["metrics"],
                        "version": meta["version"],
                        "seconds": meta["training"]["seconds"],
                    }
                )
            )
        else:
            print(
                json.dumps(
                    score_cmapss_test(
                        args.model, args.test, args.truth, cap_truth=args.cap_truth
                    )
                )
            )
    except (CmapssFormatError, ModelArtifactError, ValueError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0
