"""Hosts a quarantined device named in DNS answers (issue 14 item 4) on the in-memory
flow table: the switch copies the device's DNS while forwarding it; an answer from
upstream to a question the device asked opens the answered addresses (for the record's
TTL, bounded) and nothing else; answers the device forges on its own port, unsolicited
answers and hostile payloads open nothing and never raise; approval, a policy without
``allow_dns_named`` and a restart take the opened hosts away."""
from __future__ import annotations

import random

import pytest
from scapy.all import DNS, DNSQR, DNSRR, IP, TCP, UDP, Ether, IPv6

from ryu_apps.gateway.audit import records
from ryu_apps.gateway.core import Gateway
from ryu_apps.gateway.devices import QUARANTINE_OPEN_PRIORITY, device_cookie
from ryu_apps.gateway.dnsopen import MAX_OPEN, MAX_TTL, MIN_TTL, OPEN_SECONDS, QUERY_WAIT
from ryu_apps.gateway.rules import forward_rule
from tests.unit.test_gateway_devices import (DEV, DEVICE_MODEL, DPID, LAN, POLICY, WAN, _conf,
                                            _switch)
from topologies.builtin_devices import GW_MAC, device_frames

DEV_IP, RESOLVER, SERVER, OTHER = "192.168.1.50", "192.168.1.1", "93.184.216.34", "93.184.216.35"
DEV_IP6, RESOLVER6, SERVER6 = "fd00::50", "fd00::1", "2001:db8::34"
LAN_HOST_MAC = "02:aa:bb:cc:dd:99"
NAME = "cloud.vendor.example"


@pytest.fixture
def home(tmp_path):
    """A gateway whose policy quarantines unknown devices, a switch, one such device."""
    t = [100.0]
    gw = Gateway(_conf(tmp_path))
    gw.devices.clock = lambda: t[0]
    sw = _switch(gw)
    for msgs in gw.device_packet(DPID, LAN, bytes(device_frames(DEV, "camera")[0][1])).values():
        sw.apply(msgs)
    assert gw.devices.devices[DEV].quarantined and gw.devices.devices[DEV].dns_named
    return gw, sw, t


def query(qid=0x1234, name=NAME, qtype="A", sport=40000, v6=False, tcp=False):
    ip = IPv6(src=DEV_IP6, dst=RESOLVER6) if v6 else IP(src=DEV_IP, dst=RESOLVER)
    dns = DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype=qtype))
    if tcp:
        raw = bytes(dns)
        return Ether(src=DEV, dst=GW_MAC) / ip / TCP(sport=sport, dport=53, flags="PA") \
            / (len(raw).to_bytes(2, "big") + raw)
    return Ether(src=DEV, dst=GW_MAC) / ip / UDP(sport=sport, dport=53) / dns


def answer(qid=0x1234, name=NAME, records=((NAME, "A", SERVER, 120),), qtype="A", sport=40000,
           src=RESOLVER, mac=GW_MAC, v6=False, tcp=False, payload=None):
    an = [DNSRR(rrname=rrname, type=rtype, rdata=rdata, ttl=ttl)
          for rrname, rtype, rdata, ttl in records]
    ip = IPv6(src=RESOLVER6, dst=DEV_IP6) if v6 else IP(src=src, dst=DEV_IP)
    raw = payload if payload is not None else bytes(
        DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype=qtype), an=an))
    if tcp:
        return Ether(src=mac, dst=DEV) / ip / TCP(sport=53, dport=sport, flags="PA") \
            / (len(raw).to_bytes(2, "big") + raw)
    return Ether(src=mac, dst=DEV) / ip / UDP(sport=53, dport=sport) / raw


def fields(frame, in_port: int) -> dict:
    """The match fields of a scapy frame (what the flow table model looks up)."""
    pkt = {"in_port": in_port, "eth_src": frame.src, "eth_dst": frame.dst}
    if IP in frame:
        pkt.update(eth_type=0x0800, ip_proto=frame[IP].proto, ipv4_src=frame[IP].src,
                   ipv4_dst=frame[IP].dst)
    else:
        pkt.update(eth_type=0x86DD, ip_proto=frame[IPv6].nh, ipv6_src=frame[IPv6].src,
                   ipv6_dst=frame[IPv6].dst)
    for l4, name in ((UDP, "udp"), (TCP, "tcp")):
        if l4 in frame:
            pkt.update({f"{name}_src": frame[l4].sport, f"{name}_dst": frame[l4].dport})
    return pkt


