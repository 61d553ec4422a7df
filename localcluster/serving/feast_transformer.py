"""A KServe transformer that fills requests with a FeatureView's online features from Feast.

On a cluster KServe runs it as the InferenceService's ``spec.transformer`` container (the
MLModel operator writes it, ``operators/mlmodel/features.py``): ``python -m
localcluster.serving.feast_transformer`` with the flags of :mod:`contracts.feature_serving`,
plus the ``--model_name``/``--predictor_host``/``--http_port`` KServe appends; its
``preprocess`` fills the request and KServe's ``Model.predict`` forwards it to the predictor,
whose logger then logs the filled request (the served features) to the monitor.

The local serving controller runs the same preprocess inside the predictor process, as an ASGI
middleware in front of the inference logger (:class:`FeatureServingMiddleware`): the logger and
the model see the filled request, as a predictor behind a transformer does.

The pure part is ``features.py``; here are the Feast online store and the counters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from prometheus_client import REGISTRY, CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import feature_serving as fs
from localcluster.serving.features import (
    FeatureRequestError,
    FeatureServingSpec,
    FillCounts,
    Value,
    fill_request,
)
from localcluster.serving.inference_logger import is_inference_path

if TYPE_CHECKING:  # importing it imports feast (seconds): done where a store is opened
    from components.feast_apply_materialize.feast_objects import FeastStoreConfig

log = logging.getLogger(__name__)

Lookup = Callable[[list[Any]], dict[str, list[Value]]]


class FeatureStoreUnavailable(RuntimeError):
    """The online store did not answer (answered 503: the request may be retried)."""


def add_transformer_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(fs.ARG_FEAST_STORE, required=True, help="Feast store config (JSON)")
    parser.add_argument(fs.ARG_FEATURE_VIEW, required=True)
    parser.add_argument(fs.ARG_ENTITY_KEY, required=True)
    parser.add_argument(fs.ARG_ENTITY_TYPE, default="INT64")
    parser.add_argument(fs.ARG_FEATURES, required=True, help="JSON: feature -> dtype")
    parser.add_argument(fs.ARG_DEFAULTS, default="{}", help="JSON: feature -> default value")
    parser.add_argument(fs.ARG_MLMODEL, default="")


class _Parser(argparse.ArgumentParser):
    """Errors raise (naming the flag) instead of exiting: the controller validates with it."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def parse_transformer_args(
    argv: Sequence[str],
) -> tuple[FeatureServingSpec, FeastStoreConfig, argparse.Namespace]:
    """The transformer's flags (unknown ones, e.g. KServe's, are left to KServe).
    Raises ValueError naming the flag for a bad value."""
    from components.feast_apply_materialize.feast_objects import FeastStoreConfig

    parser = _Parser(prog=f"python -m {fs.TRANSFORMER_MODULE}", add_help=False)
    add_transformer_args(parser)
    args, _ = parser.parse_known_args(list(argv))
    try:
        store = FeastStoreConfig.model_validate(json.loads(args.feast_store))
        features = json.loads(args.features)
        defaults = json.loads(args.defaults)
    except ValueError as error:  # JSON or pydantic
        raise ValueError(
            f"{fs.ARG_FEAST_STORE}/{fs.ARG_FEATURES}/{fs.ARG_DEFAULTS}: {error}"
        ) from None
    if not isinstance(features, dict) or not isinstance(defaults, dict):
        raise ValueError(f"{fs.ARG_FEATURES} and {fs.ARG_DEFAULTS} must be JSON objects")
    spec = FeatureServingSpec(
        feature_view=args.feature_view,
        entity_key=args.entity_key,
        entity_type=args.entity_type,
        features={str(k): str(v) for k, v in features.items()},
        defaults=defaults,
    )
    return spec, store, args


class OnlineFeatures:
    """``FeatureStore.get_online_features`` for one FeatureView; the store is opened on the
    first lookup (never at import), then kept."""

    def __init__(self, spec: FeatureServingSpec, store: FeastStoreConfig) -> None:
        self.spec = spec
        self.config = store
        self._store: Any = None

    def __call__(self, entities: list[Any]) -> dict[str, list[Value]]:
        from feast import FeatureStore  # seconds to import: only where features are served

        try:
            if self._store is None:
                self._store = FeatureStore(config=self.config.repo_config())
            answer = self._store.get_online_features(
                features=self.spec.feature_refs,
                entity_rows=[{self.spec.entity_key: e} for e in entities],
            ).to_dict()
        except Exception as error:  # Redis down, registry unreadable, view not applied yet
            raise FeatureStoreUnavailable(
                f"online store of FeatureView {self.spec.feature_view!r}: "
                f"{type(error).__name__}: {error}"
            ) from error
        values = {name: list(answer.get(name) or []) for name in self.spec.features}
        short = [n for n, v in values.items() if len(v) != len(entities)]
        if short:
            raise FeatureStoreUnavailable(
                f"online store of FeatureView {self.spec.feature_view!r} answered no values "
                f"for {short} (is the FeatureView applied?)"
            )
        return values


