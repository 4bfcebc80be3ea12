"""The WAN side: tc HTB classes that DSCP marks map to (Linux tc, not OpenFlow).

On Open vSwitch's userspace datapath ``set_queue`` does nothing; priority on the
uplink comes from marking DSCP in OpenFlow and an HTB hierarchy on the uplink
interface whose u32 filters match the DS field::

    tc qdisc add dev UP root handle 1: htb default <default minor>
    tc class add dev UP parent 1: classid 1:1 htb rate <uplink> ceil <uplink> burst 15k
    tc class add dev UP parent 1:1 classid 1:10 htb rate R ceil C burst 15k prio P
    tc filter add dev UP parent 1: protocol ip prio 1 u32 match ip dsfield 0xb8 0xfc flowid 1:10
    tc filter add dev UP parent 1: protocol ipv6 prio 2 u32 match ip6 priority 0xb8 0xfc flowid 1:10

Run :func:`tc_teardown` first (its failure when nothing is installed is fine), then
every command of :func:`tc_commands` in order (each must succeed).
"""
from __future__ import annotations

from .dscp import tos_byte
from .schema import Wan

BURST = "15k"   # bytes per class; what was measured to work on this datapath


def _kbit(kbps: int) -> str:
    return f"{kbps}kbit"


def tc_commands(wan: Wan, dev: str, tc: str = "tc") -> list[list[str]]:
    """argv lists building the HTB hierarchy of ``wan`` on interface ``dev``."""
    default_minor = wan.classid(wan.default_class).split(":")[1]
    cmds: list[list[str]] = [
        [tc, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb",
         "default", default_minor],
        [tc, "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
         "rate", _kbit(wan.uplink_kbps), "ceil", _kbit(wan.uplink_kbps), "burst", BURST],
    ]
    filters: list[list[str]] = []
    for c in wan.classes:
        classid = wan.classid(c)
        cmds.append([tc, "class", "add", "dev", dev, "parent", "1:1", "classid", classid,
                     "htb", "rate", _kbit(c.rate_kbps), "ceil", _kbit(wan.ceil_of(c)),
                     "burst", BURST, "prio", str(c.prio)])
        if wan.leaf_qdisc:
            minor = classid.split(":")[1]
            cmds.append([tc, "qdisc", "add", "dev", dev, "parent", classid,
                         "handle", f"{minor}:", wan.leaf_qdisc])
        for d in c.dscp:
            tos = f"0x{tos_byte(d):02x}"
            filters.append([tc, "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip",
                            "prio", "1", "u32", "match", "ip", "dsfield", tos, "0xfc",
                            "flowid", classid])
            filters.append([tc, "filter", "add", "dev", dev, "parent", "1:", "protocol",
                            "ipv6", "prio", "2", "u32", "match", "ip6", "priority", tos,
                            "0xfc", "flowid", classid])
    return cmds + filters


def tc_teardown(dev: str, tc: str = "tc") -> list[list[str]]:
    """argv lists removing whatever root qdisc ``dev`` has (back to the default)."""
    return [[tc, "qdisc", "del", "dev", dev, "root"]]
