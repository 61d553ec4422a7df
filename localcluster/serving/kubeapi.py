"""A minimal async Kubernetes API client (list, watch, patch status) over httpx.

``kubernetes_asyncio`` is not available; the sync ``kubernetes`` package is used only to read
a kubeconfig into connection settings.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx


class KubeApi:
    def __init__(
        self,
        server: str,
        token: str | None = None,
        verify: bool | str = True,
        cert: tuple[str, str] | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.AsyncClient(
            base_url=server.rstrip("/"),
            headers=headers,
            verify=verify,
            cert=cert,
            timeout=httpx.Timeout(30.0, read=None),
        )

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None) -> KubeApi:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(
            config_file=path, context=context, client_configuration=configuration
        )
        token = (configuration.api_key or {}).get("authorization", "")
        token = token.removeprefix("Bearer ").strip() or None
        verify: bool | str = configuration.ssl_ca_cert or bool(configuration.verify_ssl)
        cert = (
            (configuration.cert_file, configuration.key_file)
            if configuration.cert_file and configuration.key_file
            else None
        )
        return cls(configuration.host, token=token, verify=verify, cert=cert)

    @staticmethod
    def _path(group: str, version: str, plural: str, namespace: str | None = None) -> str:
        # The core group ("": Services) lives under /api, every other group under /apis.
        root = f"/apis/{group}/{version}" if group else f"/api/{version}"
        if namespace:
            return f"{root}/namespaces/{namespace}/{plural}"
        return f"{root}/{plural}"

    async def list(self, group: str, version: str, plural: str) -> list[dict[str, Any]]:
        response = await self.client.get(self._path(group, version, plural))
        if response.status_code == 404:
            return []  # CRD not installed: nothing to realize
        response.raise_for_status()
        return list(response.json().get("items") or [])

    async def get(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        response = await self.client.get(self._path(group, version, plural, namespace) + f"/{name}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def watch(
        self, group: str, version: str, plural: str
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield watch events until the server closes the stream."""
        params = {"watch": "true", "allowWatchBookmarks": "false"}
        async with self.client.stream(
            "GET", self._path(group, version, plural), params=params
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.strip():
                    yield json.loads(line)

    async def patch_status(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        status: dict[str, Any],
    ) -> None:
        path = self._path(group, version, plural, namespace) + f"/{name}/status"
        response = await self.client.patch(
            path,
            content=json.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if response.status_code == 404:
            return  # deleted meanwhile; the next list drops it
        response.raise_for_status()

    async def close(self) -> None:
        await self.client.aclose()
