"""CRC-32C (Castagnoli), the checksum TensorFlow's checkpoint files carry (table blocks and tensor bytes), computed
with numpy so no compiled package is needed.

A byte-at-a-time loop in Python checks ~5 MB/s; here the data is cut into many lanes that advance together (one
table lookup per byte of every lane per numpy step), and the lanes' registers are joined with the GF(2) "append n
zero bytes" operator, which is linear: crc(a || b) = shift(crc(a), len(b)) ^ crc(b) for the raw register. The
standard initial value 0xFFFFFFFF is the raw CRC of the data plus shift(0xFFFFFFFF, len), by the same linearity.
"""
from __future__ import annotations

import numpy as np

POLY = 0x82F63B78  # reflected Castagnoli polynomial
MASK_DELTA = 0xA282EAD8  # TensorFlow's (and LevelDB's) crc32c::Mask


def _table() -> np.ndarray:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> np.uint32(1)) ^ np.uint32(POLY), t >> np.uint32(1)).astype(np.uint32)
    return t


TABLE = _table()
_BITS = np.arange(32, dtype=np.uint32)
_LANE_MIN = 256  # below this many bytes per lane the plain loop is as fast


def _apply(cols: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The linear map with these 32 column images applied to each uint32 in x."""
    bits = (x[..., None] >> _BITS) & np.uint32(1)
    return np.bitwise_xor.reduce(np.where(bits.astype(bool), cols, np.uint32(0)), axis=-1).astype(np.uint32)


def _zeros_operator(n: int) -> np.ndarray:
    """Columns of the map 'raw register after n zero bytes' (square-and-multiply on the one-byte map)."""
    one = np.array([_step_zero(np.uint32(1 << j)) for j in range(32)], np.uint32)
    result = np.uint32(1) << _BITS  # identity
    power = one
    while n:
        if n & 1:
            result = _apply(power, result)
        n >>= 1
        if n:
            power = _apply(power, power)
    return result


def _step_zero(r):
    r = np.uint32(r)
    return TABLE[int(r) & 0xFF] ^ (r >> np.uint32(8))


def _raw(data: np.ndarray, register: int = 0) -> int:
    """The raw register (no final xor) after feeding data, starting from `register`."""
    r = np.uint32(register)
    for b in data.tolist():
        r = TABLE[(int(r) ^ b) & 0xFF] ^ (r >> np.uint32(8))
    return int(r)


def value(data) -> int:
    """CRC-32C of bytes-like data (initial value and final xor 0xFFFFFFFF, as crc32c::Value)."""
    a = np.frombuffer(memoryview(data).cast("B"), np.uint8)
    n = a.size
    if n < 4 * _LANE_MIN:
        return _raw(a, 0xFFFFFFFF) ^ 0xFFFFFFFF
    lanes = max(4, min(4096, n // _LANE_MIN))
    length = -(-n // lanes)
    padded = np.zeros(lanes * length, np.uint8)
    padded[lanes * length - n:] = a  # leading zeros leave a zero register unchanged
    block = padded.reshape(lanes, length)
    regs = np.zeros(lanes, np.uint32)
    for j in range(length):
        regs = TABLE[(regs ^ block[:, j]) & np.uint32(0xFF)] ^ (regs >> np.uint32(8))
    span = length
    while regs.size > 1:  # join neighbours: left shifted past the right one's bytes
        if regs.size & 1:
            regs = np.concatenate([np.zeros(1, np.uint32), regs])  # a zero register in front changes nothing
        op = _zeros_operator(span)
        regs = _apply(op, regs[0::2]) ^ regs[1::2]
        span *= 2
    init = int(_apply(_zeros_operator(n), np.array([0xFFFFFFFF], np.uint32))[0])
    return (int(regs[0]) ^ init) ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    """crc32c::Mask: what the files store (a CRC of data that holds CRCs is otherwise weak)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    rot = (masked - MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF
