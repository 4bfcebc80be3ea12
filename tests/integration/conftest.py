"""Integration fixtures: a private Open vSwitch, a real ryu-manager, Mininet.

Everything is started by these fixtures and stopped by PID or by the network's
own ``net.stop()``; Mininet's global cleanup is never called. Mininet runs are
serialised with a file lock because interface names live in the root namespace.
"""
from __future__ import annotations

import os
import shutil

import pytest

from topologies.mininet_net import mininet_lock
from topologies.ovs_service import OvsService

REQUIRED_TOOLS = ("ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "mnexec", "iperf3", "tc")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (network namespaces, OVS)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (run scripts/bootstrap.sh)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason and os.environ.get("EGW_REQUIRE_INTEGRATION") == "1":
        raise pytest.UsageError(f"EGW_REQUIRE_INTEGRATION=1 but {reason}")
    for item in items:
        if "tests/integration" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def ovs():
    """A private Open vSwitch instance for the whole session (its own run dir)."""
    service = OvsService().start()
    service.activate()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def mininet_slot():
    """Hold the machine-wide Mininet lock for the duration of one test."""
    with mininet_lock():
        yield
