"""Text formats of the Open Images CSVs: IDs, decimals and Clicks, one value at a time and vectorized.

The published challenge CSVs write:

* ``ImageID``: 16 lowercase hex characters (``677c122b0eaa5d16``); some are all digits and some start
  with zeros, which is why readers must keep them as strings.
* ``BoxID``: 8 lowercase hex characters.
* box coordinates: at most 6 decimals with trailing zeros dropped (``0.8875``, ``0.960938``, ``1``);
* ``PredictedIoU``: at most 5 decimals, trailing zeros dropped (``0.8025``);
* ``Clicks``: ``;``-separated ``x y label`` triples, x and y with exactly 5 decimals, label 0 or 1
  (``0.95498 0.65197 1;0.89370 0.56579 0``).

Values are quantized first (``q = round(x * 10**digits)``, an int) and the text is a function of the
int, so the per-value Python formatter and the vectorized numpy/pyarrow one agree byte for byte.
The vectorized forms build a ``uint8`` character matrix ``[N, width]`` plus a length per row and turn
it into a ``pyarrow.StringArray`` without a Python loop (2 M rows in well under a second).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_ZERO = ord("0")


# ------------------------------------------------------------------------------------ one value
def quantize(x: float | np.ndarray, digits: int) -> np.ndarray:
    """Values in [0, 1] -> int64 units of 10**-digits (round half to even, clipped to [0, 10**digits])."""
    scale = 10**digits
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * scale), 0, scale).astype(np.int64)


def format_decimal(q: int, digits: int) -> str:
    """A quantized value (int units of 10**-digits) as OID text: ``144531 -> '0.144531'``, ``887500 ->
    '0.8875'``, ``1000000 -> '1'``, ``0 -> '0'`` (digits=6)."""
    q = int(q)
    scale = 10**digits
    if not 0 <= q <= scale:
        raise ValueError(f"format_decimal: {q} is outside [0, {scale}]")
    text = f"{q // scale}.{q % scale:0{digits}d}".rstrip("0")
    return text.rstrip(".")


def format_clicks(xq: np.ndarray, yq: np.ndarray, labels: np.ndarray) -> str:
    """Clicks text of one mask from quantized 5-decimal x, y ([K] ints in [0, 100000]) and 0/1 labels."""
    return ";".join(
        f"{x // 100000}.{x % 100000:05d} {y // 100000}.{y % 100000:05d} {int(lab)}"
        for x, y, lab in zip(np.asarray(xq).tolist(), np.asarray(yq).tolist(), np.asarray(labels).tolist())
    )


# ----------------------------------------------------------------------------------- vectorized
def chars_to_strings(chars: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """A ``uint8 [N, W]`` character matrix and ``[N]`` lengths (<= W) -> ``pa.StringArray`` of the
    first ``lengths[i]`` characters of each row (ASCII)."""
    chars = np.ascontiguousarray(chars, dtype=np.uint8)
    lengths = np.asarray(lengths, dtype=np.int64)
    n, width = chars.shape
    if lengths.shape != (n,) or (lengths < 0).any() or (lengths > width).any():
        raise ValueError(f"chars_to_strings: lengths must be [{n}] within [0, {width}]")
    keep = np.arange(width)[None, :] < lengths[:, None]
    data = chars[keep]  # row-major: the kept characters of row 0, then row 1, ...
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)).cast(pa.string())


def hex_chars(values: np.ndarray, nchars: int) -> np.ndarray:
    """Unsigned ints ``[N]`` -> lowercase hex characters ``uint8 [N, nchars]`` (zero-padded, big end first)."""
    v = np.asarray(values, dtype=np.uint64)
    shifts = np.arange(nchars - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    nibbles = (v[:, None] >> shifts[None, :]) & np.uint64(15)
    return _HEX[nibbles.astype(np.intp)]


def hex_strings(values: np.ndarray, nchars: int) -> pa.Array:
    """Unsigned ints ``[N]`` -> ``pa.StringArray`` of ``nchars`` lowercase hex characters."""
    v = np.asarray(values)
    return chars_to_strings(hex_chars(v, nchars), np.full(len(v), nchars))


def decimal_chars(q: np.ndarray, digits: int, strip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Quantized values ``[N]`` (ints in [0, 10**digits]) -> characters ``uint8 [N, digits + 2]`` and
    lengths ``[N]``; the same text as :func:`format_decimal` when ``strip``, else fixed ``digits``
    decimals (``0.93290``)."""
    q = np.asarray(q, dtype=np.int64)
    scale = 10**digits
    if q.size and (q.min() < 0 or q.max() > scale):
        raise ValueError(f"decimal_chars: values outside [0, {scale}]")
    powers = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    frac = q % scale
    chars = np.empty((q.size, digits + 2), dtype=np.uint8)
    chars[:, 0] = _ZERO + q // scale
    chars[:, 1] = ord(".")
    fdig = (frac[:, None] // powers[None, :]) % 10
    chars[:, 2:] = _ZERO + fdig
    if not strip:
        return chars, np.full(q.size, digits + 2, dtype=np.int64)
    # Trailing zeros: the number of fractional digits to keep is the index of the last nonzero + 1.
    nz = fdig != 0
    last = np.where(nz.any(axis=1), digits - np.argmax(nz[:, ::-1], axis=1), 0)
    lengths = np.where(last == 0, 1, 2 + last)  # '0'/'1' alone when the fraction is zero
    return chars, lengths.astype(np.int64)


def decimal_strings(q: np.ndarray, digits: int, strip: bool = True) -> pa.Array:
    """Vectorized :func:`format_decimal` -> ``pa.StringArray``."""
    return chars_to_strings(*decimal_chars(q, digits, strip))


def clicks_strings(xq: np.ndarray, yq: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> pa.Array:
    """Vectorized :func:`format_clicks` for N masks with up to K clicks each.

    Args:
      xq, yq: int ``[N, K]`` quantized 5-decimal click coordinates in [0, 100000].
      labels: int ``[N, K]`` 0/1.
      counts: int ``[N]``, clicks actually used per row (0..K; 0 gives an empty string).
    """
    xq, yq, labels = (np.asarray(a, dtype=np.int64) for a in (xq, yq, labels))
    n, k = xq.shape
    xc, _ = decimal_chars(xq.reshape(-1), 5, strip=False)  # [N*K, 7]
    yc, _ = decimal_chars(yq.reshape(-1), 5, strip=False)
    one = np.empty((n * k, 18), dtype=np.uint8)  # "x.xxxxx y.yyyyy l;"
    one[:, 0:7] = xc
    one[:, 7] = ord(" ")
    one[:, 8:15] = yc
    one[:, 15] = ord(" ")
    one[:, 16] = _ZERO + labels.reshape(-1)
    one[:, 17] = ord(";")
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.maximum(counts * 18 - 1, 0)  # no ';' after the last click
    return chars_to_strings(one.reshape(n, k * 18), lengths)


def random_image_ids(
    rng: np.random.Generator, n: int, *, digit_fraction: float = 0.08, leading_zero_fraction: float = 0.08
) -> np.ndarray:
    """``n`` distinct random ImageIDs, ``uint8 [n, 16]`` characters, in random order.

    Most are uniform 64-bit hex; about ``digit_fraction`` are all decimal digits (``0457392018264830``)
    and about ``leading_zero_fraction`` start with one to four zeros, the two cases that break readers
    that let pandas guess dtypes.
    """
    out = np.empty((0, 16), dtype=np.uint8)
    while len(out) < n:
        m = (n - len(out)) + 16
        chars = hex_chars(rng.integers(0, 2**64, size=m, dtype=np.uint64), 16)
        kind = rng.random(m)
        digits = kind < digit_fraction
        chars[digits] = _ZERO + rng.integers(0, 10, size=(int(digits.sum()), 16), dtype=np.uint8)
        zeros = (kind >= digit_fraction) & (kind < digit_fraction + leading_zero_fraction)
        nzero = rng.integers(1, 5, size=m)
        chars[zeros[:, None] & (np.arange(16)[None, :] < nzero[:, None])] = _ZERO
        merged = np.concatenate([out, chars])
        # Keep the first occurrence of each ID, in draw order, so the result is deterministic.
        _, first = np.unique(merged.view("S16").reshape(-1), return_index=True)
        out = merged[np.sort(first)]
    return out[:n]


def ids_as_str(chars: np.ndarray) -> list[str]:
    """``uint8 [N, W]`` ASCII characters -> Python strings."""
    chars = np.ascontiguousarray(chars, dtype=np.uint8)
    return [s.decode("ascii") for s in chars.view(f"S{chars.shape[1]}").reshape(-1)]
