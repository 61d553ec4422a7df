"""Pure reading of an InferenceService spec and writing of its status, the way KServe does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contracts.feature_serving import TRANSFORMER_MODULE
from contracts.kserve_runtime import RUNTIME_NAME, STORAGE_PREFIXES, kserve_can_fetch
from localcluster.serving import constants as c
from localcluster.serving.kserve_types import inference_service_problems

SUPPORTED_FORMATS = ("mlflow",)


class PredictorSpec(BaseModel):
    """What a predictor process needs; a change in any field means a new process."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    name: str
    model_uri: str
    model_format: str = "mlflow"
    model_version: str = ""
    mlmodel: str = ""
    logger_url: str = ""
    logger_mode: str = c.LOGGER_MODE_ALL
    # The Feast transformer container's args (feast_transformer.py), run in-process here.
    transformer_args: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def model_name(self) -> str:
        """The name the model is served under, as the kubeloop runtime sets it on KServe: the
        MLModel's (the route forwards /v1/models/<mlmodel> unchanged to every version); an
        InferenceService the operator did not write keeps its own, as KServe's runtimes do."""
        return self.mlmodel or self.name


class InvalidSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: str
    message: str


def isvc_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def parse_isvc(obj: Mapping[str, Any]) -> PredictorSpec | InvalidSpec:
    """``spec.predictor.model {modelFormat.name, storageUri}`` and ``spec.predictor.logger``,
    after the whole spec is read against KServe's types (``kserve_types``)."""
    meta = obj.get("metadata", {})
    refused = inference_service_problems(obj)
    if refused:
        # What KServe's API server would drop or refuse never reaches a predictor here either.
        return InvalidSpec(
            reason="InvalidSpec",
            message="not a valid serving.kserve.io/v1beta1 InferenceService: "
            + "; ".join(refused[:5]),
        )
    predictor = (obj.get("spec") or {}).get("predictor") or {}
    model = predictor.get("model") or {}
    model_format = ((model.get("modelFormat") or {}).get("name") or "").lower()
    if model_format not in SUPPORTED_FORMATS:
        return InvalidSpec(
            reason="InvalidSpec",
            message=f"spec.predictor.model.modelFormat.name {model_format or '(missing)'!r} is not "
            f"supported locally; supported: {list(SUPPORTED_FORMATS)}",
        )
    runtime = model.get("runtime")
    if runtime not in (None, RUNTIME_NAME):
        # The local cluster has one runtime, the one the chart ships; KServe fails an
        # InferenceService naming a runtime it does not have.
        return InvalidSpec(
            reason="InvalidSpec",
            message=f"spec.predictor.model.runtime {runtime!r} does not exist locally; "
            f"the local cluster serves with {RUNTIME_NAME!r} (or leave it unset)",
        )
    storage_uri = model.get("storageUri")
    if not isinstance(storage_uri, str) or not storage_uri:
        return InvalidSpec(
            reason="InvalidSpec", message="spec.predictor.model.storageUri is required"
        )
    if not kserve_can_fetch(storage_uri):
        # KServe's storage initializer fails on any other scheme (models:/, mlflow-artifacts:/),
        # so the stand-in refuses it too instead of letting MLflow resolve it.
        return InvalidSpec(
            reason="InvalidSpec",
            message=f"spec.predictor.model.storageUri {storage_uri!r} has no scheme KServe's "
            f"storage initializer supports; supported: {list(STORAGE_PREFIXES)} or a local path",
        )
    logger = predictor.get("logger") or {}
    mode = logger.get("mode", c.LOGGER_MODE_ALL)
    if mode not in c.LOGGER_MODES:
        return InvalidSpec(
            reason="InvalidSpec",
            message=f"spec.predictor.logger.mode {mode!r} must be one of {list(c.LOGGER_MODES)}",
        )
    transformer = parse_transformer((obj.get("spec") or {}).get("transformer"))
    if isinstance(transformer, InvalidSpec):
        return transformer
    tags = {**(meta.get("annotations") or {}), **(meta.get("labels") or {})}
    return PredictorSpec(
        namespace=meta.get("namespace", "default"),
        name=meta["name"],
        model_uri=storage_uri,
        model_format=model_format,
        model_version=tags.get(c.MODEL_VERSION_LABEL, ""),
        mlmodel=tags.get(c.MLMODEL_LABEL, ""),
        logger_url=logger.get("url", "") or "",
        logger_mode=mode,
        transformer_args=transformer,
    )


