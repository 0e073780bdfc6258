"""CRC-32C (Castagnoli), the checksum TensorFlow's checkpoint files carry (table blocks and tensor bytes), computed
with numpy so no compiled package is needed.

The raw CRC register (no initial value, no final xor) is linear over GF(2) in the data, so the register after a
lane of LANE bytes is the xor of each byte's own contribution: CONTRIB[k][b] is the register after byte b at offset
k followed by the rest of the lane as zeros. That turns a lane into one table gather and one xor-reduction, done for
many lanes at once; the lanes' registers are then joined with the "append n zero bytes" operator (also linear):
crc(a || b) = shift(crc(a), len(b)) ^ crc(b). The standard initial value 0xFFFFFFFF adds shift(0xFFFFFFFF, len).
A byte-at-a-time loop in Python checks ~5 MB/s; this checked 40 MB/s on 51 MB with the 2-core machine busy (load 9).
"""
from __future__ import annotations

import functools

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
LANE = 256  # bytes per lane
_ROWS = 1 << 13  # lanes gathered per numpy pass (bounds the temporaries: 8 bytes of index per data byte)


def _contributions() -> np.ndarray:
    out = np.empty((LANE, 256), np.uint32)
    cur = TABLE.copy()
    for k in range(LANE - 1, -1, -1):
        out[k] = cur
        cur = TABLE[cur & np.uint32(0xFF)] ^ (cur >> np.uint32(8))
    return out


CONTRIB = _contributions().ravel()
_OFFSETS = np.arange(LANE, dtype=np.intp) * 256


def _apply_bits(cols: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The linear map with these 32 column images applied to each uint32 in x (for small x)."""
    bits = (x[..., None] >> _BITS) & np.uint32(1)
    return np.bitwise_xor.reduce(np.where(bits.astype(bool), cols, np.uint32(0)), axis=-1).astype(np.uint32)


@functools.lru_cache(maxsize=64)
def _zeros_operator(n: int) -> np.ndarray:
    """Columns of the map 'raw register after n zero bytes' (square-and-multiply on the one-byte map)."""
    one = np.uint32(1) << _BITS
    one = TABLE[one & np.uint32(0xFF)] ^ (one >> np.uint32(8))
    result = np.uint32(1) << _BITS  # identity
    power = one
    while n:
        if n & 1:
            result = _apply_bits(power, result)
        n >>= 1
        if n:
            power = _apply_bits(power, power)
    return result


@functools.lru_cache(maxsize=64)
def _zeros_tables(n: int) -> np.ndarray:
    """The same map as four 256-entry tables, one per byte of the register (4 gathers per value)."""
    values = (np.arange(256, dtype=np.uint32)[None, :] << (np.uint32(8) * np.arange(4, dtype=np.uint32))[:, None])
    return _apply_bits(_zeros_operator(n), values)


def _shift(x: np.ndarray, n: int) -> np.ndarray:
    """Each raw register in x advanced over n zero bytes."""
    t = _zeros_tables(n)
    ff = np.uint32(0xFF)
    return t[0][x & ff] ^ t[1][(x >> np.uint32(8)) & ff] ^ t[2][(x >> np.uint32(16)) & ff] ^ t[3][x >> np.uint32(24)]


def _raw(data: np.ndarray, register: int = 0) -> int:
    """The raw register (no final xor) after feeding data byte by byte, starting from `register`."""
    r = register
    table = TABLE.tolist()
    for b in data.tolist():
        r = table[(r ^ b) & 0xFF] ^ (r >> 8)
    return r


def _lanes(rows: np.ndarray) -> np.ndarray:
    """The raw register of each row of a [lanes, LANE] uint8 array."""
    out = np.empty(rows.shape[0], np.uint32)
    for i in range(0, rows.shape[0], _ROWS):
        idx = rows[i:i + _ROWS].astype(np.intp) + _OFFSETS
        out[i:i + _ROWS] = np.bitwise_xor.reduce(CONTRIB[idx], axis=1)
    return out


def value(data) -> int:
    """CRC-32C of bytes-like data (initial value and final xor 0xFFFFFFFF, as crc32c::Value)."""
    a = np.frombuffer(memoryview(data).cast("B"), np.uint8)
    n = a.size
    if n < 4 * LANE:
        return _raw(a, 0xFFFFFFFF) ^ 0xFFFFFFFF
    pad = -n % LANE
    first = np.zeros((1, LANE), np.uint8)  # leading zero bytes leave a zero register unchanged
    first[0, pad:] = a[:LANE - pad]
    regs = np.concatenate([_lanes(first), _lanes(a[LANE - pad:].reshape(-1, LANE))])
    span = LANE
    while regs.size > 1:  # join neighbours: the left one shifted past the right one's bytes
        if regs.size & 1:
            regs = np.concatenate([np.zeros(1, np.uint32), regs])  # a zero register in front changes nothing
        regs = _shift(regs[0::2], span) ^ regs[1::2]
        span *= 2
    init = int(_shift(np.array([0xFFFFFFFF], np.uint32), n)[0])
    return int(regs[0]) ^ init ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    """crc32c::Mask: what the files store (a CRC of data that holds CRCs is otherwise weak)."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    rot = (masked - MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF
