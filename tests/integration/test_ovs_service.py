"""The private Open vSwitch helper starts, serves bridges and stops only itself."""
from __future__ import annotations

import os

from topologies.ovs_service import OvsService, _alive


def test_two_private_instances_are_independent():
    a = OvsService().start()
    b = OvsService().start()
    try:
        a.add_bridge("egwsvc0")
        assert "egwsvc0" in a.vsctl("list-br")
        assert "egwsvc0" not in b.vsctl("list-br")
        assert "netdev" in a.vsctl("get", "bridge", "egwsvc0", "datapath_type")
        a_pids, a_dir = a.pids, a.rundir
        a.stop()
        assert not any(_alive(p) for p in a_pids.values())
        assert not a_dir.exists()
        # The other instance is untouched.
        assert b.running()
        assert b.vsctl("list-br") == ""
    finally:
        a.stop()
        b.stop()
    assert not b.running()


def test_activate_points_ovs_tools_at_the_instance():
    before = os.environ.get("OVS_RUNDIR")
    with OvsService() as ovs:
        ovs.activate()
        assert os.environ["OVS_RUNDIR"] == str(ovs.rundir)
    assert os.environ.get("OVS_RUNDIR") == before
