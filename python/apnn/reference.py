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


# ---- Convolution and the fused epilogue (apnn.h, "Convolution and fused epilogues") ----------


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv2d(x_codes, w_codes, *, x_bit, w_bit, x_encoding="unsigned", w_encoding="unsigned", x_zero_point=0,
           w_zero_point=0, stride=1, padding=0):
    """Direct convolution of NHWC codes x (N,H,W,C) with OHWC codes w (O,KH,KW,C), as int64.

    Padding pixels are the real value 0 (added after decoding, so no code or zero point leaks
    into them). Sums run in float64 BLAS: every partial sum is an integer of magnitude below
    KH*KW*C*max|x|*max|w| < 2^53, so the result is exact; it is returned as int64.
    """
    x = decode(x_codes, x_bit, x_encoding, x_zero_point)
    w = decode(w_codes, w_bit, w_encoding, w_zero_point)
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, h, wd, c = x.shape
    o, kh, kw, c2 = w.shape
    if c != c2:
        raise ValueError(f"x has {c} channels, w has {c2}")
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    xp = np.zeros((n, h + 2 * ph, wd + 2 * pw, c), dtype=np.float64)
    xp[:, ph:ph + h, pw:pw + wd, :] = x
    wf = w.astype(np.float64)
    y = np.zeros((n, oh, ow, o), dtype=np.float64)
    for a in range(kh):
        for b in range(kw):
            window = xp[:, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw, :]
            y += window @ wf[:, a, b, :].T
    return y.astype(np.int64)


def conv_epilogue(y, *, scale=None, bias=None, residual=None, residual_scale=1.0, activation="none", clip=(0.0, 0.0),
                  pool="none", pool_size=2, pool_stride=None, out=None):
    """The fused epilogue on conv results y (N,OH,OW,O integers), in float32 step by step.

    Each step rounds on its own to float32 (numpy float32 arithmetic is IEEE round-half-even):
      a = fl(fl(float32(y) * scale[o]) + bias[o]);  a = fl(a + fl(float32(r) * residual_scale))
      RELU: a > 0 ? a : 0;  CLIP: (a >= lo ? a : lo) then (a > hi ? hi : a)
      pool k x k, stride s, no padding: MAX (v > m ? v : m) / AVG (row-major float32 sum, / k*k)
      out=None: float32 values; out=(bits, encoding, zero_point, out_scale): codes (int32)
        binary: a >= 0 ? 1 : -1; else t = rint(fl(a / out_scale)), clamped into
        [lo - zp, hi - zp] (NaN -> lo - zp), code = t + zp.
    residual: integer real values (N,OH,OW,O) or None.
    """
    f32 = np.float32
    o = y.shape[-1]
    scale = np.ones(o, f32) if scale is None else np.asarray(scale, f32)
    bias = np.zeros(o, f32) if bias is None else np.asarray(bias, f32)
    a = np.asarray(y).astype(np.int32).astype(f32) * scale
    a = a + bias
    if residual is not None:
        a = a + np.asarray(residual).astype(np.int32).astype(f32) * f32(residual_scale)
    if activation == "relu":
        a = np.where(a > 0, a, f32(0))
    elif activation == "clip":
        lo, hi = f32(clip[0]), f32(clip[1])
        a = np.where(a >= lo, a, lo)
        a = np.where(a > hi, hi, a)
    elif activation != "none":
        raise ValueError(f"unknown activation {activation!r}")
    if pool != "none":
        k = int(pool_size)
        s = k if pool_stride is None else int(pool_stride)
        n, oh, ow, _ = a.shape
        ph, pw = (oh - k) // s + 1, (ow - k) // s + 1
        acc = None
        for i in range(k * k):
            v = a[:, i // k:i // k + s * (ph - 1) + 1:s, i % k:i % k + s * (pw - 1) + 1:s, :]
            if acc is None:
                acc = v.copy()
            elif pool == "max":
                acc = np.where(v > acc, v, acc)
            elif pool == "avg":
                acc = acc + v
            else:
                raise ValueError(f"unknown pool {pool!r}")
        a = acc / f32(k * k) if pool == "avg" else acc
    a = a.astype(f32)
    if out is None:
        return a
    bits, encoding, zero_point, out_scale = out
    if encoding == "binary":
        return np.where(a >= 0, 1, -1).astype(np.int32)
    lo, hi = code_range(bits, encoding)
    with np.errstate(invalid="ignore", over="ignore"):
        t = np.rint(a / f32(out_scale))
    tlo, thi = f32(lo - zero_point), f32(hi - zero_point)
    t = np.where(t >= tlo, t, tlo)
    t = np.where(t > thi, thi, t)
    return t.astype(np.int32) + np.int32(zero_point)
