"""Train a RUL model, store it under VAR_DIR/models/rul/<version>/, register and activate it."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from twins import twin_const as tc
from twins.rul import CmapssFormatError


class Command(BaseCommand):
    help = (
        "Train a remaining-useful-life model: --cmapss PATH (asset type 'turbofan', RUL in cycles) or "
        "--simulated TYPE (run-to-failure histories of the simulator, RUL in operating hours). "
        "Registers and activates it; the last line printed is JSON with the version and validation metrics."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--cmapss", metavar="PATH", help="C-MAPSS training file (e.g. train_FD001.txt)")
        source.add_argument("--simulated", metavar="TYPE", choices=tc.SIM_TYPES, help="a demo asset type")
        parser.add_argument("--units", type=int, default=tc.SIM_DEFAULT_UNITS, help="simulated units run to failure (--simulated)")
        parser.add_argument("--min-hours", type=float, default=None, help="shortest simulated life in operating hours (--simulated; default: the type's)")
        parser.add_argument("--max-hours", type=float, default=None, help="longest simulated life (--simulated; default: the type's)")
        parser.add_argument("--cap-hours", type=float, default=None, help="RUL cap in operating hours (--simulated; default: the type's)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--trees", type=int, default=None, help="trees of the forest (default: the RUL package's)")
        parser.add_argument("--hours-per-cycle", type=float, default=tc.DEFAULT_HOURS_PER_CYCLE, help="operating hours per C-MAPSS cycle, for calendar days")
        parser.add_argument("--no-activate", action="store_true", help="register without making it the active version")

    def handle(self, *args, **opts) -> None:
        from twins.rul_training import train_cmapss_model, train_simulated_model

        activate = not opts["no_activate"]
        try:
            if opts["cmapss"]:
                if opts["hours_per_cycle"] <= 0:
                    raise CommandError("--hours-per-cycle must be > 0")
                model = train_cmapss_model(opts["cmapss"], seed=opts["seed"], n_estimators=opts["trees"], hours_per_cycle=opts["hours_per_cycle"], activate=activate)
            else:
                from edge_node.agent.asset_types import LIFE_HOURS

                default_low, default_high = LIFE_HOURS[opts["simulated"]]
                low, high = opts["min_hours"] or default_low, opts["max_hours"] or default_high
                if not 0 < low < high:
                    raise CommandError("need 0 < --min-hours < --max-hours")
                if opts["cap_hours"] is not None and opts["cap_hours"] <= 0:
                    raise CommandError("--cap-hours must be > 0")
                model = train_simulated_model(
                    opts["simulated"], units=opts["units"], seed=opts["seed"], n_estimators=opts["trees"],
                    life_hours=(low, high), cap_hours=opts["cap_hours"], activate=activate,
                )
        except CmapssFormatError as exc:
            raise CommandError(str(exc)) from exc
        except (OSError, ValueError) as exc:
            raise CommandError(f"{type(exc).__name__}: {exc}") from exc
        training = model.meta.get("training", {})
        self.stdout.write(
            f"{model.asset_type_key}: {model.version} in {model.artifact_path} ({training.get('units')} units, {training.get('rows')} rows, "
            f"{training.get('seconds')} s){' [active]' if model.is_active else ''}"
        )
        self.stdout.write(f"held-out validation (test-style, RUL in {model.rul_unit}): {json.dumps(model.metrics)}")
        self.stdout.write(json.dumps({
            "version": model.version, "asset_type": model.asset_type_key, "rul_unit": model.rul_unit, "active": model.is_active,
            "artifact": model.artifact_path, "metrics": model.metrics,
        }))
