from policies import parse_policy
from policies.wan import tc_commands, tc_teardown
from tests.unit.test_policy_schema import BASE


def test_tc_commands_exact():
    wan = parse_policy(BASE).wan
    cmds = tc_commands(wan, "eth1")
    assert cmds[:2] == [
        ["tc", "qdisc", "add", "dev", "eth1", "root", "handle", "1:", "htb", "default", "30"],
        ["tc", "class", "add", "dev", "eth1", "parent", "1:", "classid", "1:1", "htb",
         "rate", "10000kbit", "ceil", "10000kbit", "burst", "15k"],
    ]
    classes = [c for c in cmds if c[1] == "class"][1:]
    assert classes[0] == ["tc", "class", "add", "dev", "eth1", "parent", "1:1", "classid",
                          "1:10", "htb", "rate", "2000kbit", "ceil", "10000kbit", "burst",
                          "15k", "prio", "0"]
    assert [c[8] for c in classes] == ["1:10", "1:20", "1:30", "1:40"]
    assert classes[3][13] == "5000kbit"          # the bulk class's own ceil
    filters = [c for c in cmds if c[1] == "filter"]
    assert ["tc", "filter", "add", "dev", "eth1", "parent", "1:", "protocol", "ip", "prio", "1",
            "u32", "match", "ip", "dsfield", "0xb8", "0xfc", "flowid", "1:10"] in filters
    assert ["tc", "filter", "add", "dev", "eth1", "parent", "1:", "protocol", "ipv6", "prio",
            "2", "u32", "match", "ip6", "priority", "0xb8", "0xfc", "flowid", "1:10"] in filters
    # AF21 (18 -> 0x48) lands in 'be', CS1 (8 -> 0x20) in 'bulk'
    assert any(f[15] == "0x48" and f[-1] == "1:30" for f in filters)
    assert any(f[15] == "0x20" and f[-1] == "1:40" for f in filters)
    assert len(filters) == 2 * sum(len(c.dscp) for c in wan.classes)
    # qdisc and classes come before the filters that point at them
    assert cmds.index(filters[0]) > max(cmds.index(c) for c in classes)


def test_leaf_qdisc_and_teardown():
    wan = parse_policy(BASE.replace("  default_class: be",
                                    "  default_class: be\n  leaf_qdisc: sfq")).wan
    cmds = tc_commands(wan, "wan0", tc="/sbin/tc")
    assert ["/sbin/tc", "qdisc", "add", "dev", "wan0", "parent", "1:10", "handle", "10:",
            "sfq"] in cmds
    assert tc_teardown("wan0") == [["tc", "qdisc", "del", "dev", "wan0", "root"]]


def test_class_for_dscp():
    wan = parse_policy(BASE).wan
    assert wan.class_for_dscp(46).name == "rt"
    assert wan.class_for_dscp(18).name == "be"
    assert wan.class_for_dscp(12).name == "be"      # unmapped: default class
    assert wan.class_for_dscp(None).name == "be"
    assert wan.classid("bulk") == "1:40"
