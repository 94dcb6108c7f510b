"""The independent numpy oracle: decode codes to integers and multiply in int64.

It shares no code with libapnn: no bit-planes, no packing, just the definition of each
encoding, so a test that compares the library with it can fail.
"""
import numpy as np

_RANGES = {
    "unsigned": lambda b: (0, 2**b - 1),
    "signed": lambda b: (-(2 ** (b - 1)), 2 ** (b - 1) - 1),
    "binary": lambda b: (-1, 1),
}


def code_range(bits, encoding):
    """(lowest, highest) code of `bits` bits in `encoding`."""
    if encoding == "binary" and bits != 1:
        raise ValueError("binary codes have 1 bit")
    return _RANGES[encoding](bits)


def decode(codes, bits, encoding, zero_point=0):
    """The real integer values of the codes, as int64: value - zero_point."""
    c = np.asarray(codes).astype(np.int64)
    lo, hi = code_range(bits, encoding)
    if encoding == "binary":
        if not np.isin(c, (-1, 1)).all():
            raise ValueError("binary codes must be -1 or +1")
    elif c.size and (c.min() < lo or c.max() > hi):
        raise ValueError(f"codes outside {lo}..{hi}")
    return c - zero_point


def gemm(x_codes, w_codes, *, x_bit, w_bit, x_encoding="unsigned", w_encoding="unsigned", x_zero_point=0,
         w_zero_point=0):
    """(X - zx) @ (W - zw).T in int64."""
    x = decode(x_codes, x_bit, x_encoding, x_zero_point)
    w = decode(w_codes, w_bit, w_encoding, w_zero_point)
    return x @ w.T


def random_codes(rng, shape, bits, encoding):
    """Uniform random codes of (bits, encoding)."""
    if encoding == "binary":
        return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)
    lo, hi = code_range(bits, encoding)
    dtype = np.uint8 if encoding == "unsigned" else np.int8
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)
