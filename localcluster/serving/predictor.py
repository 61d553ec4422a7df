"""A KServe ``ModelServer`` process serving one MLflow pyfunc model (v1 and v2 protocols).

Run: ``python -m localcluster.serving.predictor --model-name N --model-uri URI --http-port P
[--model-version V] [--mlmodel M] [--namespace NS] [--logger-url URL --logger-mode all|request|response]
[--transformer-args JSON]``.
The MLflow tracking/registry URI comes from ``--tracking-uri`` or ``MLFLOW_TRACKING_URI``.

``--transformer-args``: the args of the InferenceService's Feast transformer container (a JSON
list, ``feast_transformer.py``). The local controller runs that transformer's preprocess here,
in front of the inference logger, instead of as a second process: the model and the logger see
the request with its features filled in, as a predictor behind a KServe transformer does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import kserve
import mlflow
import mlflow.pyfunc
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse
from mlflow.exceptions import MlflowException

from contracts.auth import MONITOR_TOKEN_FILE_ENV
from localcluster.serving import constants as c
from localcluster.serving import payloads
from localcluster.serving.feast_transformer import (
    FeatureFiller,
    FeatureServingMetrics,
    FeatureServingMiddleware,
    OnlineFeatures,
    parse_transformer_args,
)
from localcluster.serving.inference_logger import (
    CloudEventSender,
    InferenceLoggerMiddleware,
    LoggerSettings,
)

log = logging.getLogger(__name__)

# MLflow error codes that mean "the input does not fit the model's signature".
_CLIENT_ERROR_CODES = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST"}


class MLflowPyfuncModel(kserve.Model):
    """A ``kserve.Model`` whose ``predict`` calls an MLflow pyfunc model."""

    def __init__(self, name: str, model_uri: str) -> None:
        super().__init__(name)
        self.model_uri = model_uri
        self._pyfunc: Any = None
        self.columns: list[payloads.Column] | None = None

    def load(self) -> bool:
        self._pyfunc = mlflow.pyfunc.load_model(self.model_uri)
        # The signature's columns and dtypes: payloads fits every request to them before
        # MLflow's own schema check (see payloads.conform_to_signature for the casts allowed).
        self.columns = payloads.signature_columns(self._pyfunc.metadata.get_input_schema())
        self.ready = True
        return self.ready

    async def predict(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        # The pyfunc is synchronous: run it off the event loop so a slow model cannot starve
        # health probes and other requests.
        if isinstance(payload, InferRequest):
            frame = payloads.v2_request_to_frame(payload, self.columns)
            request_id = payload.id or (headers or {}).get(c.REQUEST_ID_HEADER) or str(uuid.uuid4())
            scores = await asyncio.to_thread(self._call_model, frame)
            return payloads.predictions_to_v2(self.name, request_id, scores)
        frame = payloads.v1_instances_to_frame(payload, self.columns)
        scores = await asyncio.to_thread(self._call_model, frame)
        return {"predictions": payloads.predictions_to_list(scores)}

    def _call_model(self, frame: Any) -> Any:
        try:
            return self._pyfunc.predict(frame)
        except MlflowException as exc:
            if exc.error_code in _CLIENT_ERROR_CODES:
                raise InvalidInput(
                    f"input does not match the model signature: {exc.message}"
                ) from exc
            raise


async def _validation_error_as_400(_: Request, exc: Exception) -> JSONResponse:
    # FastAPI answers schema errors in v2 bodies with 422; KServe clients and our monitor
    # expect 400 for every malformed payload.
    detail = exc.errors() if isinstance(exc, RequestValidationError) else str(exc)
    return JSONResponse(status_code=400, content={"error": f"invalid inference request: {detail}"})


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcluster.serving.predictor")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--model-uri", required=True, help="models:/, runs:/ or a local path")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--model-version", default="", help="sent as ce-kubeloopversion")
    parser.add_argument("--mlmodel", default="", help="the MLModel name, sent as ce-kubeloopmodel")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--inference-service", default="", help="defaults to --model-name")
    parser.add_argument("--tracking-uri", default="", help="overrides MLFLOW_TRACKING_URI")
    parser.add_argument("--logger-url", default="")
    parser.add_argument("--logger-mode", default=c.LOGGER_MODE_ALL, choices=c.LOGGER_MODES)
    parser.add_argument("--logger-queue-size", type=int, default=1000)
    parser.add_argument(
        "--transformer-args", default="", help="JSON list: the Feast transformer's args"
    )
    return parser.parse_args(argv)


def build_feature_filler(args: argparse.Namespace) -> FeatureFiller | None:
    if not args.transformer_args:
        return None
    spec, store, _ = parse_transformer_args(json.loads(args.transformer_args))
    return FeatureFiller(spec, OnlineFeatures(spec, store), FeatureServingMetrics())


def build_sender(args: argparse.Namespace) -> CloudEventSender | None:
    if not args.logger_url:
        return None
    settings = LoggerSettings(
        url=args.logger_url,
        mode=args.logger_mode,
        inference_service=args.inference_service or args.model_name,
        namespace=args.namespace,
        model_version=args.model_version,
        mlmodel=args.mlmodel,
        source=f"http://localhost:{args.http_port}/",
        queue_size=args.logger_queue_size,
        token_file=os.environ.get(MONITOR_TOKEN_FILE_ENV, ""),
    )
    return CloudEventSender(settings)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    model = MLflowPyfuncModel(args.model_name, args.model_uri)
    model.load()
    from kserve import model_server  # the module holds the FastAPI app KServe serves

    model_server.app.add_middleware(InferenceLoggerMiddleware, sender=build_sender(args))
    filler = build_feature_filler(args)
    if filler is not None:
        # Added last, so outermost: it fills the request before the logger and the model read it.
        model_server.app.add_middleware(FeatureServingMiddleware, filler=filler)
    model_server.app.add_exception_handler(RequestValidationError, _validation_error_as_400)
    server = kserve.ModelServer(
        http_port=args.http_port, enable_grpc=False, enable_latency_logging=False, workers=1
    )
    # One name, as the kubeloop runtime runs it on KServe (`--model-name` from the version's
    # MLModel annotation): the route forwards /v1/models/<mlmodel> unchanged to every version.
    server.start([model])


if __name__ == "__main__":
    main()
