"""QONNX models (Brevitas' export, FINN's and hls4ml's input format) as APNN networks.

    net = apnn.from_qonnx("model.onnx")       # a path, bytes or an onnx.ModelProto
    logits = net(images)                       # N x C x H x W float32, as the model takes them

The graph is cleaned up by qonnx (shape inference, constant folding, unique names), then walked
in order. Weight quantizers become packed weight codes; every activation quantizer ends a layer
whose epilogue is the quantizer's integer thresholds on the layer's exact result (apnn.h,
"Threshold epilogues"), computed from the model's own steps (thresholds.py). What cannot run in
integers raises apnn.UnsupportedError naming the node before anything runs.
"""
import copy

import numpy as np

from .errors import InvalidArgumentError, UnsupportedError
from .network import Network
from .thresholds import Chain, Quantizer, TruncQuantizer, thresholds


def _scalar(v):
    """The one value of a size-1 array (per-tensor scales and zero points come in any rank)."""
    return float(np.asarray(v).reshape(-1)[0])


def _fail(node, reason):
    where = f"node {node.name!r} ({node.op_type})" if node is not None else "the graph output"
    raise UnsupportedError(f"{where}: {reason}")


# ---- what a tensor of the graph is, as the walk sees it ------------------------------------

class _Const:
    def __init__(self, value):
        self.value = np.asarray(value)


class _FloatInput:
    """The float graph input, through elementwise float steps (and a flattening) run on the host
    before quantizing. graph_shape: C, H, W as the graph takes it; shape: C, H, W now (a flattened
    input is F, 1, 1)."""

    def __init__(self, name, graph_shape, shape=None, steps=()):
        self.name, self.graph_shape, self.steps = name, tuple(graph_shape), list(steps)
        self.shape = tuple(shape or graph_shape)


def _flatten_nchw(x, _):
    return x.reshape(x.shape[0], -1, 1, 1)


class _Weight:
    def __init__(self, codes, quantizer):
        self.codes, self.quantizer = codes, quantizer


class _Tensor:
    """A quantized activation tensor: layer id in the network (None while it is still a pending
    chain), its quantizer and C, H, W."""

    def __init__(self, quantizer, shape, layer=None, pending=None):
        self.quantizer, self.shape, self.layer, self.pending = quantizer, tuple(shape), layer, pending


class _Acc:
    """A layer's integer result on its way to a quantizer: the conv / linear it comes from and
    the chain of elementwise steps so far."""

    def __init__(self, make_layer, chain, shape, y_range, residual=None):
        self.make_layer, self.chain, self.shape, self.y_range, self.residual = make_layer, chain, shape, y_range, residual

    def extended(self):
        return _Acc(self.make_layer, copy.deepcopy(self.chain), self.shape, self.y_range, self.residual)


class _Flat:
    """A quantized tensor flattened (C, H, W order), or its global average pool (avg=True)."""

    def __init__(self, tensor, avg=False):
        self.tensor, self.avg = tensor, avg


# ---- the importer --------------------------------------------------------------------------

class ImportedNetwork(Network):
    """A Network built from a QONNX graph; called like the model: N x C x H x W float32 in, the
    graph's output out (float32), with the graph's own input quantization and output scaling."""

    def __call__(self, x):
        return self._finish(super().__call__(self.quantize_input(x)))

    def quantize_input(self, x):
        """The model's input steps and input quantizer in its own float32 arithmetic -> NHWC codes."""
        x = np.asarray(x, dtype=np.float32)
        c, h, w = self._input_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise InvalidArgumentError(f"input must be N x {c} x {h} x {w}, got shape {x.shape}")
        for op, const in self._input_steps:
            x = op(x, const)
        return np.ascontiguousarray(self._input_quantizer.codes(x).transpose(0, 2, 3, 1))

    def codes(self, x):
        """The output's integer codes (a quantized output), in the graph's output layout."""
        if self._output_quantizer is None:
            raise InvalidArgumentError("the network's output is float values, not codes")
        return self._finish(super().__call__(self.quantize_input(x)), dequantize=False)

    def _finish(self, y, dequantize=True):
        """APNN's N x H x W x C output in the graph's output layout and values."""
        if self._output_quantizer is not None and dequantize:
            q = self._output_quantizer  # channels last here: a per-channel scale along the last axis
            y = (np.asarray(y).astype(np.float32) - q.zero_point.astype(np.float32).reshape(-1)) * \
                q.scale.astype(np.float32).reshape(-1)
        y = np.asarray(y, dtype=np.float32 if dequantize else np.int64)
        if self._output_rank == 2:
            return y.reshape(y.shape[0], -1)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


