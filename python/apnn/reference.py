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
           w_zero_point=0, stride=1, padding=0, groups=1):
    """Direct convolution of NHWC codes x (N,H,W,C) with OHWC codes w (O,KH,KW,C/groups), as int64.

    Padding pixels are the real value 0 (added after decoding, so no code or zero point leaks
    into them). Sums run in float64 BLAS: every partial sum is an integer of magnitude below
    KH*KW*C*max|x|*max|w| < 2^53, so the result is exact; it is returned as int64. groups > 1:
    output o reads input channels g*C/G .. (g+1)*C/G - 1 of its group g = o // (O/G).
    """
    if groups > 1:
        c, o = np.shape(x_codes)[-1], np.shape(w_codes)[0]
        cg, og = c // groups, o // groups
        parts = [conv2d(np.asarray(x_codes)[..., g * cg:(g + 1) * cg], np.asarray(w_codes)[g * og:(g + 1) * og],
                        x_bit=x_bit, w_bit=w_bit, x_encoding=x_encoding, w_encoding=w_encoding,
                        x_zero_point=x_zero_point, w_zero_point=w_zero_point, stride=stride, padding=padding)
                 for g in range(groups)]
        return np.concatenate(parts, axis=-1)
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


# ---- Whole networks (apnn.h, "Networks") ------------------------------------------------------


def quantize(values, scale, bits, encoding, zero_point=0):
    """Float values -> codes with the epilogue's step-5 rule (network inputs, float weights):
    binary: v >= 0 ? 1 : -1; else t = rint(fl32(v / scale)) clamped into [lo - zp, hi - zp], + zp."""
    a = np.asarray(values, dtype=np.float32)
    if encoding == "binary":
        return np.where(a >= 0, 1, -1).astype(np.int32)
    lo, hi = code_range(bits, encoding)
    with np.errstate(invalid="ignore", over="ignore"):
        t = np.rint(a / np.float32(scale))
    t = np.where(t >= np.float32(lo - zero_point), t, np.float32(lo - zero_point))
    t = np.where(t > np.float32(hi - zero_point), np.float32(hi - zero_point), t)
    return t.astype(np.int32) + np.int32(zero_point)


def threshold_codes(y, thresholds, *, bits, encoding, descending=None, residual_levels=None):
    """Codes from integer thresholds on y (apnn.h, "Threshold epilogues"), in int64.

    y: N x OH x OW x O integers; thresholds: R x O x L (L = 2^bits - 1, 1 for binary), rows
    non-decreasing; descending: None or O flags; residual_levels: None (R = 1) or the residual's
    level (code - lowest code) per element, which picks the table.
    level = #{k : y >= T[k]} (ascending) or #{k : y < T[k]} (descending); code = lowest + level.
    """
    y = np.asarray(y).astype(np.int64)
    t = np.asarray(thresholds).astype(np.int64)
    if residual_levels is None:
        table = np.broadcast_to(t[0], y.shape + t.shape[-1:])
    else:  # per element, the table of its residual level: (..., O, L)
        table = t[np.asarray(residual_levels), np.arange(t.shape[1])]
    count = (y[..., None] >= table).sum(axis=-1)
    if descending is not None:
        down = np.asarray(descending).astype(bool)
        count = np.where(down, table.shape[-1] - count, count)
    if encoding == "binary":
        return (2 * count - 1).astype(np.int64)
    return count + code_range(bits, encoding)[0]


def max_pool_codes(codes, kernel, stride, padding):
    """k x k max pooling of NHWC codes with padding pixels ignored (codes order like values)."""
    c = np.asarray(codes).astype(np.int64)
    n, h, w, ch = c.shape
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    low = np.iinfo(np.int64).min
    xp = np.full((n, h + 2 * padding, w + 2 * padding, ch), low, dtype=np.int64)
    xp[:, padding:padding + h, padding:padding + w, :] = c
    out = np.full((n, oh, ow, ch), low, dtype=np.int64)
    for a in range(kernel):
        for b in range(kernel):
            out = np.maximum(out, xp[:, a:a + stride * (oh - 1) + 1:stride, b:b + stride * (ow - 1) + 1:stride, :])
    return out