def parse_transformer(transformer: Mapping[str, Any] | None) -> tuple[str, ...] | InvalidSpec:
    """``spec.transformer``: the local cluster runs one kind, kubeloop's Feast transformer
    (one container, ``python -m localcluster.serving.feast_transformer``); its args are read
    here so a bad one fails the InferenceService, not the predictor process. Any other
    transformer cannot run here, and is refused rather than silently skipped."""
    if not transformer:
        return ()
    containers = transformer.get("containers") or []
    command = ["python", "-m", TRANSFORMER_MODULE]
    if len(containers) != 1 or containers[0].get("command") != command:
        return InvalidSpec(
            reason="InvalidSpec",
            message="spec.transformer: the local cluster runs only kubeloop's Feast transformer "
            f"(one container with command {command})",
        )
    args = [str(a) for a in containers[0].get("args") or []]
    try:
        from localcluster.serving.feast_transformer import parse_transformer_args

        parse_transformer_args(args)
    except ValueError as error:
        return InvalidSpec(
            reason="InvalidSpec",
            message=f"spec.transformer.containers[0].args: {error}",
        )
    return tuple(args)


Phase = Literal["Starting", "Ready", "Exited"]


class ProcessView(BaseModel):
    """What the status writer needs to know about a predictor process."""

    model_config = ConfigDict(frozen=True)

    phase: Phase
    url: str
    restarts: int = 0
    last_failure: str = ""


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": "True" if ok else "False"}
    if not ok:
        condition["reason"] = reason
        condition["message"] = message
    return condition


def _model_status(
    view: ProcessView | None, invalid: InvalidSpec | None, now: str
) -> dict[str, Any]:
    if invalid is not None:
        return {
            "transitionStatus": "InvalidSpec",
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {"reason": "InvalidSpec", "message": invalid.message, "time": now},
        }
    assert view is not None
    if view.phase == "Ready":
        states = {"activeModelState": "Loaded", "targetModelState": "Loaded"}
        status: dict[str, Any] = {"transitionStatus": "UpToDate", "states": states}
    elif view.phase == "Starting":
        states = {"activeModelState": "Loading", "targetModelState": "Loaded"}
        status = {"transitionStatus": "InProgress", "states": states}
    else:
        states = {"activeModelState": "FailedToLoad", "targetModelState": "Loaded"}
        status = {"transitionStatus": "BlockedByFailedLoad", "states": states}
    status["copies"] = {"failedCopies": 1 if view.phase == "Exited" else 0, "totalCopies": 1}
    if view.last_failure:
        status["lastFailureInfo"] = {"reason": "ModelLoadFailed", "message": view.last_failure}
    return status


def desired_status(
    obj: Mapping[str, Any], view: ProcessView | None, invalid: InvalidSpec | None, now: str
) -> dict[str, Any]:
    """The full status KServe would show, with lastTransitionTime kept where nothing changed."""
    generation = obj.get("metadata", {}).get("generation", 0)
    if invalid is not None:
        conditions = [
            _condition("PredictorReady", False, invalid.reason, invalid.message),
            _condition("IngressReady", False, invalid.reason, invalid.message),
            _condition("Ready", False, invalid.reason, invalid.message),
        ]
        status: dict[str, Any] = {}
    else:
        assert view is not None
        ready = view.phase == "Ready"
        reason = "PredictorStarting" if view.phase == "Starting" else "PredictorCrashed"
        message = (
            "predictor process is loading the model"
            if view.phase == "Starting"
            else f"predictor process exited (restarts: {view.restarts}); {view.last_failure}".strip()
        )
        conditions = [
            _condition("IngressReady", True, "", ""),
            _condition("PredictorReady", ready, reason, message),
            _condition("Ready", ready, reason, message),
        ]
        status = {
            "url": view.url,
            "address": {"url": view.url},
            "components": {"predictor": {"url": view.url, "restartCount": view.restarts}},
        }
    status["conditions"] = carry_transition_times(
        conditions, (obj.get("status") or {}).get("conditions") or [], now
    )
    status["modelStatus"] = _model_status(view, invalid, now)
    if "lastFailureInfo" in status["modelStatus"]:
        # Keep the first time of a failure so that re-planning does not rewrite status forever.
        old_info = ((obj.get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo") or {}
        info = status["modelStatus"]["lastFailureInfo"]
        info["time"] = (
            old_info.get("time", now) if old_info.get("message") == info["message"] else now
        )
    status["observedGeneration"] = generation
    return status


def carry_transition_times(
    conditions: list[dict[str, Any]], previous: list[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Set lastTransitionTime: the old one when the condition's status did not change."""
    before = {cond.get("type"): cond for cond in previous}
    out = []
    for cond in conditions:
        old = before.get(cond["type"])
        same = old is not None and old.get("status") == cond["status"]
        out.append(
            {
                **cond,
                "lastTransitionTime": old.get("lastTransitionTime", now) if same and old else now,
            }
        )
    return out


def predictor_hosts(namespace: str, name: str) -> list[str]:
    """Host names under which a cluster would reach this InferenceService's predictor."""
    hosts = []
    for base in (f"{name}-predictor", name):
        hosts += [
            f"{base}.{namespace}.svc.cluster.local",
            f"{base}.{namespace}.svc",
            f"{base}.{namespace}",
        ]
    return hosts
