"""Integer thresholds of a quantized layer's step function (apnn.h, "Threshold epilogues").

Between a convolution's exact integer result y and the next quantizer, an exported model runs
per-channel elementwise steps (scale, bias, batch norm, ReLU / clip, a residual add, an inner
quantizer). Each is monotone in its input, so the output code is a monotone step function of y
per channel, and a few integers per channel (FINN's MultiThreshold form) say exactly where it
steps. `Chain` holds the steps in the order the model defines them and evaluates them in float64
(the real-valued arithmetic the model stands for; exact wherever the model's scales are short
binary fractions, as power-of-two scales are); `thresholds` finds the steps by binary search.
"""
import numpy as np

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


def _column(values, channels):
    """A per-channel constant (scalar or broadcastable to channels) as a float64 column."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 1:
        v = np.repeat(v, channels)
    if v.size != channels:
        raise ValueError(f"expected 1 or {channels} values, got {v.size}")
    return v[:, None]


class Quantizer:
    """A QONNX Quant / BipolarQuant: q = round(clamp(v / scale + zero_point)) (1-bit signed and
    bipolar: v / scale + zero_point >= 0 ? +1 : -1); its real value is (q - zero_point) * scale."""

    def __init__(self, scale, zero_point, bits, signed, narrow, rounding="ROUND", bipolar=False):
        from qonnx.custom_op.general.quant import max_int, min_int, resolve_rounding_mode
        self.scale = np.asarray(scale, dtype=np.float32)
        self.zero_point = np.asarray(zero_point, dtype=np.float32)
        self.bits = int(bits)
        self.signed = bool(signed)
        self.narrow = bool(narrow)
        self.bipolar = bool(bipolar) or (self.bits == 1 and self.signed)
        self.rounding = rounding
        self._round = resolve_rounding_mode(rounding)
        self.lo = -1 if self.bipolar else int(min_int(self.signed, self.narrow, self.bits))
        self.hi = 1 if self.bipolar else int(max_int(self.signed, self.narrow, self.bits))

    @property
    def encoding(self):
        return "binary" if self.bipolar else ("signed" if self.signed else "unsigned")

    def codes(self, v):
        """Codes of float values, in the dtype of v (float32 for the model's own tensors)."""
        v = np.asarray(v)
        dtype = v.dtype if np.issubdtype(v.dtype, np.floating) else np.dtype(np.float64)
        t = v.astype(dtype) / self.scale.astype(dtype) + self.zero_point.astype(dtype)
        if self.bipolar:
            return np.where(t >= 0, 1, -1).astype(np.int64)
        t = np.where(t > self.hi, dtype.type(self.hi), t)
        t = np.where(t < self.lo, dtype.type(self.lo), t)
        return self._round(t).astype(np.int64)

    def values(self, codes, dtype=np.float32):
        """Real values of codes: (q - zero_point) * scale, in the model's float32 by default."""
        return ((np.asarray(codes).astype(dtype) - self.zero_point.astype(dtype)) * self.scale.astype(dtype))


class TruncQuantizer:
    """A QONNX Trunc: requantizes an already quantized value v (of scale and zero_point) to fewer
    bits: t = round(v / scale + zero_point) / trunc_scale, clamped (version 2), then the node's
    rounding (FLOOR by default). Version 1 (no output_scale) shifts by 2^(in_bits - out_bits) and
    keeps scale and zero point; version 2 shifts by the power of two nearest output_scale / scale
    and its values are (t - zero_point / trunc_scale) * output_scale. `scale` and `zero_point` are
    the output codes' (what readers of the tensor see), in_scale and in_zero_point the input's."""

    bipolar = False

    def __init__(self, scale, zero_point, in_bits, out_bits, rounding="FLOOR", output_scale=None, signed=True,
                 narrow=False):
        from qonnx.custom_op.general.quant import max_int, min_int, resolve_rounding_mode
        self.in_scale = np.asarray(scale, dtype=np.float32)
        self.in_zero_point = np.asarray(zero_point, dtype=np.float32)
        self.bits = int(out_bits)
        self.signed, self.narrow = bool(signed), bool(narrow)
        self.version = 1 if output_scale is None else 2
        self._round = resolve_rounding_mode(rounding)
        if self.version == 1:
            self.trunc_scale = np.float32(2.0 ** (int(in_bits) - int(out_bits)))
            self.scale, self.zero_point = self.in_scale, self.in_zero_point
        else:
            self.scale = np.asarray(output_scale, dtype=np.float32)
            self.trunc_scale = (2 ** np.round(np.log2(self.scale / self.in_scale))).astype(np.float32)
            self.zero_point = (self.in_zero_point / self.trunc_scale).astype(np.float32)
        self.clamp = (int(min_int(self.signed, self.narrow, self.bits)), int(max_int(self.signed, self.narrow, self.bits))) \
            if self.version == 2 else None
        self.set_signed(self.signed)

    def set_signed(self, signed):
        """Version 1 carries no sign: the importer sets it from the codes the layer can produce."""
        self.signed = bool(signed)
        self.lo = -(2 ** (self.bits - 1)) if self.signed else 0
        self.hi = 2 ** (self.bits - 1) - 1 if self.signed else 2 ** self.bits - 1
        if self.clamp:
            self.lo, self.hi = self.clamp

    @property
    def encoding(self):
        return "signed" if self.signed else "unsigned"

    def codes(self, v):
        v = np.asarray(v)
        dtype = v.dtype if np.issubdtype(v.dtype, np.floating) else np.dtype(np.float64)
        t = np.round(v.astype(dtype) / self.in_scale.astype(dtype) + self.in_zero_point.astype(dtype))
        t = t / self.trunc_scale.astype(dtype)
        if self.clamp:
            t = np.where(t > self.clamp[1], dtype.type(self.clamp[1]), t)
            t = np.where(t < self.clamp[0], dtype.type(self.clamp[0]), t)
        return self._round(t).astype(np.int64)

    def values(self, codes, dtype=np.float32):
        return (np.asarray(codes).astype(dtype) - self.zero_point.astype(dtype)) * self.scale.astype(dtype)


class Chain:
    """The steps from a layer's integer result y to its output code, per output channel."""

    def __init__(self, channels, multiplier):
        self.channels = int(channels)
        self.steps = [("mul", _column(multiplier, channels))]
        self.residual = None  # (Quantizer of the residual tensor, position in steps)
        self.quantizer = None

    def add(self, kind, *values):
        """Appends a step: 'mul' / 'add' / 'div' / 'sub' by a per-channel constant, 'relu',
        'clip' (lo, hi), 'bn' (gamma, beta, mean, var, epsilon), 'quant' (a Quantizer whose real
        values continue the chain)."""
        if kind in ("mul", "add", "div", "sub"):
            self.steps.append((kind, _column(values[0], self.channels)))
        elif kind == "clip":
            self.steps.append((kind, float(values[0]), float(values[1])))
        elif kind == "bn":
            gamma, beta, mean, var = (_column(v, self.channels) for v in values[:4])
            self.steps.append((kind, gamma, beta, mean, var, float(values[4])))
        else:
            self.steps.append((kind, *values))

    def add_residual(self, quantizer):
        """Adds a quantized residual tensor's real value (q - zero_point) * scale here."""
        if self.residual is not None:
            raise ValueError("a layer takes one residual")
        self.residual = (quantizer, len(self.steps))
        self.steps.append(("residual",))

    def affine(self):
        """(scale, bias, activation) float64 per channel when the steps are an affine map followed
        by at most one ReLU / clip; None otherwise."""
        a = np.ones((self.channels, 1))
        b = np.zeros((self.channels, 1))
        activation = None
        for step in self.steps:
            kind = step[0]
            if activation is not None:
                return None
            if kind == "mul":
                a, b = a * step[1], b * step[1]
            elif kind == "div":
                a, b = a / step[1], b / step[1]
            elif kind == "add":
                b = b + step[1]
            elif kind == "sub":
                b = b - step[1]
            elif kind == "bn":
                _, gamma, beta, mean, var, eps = step
                k = gamma / np.sqrt(var + eps)
                a, b = a * k, (b - mean) * k + beta
            elif kind in ("relu", "clip"):
                activation = step
            else:
                return None
        return a[:, 0], b[:, 0], activation

    def evaluate(self, y, residual_code=None):
        """The value (float64) after every step, for integer results y of shape (channels, n)."""
        v = np.asarray(y, dtype=np.float64)
        for step in self.steps:
            kind = step[0]
            if kind == "mul":
                v = v * step[1]
            elif kind == "div":
                v = v / step[1]
            elif kind == "add":
                v = v + step[1]
            elif kind == "sub":
                v = v - step[1]
            elif kind == "relu":
                v = np.maximum(v, 0.0)
            elif kind == "clip":
                v = np.minimum(np.maximum(v, step[1]), step[2])
            elif kind == "bn":
                _, gamma, beta, mean, var, eps = step
                v = (v - mean) / np.sqrt(var + eps) * gamma + beta
            elif kind == "quant":
                q = step[1]
                v = q.values(q.codes(v), dtype=np.float64)
            elif kind == "residual":
                q = self.residual[0]
                r = np.asarray(q.values(residual_code, dtype=np.float64))  # one value, or one per channel
                v = v + (r.reshape(-1, 1) if r.size > 1 else r.reshape(-1)[0])
        return v

    def codes(self, y, residual_code=None):
        return self.quantizer.codes(self.evaluate(y, residual_code))


def thresholds(chain, y_range, residual_codes=None):
    """The R x O x L int32 thresholds and O descending flags of the chain's output codes for every
    y in y_range = (lowest, highest) (apnn.h, "Threshold epilogues"). residual_codes: the
    residual's codes lowest first (one table each), or None."""
    y_lo, y_hi = (int(v) for v in y_range)
    q = chain.quantizer
    levels = 1 if q.bipolar else (2 ** q.bits - 1)
    # The level of a code: code - the lowest code of its encoding (bipolar: -1 -> 0, +1 -> 1).
    lowest = -1 if q.bipolar else (-(2 ** (q.bits - 1)) if q.signed else 0)
    step = 2 if q.bipolar else 1
    channels = chain.channels
    tables = [None] if residual_codes is None else list(residual_codes)
    out = np.empty((len(tables), channels, levels), dtype=np.int64)
    down = np.zeros(channels, dtype=bool)
    ends = np.array([y_lo, y_hi], dtype=np.int64)
    for r, code in enumerate(tables):
        def level(y, code=code):
            return (chain.codes(y, code) - lowest) // step
        at_ends = level(np.broadcast_to(ends, (channels, 2)))
        if (at_ends < 0).any() or (at_ends > levels).any():
            raise ValueError(f"codes outside the {q.bits}-bit {q.encoding} range (levels {at_ends.min()}.."
                             f"{at_ends.max()} of 0..{levels})")
        table_down = at_ends[:, 1] < at_ends[:, 0]
        if r == 0:
            down = table_down
        # A channel whose direction differs between residual tables is constant in one of them.
        table_down = np.where(at_ends[:, 1] == at_ends[:, 0], down, table_down)
        if (table_down != down).any():
            raise ValueError("a channel's step function rises for one residual value and falls for another")
        k = np.arange(1, levels + 1)[None, :]
        sign = np.where(down, -1, 1)[:, None]
        # Ascending: T_k = smallest y with level >= k. Descending: T_k = smallest y with
        # level < k (so level = #{k : y < T_k}). Both predicates are monotone in y.
        def reached(y):
            lv = level(y)
            return np.where(sign > 0, lv >= k, lv < k)
        lo = np.full((channels, levels), y_lo, dtype=np.int64)
        hi = np.full((channels, levels), y_hi + 1, dtype=np.int64)  # y_hi + 1: never within range
        while (lo < hi).any():
            mid = (lo + hi) // 2
            ok = reached(np.minimum(mid, y_hi))
            ok = np.where(mid > y_hi, True, ok)
            hi = np.where(ok, mid, hi)
            lo = np.where(ok, lo, mid + 1)
        # Past the range: never; at its bottom: already there for every y.
        t = np.where(lo > y_hi, INT32_MAX, np.where(lo == y_lo, INT32_MIN, lo))
        out[r] = np.sort(t, axis=1)
    return out.astype(np.int32), down
