"""HTTP/1.1 header blocks as bytes, for the router and its upstream client.

Why bytes: a proxy mostly copies headers. Turning each one into a pair of ``str`` (one Python
callback per header from the parser, two decodes, a tuple, a lowercase copy) and back into
bytes cost the router more per request than the routing; here a header block stays the bytes
it arrived as, the hop-by-hop lines are cut out by one regular expression (C), and the few
values the router reads are found the same way. llhttp (``httptools``) still validates every
message; these helpers only slice what it accepted.

A *field block* is a message's header lines exactly as on the wire, each led by its CRLF:
what lies between the start line and the final empty line (``head[first CRLF : -4]``). Led by
CRLF, every line is findable as ``\\r\\n<name>:``, which lets a pattern start with a literal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

Headers = list[tuple[str, str]]

#: Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the proxy sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)

#: Largest request head (start line + headers) taken: larger is a 431.
MAX_HEAD_BYTES = 64 * 1024
_FOLD = re.compile(rb"\r\n[ \t]+")


def lines_named(names: Iterable[str]) -> re.Pattern[bytes]:
    """The lines of a field block named one of ``names`` (any case). ``split`` gives [kept,
    name, value, kept, name, value, …, kept]: one C call cuts them out and hands over their
    names and values (an obsolete continuation line, RFC 9112 §5.2, stays with its value)."""
    alternatives = b"|".join(re.escape(name.lower().encode("latin-1")) for name in sorted(names))
    return re.compile(
        rb"\r\n(" + alternatives + rb"):[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.IGNORECASE
    )


def cut(pattern: re.Pattern[bytes], block: bytes) -> tuple[bytes, list[bytes], list[bytes]]:
    """``block`` without the lines ``pattern`` (from :func:`lines_named`) finds, and those
    lines' names and values (trailing whitespace kept)."""
    pieces = pattern.split(block)
    return b"".join(pieces[0::3]), pieces[1::3], pieces[2::3]


def parse_fields(block: bytes) -> Headers:
    """A field block → (name, value) pairs as received (repeats kept, continuation lines
    joined with a space)."""
    out: Headers = []
    for line in _FOLD.sub(b" ", block).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        out.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return out


def render_fields(headers: Iterable[tuple[str, str]]) -> bytes:
    """(name, value) pairs → a field block."""
    return "".join(f"\r\n{name}: {value}" for name, value in headers).encode("latin-1")


def split_head(head: bytes) -> tuple[bytes, bytes]:
    """A message head (start line, fields, empty line) → (start line, field block)."""
    first = head.find(b"\r\n")
    return head[:first], head[first:-4]


class ChunkedBody:
    """Finds where a chunked body ends in a growing buffer, and its content; resumable, so a
    body arriving in many reads is scanned once. Positions are kept relative to the body's
    first byte, so the buffer may lose what lies before it between calls."""

    __slots__ = ("pos", "pieces", "size", "in_trailers", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pos = 0  # next unread byte, from the body's start
        self.pieces: list[bytes] = []
        self.size = 0
        self.in_trailers = False

    def end(self, buf: bytes | bytearray, base: int) -> int | None:
        """The offset in ``buf`` just past the body that starts at ``base``, or None while
        it is incomplete. Raises ValueError on a chunk size that is not hexadecimal,
        OverflowError when the chunks add up to more than ``limit`` bytes (before waiting
        for them)."""
        pos = base + self.pos
        while not self.in_trailers:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";", 1)[0].strip(b" \t"), 16)
            data = line_end + 2
            if size == 0:
                self.in_trailers = True
                pos = data
                self.pos = pos - base
                break
            if self.size + size > self.limit:
                raise OverflowError(f"chunked body over {self.limit} bytes")
            if len(buf) < data + size + 2:
                return None
            self.pieces.append(bytes(buf[data : data + size]))
            self.size += size
            pos = data + size + 2
            self.pos = pos - base
        while True:  # trailer lines up to the empty one
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            empty = line_end == pos
            pos = line_end + 2
            self.pos = pos - base
            if empty:
                return pos

    @property
    def content(self) -> bytes:
        return b"".join(self.pieces)
