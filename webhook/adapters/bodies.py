"""Read an HTTP body with a cap on its *decoded* size, so a compressed answer cannot balloon.

What: ``read_capped(response, cap)`` returns the body of a streamed ``httpx.Response`` after
``Content-Encoding`` is undone, or raises ``TooLargeError`` as soon as more than ``cap`` decoded
bytes would exist, or ``UnsupportedEncodingError`` for an encoding it does not decode.

Why: httpx's own decoders (``httpx._decoders``) inflate each network chunk in full: a 64 KiB chunk
of a gzip "bomb" becomes ~64 MiB in one call before any caller can count it, and registries, token
servers and whatever they redirect to are not trusted (issue 10). pullguard asks for
``Accept-Encoding: identity`` (``IDENTITY``); a server that compresses anyway is decoded here with
zlib's ``max_length``, which never produces more than what is asked for (Python ``zlib``
``Decompress.decompress(data, max_length)``, leftovers in ``unconsumed_tail``). gzip and zlib
"deflate" are accepted (RFC 9110 8.4.1); anything else (br, zstd, stacked encodings) is refused,
not guessed at.

What not: no timeouts (the callers bound the whole exchange), no charset handling.
"""

from __future__ import annotations

import zlib

import httpx

__all__ = ["IDENTITY", "TooLargeError", "UnsupportedEncodingError", "read_capped"]

#: The request header that asks for an uncompressed answer.
IDENTITY = {"Accept-Encoding": "identity"}
_ZLIB_OR_GZIP = zlib.MAX_WBITS | 32  # zlib's automatic header detection: gzip or zlib-wrapped deflate


class TooLargeError(Exception):
    """The decoded body would exceed the cap."""


class UnsupportedEncodingError(Exception):
    """A ``Content-Encoding`` pullguard does not decode; ``str()`` names it."""


async def read_capped(response: httpx.Response, cap: int) -> bytes:
    """The decoded body of the streamed ``response``, at most ``cap`` bytes (``TooLargeError`` beyond)."""
    codings = [
        c.strip().lower() for c in response.headers.get("content-encoding", "").split(",") if c.strip()
    ]
    codings = [c for c in codings if c != "identity"]
    if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
        raise UnsupportedEncodingError(", ".join(codings)[:80])
    body = bytearray()
    inflater = zlib.decompressobj(_ZLIB_OR_GZIP) if codings else None
    try:
        async for chunk in response.aiter_raw():
            if inflater is None:
                body += chunk
                if len(body) > cap:
                    raise TooLargeError
                continue
            data = chunk
            while data:
                body += inflater.decompress(data, cap + 1 - len(body))
                if len(body) > cap:
                    raise TooLargeError
                data = inflater.unconsumed_tail
        if inflater is not None:
            body += inflater.flush()
            if len(body) > cap:
                raise TooLargeError
    except zlib.error as exc:
        raise UnsupportedEncodingError(f"{codings[0]} that does not decode ({exc})") from None
    return bytes(body)
