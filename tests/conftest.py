"""Fixtures shared by test files."""

from __future__ import annotations

import pytest


@pytest.fixture
def blobs(monkeypatch):
    """Every request a ``remote="local"`` run serializes, as nnsight's client sends it to a server, in order (the run
    itself still happens, locally)."""
    from nnsight.intervention.backends import local as nnsight_local
    from nnsight.schema.request import RequestModel

    sent = []
    original = nnsight_local.LocalSimulationBackend.__call__

    def capture(self, tracer):
        from nnsight.ndif import pull_env

        pull_env()
        sent.append(RequestModel.serialize(tracer, compress=False))
        return original(self, tracer)
    monkeypatch.setattr(nnsight_local.LocalSimulationBackend, "__call__", capture)
    return sent
