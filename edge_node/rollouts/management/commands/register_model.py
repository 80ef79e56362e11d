from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from edge_node.rollouts import const
from edge_node.rollouts.registry import (
    RegistryError,
    register_from_dir,
    register_rul_model,
)


class Command(BaseCommand):
    help = ("Register (hash + sign) a model directory (model.onnx + meta.json), e.g. one written by "
            "python -m edge_node.agent.train_anomaly, or a RUL training run by its version.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("folder", nargs="?", help="version folder holding model.onnx and meta.json")
        parser.add_argument("--kind", choices=[k for k, _ in const.KINDS], default=const.KIND_ANOMALY)
        parser.add_argument("--name", default=None)
        parser.add_argument("--model-version", dest="model_version", default=None)
        parser.add_argument("--rul-version", default=None, help="register twins.RulModel with this version instead of a folder")
        parser.add_argument("--quantize", action="store_true", help="also register a dynamic int8 variant")

    def handle(self, *args, **opts) -> None:
        try:
            if opts["rul_version"]:
                from twins.models import RulModel

                run = RulModel.objects.filter(version=opts["rul_version"]).first()
                if run is None:
                    raise CommandError(f"no RulModel with version {opts['rul_version']!r}")
                model = register_rul_model(run, quantize=opts["quantize"])
            elif opts["folder"]:
                model = register_from_dir(opts["folder"], kind=opts["kind"], name=opts["name"], version=opts["model_version"],
                                          quantize=opts["quantize"])
            else:
                raise CommandError("give a folder or --rul-version")
        except RegistryError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"registered {model.label} (id {model.pk}) sha256={model.sha256} size={model.size}")
        for v in model.quantized_variants.all():
            self.stdout.write(f"registered {v.label} (int8) size change {v.size_change_pct}% output change {v.accuracy_change}")
