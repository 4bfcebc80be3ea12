"""Masking of shortcut features (fields that identify a capture, not an application).

Each switch is on by default except ``zero_ports``. Applied to the IP packet
(the link layer is always gone: vectors start at the IP header, so MAC
addresses, VLAN tags and cooked headers never reach a model):

- ``zero_addresses``: IPv4/IPv6 source and destination addresses;
- ``zero_ip_id``: IPv4 identification;
- ``zero_ttl``: IPv4 TTL / IPv6 hop limit;
- ``zero_checksums``: IPv4 header, TCP and UDP checksums;
- ``zero_seq_ack``: TCP sequence and acknowledgement numbers;
- ``zero_flow_label``: IPv6 flow label;
- ``zero_tcp_option_counters``: the values of TCP options that carry per-host
  counters or secrets: timestamps (TSval/TSecr), SACK block edges (they are
  sequence numbers), TCP Fast Open cookies and MD5/AO signatures. Option kinds
  and lengths stay, so "this stack sends timestamps" is still visible; the
  counters themselves identify a host and its uptime, not an application;
- ``zero_ports``: TCP/UDP ports (off by default: well-known server ports are
  application information, but they are also a shortcut: switch on to test);
- ``pad_udp``: 12 zero bytes after the 8-byte UDP header so it is 20 bytes like
  a TCP header without options (Deep Packet), so header length alone does not
  give the protocol away.
"""
from __future__ import annotations

from dataclasses import dataclass

from classifier.packets import PROTO_TCP, PROTO_UDP, PacketView

UDP_PAD = 12

# TCP option kinds whose value is a per-host counter or secret (RFC 7323 timestamps,
# RFC 2018 SACK edges, RFC 7413 Fast Open cookie, RFC 2385 MD5, RFC 5925 TCP-AO).
TCPOPT_EOL, TCPOPT_NOP, TCPOPT_SACK, TCPOPT_TIMESTAMP = 0, 1, 5, 8
TCPOPT_MD5, TCPOPT_AO, TCPOPT_FASTOPEN = 19, 29, 34
COUNTER_OPTIONS = (TCPOPT_SACK, TCPOPT_TIMESTAMP, TCPOPT_MD5, TCPOPT_AO, TCPOPT_FASTOPEN)


def tcp_options(b, start: int, end: int):
    """Walk the TCP options in ``b[start:end]``: yield ``(kind, offset, length)`` (offset of
    the kind byte; length including kind and length bytes). Stops at EOL or at a
    malformed option (length < 2 or past the header), never raises."""
    i = start
    while i < end:
        kind = b[i]
        if kind == TCPOPT_EOL:
            return
        if kind == TCPOPT_NOP:
            yield kind, i, 1
            i += 1
            continue
        if i + 1 >= end:
            return
        ln = b[i + 1]
        if ln < 2 or i + ln > end:
            return
        yield kind, i, ln
        i += ln


def tcp_option_counter_spans(b, start: int, end: int) -> list[tuple[int, int]]:
    """Byte ranges (absolute, end exclusive) of counter-carrying option values in the TCP
    options ``b[start:end]``; the kind and length bytes are not included."""
    return [(off + 2, off + ln) for kind, off, ln in tcp_options(b, start, end)
            if kind in COUNTER_OPTIONS and ln > 2]


@dataclass
class MaskOptions:
    zero_addresses: bool = True
    zero_ip_id: bool = True
    zero_ttl: bool = True
    zero_checksums: bool = True
    zero_seq_ack: bool = True
    zero_flow_label: bool = True
    zero_tcp_option_counters: bool = True
    zero_ports: bool = False
    pad_udp: bool = True


def mask_packet(pv: PacketView, opts: MaskOptions) -> bytes:
    """Masked IP packet bytes (IP header + transport header (+UDP pad) + payload)."""
    b = bytearray(pv.ip[:pv.length])
    if pv.version == 4:
        if opts.zero_addresses:
            b[12:20] = bytes(8)
        if opts.zero_ip_id:
            b[4:6] = b"\0\0"
        if opts.zero_ttl:
            b[8] = 0
        if opts.zero_checksums:
            b[10:12] = b"\0\0"
    else:
        if opts.zero_addresses:
            b[8:40] = bytes(32)
        if opts.zero_ttl:
            b[7] = 0
        if opts.zero_flow_label:
            b[1] &= 0xF0
            b[2:4] = b"\0\0"
    t = pv.ip_header_len
    if pv.proto == PROTO_TCP and pv.transport_header_len:
        if opts.zero_ports:
            b[t:t + 4] = bytes(4)
        if opts.zero_seq_ack:
            b[t + 4:t + 12] = bytes(8)
        if opts.zero_checksums:
            b[t + 16:t + 18] = b"\0\0"
        if opts.zero_tcp_option_counters and pv.transport_header_len > 20:
            for start, end in tcp_option_counter_spans(b, t + 20, t + pv.transport_header_len):
                b[start:end] = bytes(end - start)
    elif pv.proto == PROTO_UDP and pv.transport_header_len:
        if opts.zero_ports:
            b[t:t + 4] = bytes(4)
        if opts.zero_checksums:
            b[t + 6:t + 8] = b"\0\0"
        if opts.pad_udp:
            b[t + 8:t + 8] = bytes(UDP_PAD)
    return bytes(b)


def header_length(pv: PacketView, opts: MaskOptions) -> int:
    """Bytes of IP + transport header in the masked packet (UDP padding included)."""
    n = pv.payload_offset
    if pv.proto == PROTO_UDP and pv.transport_header_len and opts.pad_udp:
        n += UDP_PAD
    return n
