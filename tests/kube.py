"""The stand-in Kubernetes endpoints (adapter/standin/kube.py: a STAND-IN, not a real API
server) as tests see them: the same store and server `make run` uses, served on loopback to a
real `kubernetes` client; RecordingStore also records every custom-object GET and PATCH, so
tests can assert the exact patch bodies sent."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from adapter.standin.kube import KubeServer, KubeStore


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    content_type: str | None
    body: Any


class RecordingStore(KubeStore):
    """KubeStore noting each custom-object request the server hands it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Recorded] = []

    def get_object(self, path: str) -> dict[str, Any] | None:
        self.requests.append(Recorded("GET", path, None, None))
        return super().get_object(path)

    def patch_object(self, path: str, content_type: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        self.requests.append(Recorded("PATCH", path, content_type, copy.deepcopy(body)))
        return super().patch_object(path, content_type, body)

    def stored(self, path: str) -> dict[str, Any]:
        """The object as stored now; not a request, so not recorded."""
        found = super().get_object(path)
        if found is None:
            raise KeyError(path)
        return found

    def patches(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "PATCH"]


@contextmanager
def standin_api(store: KubeStore) -> Iterator[client.ApiClient]:
    """The stand-in serving `store` on a free loopback port, and a real ApiClient pointed at it."""
    server = KubeServer(store)
    server.start()
    api_client = client.ApiClient(client.Configuration(host=server.url))
    try:
        yield api_client
    finally:
        api_client.close()
        server.close()


@contextmanager
def serve_fake_kube() -> Iterator[tuple[RecordingStore, client.CustomObjectsApi]]:
    """A RecordingStore behind the stand-in and a real CustomObjectsApi pointed at it."""
    store = RecordingStore()
    with standin_api(store) as api_client:
        yield store, client.CustomObjectsApi(api_client)