def send(gw, sw, frame, in_port: int, delivered: bool = True):
    """The frame through the switch: it must be forwarded (``delivered``); when table 0
    copies it to the controller, the packet-in goes to the gateway and its rules to the
    switch. Returns the switch's verdict."""
    v = sw.process(fields(frame, in_port))
    assert v.outputs or not delivered, f"{frame.summary()} not forwarded"
    if v.mirrored:
        for msgs in gw.device_packet(DPID, in_port, bytes(frame)).values():
            sw.apply(msgs)
    return v


def to(addr, dport=443, via=GW_MAC):
    if ":" in addr:
        return {"in_port": LAN, "eth_src": DEV, "eth_dst": via, "eth_type": 0x86DD,
                "ip_proto": 6, "ipv6_src": DEV_IP6, "ipv6_dst": addr, "tcp_src": 41000,
                "tcp_dst": dport}
    return {"in_port": LAN, "eth_src": DEV, "eth_dst": via, "eth_type": 0x0800, "ip_proto": 6,
            "ipv4_src": DEV_IP, "ipv4_dst": addr, "tcp_src": 41000, "tcp_dst": dport}


def opened_rules(sw):
    return [r for r in sw.flows(0) if r.priority == QUARANTINE_OPEN_PRIORITY]


def dns_counts(gw) -> dict:
    return {k: int(v) for k, v in gw.metrics.switch(DPID).values("quarantine_dns").items()}


def test_an_answer_to_the_devices_question_opens_that_address_only(home, tmp_path):
    gw, sw, _t = home
    assert sw.process(to(SERVER)).dropped                    # held before
    assert send(gw, sw, query(), LAN).mirrored               # the query: copied, forwarded
    v = send(gw, sw, answer(), WAN)
    assert v.mirrored and v.outputs == [LAN]                 # the answer: copied, delivered
    assert sw.process(to(SERVER)).outputs == [WAN]           # the named host: open
    assert sw.process(to(SERVER, dport=22)).outputs == [WAN]
    assert sw.process(to(OTHER)).dropped                     # any other: still held
    back = {"in_port": WAN, "eth_src": GW_MAC, "eth_dst": DEV, "eth_type": 0x0800,
            "ip_proto": 6, "ipv4_src": SERVER, "ipv4_dst": DEV_IP, "tcp_src": 443,
            "tcp_dst": 41000}
    assert sw.process(back).outputs == [LAN]                 # its replies come back
    [rule] = opened_rules(sw)
    assert rule.cookie == device_cookie(DEV) and rule.goto == 1
    assert (rule.idle_timeout, rule.hard_timeout) == (120, OPEN_SECONDS)
    [host] = gw.devices_view()["devices"][0]["opened_hosts"]
    assert (host["address"], host["name"], host["via"], host["idle_timeout"]) == \
        (SERVER, NAME, GW_MAC, 120)
    assert dns_counts(gw) == {("query", "recorded"): 1, ("answer", "opened"): 1}
    assert gw.metrics.switch(DPID).values("quarantine_hosts") == {("opened",): 1.0}
    [audit] = [r for r in records(tmp_path / "d.jsonl") if r["event"] == "device-dns-open"]
    assert (audit["mac"], audit["name"], audit["addresses"]) == (DEV, NAME, [SERVER])


def test_a_repeated_answer_refreshes_and_another_answer_to_the_same_query_is_refused(home):
    gw, sw, _t = home
    send(gw, sw, query(), LAN)
    send(gw, sw, answer(), WAN)
    send(gw, sw, answer(), WAN)             # the same answer again (a second copy): ignored
    send(gw, sw, answer(records=((NAME, "A", OTHER, 120),)), WAN)   # a second, other answer
    assert sw.process(to(OTHER)).dropped
    assert dns_counts(gw)[("answer", "unsolicited")] == 1


def test_an_answer_forged_on_the_devices_own_port_opens_nothing(home):
    gw, sw, _t = home
    send(gw, sw, query(), LAN)
    assert send(gw, sw, answer(mac=GW_MAC), LAN, delivered=False).mirrored   # answers itself
    assert sw.process(to(SERVER)).dropped and not opened_rules(sw)
    assert dns_counts(gw)[("answer", "own_port")] == 1
    send(gw, sw, answer(), WAN)               # the query is still open for the real answer
    assert sw.process(to(SERVER)).outputs == [WAN]


