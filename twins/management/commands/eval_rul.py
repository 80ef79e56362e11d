"""Score a registered RUL model on a C-MAPSS test file and its RUL truth file."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from twins import twin_const as tc
from twins.models import RulModel
from twins.rul import CmapssFormatError, ModelArtifactError, score_cmapss_test
from twins.rul_registry import predictor_for


class Command(BaseCommand):
    help = (
        "Score a RUL model on a C-MAPSS test file the standard way (predict at each engine's last cycle, compare with "
        "the RUL file). Last line printed: JSON {rmse, phm_score, coverage80, engines, interval_width_mean}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--test", required=True, metavar="TEST", help="C-MAPSS test file (e.g. test_FD001.txt)")
        parser.add_argument("--truth", required=True, metavar="RUL_FILE", help="true RUL per engine (e.g. RUL_FD001.txt)")
        parser.add_argument("--model", metavar="VERSION", help=f"model version (default: the active '{tc.TURBOFAN_TYPE}' model)")
        parser.add_argument("--cap-truth", action="store_true", help="cap the truth at the model's cap, as many papers do")

    def handle(self, *args, **opts) -> None:
        if opts["model"]:
            model = RulModel.objects.filter(version=opts["model"]).first()
            if model is None:
                raise CommandError(f"no RUL model version {opts['model']!r} (see the Models page or the admin)")
        else:
            model = RulModel.objects.filter(asset_type_key=tc.TURBOFAN_TYPE, is_active=True).first()
            if model is None:
                raise CommandError(f"no active '{tc.TURBOFAN_TYPE}' model: train one with train_rul --cmapss PATH, or pass --model")
        try:
            predictor = predictor_for(model)
            scores = score_cmapss_test(predictor, opts["test"], opts["truth"], cap_truth=opts["cap_truth"])
        except CmapssFormatError as exc:
            raise CommandError(str(exc)) from exc
        except ModelArtifactError as exc:
            raise CommandError(f"model {model.version}: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CommandError(f"{opts['test']}: {exc}") from exc
        self.stdout.write(f"model {model.version} ({model.asset_type_key}) on {opts['test']}")
        self.stdout.write(json.dumps({k: scores[k] for k in ("rmse", "phm_score", "coverage80", "engines", "interval_width_mean")}))