def network(specs, params, x, *, input_scale=1.0):
    """A whole network, layer by layer, in exact integer math plus the documented float epilogue.

    specs: the layer dicts of apnn.Network.specs (index = layer id; specs[0] is the input with
    bits / encoding / zero_point); params: {id: dict(values, kind 'codes' | 'float',
    weight_scale, scale, bias)}; x: N x H x W x C codes (integers) or float32 values (quantized
    with input_scale). Returns the last layer's output: float32 values, int32 raw sums, or int32
    codes for a packed output. Max pools run on codes after requantization (the library may fuse
    them into the epilogue before it; requantization is monotonic, so the results are the same).
    """
    inp = specs[0]
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.floating):
        codes = quantize(x, input_scale, inp["bits"], inp["encoding"], inp["zero_point"])
    else:
        codes = x.astype(np.int64)
    acts = {0: (codes, (inp["bits"], inp["encoding"], inp["zero_point"]))}
    out = None
    for i, s in enumerate(specs[1:], 1):
        t = s["type"]
        if t in ("flatten", "avgpool"):
            acts[i] = acts[s["input"]]
            continue
        if t == "maxpool":
            c, q = acts[s["input"]]
            out = max_pool_codes(c, s["kernel"], s["stride"], s["padding"])
            acts[i] = (out, q)
            continue
        p = params[i]
        o = s["out_channels"]
        scale = np.ones(o, np.float32) if p.get("scale") is None else np.asarray(p["scale"], np.float32)
        bias = None if p.get("bias") is None else np.asarray(p["bias"], np.float32)
        if p["kind"] == "float":
            w = quantize(p["values"], p["weight_scale"], s["w_bit"], s["w_encoding"], s["w_zero_point"])
        else:
            w = np.asarray(p["values"]).astype(np.int64)
        src = s["input"]
        if t == "linear":
            kind = specs[src]["type"]
            if kind in ("flatten", "avgpool"):
                src = specs[src]["input"]
            xc = acts[src][0]
            _, h, wd, ch = xc.shape
            if kind == "avgpool":  # sum over the window; the epilogue scale takes the 1 / (H*W)
                w = np.tile(w.reshape(o, 1, 1, ch), (1, h, wd, 1))
                scale = scale / np.float32(h * wd)
            else:
                w = w.reshape(o, h, wd, ch)
            stride, padding = 1, 0
        else:
            kh, kw = _pair(s["kernel"])
            w = w.reshape(o, kh, kw, -1)
            stride, padding = s["stride"], s["padding"]
        xc, (xb, xe, xz) = acts[src]
        y = conv2d(xc, w, x_bit=xb, w_bit=s["w_bit"], x_encoding=xe, w_encoding=s["w_encoding"], x_zero_point=xz,
                   w_zero_point=s["w_zero_point"], stride=stride, padding=padding, groups=s.get("groups", 1))
        if s["output"] == "int32":
            out = y.astype(np.int32)
            acts[i] = (out, None)
            continue
        residual = None
        if s.get("residual"):
            rc, (rb, re, rz) = acts[s["residual"]]
            residual = decode(rc, rb, re, rz)
        if p.get("thresholds") is not None:
            levels = None
            if s.get("residual"):
                levels = (rc - code_range(rb, re)[0]) if re != "binary" else (rc + 1) // 2
            out = threshold_codes(y, p["thresholds"], bits=s["out_bit"], encoding=s["out_encoding"],
                                  descending=p.get("descending"), residual_levels=levels)
            if s["pool"] == "max":
                k = s["pool_size"]
                st = k if s["pool_stride"] is None else s["pool_stride"]
                out = max_pool_codes(out, k, st, 0)
            acts[i] = (out, (s["out_bit"], s["out_encoding"], s["out_zero_point"]))
            continue
        quant = (s["out_bit"], s["out_encoding"], s["out_zero_point"], s["out_scale"]) \
            if s["output"] == "packed" else None
        out = conv_epilogue(y, scale=scale, bias=bias, residual=residual, residual_scale=s["residual_scale"],
                            activation=s["activation"], clip=s["clip"], pool=s["pool"], pool_size=s["pool_size"],
                            pool_stride=s["pool_stride"], out=quant)
        acts[i] = (out, (s["out_bit"], s["out_encoding"], s["out_zero_point"]) if quant else None)
    return out
