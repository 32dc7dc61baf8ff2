"""IPA framing, as Osmocom programs speak it on their CTRL and GSUP ports.

Every Osmocom TCP interface we talk to (osmo-hlr's CTRL on 4259, GSUP on 4222)
wraps its payload in the ip.access "IPA" multiplex header: a 2-byte big-endian
payload length, then a 1-byte stream id. Osmocom's own protocols ride on the
OSMO extension stream (0xEE), whose payload starts with one more byte naming the
protocol (CTRL = 0x00, GSUP = 0x05). Stream 0xFE is CCM, the link's own
housekeeping: keep-alive PING/PONG and the identity exchange (ID_GET/ID_RESP/
ID_ACK) with which a peer names itself.

This module only frames and unframes; it knows nothing of what CTRL or GSUP
say. ``IpaConnection`` answers CCM by itself so that callers see only the
OSMO-stream messages they asked for: a peer that pings us, or asks who we are,
must get an answer or it drops the link.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Container, Mapping
from dataclasses import dataclass

STREAM_OSMO = 0xEE
STREAM_CCM = 0xFE

EXT_CTRL = 0x00
EXT_GSUP = 0x05

CCM_PING = 0x00
CCM_PONG = 0x01
CCM_ID_GET = 0x04
CCM_ID_RESP = 0x05
CCM_ID_ACK = 0x06

# Identity tags of a CCM ID_GET/ID_RESP. osmo-hlr's GSUP server asks for the
# unit name but routes (and records the VLR/SGSN) by the *serial number* tag,
# so a client that wants to be known by a name sends that name in both.
IDTAG_SERNR = 0x00
IDTAG_UNITNAME = 0x01
IDTAG_LOCATION = 0x02
IDTAG_TYPE = 0x03
IDTAG_EQUIPVERS = 0x04
IDTAG_SWVERSION = 0x05
IDTAG_UNIT = 0x08

# The length field is 16 bits; nothing Osmocom sends comes near it, but a peer
# that claims more than this is not speaking IPA at all.
MAX_PAYLOAD = 0xFFFF
_HEADER = struct.Struct(">HB")


class IpaError(Exception):
    """The bytes on the link are not a well-formed IPA message."""


@dataclass(frozen=True, slots=True)
class IpaMessage:
    """One unframed message.

    ``ext`` is the OSMO extension id (CTRL, GSUP, …) when ``stream`` is the OSMO
    stream, else None; ``payload`` excludes the extension byte.
    """

    stream: int
    payload: bytes
    ext: int | None = None


def encode(stream: int, payload: bytes, ext: int | None = None) -> bytes:
    """Frame ``payload`` (prefixing the extension byte when ``ext`` is given)."""
    body = payload if ext is None else bytes((ext,)) + payload
    if len(body) > MAX_PAYLOAD:
        raise IpaError(f"IPA payload of {len(body)} bytes does not fit the 16-bit length")
    return _HEADER.pack(len(body), stream) + body


async def read_message(reader: asyncio.StreamReader, streams: Container[int] | None = None) -> IpaMessage:
    """Read exactly one message.

    Raises ``asyncio.IncompleteReadError`` when the peer closes (also mid-frame)
    and ``IpaError`` when the frame cannot be IPA: an OSMO-stream frame without
    its extension byte, or — checked straight after the header, before waiting
    for a body that a non-IPA peer never meant to announce — a stream id not in
    ``streams``.
    """
    header = await reader.readexactly(_HEADER.size)
    length, stream = _HEADER.unpack(header)
    if streams is not None and stream not in streams:
        raise IpaError(f"unexpected IPA stream id 0x{stream:02x}")
    body = await reader.readexactly(length)
    if stream == STREAM_OSMO:
        if not body:
            raise IpaError("OSMO-stream IPA message without its extension byte")
        return IpaMessage(stream=stream, ext=body[0], payload=body[1:])
    return IpaMessage(stream=stream, payload=body)


def encode_id_resp(identity: Mapping[int, str]) -> bytes:
    """A CCM ID_RESP payload (message type included) carrying ``identity``.

    Each entry is a 2-byte length (value plus tag), the tag, and the value as a
    NUL-terminated string: osmo-hlr binds the value into SQL as a C string, so
    the terminator is what keeps the stored name exact.
    """
    out = bytearray((CCM_ID_RESP,))
    for tag, value in identity.items():
        raw = value.encode("ascii") + b"\x00"
        out += struct.pack(">HB", len(raw) + 1, tag) + raw
    return bytes(out)


def identity(name: str) -> dict[int, str]:
    """The ID_RESP entries that make an Osmocom IPA server accept us as ``name``.

    libosmo-abis drops a peer whose ID_RESP lacks the unit id tag (a
    "site/bts/trx" triple; "0/0/0" for anything that is not a BTS), and
    osmo-hlr's GSUP server names the peer by its serial number tag.
    """
    return {IDTAG_SERNR: name, IDTAG_UNITNAME: name, IDTAG_UNIT: "0/0/0"}


def parse_id_resp(payload: bytes) -> dict[int, str]:
    """Decode an ID_RESP payload (without the message type) into tag → value."""
    result: dict[int, str] = {}
    pos = 0
    while pos + 3 <= len(payload):
        (t_len,) = struct.unpack_from(">H", payload, pos)
        tag = payload[pos + 2]
        value = payload[pos + 3 : pos + 2 + t_len]
        result[tag] = value.rstrip(b"\x00").decode("ascii", "replace")
        pos += 2 + max(t_len, 1)
    return result


class IpaConnection:
    """One IPA link that keeps the CCM side of the conversation by itself.

    ``recv`` returns OSMO-stream messages only; on the way it answers PING with
    PONG and ID_GET with an ID_RESP naming us ``unit_name`` (see ``identity``),
    and notes ID_ACK. Any other stream id is an
    ``IpaError``: an Osmocom CTRL or GSUP server sends nothing else, so another
    id means the peer is not speaking IPA (random bytes read as a header almost
    always give one), and failing at once beats waiting for a length that was
    never meant as one. Nothing here times out: callers wrap calls in their own
    deadline.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        unit_name: str = "numlookup",
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.unit_name = unit_name
        self.identified = False
        """True once the peer has acknowledged our identity (CCM ID_ACK)."""

    @classmethod
    async def open(cls, host: str, port: int, unit_name: str = "numlookup") -> IpaConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, unit_name)

    async def send(self, ext: int, payload: bytes) -> None:
        """Send ``payload`` on the OSMO stream under extension ``ext``."""
        self.writer.write(encode(STREAM_OSMO, payload, ext))
        await self.writer.drain()

    async def recv(self) -> IpaMessage:
        """The next OSMO-stream message, answering CCM traffic in between."""
        while True:
            msg = await read_message(self.reader, (STREAM_OSMO, STREAM_CCM))
            if msg.stream == STREAM_OSMO:
                return msg
            await self._handle_ccm(msg.payload)

    async def _handle_ccm(self, payload: bytes) -> None:
        if not payload:
            raise IpaError("empty IPA CCM message")
        kind = payload[0]
        if kind == CCM_PING:
            self.writer.write(encode(STREAM_CCM, bytes((CCM_PONG,))))
            await self.writer.drain()
        elif kind == CCM_ID_GET:
            self.writer.write(encode(STREAM_CCM, self._id_resp()))
            await self.writer.drain()
        elif kind == CCM_ID_ACK:
            self.identified = True

    def _id_resp(self) -> bytes:
        return encode_id_resp(identity(self.unit_name))

    async def close(self) -> None:
        """Close the link; a peer that already went away is not an error here."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
