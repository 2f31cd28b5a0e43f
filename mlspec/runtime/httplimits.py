"""Limits and request-body codings of mlspec's HTTP/1.1 server, enforced while a request is parsed."""

from __future__ import annotations

import zlib

# Like nginx's large_client_header_buffers (4 x 8k) and uvicorn's h11 (a 64 KiB head): a client that sends more
# is refused at once, whatever it is still sending, and nothing of it is buffered beyond these bounds.
MAX_URL = 8 * 1024  # request target (path and query): 414 beyond
MAX_HEADER_LINE = 8 * 1024  # one header's name and value: 431 beyond
MAX_HEADERS = 100  # header fields per request: 431 beyond
MAX_HEAD = 64 * 1024  # the whole head (request line and headers): 431 beyond
HEAD_TIMEOUT_S = 10.0  # a started head must be complete this long after it began (slowloris): 408 beyond
LINGER_S = 2.0  # after a refusal, what the client still sends is read and dropped this long so it sees the answer

_DECODERS = {b"gzip": 16 + zlib.MAX_WBITS, b"x-gzip": 16 + zlib.MAX_WBITS, b"deflate": zlib.MAX_WBITS}


class CodingError(Exception):
    """A request body that cannot be decoded: `status` is 415 (an unknown coding), 413 or 400."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_coding(value: bytes) -> bytes:
    """The Content-Encoding's coding, lower-cased; CodingError(415) for one this server does not decode."""
    coding = value.strip().lower()
    if coding not in _DECODERS and coding != b"identity":
        raise CodingError(415, f"content-encoding {coding.decode('latin-1')!r} is not supported; send gzip, deflate "
                               "or none")
    return coding


def decode(coding: bytes, body: bytes, limit: int) -> bytes:
    """The body decoded, refused (413) as soon as its decoded size passes `limit`: a small bomb never inflates."""
    if coding == b"identity":
        return body
    try:
        return _inflate(_DECODERS[coding], body, limit)
    except zlib.error as error:
        if coding == b"deflate":  # some clients send raw deflate, without zlib's header
            try:
                return _inflate(-zlib.MAX_WBITS, body, limit)
            except zlib.error:
                pass
        raise CodingError(400, f"the {coding.decode()} body cannot be decoded: {error}") from None


def _inflate(wbits: int, body: bytes, limit: int) -> bytes:
    decoder = zlib.decompressobj(wbits)
    decoded = decoder.decompress(body, limit + 1)
    if len(decoded) <= limit and not decoder.unconsumed_tail:
        decoded += decoder.flush()
    if len(decoded) > limit or decoder.unconsumed_tail:
        raise CodingError(413, f"the decoded request body is over the limit of {limit} bytes")
    if not decoder.eof:
        raise zlib.error("the compressed stream is truncated")
    return decoded
