"""apnn.gemm: the exact arbitrary-precision GEMM on numpy arrays of integer codes."""
from .core import default_context


def gemm(x_codes, w_codes, *, x_bit, w_bit, x_encoding="unsigned", w_encoding="unsigned", x_zero_point=0,
         w_zero_point=0, backend="auto", context=None):
    """Y = (X - zx) @ (W - zw).T exactly as int32.

    x_codes: M x K integer codes of x_bit bits (activations); w_codes: N x K codes of w_bit bits
    (weights). Encodings: 'unsigned' (0..2^b-1), 'signed' (two's complement), 'binary' (b = 1,
    codes -1/+1). Raises apnn.ApnnError subclasses on bad input.
    """
    ctx = context or default_context(backend)
    x = ctx.pack(x_codes, x_bit, x_encoding, x_zero_point)
    w = ctx.pack(w_codes, w_bit, w_encoding, w_zero_point)
    return ctx.gemm(x, w)