_FLOAT_OPS = {"Mul": np.multiply, "Div": np.divide, "Add": np.add, "Sub": np.subtract}


class _Importer:
    def __init__(self, model, output, backend, context):
        self.model = model
        self.backend, self.context = backend, context
        self.values = {}
        self._names = {}
        self.net = None
        self.output = output or model.graph.output[0].name

    # helpers
    def _layer_name(self, node):
        """The node's name for the network layer it makes; a layer's result that is quantized on
        two paths (one chain continued past a residual add) makes a second layer, named .1, .2."""
        count = self._names.get(node.name, 0)
        self._names[node.name] = count + 1
        return node.name if count == 0 else f"{node.name}.{count}"

    def const(self, node, name, what):
        v = self.values.get(name)
        if not isinstance(v, _Const):
            _fail(node, f"{what} ({name!r}) must be a constant")
        return v.value

    def scalar_int(self, node, name, what):
        v = self.const(node, name, what)
        if v.size != 1 or float(v.reshape(-1)[0]) != int(v.reshape(-1)[0]):
            _fail(node, f"{what} must be one integer, got {v.reshape(-1)[:4]}")
        return int(v.reshape(-1)[0])

    def attrs(self, node):
        from onnx import helper
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def shape(self, name):
        return tuple(self.model.get_tensor_shape(name))

    def run(self):
        graph = self.model.graph
        for init in graph.initializer:
            from onnx import numpy_helper
            self.values[init.name] = _Const(numpy_helper.to_array(init))
        if len(graph.input) != 1:
            raise UnsupportedError(f"the graph has {len(graph.input)} inputs; one float input is supported")
        inp = graph.input[0]
        shape = self.shape(inp.name)
        if len(shape) != 4:
            raise UnsupportedError(f"the graph input {inp.name!r} has shape {shape}; N x C x H x W is supported")
        self.values[inp.name] = _FloatInput(inp.name, shape[1:])
        needed = self._ancestors(self.output)
        for node in graph.node:
            if node.output[0] in needed:
                self.visit(node)
        return self.finish()

    def _ancestors(self, name):
        producers = {o: n for n in self.model.graph.node for o in n.output}
        if name not in producers:
            raise InvalidArgumentError(f"no node computes {name!r}")
        seen, stack = set(), [name]
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in producers:
                stack.extend(i for i in producers[t].input if i)
        return seen

    def visit(self, node):
        handler = getattr(self, "op_" + node.op_type, None)
        if handler is None:
            _fail(node, "this operator is not supported")
        result = handler(node)
        self.values[node.output[0]] = result

    # ---- quantizers ----
    def quantizer_of(self, node):
        a = self.attrs(node)
        scale = self.const(node, node.input[1], "the scale")
        if not (np.isfinite(scale).all() and (np.asarray(scale) > 0).all()):
            _fail(node, f"the scale must be finite and positive, got {np.asarray(scale).reshape(-1)[:4]}")
        if node.op_type == "BipolarQuant":
            return Quantizer(scale, 0.0, 1, True, False, bipolar=True)
        zp = self.const(node, node.input[2], "the zero point")
        bits = self.const(node, node.input[3], "the bit width")
        if bits.size != 1 or float(bits.reshape(-1)[0]) != int(bits.reshape(-1)[0]):
            _fail(node, f"the bit width must be one integer, got {bits.reshape(-1)[:4]}")
        bits = int(bits.reshape(-1)[0])
        # A constant may have more bits (Brevitas quantizes biases to 32): it stays a float constant.
        if not 1 <= bits <= (32 if isinstance(self.values.get(node.input[0]), _Const) else 8):
            _fail(node, f"{bits}-bit quantization; APNN runs 1..8 bits")
        if (np.round(zp) != zp).any():
            _fail(node, f"the zero point {zp.reshape(-1)[:4]} is not an integer")
        rounding = a.get("rounding_mode", b"ROUND")
        rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
        return Quantizer(scale, zp, bits, bool(a.get("signed", 1)), bool(a.get("narrow", 0)), rounding)

    def op_Quant(self, node):
        q = self.quantizer_of(node)
        src = self.values.get(node.input[0])
        if isinstance(src, _Const):
            if q.bits > 8:  # a bias: its quantized float values, as the executor computes them
                return _Const(q.values(q.codes(src.value.astype(np.float32))))
            return _Weight(q.codes(src.value.astype(np.float32)), q)
        if q.zero_point.size != 1:
            _fail(node, "an activation quantizer needs one zero point per tensor")
        if q.scale.size != 1:
            # Per-channel activation scales (Brevitas puts them before depthwise layers): kept as a
            # column, one row per channel, for the layers that can take them exactly.
            channels = self._channels_of(src)
            if isinstance(src, _FloatInput) or channels is None or q.scale.size != channels or \
                    (q.scale.ndim >= 2 and q.scale.shape[1] != channels):
                _fail(node, f"activation scales of shape {q.scale.shape}: one per tensor, or one per channel "
                            "of a layer's output")
            q = Quantizer(q.scale.reshape(channels, 1), q.zero_point, q.bits, q.signed, q.narrow, q.rounding)
        if q.bipolar and _scalar(q.zero_point) != 0:
            _fail(node, "a bipolar (1-bit signed) quantizer with a zero point")
        if isinstance(src, _FloatInput):
            if self.net is not None:
                _fail(node, "the float input is quantized twice")
            c, h, w = src.shape
            self.net = ImportedNetwork((h, w, c), input_bits=q.bits, input_encoding=q.encoding,
                                       input_zero_point=int(_scalar(q.zero_point)), input_scale=_scalar(q.scale),
                                       backend=self.backend, context=self.context)
            self.net._input_shape = src.graph_shape
            self.net._input_steps = src.steps
            self.net._input_quantizer = q
            return _Tensor(q, (c, h, w), layer=0)
        if isinstance(src, _Flat) and src.avg:
            src = self._as_acc(node, src)
        if isinstance(src, _Acc):
            acc = src.extended()
            acc.chain.quantizer = q
            return _Tensor(q, acc.shape, pending=acc)
        if isinstance(src, _Tensor):
            same = (src.quantizer.bits == q.bits and src.quantizer.encoding == q.encoding and
                    np.array_equal(src.quantizer.scale, q.scale) and np.array_equal(src.quantizer.zero_point, q.zero_point)
                    and src.quantizer.lo >= q.lo and src.quantizer.hi <= q.hi)
            if same:
                return src
            if src.pending is not None:  # a requantization of a layer's quantized result: one more step
                acc = src.pending.extended()
                acc.chain.add("quant", acc.chain.quantizer)
                acc.chain.quantizer = q
                return _Tensor(q, acc.shape, pending=acc)
            _fail(node, "requantizes a tensor that no layer of its own produces (a max pool or the input)")
        _fail(node, f"quantizes {self._kind(src)}")

    op_BipolarQuant = op_Quant

    @staticmethod
    def _channels_of(v):
        """The channel count of a layer's result or quantized tensor, None for anything else."""
        if isinstance(v, (_Acc, _Tensor)):
            return v.shape[0]
        if isinstance(v, _Flat) and v.avg:
            return v.tensor.shape[0]
        return None

    def _kind(self, v):
        return {_Const: "a constant", _FloatInput: "the float input", _Weight: "quantized weights",
                _Tensor: "a quantized tensor", _Acc: "an unquantized float tensor", _Flat: "a flattened tensor"}.get(
                    type(v), "an unknown value")

    def materialize(self, node, t):
        """The network layer of a quantized tensor, added on first use."""
        if t.layer is not None:
            return t.layer
        acc = t.pending
        residual_codes = None
        if acc.residual is not None:
            rq = acc.residual.quantizer
            lowest = -1 if rq.bipolar else (-(2 ** (rq.bits - 1)) if rq.signed else 0)
            residual_codes = [-1, 1] if rq.bipolar else [lowest + r for r in range(2 ** rq.bits)]
        q = t.quantizer
        if isinstance(q, TruncQuantizer) and q.version == 1:
            # No sign attribute: signed where the layer can produce negative codes.
            ends = np.broadcast_to(np.array(acc.y_range, np.int64), (acc.chain.channels, 2))
            low = min(int(acc.chain.codes(ends, code).min()) for code in (residual_codes or [None]))
            q.set_signed(low < 0)
        try:
            table, down = thresholds(acc.chain, acc.y_range, residual_codes)
        except ValueError as e:
            _fail(node, f"the quantized tensor it reads cannot be stored: {e}")
        q = t.quantizer
        layer = acc.make_layer(dict(output="packed", out_bit=q.bits, out_encoding=q.encoding,
                                    out_zero_point=int(_scalar(q.zero_point)), out_scale=1.0,
                                    residual=None if acc.residual is None else self.materialize(node, acc.residual)),
                               dict(thresholds=table, descending=down if down.any() else None))
        t.layer = layer
        return layer

    # ---- layers ----
    def _input_tensor(self, node, name, per_channel=False):
        """The quantized tensor a layer reads; per_channel: whether the layer takes per-channel
        scales (each of its outputs reads one input channel)."""
        v = self.values.get(name)
        if isinstance(v, _Tensor):
            if v.quantizer.scale.size != 1 and not per_channel:
                _fail(node, "reads a tensor with per-channel scales; only a layer whose outputs each read one "
                            "channel (depthwise, pooling) can take them exactly")
            return v
        _fail(node, f"reads {self._kind(v)} ({name!r}); APNN layers read quantized tensors")

    @staticmethod
    def _y_range(k, xq, wq):
        """The lowest and highest sum of up to k products of real codes (code - zero point); fewer
        where padding taps add nothing."""
        def ends(q):
            zp = np.asarray(q.zero_point).reshape(-1)
            return [q.lo - int(zp.max()), q.hi - int(zp.min())]
        products = [a * b for a in ends(xq) for b in ends(wq)]
        return int(k) * min(0, min(products)), int(k) * max(0, max(products))

    def _weight_quant(self, node, w):
        q = w.quantizer
        zp = np.unique(np.asarray(q.zero_point).reshape(-1))
        if zp.size != 1:
            _fail(node, "weights with per-channel zero points")
        return dict(w_bit=q.bits, w_encoding=q.encoding, w_zero_point=int(zp[0]))

    def op_Conv(self, node):
        a = self.attrs(node)
        x = self._input_tensor(node, node.input[0], per_channel=True)
        w = self.values.get(node.input[1])
        if not isinstance(w, _Weight):
            _fail(node, "the weights must come from a Quant or BipolarQuant of a constant")
        groups = int(a.get("group", 1))
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            _fail(node, "dilated convolution")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            _fail(node, "auto_pad; give explicit pads")
        o, c, kh, kw = w.codes.shape  # c: one group's input channels
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            _fail(node, f"asymmetric padding {pads}")
        stride = tuple(a.get("strides", [1, 1]))
        sw = self._per_channel(node, w.quantizer.scale, o)
        sx = x.quantizer.scale.astype(np.float64).reshape(-1)
        if sx.size > 1:
            if c != 1:
                _fail(node, "reads a tensor with per-channel scales but mixes channels; only depthwise layers can")
            sx = sx[np.arange(o) // (o // groups)]  # output o reads input channel o // (O / G)
        chain = Chain(o, sx * sw)
        if len(node.input) > 2 and node.input[2]:
            chain.add("add", self.const(node, node.input[2], "the bias"))
        codes = w.codes.transpose(0, 2, 3, 1)  # OIHW -> OHWC
        shape = self.shape(node.output[0])[1:]
        wq = self._weight_quant(node, w)

        def make_layer(out, params, x=x):
            net = self.net
            layer = net.conv(o, (kh, kw), stride=stride, padding=(pads[0], pads[1]), groups=groups,
                             input=self.materialize(node, x), activation="none", **wq, **out, name=self._layer_name(node))
            net.set_weights(layer, codes=codes.astype(np.int32), **params)
            return layer
        return _Acc(make_layer, chain, shape, self._y_range(c * kh * kw, x.quantizer, w.quantizer))

    def _per_channel(self, node, scale, channels):
        """A weight scale as one float64 per output channel (per-tensor ones repeated)."""
        s = np.asarray(scale, dtype=np.float64)
        if s.size == 1:
            return np.repeat(s.reshape(-1), channels)
        if s.size != channels:
            _fail(node, f"a weight scale of shape {s.shape}; per-tensor or per-output-channel scales are supported")
        return s.reshape(-1)

    def op_Gemm(self, node):
        a = self.attrs(node)
        if a.get("transA", 0):
            _fail(node, "transA=1")
        w = self.values.get(node.input[1])
        if not isinstance(w, _Weight):
            _fail(node, "the weights must come from a Quant or BipolarQuant of a constant")
        codes = w.codes if a.get("transB", 0) else w.codes.T
        scale = np.asarray(w.quantizer.scale)
        scale = scale.T if not a.get("transB", 0) and scale.ndim == 2 else scale
        acc = self._linear_chain(node, node.input[0], codes, scale, w, alpha=float(a.get("alpha", 1.0)))
        if len(node.input) > 2 and node.input[2]:
            acc.chain.add("add", float(a.get("beta", 1.0)) * self.const(node, node.input[2], "the bias").reshape(-1))
        return acc

    def op_MatMul(self, node):
        w = self.values.get(node.input[1])
        if not isinstance(w, _Weight):
            _fail(node, "the weights must come from a Quant or BipolarQuant of a constant")
        scale = np.asarray(w.quantizer.scale)
        return self._linear_chain(node, node.input[0], w.codes.T, scale.T if scale.ndim == 2 else scale, w)

    def _linear_chain(self, node, src_name, codes, scale, w, alpha=1.0):
        """A linear layer (O x K weight codes, K in the graph's C, H, W order) over a quantized,
        flattened or globally averaged tensor: its chain starts at y * scale_x * scale_w[o] * alpha."""
        o, k = codes.shape
        src = self.values.get(src_name)
        avg = False
        if isinstance(src, _Flat):
            x, avg = src.tensor, src.avg
        elif isinstance(src, _Tensor):
            x = src
        else:
            _fail(node, f"reads {self._kind(src)} ({src_name!r}); APNN layers read quantized tensors")
        c, h, wd = x.shape
        if x.quantizer.scale.size != 1:
            _fail(node, "a linear layer reads a tensor with per-channel scales (it mixes channels)")
        if avg:
            if k != c:
                _fail(node, f"{k} inputs over a global average pool of {c} channels")
        elif k != c * h * wd:
            _fail(node, f"{k} inputs over a tensor of {c} x {h} x {wd}")
        if not avg:  # C, H, W order (ONNX flatten) -> the network's H, W, C
            codes = codes.reshape(o, c, h, wd).transpose(0, 2, 3, 1).reshape(o, -1)
        sw = self._per_channel(node, scale, o)
        mult = np.float64(x.quantizer.scale.reshape(-1)[0]) * sw * alpha
        if avg:
            mult = mult / (h * wd)
        chain = Chain(o, mult)
        wq = self._weight_quant(node, w)
        net_src = x

        def make_layer(out, params):
            net = self.net
            layer_in = self.materialize(node, net_src)
            if avg:
                layer_in = net.avgpool(input=layer_in)
            elif h * wd > 1:
                layer_in = net.flatten(input=layer_in)
            layer = net.linear(o, input=layer_in, activation="none", **wq, **out, name=self._layer_name(node))
            if avg and params.get("scale") is not None:
                # The network divides a float epilogue's scale by H*W itself (apnn.h, "Layers").
                params = dict(params, scale=(params["scale"].astype(np.float64) * (h * wd)).astype(np.float32))
            net.set_weights(layer, codes=np.ascontiguousarray(codes).astype(np.int32), **params)
            return layer
        bound_k = c * h * wd if avg else k
        return _Acc(make_layer, chain, (o, 1, 1), self._y_range(bound_k, x.quantizer, w.quantizer))

    # ---- elementwise ----
    def _elementwise(self, node, kind):
        a, b = (self.values.get(i) for i in node.input[:2])
        if isinstance(a, _FloatInput) and isinstance(b, _Const):
            return _FloatInput(a.name, a.graph_shape, a.shape,
                               a.steps + [(_FLOAT_OPS[node.op_type], b.value.astype(np.float32))])
        if kind == "add" and isinstance(a, (_Acc, _Tensor)) and isinstance(b, (_Acc, _Tensor)):
            return self._residual_add(node, a, b)
        if isinstance(a, _Const) and kind in ("add", "mul"):
            a, b = b, a
        if self._as_acc(node, a) is None:
            _fail(node, f"{node.op_type} of {self._kind(a)}; only a layer's result takes elementwise steps")
        a = self._as_acc(node, a)
        if not isinstance(b, _Const):
            _fail(node, f"{node.op_type} by {self._kind(b)}; a constant is needed")
        acc = a.extended()
        acc.chain.add(kind, self._channel_const(node, b.value, acc.chain.channels))
        return acc

    def _continue(self, t):
        """A pending quantized tensor's chain, continued past its quantizer."""
        acc = t.pending.extended()
        acc.chain.add("quant", acc.chain.quantizer)
        acc.chain.quantizer = None
        return acc

    def _channel_const(self, node, v, channels):
        v = np.asarray(v, dtype=np.float64)
        if v.size == 1:
            return v.reshape(-1)
        squeezed = v.reshape(-1)
        if squeezed.size == channels and (v.ndim <= 1 or v.shape[-1] == channels or
                                          (v.ndim >= 2 and v.shape[-3 if v.ndim >= 3 else -1] == channels)):
            return squeezed
        _fail(node, f"a constant of shape {v.shape}; scalars and per-channel constants are supported")

    def op_Mul(self, node):
        return self._elementwise(node, "mul")

    def op_Div(self, node):
        return self._elementwise(node, "div")

    def op_Add(self, node):
        return self._elementwise(node, "add")

    def op_Sub(self, node):
        return self._elementwise(node, "sub")

    def _residual_add(self, node, a, b):
        # One side continues a layer's chain; the other is a quantized tensor read as the residual.
        def chain_side(v):
            if isinstance(v, _Acc):
                return v
            if v.pending is not None:
                return self._continue(v)
            return None
        for main, res in ((a, b), (b, a)):
            acc = chain_side(main)
            if acc is not None and isinstance(res, _Tensor) and acc.residual is None:
                acc = acc.extended()
                acc.chain.add_residual(res.quantizer)
                acc.residual = res
                return acc
        _fail(node, "adds two tensors that are not a layer's result and a quantized tensor")

    def op_BatchNormalization(self, node):
        acc = self.values.get(node.input[0])
        if isinstance(acc, _Tensor) and acc.pending is not None:
            acc = self._continue(acc)
        if not isinstance(acc, _Acc):
            _fail(node, f"batch norm of {self._kind(acc)}; it must follow a conv / linear layer")
        acc = acc.extended()
        gamma, beta, mean, var = (self.const(node, i, "a batch-norm parameter") for i in node.input[1:5])
        acc.chain.add("bn", gamma, beta, mean, var, self.attrs(node).get("epsilon", 1e-5))
        return acc

    def op_Relu(self, node):
        return self._activation(node, ("relu",))

    def op_Clip(self, node):
        a = self.attrs(node)
        lo = a.get("min", -np.inf)
        hi = a.get("max", np.inf)
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.const(node, node.input[1], "min"))
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.const(node, node.input[2], "max"))
        return self._activation(node, ("clip", lo, hi))

    def _activation(self, node, step):
        v = self.values.get(node.input[0])
        if isinstance(v, _Tensor) and v.pending is None:
            # On a tensor already quantized: a no-op where every value is already in range.
            lo = float(np.min(v.quantizer.values(v.quantizer.lo)))
            hi = float(np.max(v.quantizer.values(v.quantizer.hi)))
            if step[0] == "relu" and lo >= 0 or step[0] == "clip" and lo >= step[1] and hi <= step[2]:
                return v
            _fail(node, "changes a quantized tensor that no layer of its own produces")
        if isinstance(v, _Tensor):
            v = self._continue(v)
        if not isinstance(v, _Acc):
            _fail(node, f"{node.op_type} of {self._kind(v)}")
        acc = v.extended()
        acc.chain.add(*step)
        return acc

    # ---- pooling and shapes ----
    def op_MaxPool(self, node):
        a = self.attrs(node)
        x = self._input_tensor(node, node.input[0], per_channel=True)
        k = list(a["kernel_shape"])
        s = list(a.get("strides", k))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if k[0] != k[1] or s[0] != s[1] or len(set(pads)) > 1:
            _fail(node, f"kernel {k}, strides {s}, pads {pads}: square windows, strides and padding are supported")
        if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
            _fail(node, "ceil_mode or dilations")
        if (x.quantizer.scale <= 0).any():
            _fail(node, "a max pool over a negative scale")
        c = x.shape[0]
        shape = self.shape(node.output[0])[1:]
        layer = self.net.maxpool(int(k[0]), stride=int(s[0]), padding=int(pads[0]), input=self.materialize(node, x),
                                 name=self._layer_name(node))
        return _Tensor(x.quantizer, (c, *shape[1:]), layer=layer)

    def op_GlobalAveragePool(self, node):
        return _Flat(self._input_tensor(node, node.input[0], per_channel=True), avg=True)

    def op_AveragePool(self, node):
        a = self.attrs(node)
        x = self._input_tensor(node, node.input[0], per_channel=True)
        if any(a.get("pads", [0])) or a.get("ceil_mode", 0):
            _fail(node, "an average pool with padding or ceil_mode")
        k = list(a["kernel_shape"])
        if k == list(x.shape[1:]):
            return _Flat(x, avg=True)
        return self._window_sum(node, x, tuple(k), tuple(a.get("strides", [1, 1])))

    def _window_sum(self, node, x, kernel, stride):
        """A window mean of a quantized tensor as a layer: a depthwise convolution with all-one 1-bit
        unsigned weights (y = the window's sum of real codes), its chain starting at y * scale / k."""
        c, h, w = x.shape
        kh, kw = kernel
        if kh > 15 or kw > 15:
            _fail(node, f"a {kh} x {kw} average pool that is not read by a linear layer; windows up to 15 x 15 run")
        sx = x.quantizer.scale.astype(np.float64).reshape(-1)
        chain = Chain(c, (sx if sx.size > 1 else np.repeat(sx, c)) / (kh * kw))
        shape = (c, (h - kh) // stride[0] + 1, (w - kw) // stride[1] + 1)
        ones = np.ones((c, kh, kw, 1), np.int32)

        def make_layer(out, params):
            layer = self.net.conv(c, (kh, kw), stride=stride, groups=c, input=self.materialize(node, x),
                                  activation="none", w_bit=1, w_encoding="unsigned", w_zero_point=0, **out,
                                  name=self._layer_name(node))
            self.net.set_weights(layer, codes=ones, **params)
            return layer
        return _Acc(make_layer, chain, shape, self._y_range(kh * kw, x.quantizer, Quantizer(1.0, 0, 1, False, False)))

    def _as_acc(self, node, v):
        """A value that takes elementwise steps: a layer's chain (a pending quantized tensor's,
        continued past its quantizer), or a global average pool as a window-sum layer."""
        if isinstance(v, _Acc):
            return v
        if isinstance(v, _Tensor) and v.pending is not None:
            return self._continue(v)
        if isinstance(v, _Flat) and v.avg:
            return self._window_sum(node, v.tensor, v.tensor.shape[1:], (1, 1))
        return None

    def op_Trunc(self, node):
        a = self.attrs(node)
        rounding = a.get("rounding_mode", b"FLOOR")
        rounding = rounding.decode() if isinstance(rounding, bytes) else rounding
        scale = self.const(node, node.input[1], "the scale")
        zp = self.const(node, node.input[2], "the zero point")
        in_bits = self.scalar_int(node, node.input[3], "the input bit width")
        if len(node.input) >= 6:  # version 2: an output scale, then the output bit width
            out_scale = self.const(node, node.input[4], "the output scale")
            out_bits = self.scalar_int(node, node.input[5], "the output bit width")
            q = TruncQuantizer(scale, zp, in_bits, out_bits, rounding, output_scale=out_scale,
                               signed=bool(a.get("signed", 1)), narrow=bool(a.get("narrow", 0)))
        else:
            out_bits = self.scalar_int(node, node.input[4], "the output bit width")
            q = TruncQuantizer(scale, zp, in_bits, out_bits, rounding, signed=True)
        if not 1 <= out_bits <= 8:
            _fail(node, f"{out_bits}-bit truncation; APNN runs 1..8 bits")
        if q.scale.size != 1 or np.asarray(q.zero_point).size != 1 or np.round(q.zero_point) != q.zero_point:
            _fail(node, "truncation needs one scale and an integer zero point per tensor")
        acc = self._as_acc(node, self.values.get(node.input[0]))
        if acc is None:
            _fail(node, f"truncates {self._kind(self.values.get(node.input[0]))}")
        acc = acc.extended()
        acc.chain.quantizer = q
        return _Tensor(q, acc.shape, pending=acc)

    def op_ReduceMean(self, node):
        a = self.attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node, node.input[1], "the axes").reshape(-1).tolist()
        if sorted(int(v) % 4 for v in (axes or [])) != [2, 3]:
            _fail(node, f"a mean over axes {axes}; only the spatial mean (a global average pool) is supported")
        return _Flat(self._input_tensor(node, node.input[0], per_channel=True), avg=True)

    def _flatten(self, node):
        v = self.values.get(node.input[0])
        if isinstance(v, _FloatInput):  # on the host, before the input quantizer: F x 1 x 1
            return _FloatInput(v.name, v.graph_shape, (int(np.prod(v.shape)), 1, 1), v.steps + [(_flatten_nchw, None)])
        if isinstance(v, _Flat):
            return v
        if isinstance(v, _Tensor):
            return _Flat(v)
        _fail(node, f"flattens {self._kind(v)}")

    def op_Flatten(self, node):
        if self.attrs(node).get("axis", 1) != 1:
            _fail(node, "flatten at an axis other than 1")
        return self._flatten(node)

    def op_Reshape(self, node):
        out = self.shape(node.output[0])
        if len(out) != 2:
            _fail(node, f"a reshape to {out}; only flattening to N x features is supported")
        return self._flatten(node)

    def op_Identity(self, node):
        return self.values.get(node.input[0])

    # ---- the end ----
    def finish(self):
        out = self.values.get(self.output)
        net = self.net
        if net is None:
            raise UnsupportedError("the graph input is never quantized (no Quant node reads it)")
        rank = len(self.shape(self.output))
        net._output_rank = rank
        net._output_quantizer = None
        if isinstance(out, _Tensor):
            if out.layer == 0:
                raise UnsupportedError("the output is the quantized input; there is no layer to run")
            self.materialize(None, out)
            net._output_quantizer = out.quantizer
            if net.specs[-1]["name"] != net.specs[out.layer]["name"]:
                raise UnsupportedError(f"the output {self.output!r} is not the last layer of the network")
            return net
        if isinstance(out, _Acc):
            affine = out.chain.affine()
            if affine is None or affine[2] is not None or out.residual is not None:
                raise UnsupportedError(f"the float output {self.output!r} comes through steps other than one affine "
                                       "map (scale, bias, batch norm); quantize it or drop them")
            scale, bias, _ = affine
            out.make_layer(dict(output="float"), dict(scale=scale.astype(np.float32), bias=bias.astype(np.float32)))
            return net
        raise UnsupportedError(f"the output {self.output!r} is {self._kind(out)}")


