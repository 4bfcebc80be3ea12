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


@dataclass
class MaskOptions:
    zero_addresses: bool = True
    zero_ip_id: bool = True
    zero_ttl: bool = True
    zero_checksums: bool = True
    zero_seq_ack: bool = True
    zero_flow_label: bool = True
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