@pytest.mark.parametrize("wrong", [
    {},                                        # no query asked at all
    {"qid": 0x9999},                           # another DNS id
    {"name": "other.example", "records": (("other.example", "A", SERVER, 60),)},
    {"src": "192.168.1.2"},                    # from another resolver than the one asked
    {"sport": 40001},                          # to another port of the device
    {"qtype": "AAAA"},                         # another question type
])
def test_an_unsolicited_answer_opens_nothing(home, wrong):
    gw, sw, _t = home
    if wrong:
        send(gw, sw, query(), LAN)
    send(gw, sw, answer(**wrong), WAN)
    assert sw.process(to(SERVER)).dropped and not opened_rules(sw)
    assert dns_counts(gw)[("answer", "unsolicited")] == 1


def test_a_late_answer_opens_nothing(home):
    gw, sw, t = home
    send(gw, sw, query(), LAN)
    t[0] += QUERY_WAIT + 1
    send(gw, sw, answer(), WAN)
    assert sw.process(to(SERVER)).dropped


def test_cname_chain_opens_the_targets_address_not_unrelated_records(home):
    gw, sw, _t = home
    send(gw, sw, query(), LAN)
    send(gw, sw, answer(records=((NAME, "CNAME", "edge.cdn.example", 45),
                                 ("edge.cdn.example", "A", SERVER, 600),
                                 ("unrelated.example", "A", OTHER, 60))), WAN)
    assert sw.process(to(SERVER)).outputs == [WAN]
    assert sw.process(to(OTHER)).dropped
    [rule] = opened_rules(sw)
    assert rule.idle_timeout == 45          # no longer than the CNAME that led to it


def test_ipv6_and_tcp_answers(home):
    gw, sw, _t = home
    send(gw, sw, query(qtype="AAAA", v6=True), LAN)
    send(gw, sw, answer(qtype="AAAA", v6=True, records=((NAME, "AAAA", SERVER6, 90),)), WAN)
    assert sw.process(to(SERVER6)).outputs == [WAN]
    assert sw.process(to("2001:db8::35")).dropped
    send(gw, sw, query(qid=7, tcp=True), LAN)
    send(gw, sw, answer(qid=7, tcp=True), WAN)
    assert sw.process(to(SERVER)).outputs == [WAN]


def test_a_lan_host_named_in_an_answer_stays_closed(home):
    """The opened rule matches the MAC the answer came through: the device reaching a
    LAN host directly (its own MAC as eth_dst) is still dropped."""
    gw, sw, _t = home
    sw.apply([forward_rule(LAN, LAN_HOST_MAC, 3)])          # a LAN host on port 3, learnt
    lan_host = to("192.168.1.60", via=LAN_HOST_MAC)
    assert sw.lookup(1, lan_host).actions == (("output", 3),)
    send(gw, sw, query(), LAN)
    send(gw, sw, answer(records=((NAME, "A", "192.168.1.60", 60),)), WAN)
    assert sw.process(to("192.168.1.60", via=GW_MAC)).outputs == [WAN]
    assert sw.process(lan_host).dropped


