"""Raw packet sockets inside Mininet hosts' network namespaces.

A socket belongs to the namespace it was created in, even after the creating
thread switches back. So one process can hold an ``AF_PACKET`` socket in every
host of a topology and send (or receive) frames exactly as that host would:
this is what lets the replayer send both directions of a recorded session
from the right ends, in the recorded order, without one agent per host.
"""
from __future__ import annotations

import ctypes
import os
import socket
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def in_netns(pid: int):
    """Run the body in the network namespace of process ``pid`` (this thread only)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def packet_socket(pid: int, ifname: str, receive: bool = False) -> socket.socket:
    """An ``AF_PACKET`` raw socket bound to ``ifname`` in the namespace of ``pid``."""
    with in_netns(pid):
        # socket() takes the protocol in network byte order, bind() in host order.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                             socket.htons(ETH_P_ALL) if receive else 0)
        sock.bind((ifname, ETH_P_ALL if receive else 0))
    if receive:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setblocking(False)
    return sock
