"""Registering model artifacts: load in onnxruntime, check the declared signature, optionally
quantize, hash, sign, store under VAR_DIR/models/registry/<name>/<version>/model.onnx."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from edge_node import signing_keys
from edge_node.agent import artifact
from edge_node.agent.files import write_atomic
from edge_node.audit import record_audit
from web.file_store import keep_file, local_directory, local_file

from . import const
from .models import ModelArtifact

log = logging.getLogger(__name__)


class RegistryError(ValueError):
    """A model that cannot be registered; the message says why."""


def registry_dir() -> Path:
    return Path(settings.VAR_DIR).joinpath(*const.REGISTRY_SUBDIR)


def _session(data: bytes) -> Any:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own, unexported exception types
        raise RegistryError(f"not a loadable ONNX model: {str(exc).strip()[:300]}") from None


def _io(args: Any) -> list[dict[str, Any]]:
    return [{"name": a.name, "type": a.type, "shape": [d if isinstance(d, int) else None for d in (a.shape or [])]} for a in args]


def model_signature(session: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return _io(session.get_inputs()), _io(session.get_outputs())


def check_signature(actual: list[dict[str, Any]], declared: list[dict[str, Any]], what: str) -> None:
    """Every declared tensor must exist with the same type and, where both give a size, the same shape."""
    by_name = {a["name"]: a for a in actual}
    if len(declared) != len(actual):
        raise RegistryError(f"{what}: declared {len(declared)}, the model has {len(actual)} ({', '.join(by_name)})")
    for d in declared:
        a = by_name.get(d.get("name"))
        if a is None:
            raise RegistryError(f"{what}: declared {d.get('name')!r} is not in the model ({', '.join(by_name)})")
        if d.get("type") and d["type"] != a["type"]:
            raise RegistryError(f"{what} {a['name']}: declared {d['type']}, the model has {a['type']}")
        shape = d.get("shape")
        if shape is not None and (len(shape) != len(a["shape"]) or any(x is not None and y is not None and x != y for x, y in zip(shape, a["shape"], strict=True))):
            raise RegistryError(f"{what} {a['name']}: declared shape {shape}, the model has {a['shape']}")


def _probe_inputs(session: Any, meta: dict[str, Any], rows: int = 64) -> dict[str, np.ndarray]:
    """Inputs to compare a quantized model against its float original: float tensors of the
    declared shape, dynamic dims set to ``rows`` (or 1 after the first)."""
    rng = np.random.default_rng(0)
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) else (rows if i == 0 else 1) for i, d in enumerate(inp.shape or [rows])]
        feeds[inp.name] = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
    return feeds


def _quantize(data: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        try:
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        except Exception as exc:  # noqa: BLE001 - the quantizer raises many kinds on unsupported graphs
            raise RegistryError(f"dynamic int8 quantization failed: {str(exc).strip()[:300]}") from None
        return dst.read_bytes()


def _accuracy_change(float_session: Any, quant_session: Any, meta: dict[str, Any]) -> dict[str, float]:
    feeds = _probe_inputs(float_session, meta)
    a = float_session.run(None, feeds)
    b = quant_session.run(None, feeds)
    diffs = [np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)).ravel() for x, y in zip(a, b, strict=True)
             if np.asarray(x).dtype.kind == "f"]
    if not diffs:
        return {"max_abs_diff": 0.0, "mean_abs_diff": 0.0, "probe_rows": 0}
    d = np.concatenate(diffs)
    return {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()), "probe_rows": int(next(iter(feeds.values())).shape[0])}


def sign_manifest(manifest: dict[str, Any]) -> tuple[str, str]:
    """(signature base64, key id): signed by the active model-signing key."""
    signer = signing_keys.active_signer()
    return signer.sign_b64(artifact.signed_message(manifest)), signer.key_id


def every_key() -> Any:
    """A keyring of every key the platform holds, revoked ones too (what signed what, in the past)."""
    from edge_node.agent.keyring import Keyring
    from edge_node.models import SigningKey

    signing_keys.active_key()
    return Keyring.from_b64(dict(SigningKey.objects.values_list("key_id", "public_key")))


def signing_key_of(model: ModelArtifact) -> str:
    """The id of the key that signed ``model``; for an artifact signed before key ids, found by
    trying every key the platform holds (revoked ones too) and remembered."""
    if model.signing_key_id:
        return model.signing_key_id
    try:
        found = every_key().verify(artifact.signed_message(model.manifest()), model.signature, None)
    except artifact.ArtifactRefused:
        return ""
    ModelArtifact.objects.filter(pk=model.pk, signing_key_id="").update(signing_key_id=found)
    model.signing_key_id = found
    return found


def revoked_signature(model: ModelArtifact) -> str | None:
    """Why ``model`` must not be sent to nodes (signed with a revoked key), or None."""
    kid = signing_key_of(model)
    if kid and signing_keys.is_revoked(kid):
        return f"{model.label} is signed with model-signing key {kid}, which is revoked"
    return None


def verify_stored(model: ModelArtifact, *, include_revoked: bool = False) -> bool:
    """True when the stored file still has the signed hash and the signature verifies against a
    key that is not revoked (``include_revoked``: against any key the platform holds: the artifact
    is intact, whether or not it may still be sent to nodes)."""
    try:
        data = local_file(model.file_path).read_bytes()
        keyring = every_key() if include_revoked else signing_keys.platform_keyring()
        artifact.verify_artifact(data, model.manifest(), model.signature, keyring, signing_key_of(model) or None)
    except (OSError, artifact.ArtifactRefused) as exc:
        log.warning("model %s: stored artifact fails verification: %s", model.label, exc)
        return False
    return True


def _store(data: bytes, *, name: str, version: str, kind: str, metadata: dict[str, Any], session: Any, source: str,
           user: Any, quantized_from: ModelArtifact | None = None, size_change_pct: float | None = None,
           accuracy_change: dict[str, float] | None = None) -> ModelArtifact:
    inputs, outputs = model_signature(session)
    manifest = {"name": name, "version": version, "kind": kind, "sha256": artifact.sha256_hex(data), "size": len(data),
                "inputs": inputs, "outputs": outputs, "meta": metadata}
    try:
        artifact.canonical_manifest(manifest)  # NaN/inf or non-JSON metadata fail here, before anything is written
    except ValueError as exc:
        raise RegistryError(f"metadata is not canonical JSON: {exc}") from None
    path = registry_dir() / name / version / "model.onnx"
    if path.exists():
        raise RegistryError(f"{name}@{version} already exists in the registry (versions are immutable)")
    write_atomic(path, data, 0o644)
    signature, key_id = sign_manifest(manifest)
    try:
        with transaction.atomic():
            model = ModelArtifact.objects.create(
                name=name, version=version, kind=kind, sha256=manifest["sha256"], size=len(data), inputs=inputs, outputs=outputs,
                metadata=metadata, signature=signature, signing_key_id=key_id, file_path=str(path), source=source[:300],
                created_by=user if getattr(user, "pk", None) else None, quantized=quantized_from is not None,
                quantized_from=quantized_from, size_change_pct=size_change_pct, accuracy_change=accuracy_change or {},
            )
            keep_file(model.file_path, data)  # every process on every host can serve it
    except IntegrityError:
        path.unlink(missing_ok=True)
        raise RegistryError(f"{name}@{version} already exists in the registry (versions are immutable)") from None
    record_audit(const.AUDIT_MODEL_REGISTERED, actor=_actor(user), target=model.label,
                 detail={"sha256": model.sha256, "size": model.size, "kind": kind, "quantized": model.quantized, "source": source,
                         "signing_key": key_id})
    return model


def _actor(user: Any) -> str:
    return getattr(user, "get_username", lambda: "")() or "system"


def register_model(data: bytes | str | Path, *, name: str, version: str, kind: str, declared: dict[str, Any] | None = None,
                   metadata: dict[str, Any] | None = None, quantize: bool = False, user: Any = None,
                   source: str = "upload") -> ModelArtifact:
    """Register one model version (and, with ``quantize``, its dynamic-int8 variant as
    ``<version>-int8``, linked by ``quantized_from``). ``declared`` = {"inputs": [...], "outputs": [...]},
    each [{name, type?, shape?}]. Returns the float model. Raises RegistryError naming the problem."""
    if kind not in dict(const.KINDS):
        raise RegistryError(f"unknown kind {kind!r} (known: {', '.join(dict(const.KINDS))})")
    if not name or not version or "/" in name + version or ".." in name + version:
        raise RegistryError("name and version are required and may not contain '/' or '..'")
    raw = Path(data).read_bytes() if isinstance(data, (str, Path)) else bytes(data)
    metadata = dict(metadata or {})
    try:
        session = _session(raw)
        if declared is not None:
            inputs, outputs = model_signature(session)
            check_signature(inputs, declared.get("inputs", []), "inputs")
            check_signature(outputs, declared.get("outputs", []), "outputs")
        if kind == const.KIND_ANOMALY:
            missing = [k for k in ("features", "threshold", "asset_type") if k not in metadata]
            if missing:
                raise RegistryError(f"anomaly model metadata lacks {', '.join(missing)} (the agent needs them)")
        metadata.setdefault("name", name)
        metadata["version"] = version
        model = _store(raw, name=name, version=version, kind=kind, metadata=metadata, session=session, source=source, user=user)
    except RegistryError as exc:
        record_audit(const.AUDIT_MODEL_REFUSED, actor=_actor(user), target=f"{name}@{version}", ok=False, detail={"reason": str(exc)})
        raise
    if quantize:
        qdata = _quantize(raw)
        qsession = _session(qdata)
        qversion = f"{version}-int8"
        qmeta = {**metadata, "version": qversion, "quantized": "dynamic int8"}
        _store(qdata, name=name, version=qversion, kind=kind, metadata=qmeta, session=qsession, source=f"quantized {model.label}",
               user=user, quantized_from=model, size_change_pct=round(100.0 * (len(qdata) - len(raw)) / len(raw), 2),
               accuracy_change=_accuracy_change(session, qsession, metadata))
    return model


def register_from_dir(folder: str | Path, *, kind: str, user: Any = None, name: str | None = None, version: str | None = None,
                      quantize: bool = False, source: str = "") -> ModelArtifact:
    """Register a model directory (model.onnx + meta.json) as the agent's trainer or the RUL trainer wrote it."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{folder}/meta.json cannot be read: {exc}") from None
    name = name or str(meta.get("name") or folder.parent.name)
    version = version or str(meta.get("version") or folder.name)
    return register_model(folder / "model.onnx", name=name, version=version, kind=kind, metadata=meta, quantize=quantize,
                          user=user, source=source or str(folder))


def register_rul_model(rul_model: Any, *, user: Any = None, quantize: bool = False) -> ModelArtifact:
    """Register a twins.models.RulModel training run's artifact."""
    return register_from_dir(local_directory(rul_model.artifact_path), kind=const.KIND_RUL, user=user, quantize=quantize,
                             name=f"{rul_model.asset_type_key}-rul", version=rul_model.version, source=f"RulModel {rul_model.pk}")


def register_anomaly_model(folder: str | Path, *, user: Any = None, quantize: bool = False) -> ModelArtifact:
    """Register an anomaly model written by ``python -m edge_node.agent.train_anomaly``."""
    return register_from_dir(folder, kind=const.KIND_ANOMALY, user=user, quantize=quantize)