def test_ttl_sets_the_idle_timeout_within_bounds_and_hosts_expire(home):
    gw, sw, t = home
    for qid, (ttl, want) in enumerate(((5, MIN_TTL), (86400, MAX_TTL), (300, 300)), 1):
        addr = f"93.184.216.{qid}"
        send(gw, sw, query(qid=qid), LAN)
        send(gw, sw, answer(qid=qid, records=((NAME, "A", addr, ttl),)), WAN)
        [rule] = [r for r in opened_rules(sw) if r.match["ipv4_dst"] == addr]
        assert (rule.idle_timeout, rule.hard_timeout) == (want, OPEN_SECONDS)
    t[0] += OPEN_SECONDS / 2                # sent again (a reconnect): the hard timeout left
    assert {r.hard_timeout for r in gw.devices.rules_for(DPID)
            if r.priority == QUARANTINE_OPEN_PRIORITY} == {OPEN_SECONDS // 2}
    t[0] += OPEN_SECONDS / 2
    assert gw.devices_view()["devices"][0]["opened_hosts"] == []


def test_hosts_are_bounded_per_device_the_oldest_closed_first(home):
    gw, sw, _t = home
    first = [f"93.184.{i // 200}.{i % 200 + 1}" for i in range(MAX_OPEN)]
    send(gw, sw, query(qid=1), LAN)
    send(gw, sw, answer(qid=1, records=[(NAME, "A", a, 600) for a in first]), WAN)
    assert len(opened_rules(sw)) == MAX_OPEN
    send(gw, sw, query(qid=2), LAN)
    send(gw, sw, answer(qid=2, records=((NAME, "A", OTHER, 600),)), WAN)
    assert len(opened_rules(sw)) == MAX_OPEN
    assert sw.process(to(OTHER)).outputs == [WAN]
    assert sw.process(to(first[0])).dropped                  # the oldest was closed
    assert sw.process(to(first[1])).outputs == [WAN]
    assert gw.metrics.switch(DPID).values("quarantine_hosts")[("evicted",)] == 1


def _hostile(rng: random.Random, valid: bytes) -> bytes:
    """A hostile answer payload: random bytes, a truncated valid answer, a valid answer
    with its section counts or question label lengths changed, or the valid header with
    random sections; the id and QR bit of the real answer (so that it reaches the
    parser). None of them is a well-formed answer to the question asked."""
    kind = rng.randrange(4)
    if kind == 0:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    elif kind == 1:
        body = valid[:rng.randrange(0, len(valid))]
    elif kind == 2:
        b = bytearray(valid)
        lengths = [12, 18, 25]                  # "cloud", "vendor", "example"
        for _ in range(rng.randrange(1, 4)):
            i = rng.choice(list(range(4, 12)) + lengths)
            b[i] = rng.choice([x for x in range(256) if x != b[i]])
        body = bytes(b)
    else:
        body = valid[:4] + bytes(rng.randrange(256) for _ in range(rng.randrange(8, 200)))
    return valid[:2] + bytes([valid[2] | 0x80]) + body[3:] if len(body) >= 3 else body


HANDMADE = [
    # header: id 0x1234, QR RD RA, qd 1, an 1; question NAME A IN, then the record
    "loop",          # an answer name that points at itself
    "forward",       # a pointer past the end of the message
    "counts",        # 65535 answers announced, one present
    "class",         # the record in class CH
    "qclass",        # the question in class CH
]


def _handmade(kind: str, valid: bytes) -> bytes:
    qend = 12 + len(DNSQR(qname=NAME, qtype="A"))
    head, question, rr = valid[:12], valid[12:qend], valid[qend:]
    if kind == "loop":
        return head + question + bytes([0xC0, qend]) + rr[2:]
    if kind == "forward":
        return head + question + b"\xc3\xff" + rr[2:]
    if kind == "counts":
        return head[:6] + b"\xff\xff" + head[8:] + question + rr
    if kind == "class":
        return head + question + rr[:4] + b"\x00\x03" + rr[6:]
    return head + question[:-2] + b"\x00\x03" + rr


def test_hostile_answers_never_raise_and_open_nothing(home):
    gw, sw, _t = home
    rng = random.Random(14)
    valid = bytes(answer()[UDP].payload)
    payloads = [_handmade(k, valid) for k in HANDMADE]
    payloads += [_hostile(rng, valid) for _ in range(400)]
    payloads = [p for p in payloads if p != valid]
    for i, p in enumerate(payloads):
        gw.devices.observe(DPID, LAN, bytes(query()), now=100.0 + i * 0.001)    # asked again
        msgs = gw.devices.observe(DPID, WAN, bytes(answer(payload=p)))    # raises: test fails
        assert [m for m in msgs if m.priority == QUARANTINE_OPEN_PRIORITY] == [], p
    assert gw.devices_view()["devices"][0]["opened_hosts"] == []
    counts = {r: v for (msg, r), v in dns_counts(gw).items() if msg == "answer"}
    assert sum(counts.values()) == len(payloads)            # each counted once
    assert set(counts) <= {"malformed", "unsolicited", "no_address"}, counts
    assert counts["malformed"] > len(payloads) // 2
    assert sw.process(to(SERVER)).dropped
    # hostile queries from the device: counted, never raised
    for _ in range(200):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
        frame = Ether(src=DEV, dst=GW_MAC) / IP(src=DEV_IP, dst=RESOLVER) \
            / UDP(sport=40000, dport=53) / body
        gw.devices.observe(DPID, LAN, bytes(frame))


def test_approval_deletes_the_opened_hosts(home):
    gw, sw, _t = home
    send(gw, sw, query(), LAN)
    send(gw, sw, answer(), WAN)
    assert opened_rules(sw)
    _view, out = gw.approve_device(DEV)
    sw.apply(out[DPID])
    assert not [r for r in sw.flows(0) if r.cookie == device_cookie(DEV)]
    assert gw.devices_view()["devices"][0]["opened_hosts"] == []
    assert sw.process(to(OTHER)).outputs == [WAN]


def test_without_allow_dns_named_nothing_is_copied_or_opened(home, tmp_path):
    gw, sw, _t = home
    send(gw, sw, query(), LAN)
    send(gw, sw, answer(), WAN)
    assert opened_rules(sw)
    (tmp_path / "p.yaml").write_text(POLICY.replace("{action: quarantine}", "{action: quarantine, allow_dns_named: false}"))
    ok, _msg, out = gw.reload_policy("test")
    assert ok
    sw.apply(out[DPID])
    assert not opened_rules(sw) and sw.process(to(SERVER)).dropped     # closed
    assert not send(gw, sw, query(qid=5), LAN).mirrored                 # no copy any more
    assert sw.process(fields(answer(qid=5), WAN)).outputs == [LAN]      # DNS still works
    assert not gw.devices.devices[DEV].dns_named


def test_dns_copies_are_kept_from_the_session_engine(home):
    """The adapter does not hand the engine what table 0 copied for the DNS of a
    quarantined device only (``DeviceTable.dns_copy`` on the packet-in's cookie)."""
    gw, _sw, _t = home
    assert gw.devices.dns_copy(device_cookie(DEV))
    assert not gw.devices.dns_copy(device_cookie("02:00:00:00:00:77"))
    assert not gw.devices.dns_copy(0x4547 << 48 | 5)          # a session rule's cookie


def test_opened_hosts_are_not_persisted(tmp_path):
    state = tmp_path / "devices.json"
    gw = Gateway(_conf(tmp_path, egw_device_state=str(state)))
    sw = _switch(gw)
    for msgs in gw.device_packet(DPID, LAN, bytes(device_frames(DEV, "camera")[0][1])).values():
        sw.apply(msgs)
    send(gw, sw, query(), LAN)
    send(gw, sw, answer(), WAN)
    assert opened_rules(sw)
    gw2 = Gateway(_conf(tmp_path, egw_device_state=str(state)))
    dev = gw2.devices_view()["devices"][0]
    assert dev["quarantined"] and dev["dns_named"] and dev["opened_hosts"] == []
    assert not [r for r in gw2.devices.rules_for(DPID)
                if r.priority == QUARANTINE_OPEN_PRIORITY]


@pytest.mark.skipif(not (DEVICE_MODEL / "labels.json").is_file(), reason="no device bundle")
def test_hosts_opened_while_identifying_stay_open_after_the_decision(tmp_path):
    """While the device model watches it, the opened rules copy to the controller too;
    decided (still unknown, still quarantined), they are sent again without the copy,
    with the hard timeout they have left."""
    t = [100.0]
    gw = Gateway(_conf(tmp_path, egw_device_model=str(DEVICE_MODEL)))
    gw.devices.clock = lambda: t[0]
    sw = _switch(gw)
    for msgs in gw.device_packet(DPID, LAN, bytes(device_frames(DEV, "camera")[0][1])).values():
        sw.apply(msgs)
    assert gw.devices.devices[DEV].state == "identifying"
    send(gw, sw, query(), LAN)
    send(gw, sw, answer(), WAN)
    v = sw.process(to(SERVER))
    assert v.outputs == [WAN] and v.mirrored              # open, and copied for the model
    t[0] += gw.devices.max_seconds + 1
    for msgs in gw.tick().values():
        sw.apply(msgs)
    dev = gw.devices_view()["devices"][0]
    assert (dev["state"], dev["type"], dev["quarantined"]) == ("identified", "unknown_device",
                                                               True)
    v = sw.process(to(SERVER))
    assert v.outputs == [WAN] and not v.mirrored
    [rule] = opened_rules(sw)
    assert rule.hard_timeout == OPEN_SECONDS - int(gw.devices.max_seconds + 1)
    assert sw.process(to(OTHER)).dropped
