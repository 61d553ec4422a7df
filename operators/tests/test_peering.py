"""One active operator: mandatory Kopf peering, the peering object made at start-up, distinct
priorities. The last test runs Kopf's own peering decision on two live peers."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._core.engines import peering as kopf_peering
from kubernetes.client.exceptions import ApiException

from operators import main, peering
from operators.config import OperatorConfig
from operators.runtime import OperatorContext


class FakeCustomObjects:
    def __init__(self, status: int | None = None) -> None:
        self.status = status
        self.created: list[tuple[str, str, str, dict[str, Any]]] = []

    def create_cluster_custom_object(
        self, group: str, version: str, plural: str, body: dict[str, Any]
    ) -> Any:
        if self.status is not None:
            raise ApiException(status=self.status)
        self.created.append((group, version, plural, body))
        return body


def test_the_peering_object_is_created_when_missing() -> None:
    api = FakeCustomObjects()
    assert peering.ensure_cluster_peering(api) is True
    ((group, version, plural, body),) = api.created
    assert (group, version, plural) == ("kopf.dev", "v1", "clusterkopfpeerings")
    assert body["kind"] == "ClusterKopfPeering" and body["metadata"]["name"] == "kubeloop"


def test_an_existing_peering_object_is_the_normal_race() -> None:
    assert peering.ensure_cluster_peering(FakeCustomObjects(status=409)) is False


def test_any_other_failure_stops_the_start_up() -> None:
    with pytest.raises(ApiException):
        peering.ensure_cluster_peering(FakeCustomObjects(status=403))


def test_deployed_operators_peer_by_name_and_never_run_standalone() -> None:
    options = main.peering_options(standalone=False, priority=None)
    assert options["standalone"] is False
    assert options["peering_name"] == "kubeloop"  # Kopf: a named peering is mandatory
    assert 0 <= options["priority"] < peering.DEV_PRIORITY
    assert main.peering_options(standalone=False, priority=7)["priority"] == 7
    assert main.peering_options(standalone=True, priority=None) == {"standalone": True}


def test_run_operators_hands_kopf_the_mandatory_peering(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def fake_operator(**kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(main.kopf, "operator", fake_operator)
    monkeypatch.setattr(main.kopf, "configure", lambda **_: None)
    main.run_operators(namespaces=[], standalone=False, liveness=None, verbose=False, priority=3)
    assert seen["peering_name"] == "kubeloop" and seen["priority"] == 3
    assert seen["standalone"] is False and seen["clusterwide"] is True
    startup = {h.id for h in seen["registry"]._activities.get_all_handlers()}
    assert "build_registry.<locals>.peering_object" in startup


def test_standalone_makes_no_peering_object() -> None:
    registry = main.build_registry(OperatorContext(config=OperatorConfig()))
    ids = {h.id for h in registry._activities.get_all_handlers()}
    assert "build_registry.<locals>.peering_object" not in ids


def test_priorities_are_drawn_below_kopfs_dev_priority() -> None:
    assert peering.draw_priority(lambda n: n - 1) == peering.PRIORITY_RANGE - 1
    assert peering.PRIORITY_RANGE <= peering.DEV_PRIORITY
    assert len({peering.draw_priority() for _ in range(200)}) > 1


async def _paused(identity: str, priorities: dict[str, int]) -> bool:
    """Kopf's own decision for one operator, given a peering object holding every peer."""
    settings = kopf.OperatorSettings()
    settings.peering.name = peering.PEERING_NAME
    settings.peering.priority = priorities[identity]
    now = datetime.datetime.now(datetime.UTC).isoformat()
    status = {
        peer: {"priority": p, "lifetime": 60, "lastseen": now} for peer, p in priorities.items()
    }
    event: Any = {
        "type": "MODIFIED",
        "object": {"metadata": {"name": "kubeloop"}, "status": status},
    }
    conflicts = aiotoggles.Toggle(True)  # mandatory peering starts paused
    wakeup = asyncio.Event()
    wakeup.set()  # do not sleep until the peers' deadlines
    await kopf_peering.process_peering_event(
        raw_event=event,
        namespace=None,
        resource=None,  # type: ignore[arg-type]  # not used without autoclean or a touch
        identity=kopf_peering.Identity(identity),
        settings=settings,
        autoclean=False,
        stream_pressure=wakeup,
        conflicts_found=conflicts,
    )
    return conflicts.is_on()


def test_kopf_lets_exactly_one_of_two_replicas_act() -> None:
    priorities = {"kubeloop-operator-a": 17, "kubeloop-operator-b": 401}
    paused = {peer: asyncio.run(_paused(peer, priorities)) for peer in priorities}
    assert paused == {"kubeloop-operator-a": True, "kubeloop-operator-b": False}


def test_equal_priorities_freeze_both_never_both_act() -> None:
    priorities = {"a": 5, "b": 5}
    assert all(asyncio.run(_paused(peer, priorities)) for peer in priorities)
