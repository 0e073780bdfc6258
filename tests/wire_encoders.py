"""Protobuf wire-format encoders for tests that write ONNX bytes onnx's own writer would not (damaged files,
unusual but valid encodings)."""


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def tag(number, wire) -> bytes:
    return varint(number << 3 | wire)


def ld(number, payload: bytes) -> bytes:
    """A length-delimited field: a message, bytes or a packed repeated field."""
    return tag(number, 2) + varint(len(payload)) + payload