class FeatureServingMetrics:
    """The counters of :mod:`contracts.feature_serving` (one set per process and registry)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.rows = Counter(
            fs.SERVED_ROWS_METRIC.removesuffix("_total"),
            "Request rows filled from a FeatureView's online store.",
            ["feature_view"],
            registry=registry,
        )
        self.missing = Counter(
            fs.MISSING_ENTITIES_METRIC.removesuffix("_total"),
            "Request rows whose entity had no online values (every feature defaulted).",
            ["feature_view"],
            registry=registry,
        )
        self.defaulted = Counter(
            fs.DEFAULTED_VALUES_METRIC.removesuffix("_total"),
            "Feature values served as their default (missing entity or null value).",
            ["feature_view", "feature"],
            registry=registry,
        )

    def count(self, view: str, counts: FillCounts) -> None:
        self.rows.labels(view).inc(counts.rows)
        if counts.missing_entities:
            self.missing.labels(view).inc(counts.missing_entities)
        for feature, n in counts.defaulted.items():
            self.defaulted.labels(view, feature).inc(n)


class FeatureFiller:
    """The preprocess: entities → online values (off the event loop) → the filled request."""

    def __init__(
        self,
        spec: FeatureServingSpec,
        lookup: Lookup,
        metrics: FeatureServingMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.lookup = lookup
        self.metrics = metrics
        # Stamps each filled row with the lookup's time (contracts: FETCHED_AT_INPUT).
        self.clock = clock

    async def fill(self, body: Any) -> dict[str, Any]:
        filled, counts = await asyncio.to_thread(
            fill_request, body, self.spec, self.lookup, self.clock
        )
        self.metrics.count(self.spec.feature_view, counts)
        return filled


async def _answer(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class FeatureServingMiddleware:
    """ASGI: fill each inference request before the app behind it (the inference logger and
    the model) reads it. A bad request is a 400 and an unreachable store a 503, never a 500."""

    def __init__(self, app: ASGIApp, filler: FeatureFiller) -> None:
        self.app = app
        self.filler = filler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_inference_path(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            request = json.loads(b"".join(chunks) or b"null")
        except ValueError as error:
            await _answer(send, 400, f"request body is not JSON: {error}")
            return
        try:
            filled = await self.filler.fill(request)
        except FeatureRequestError as error:
            await _answer(send, 400, str(error))
            return
        except FeatureStoreUnavailable as error:  # the store's fault: the client may retry
            await _answer(send, 503, str(error))
            return
        body = json.dumps(filled).encode()
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        sent = False

        async def receive_filled() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, receive_filled, send)


def _transformer_model(name: str, filler: FeatureFiller) -> Any:
    """A ``kserve.Model`` whose ``preprocess`` fills the request; KServe's own ``predict``
    forwards it to ``--predictor_host`` (KServe's transformer contract)."""
    import kserve
    from kserve.errors import InvalidInput, ServerNotReady
    from kserve.protocol.infer_type import InferRequest
    from kserve.protocol.rest.v2_datamodels import InferenceRequest

    class FeastTransformer(kserve.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name)
            self.ready = True

        async def preprocess(
            self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
        ) -> dict[str, Any] | InferRequest:
            if not isinstance(payload, InferRequest):
                return await fill(payload)
            body, _ = payload.to_rest()  # (dict, None), or bytes for binary tensor data
            if not isinstance(body, dict):
                raise InvalidInput("binary tensor data cannot carry the entity input")
            filled = await fill(body)
            return InferRequest.from_inference_request(InferenceRequest(**filled), name)

    async def fill(body: Any) -> dict[str, Any]:
        """KServe's errors: 400 for the request's fault, 503 for the store's."""
        try:
            return await filler.fill(body)
        except FeatureRequestError as error:
            raise InvalidInput(str(error)) from error
        except FeatureStoreUnavailable as error:
            raise ServerNotReady(str(error)) from error

    return FeastTransformer()


def main(argv: Sequence[str] | None = None) -> None:
    """The transformer container's entrypoint on a cluster (KServe's flags pass through)."""
    import kserve
    from kserve import model_server

    argv = sys.argv[1:] if argv is None else argv
    spec, store, args = parse_transformer_args(argv)
    kserve_args, _ = model_server.parser.parse_known_args(list(argv))
    filler = FeatureFiller(spec, OnlineFeatures(spec, store), FeatureServingMetrics())
    names = [kserve_args.model_name, *([args.mlmodel] if args.mlmodel else [])]
    server = kserve.ModelServer(http_port=kserve_args.http_port, workers=1)
    server.start([_transformer_model(n, filler) for n in dict.fromkeys(names)])


if __name__ == "__main__":
    main()