def from_qonnx(model, *, output=None, backend="auto", context=None):
    """An ImportedNetwork from a QONNX model: a path, bytes or an onnx.ModelProto (or qonnx
    ModelWrapper). output: a tensor name to stop at (default: the graph's output), e.g. to read
    an intermediate quantized tensor. Raises apnn.UnsupportedError naming the first node APNN
    cannot run exactly."""
    try:
        import onnx
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.util.cleanup import cleanup_model
    except ImportError as e:  # pragma: no cover - a packaging problem
        raise UnsupportedError(f"from_qonnx needs the onnx and qonnx packages ({e})") from e
    if isinstance(model, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(model))
    wrapper = model if isinstance(model, ModelWrapper) else ModelWrapper(model)
    wrapper = cleanup_model(wrapper)
    if output is not None:
        # cleanup renames tensors; a name of the given graph is found by its producer's position.
        output = _renamed(model, wrapper, output)
    return _Importer(wrapper, output, backend, context).run()


def _renamed(original, cleaned, name):
    """The cleaned graph's name of a tensor named `name` before cleanup (same node order)."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    if isinstance(original, str):
        original = onnx.load(original)
    if isinstance(original, ModelWrapper):
        original = original.model
    names = [o for n in cleaned.graph.node for o in n.output]
    if name in names:
        return name
    before = [o for n in original.graph.node for o in n.output]
    if name in before and len(before) == len(names):
        return names[before.index(name)]
    raise InvalidArgumentError(f"no tensor named {name!r} in the model")


def from_torch(module, example_input, *, dynamo=None, **kwargs):
    """An ImportedNetwork from a Brevitas module: exported to QONNX in memory by Brevitas' own
    exporter (brevitas.export.export_qonnx), then from_qonnx (kwargs: output, backend, context).
    example_input: one N x C x H x W float tensor the module takes. dynamo: Brevitas' choice of
    PyTorch exporter (None: its default; False: the TorchScript one, which some models, e.g.
    brevitas_examples' ResNet-18, need). Plain PyTorch layers (nn.Conv2d, nn.Linear without
    Brevitas quantizers) have float weights and are refused by the importer, naming the node."""
    try:
        import onnx
        from brevitas.export import export_qonnx
    except ImportError as e:
        raise UnsupportedError(f"from_torch needs brevitas (and torch, onnx): {e}") from e
    import os
    import tempfile
    was_training = module.training
    module.eval()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.onnx")
            options = {} if dynamo is None else dict(dynamo=dynamo)
            export_qonnx(module, example_input, export_path=path, **options)
            proto = onnx.load(path)  # external data, if any, is read in here
    finally:
        module.train(was_training)
    return from_qonnx(proto, **kwargs)
