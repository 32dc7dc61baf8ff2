"""Closing a listening socket without resetting the connections the kernel has queued on it (Linux).

The kernel completes TCP handshakes on a listening socket by itself and queues the
connections until a process accepts them; their clients send requests at once.
Closing the socket, or shutting it down, resets every connection still queued and
every handshake still in progress: those clients lose requests they have sent.
So a server stops in three steps:

1. :func:`stop_new_connections`: no new handshake begins. A client whose SYN is
   dropped sends it again (after 1 s, then 3 s, ...) and is refused once the
   socket is closed, like any client of a port nobody listens on.
2. Keep accepting, and serve what is accepted, until :func:`settled`.
3. Close the socket: nothing is left in it to reset.

Nothing here can see a handshake answered with a SYN cookie (only when the queue
of handshakes overflows, as in a SYN flood): one that completes after the close is
reset.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from asyncio.trsock import TransportSocket
from pathlib import Path

Listener = socket.socket | TransportSocket

# <asm-generic/socket.h>, not in Python's socket module: attaching a classic BPF
# program; the same number reads it back (SO_GET_FILTER).
SO_ATTACH_FILTER = 26
# A listener's struct tcp_info carries the length of its accept queue in tcpi_unacked.
_TCP_INFO_SIZE = 104
_TCPI_UNACKED_OFFSET = 24
# Where the kernel lists TCP sockets, handshakes in progress among them (state 03, SYN_RECV).
_PROC_NET_TCP = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_SYN_RECV = "03"

# The socket filter, run on every segment for the listener (with the data at the TCP
# header), handshakes in progress included: drop segments with SYN set, keep the
# rest. Dropping everything would also drop the ACKs that complete handshakes already
# answered, and the requests that follow them, which the close would then reset.
# Connections made from here on inherit the filter; they never see another SYN.
_DROP_SYN = (
    (0x30, 0, 0, 13),  # ldb [13]: the TCP flags
    (0x45, 0, 1, 0x02),  # jset #SYN: next instruction, else skip it
    (0x06, 0, 0, 0),  # ret #0: drop
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep all of it
)


def stop_new_connections(sock: Listener) -> None:
    """From now on the kernel drops SYNs to ``sock`` (for every process holding it): no handshake begins."""
    program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in _DROP_SYN))
    # struct sock_fprog: the number of instructions and their address; the kernel copies them.
    fprog = struct.pack("HP", len(_DROP_SYN), ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def new_connections_stopped(sock: Listener) -> bool:
    """Whether ``sock`` has a filter, as :func:`stop_new_connections` attaches (in this process or another)."""
    # The kernel answers with as many bytes as the program has instructions (none: b"").
    return bool(sock.getsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, 1024))


def settled(sock: Listener) -> bool:
    """Nothing is left to accept: no handshake in progress, and none completed but not accepted.

    Once new connections are stopped this stays true: closing ``sock`` resets nothing.
    The queue is looked at first, to spare the slow look at handshakes (tens of
    milliseconds: the kernel walks its whole table of connections) while connections
    still wait, and again last, for a handshake that completed meanwhile.
    """
    port = sock.getsockname()[1]
    return not _queued(sock) and not _handshakes_in_progress(port) and not _queued(sock)


def _handshakes_in_progress(port: int) -> int:
    """Handshakes answered (SYN-ACK sent) on ``port`` whose client has not answered yet."""
    suffix = f":{port:04X}"
    lines = [line for path in _PROC_NET_TCP if path.exists() for line in path.read_text().splitlines()[1:]]
    return sum(1 for fields in map(str.split, lines) if fields[1].endswith(suffix) and fields[3] == _SYN_RECV)


def _queued(sock: Listener) -> int:
    """Connections whose handshake is complete, waiting in the accept queue."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    return int(struct.unpack_from("I", info, _TCPI_UNACKED_OFFSET)[0])
