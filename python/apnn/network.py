"""Whole quantized networks (apnn.h, "Networks"): build a graph of layers, give weights, run.

    from apnn import Network
    net = Network((32, 32, 3))                                 # 8-bit unsigned image input
    c1 = net.conv(64, 3, padding=1, w_bit=1, out_bit=2, out_scale=0.5, pool="max")
    net.flatten()
    net.linear(10, output="float")                             # float logits
    net.set_weights(c1, codes=w1, scale=s1, bias=b1)           # or weights=floats, weight_scale=
    logits = net(images_uint8)                                 # N x 1 x 1 x 10 float32
    net.benchmark(batch=8); net.layer_times(); print(net.summary())

Layer ids: 0 is the input; every add returns the new layer's id; `input=None` means the layer
added last. Layers can also be given as dicts (Network.from_specs, Network.add); `net.specs`
holds the resolved dicts that apnn.reference.network evaluates.
"""
import threading

import numpy as np

from .conv import ACTIVATIONS, POOLS, _pair
from .core import ENCODINGS, _CODE_DTYPES, _check, c_int, default_context
from .errors import InvalidArgumentError, InvalidTypeError

OUTPUTS = {"packed": 0, "float": 1, "int32": 2}
_KINDS = {0: "input", 1: "conv", 2: "linear", 3: "pool", 4: "flatten"}
_FLOAT32 = 3


def _choice(value, table, name):
    if value not in table:
        raise InvalidArgumentError(f"{name} must be one of {sorted(table)}, got {value!r}")
    return table[value]


class Network:
    """A quantized network on one libapnn context; numpy in, numpy out."""

    def __init__(self, input_shape, *, input_bits=8, input_encoding="unsigned", input_zero_point=0,
                 input_scale=1.0, backend="auto", context=None):
        if len(input_shape) != 3:
            raise InvalidArgumentError(f"input_shape must be (H, W, C), got {input_shape!r}")
        self.context = ctx = context or default_context(backend)
        self._ffi, self._lib = ctx._ffi, ctx._lib
        desc = self._ffi.new("apnn_network_input_desc_t*")
        desc.height, desc.width, desc.channels = (c_int(s, "input_shape", "int64") for s in input_shape)
        desc.quant = ctx._quant(input_bits, input_encoding, input_zero_point)[0]
        desc.scale = float(input_scale)
        out = self._ffi.new("apnn_network_t*")
        _check(self._lib.apnn_network_create(ctx._handle, desc, out))
        self._handle = out[0]
        self.input_scale = float(input_scale)
        self.specs = [dict(type="input", name="input", input=None, shape=tuple(int(s) for s in input_shape),
                           bits=int(input_bits), encoding=input_encoding, zero_point=int(input_zero_point),
                           out_scale=float(input_scale))]
        self.params = {}
        self._names = {"input": 0}
        self._batch = None
        self._times = None
        # Planning for a batch and running it are separate C calls; threads sharing the network
        # must not interleave them (another thread's plan would change the batch a run reads).
        self._run_lock = threading.RLock()

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._lib.apnn_network_destroy(handle)
            self._handle = None

    # ---- building -------------------------------------------------------------------------

    def _id(self, layer, what="layer"):
        if layer is None:
            return len(self.specs) - 1
        if isinstance(layer, str):
            if layer not in self._names:
                raise InvalidArgumentError(f"no layer named {layer!r}")
            return self._names[layer]
        if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool):
            raise InvalidTypeError(f"{what} must be a layer id or name, got {layer!r}")
        return c_int(layer, what)

    def _added(self, spec, new_id):
        self._batch = None
        spec["name"] = spec.get("name") or f"{spec['type']}{new_id}"
        if spec["name"] in self._names:
            raise InvalidArgumentError(f"layer name {spec['name']!r} is used twice")
        self._names[spec["name"]] = new_id
        self.specs.append(spec)
        return new_id

    def _weighted(self, linear, out_channels, *, kernel=1, stride=1, padding=0, input=None, w_bit=1,
                  w_encoding=None, w_zero_point=0, activation=None, clip=(0.0, 0.0), pool="none", pool_size=2,
                  pool_stride=None, residual=None, residual_scale=None, output="packed", out_bit=2,
                  out_encoding="unsigned", out_zero_point=0, out_scale=1.0, groups=1, name=None):
        ffi, ctx = self._ffi, self.context
        src = self._id(input, "input")
        w_encoding = w_encoding or ("binary" if w_bit == 1 else "signed")
        if activation is None:  # hidden layers default to ReLU, float / int32 outputs to none
            activation = "relu" if output == "packed" else "none"
        d = ffi.new("apnn_layer_desc_t*")
        d.input = src
        d.out_channels = c_int(out_channels, "out_channels", "int64")
        kh, kw = _pair(kernel, "kernel")
        sh, sw = _pair(stride, "stride")
        ph, pw = _pair(padding, "padding")
        if not linear:
            d.kernel_h, d.kernel_w, d.stride_h, d.stride_w, d.pad_h, d.pad_w = kh, kw, sh, sw, ph, pw
        d.weight_quant = ctx._quant(w_bit, w_encoding, w_zero_point)[0]
        d.groups = c_int(groups, "groups")
        d.activation = _choice(activation, ACTIVATIONS, "activation")
        d.clip_lo, d.clip_hi = float(clip[0]), float(clip[1])
        d.pool = _choice(pool, POOLS, "pool")
        d.pool_size = c_int(pool_size, "pool_size") if pool != "none" else 0
        d.pool_stride = c_int(pool_size if pool_stride is None else pool_stride, "pool_stride") if pool != "none" else 0
        res = 0 if residual is None else self._id(residual, "residual")
        if residual is not None and res == 0:
            raise InvalidArgumentError("the network input cannot be a residual")
        if residual_scale is None:  # the residual's own scale: add its real value
            residual_scale = self.specs[res]["out_scale"] if 0 < res < len(self.specs) else 1.0
        d.residual = res
        d.residual_scale = float(residual_scale)
        d.output = _choice(output, OUTPUTS, "output")
        if output == "packed":
            d.out_quant = ctx._quant(out_bit, out_encoding, out_zero_point)[0]
            d.out_scale = float(out_scale)
        new_id = ffi.new("int32_t*")
        add = self._lib.apnn_network_add_linear if linear else self._lib.apnn_network_add_conv
        _check(add(self._handle, d, new_id))
        spec = dict(type="linear" if linear else "conv", name=name, input=src, out_channels=int(out_channels),
                    kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw), w_bit=int(w_bit), w_encoding=w_encoding,
                    w_zero_point=int(w_zero_point), activation=activation, clip=(float(clip[0]), float(clip[1])),
                    pool=pool, pool_size=int(pool_size), pool_stride=None if pool_stride is None else int(pool_stride),
                    residual=res, residual_scale=float(residual_scale), output=output, out_bit=int(out_bit),
                    out_encoding=out_encoding, out_zero_point=int(out_zero_point),
                    out_scale=float(out_scale) if output == "packed" else None, groups=int(groups))
        if linear:
            spec.update(kernel=1, stride=1, padding=0)
        return self._added(spec, int(new_id[0]))

    def conv(self, out_channels, kernel, **kw):
        """A convolution with its fused epilogue; returns the layer id. Keywords: stride, padding,
        input, w_bit (1: binary, else signed unless w_encoding), activation ('relu'; 'none' for a float /
        int32 output), clip, pool
        ('none' | 'max' | 'avg', no padding), pool_size, pool_stride, residual (layer id / name),
        residual_scale (default: the residual's out_scale), output ('packed' | 'float' | 'int32'),
        out_bit (2), out_encoding ('unsigned'), out_zero_point, out_scale, groups (1; C and O multiples
        of it, weights O x KH x KW x C/groups; groups = C = O is depthwise), name."""
        return self._weighted(False, out_channels, kernel=kernel, **kw)

    def linear(self, out_features, **kw):
        """A fully connected layer over its input flattened in NHWC order (weights O x H*W*C,
        or O x C over a global average pool); keywords as conv (no kernel / pool)."""
        for k in ("kernel", "stride", "padding", "pool"):
            if k in kw:
                raise InvalidArgumentError(f"a linear layer takes no {k!r}")
        return self._weighted(True, out_features, **kw)

    def maxpool(self, kernel, stride=None, padding=0, input=None, name=None):
        src = self._id(input, "input")
        stride = kernel if stride is None else stride
        new_id = self._ffi.new("int32_t*")
        _check(self._lib.apnn_network_add_pool(self._handle, src, POOLS["max"], c_int(kernel, "kernel"),
                                               c_int(stride, "stride"), c_int(padding, "padding"), new_id))
        return self._added(dict(type="maxpool", name=name, input=src, kernel=int(kernel), stride=int(stride),
                                padding=int(padding), out_scale=self.specs[src]["out_scale"]), int(new_id[0]))

    def avgpool(self, input=None, name=None):
        """Global average pool; only linear layers may read it (folded into them exactly)."""
        src = self._id(input, "input")
        new_id = self._ffi.new("int32_t*")
        _check(self._lib.apnn_network_add_pool(self._handle, src, POOLS["avg"], 0, 0, 0, new_id))
        return self._added(dict(type="avgpool", name=name, input=src, out_scale=self.specs[src]["out_scale"]),
                           int(new_id[0]))

    def flatten(self, input=None, name=None):
        src = self._id(input, "input")
        new_id = self._ffi.new("int32_t*")
        _check(self._lib.apnn_network_add_flatten(self._handle, src, new_id))
        return self._added(dict(type="flatten", name=name, input=src, out_scale=self.specs[src]["out_scale"]),
                           int(new_id[0]))

    def add(self, spec):
        """Adds one layer from a dict {'type': 'conv' | 'linear' | 'maxpool' | 'avgpool' | 'flatten', ...}
        with the keywords of the method of that name."""
        spec = dict(spec)
        kind = spec.pop("type", None)
        if kind == "conv":
            out, k = spec.pop("out_channels"), spec.pop("kernel")
            return self.conv(out, k, **spec)
        if kind == "linear":
            return self.linear(spec.pop("out_channels"), **spec)
        if kind == "maxpool":
            return self.maxpool(**spec)
        if kind == "avgpool":
            return self.avgpool(**spec)
        if kind == "flatten":
            return self.flatten(**spec)
        raise InvalidArgumentError(f"unknown layer type {kind!r}")

    @classmethod
    def from_specs(cls, specs, input_shape, **kwargs):
        """A Network from a list of layer dicts (see add); kwargs go to the constructor."""
        net = cls(input_shape, **kwargs)
        for spec in specs:
            net.add(spec)
        return net

    # ---- weights --------------------------------------------------------------------------

    def weight_shape(self, layer):
        """The shape set_weights expects: (O, KH, KW, C) for conv, (O, K) for linear (K = H*W*C
        of its input in NHWC order, or C over a global average pool)."""
        i = self._id(layer)
        s = self.specs[i]
        if s["type"] == "conv":
            return (s["out_channels"], *s["kernel"], self.layer_info(s["input"])["shape"][2] // s.get("groups", 1))
        if s["type"] == "linear":
            h, w, c = self.layer_info(s["input"])["shape"]
            return (s["out_channels"], h * w * c)
        raise InvalidArgumentError(f"layer {s['name']!r} ({s['type']}) has no weights")

    def set_weights(self, layer, weights=None, *, codes=None, weight_scale=None, scale=None, bias=None,
                    thresholds=None, descending=None):
        """Weights of a conv / linear layer: integer `codes` of its (w_bit, w_encoding), or float
        `weights` quantized with `weight_scale` (binary: sign). scale / bias: the epilogue's
        per-channel affine (folded batch-norm), default 1 / 0. Packed once, right here.

        thresholds (packed outputs): the output codes as integer thresholds on the layer's exact
        result instead of the float epilogue (apnn.h, "Threshold epilogues"): an O x L array, or
        R x O x L with a residual of b bits (R = 2^b, table r for the residual's code lowest + r);
        L = 2^out_bit - 1 (1 for binary), rows non-decreasing. descending: O flags, True where
        the channel counts the thresholds above y (a decreasing step function)."""
        i = self._id(layer)
        if (weights is None) == (codes is None):
            raise InvalidArgumentError("give exactly one of weights (floats) or codes (integers)")
        shape = self.weight_shape(i)
        w = np.asarray(codes if codes is not None else weights)
        if w.size != int(np.prod(shape)):
            raise InvalidArgumentError(f"layer {self.specs[i]['name']!r} needs {shape} weights, got shape {w.shape}")
        ffi = self._ffi
        desc = ffi.new("apnn_layer_weights_t*")
        keep = []
        if codes is not None:
            if w.dtype == np.bool_ or not np.issubdtype(w.dtype, np.integer):
                raise InvalidTypeError(f"codes must be integers, got dtype {w.dtype}")
            if w.dtype not in _CODE_DTYPES:
                w = w.astype(np.int32)
            w = np.ascontiguousarray(w)
            desc.dtype = _CODE_DTYPES[w.dtype]
            kind = "codes"
        else:
            if not np.issubdtype(w.dtype, np.floating):
                raise InvalidTypeError(f"weights must be floats, got dtype {w.dtype}")
            if weight_scale is None:
                raise InvalidArgumentError("float weights need weight_scale")
            w = np.ascontiguousarray(w, dtype=np.float32)
            desc.dtype = _FLOAT32
            desc.weight_scale = float(weight_scale)
            kind = "float"
        desc.values = ffi.cast("void*", w.ctypes.data)
        o = shape[0]
        vecs = {}
        for field, v in (("scale", scale), ("bias", bias)):
            if v is not None:
                arr = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)
                if arr.size != o:
                    raise InvalidArgumentError(f"{field} has {arr.size} entries, expected {o}")
                keep.append(arr)
                setattr(desc, field, ffi.cast("float*", arr.ctypes.data))
                vecs[field] = arr.copy()
        table, down = self._threshold_arrays(i, thresholds, descending)
        if table is not None:
            keep.append(table)
            desc.thresholds = ffi.cast("int32_t*", table.ctypes.data)
        if down is not None:
            keep.append(down)
            desc.descending = ffi.cast("uint8_t*", down.ctypes.data)
        _check(self._lib.apnn_network_set_weights(self._handle, i, desc))
        self.params[i] = dict(kind=kind, values=w.reshape(shape).copy(), weight_scale=weight_scale,
                              scale=vecs.get("scale"), bias=vecs.get("bias"),
                              thresholds=None if table is None else table.copy(),
                              descending=None if down is None else down.astype(bool))

    def _threshold_arrays(self, i, thresholds, descending):
        """The R x O x L int32 table and O uint8 flags of set_weights, checked for shape and range."""
        s = self.specs[i]
        if thresholds is None:
            if descending is not None:
                raise InvalidArgumentError("descending is given without thresholds")
            return None, None
        if s["output"] != "packed":
            raise InvalidArgumentError(f"layer {s['name']!r}: thresholds need a packed output, it has {s['output']!r}")
        levels = 1 if s["out_encoding"] == "binary" else 2 ** s["out_bit"] - 1
        tables = 1
        if s["residual"]:
            tables = 2 ** self.specs[s["residual"]]["out_bit"]
        o = s["out_channels"]
        t = np.asarray(thresholds)
        if t.dtype == np.bool_ or not np.issubdtype(t.dtype, np.integer):
            raise InvalidTypeError(f"thresholds must be integers, got dtype {t.dtype}")
        if t.ndim == 2:
            t = t[None]
        if t.shape != (tables, o, levels):
            raise InvalidArgumentError(f"layer {s['name']!r} needs thresholds of shape {(tables, o, levels)}"
                                       f"{'' if tables > 1 else f' or {(o, levels)}'}, got {np.shape(thresholds)}")
        if t.size and (t.min() < -2**31 or t.max() > 2**31 - 1):
            raise InvalidArgumentError("thresholds must fit int32")
        table = np.ascontiguousarray(t, dtype=np.int32)
        down = None
        if descending is not None:
            d = np.asarray(descending).reshape(-1)
            if d.size != o:
                raise InvalidArgumentError(f"descending has {d.size} entries, expected {o}")
            down = np.ascontiguousarray(d.astype(bool), dtype=np.uint8)
        return table, down

    def load(self, source):
        """Weights from a dict or an .npz: for a layer named L, 'L.codes' (integers) or 'L.weight'
        with 'L.weight_scale', and optional 'L.scale', 'L.bias'."""
        data = np.load(source) if isinstance(source, str) else source
        keys = set(data.keys())
        for i, s in enumerate(self.specs):
            if s["type"] not in ("conv", "linear"):
                continue
            n = s["name"]
            get = (lambda k, n=n: data[f"{n}.{k}"] if f"{n}.{k}" in keys else None)
            if get("codes") is None and get("weight") is None:
                continue
            ws = get("weight_scale")
            self.set_weights(i, weights=get("weight"), codes=get("codes"),
                             weight_scale=None if ws is None else float(np.asarray(ws)), scale=get("scale"),
                             bias=get("bias"))

    # ---- running --------------------------------------------------------------------------

    def plan(self, batch):
        """Prepares the network for `batch` images (done by __call__ / benchmark when needed)."""
        with self._run_lock:
            self._plan(batch)

    def _plan(self, batch):
        _check(self._lib.apnn_network_plan(self._handle, c_int(batch, "batch", "int64")))
        self._batch = int(batch)
        shape, dtype = self._ffi.new("int64_t[4]"), self._ffi.new("apnn_dtype_t*")
        _check(self._lib.apnn_network_output_shape(self._handle, shape, dtype))
        self._out_shape = tuple(int(s) for s in shape)
        self._out_dtype = np.float32 if int(dtype[0]) == _FLOAT32 else np.int32

    def __call__(self, x):
        """Forward pass of N x H x W x C images: integer codes (uint8 images for the default
        8-bit input) or floats (quantized with input_scale). Returns the last layer's output,
        N x H x W x C: float32 logits, int32 sums, or int32 codes."""
        x = np.asarray(x)
        if x.ndim != 4:
            raise InvalidArgumentError(f"input must be N x H x W x C, got shape {x.shape}")
        if tuple(x.shape[1:]) != self.specs[0]["shape"]:
            raise InvalidArgumentError(f"input images are {x.shape[1:]}, the network takes {self.specs[0]['shape']}")
        if np.issubdtype(x.dtype, np.floating):
            x, dtype = np.ascontiguousarray(x, dtype=np.float32), _FLOAT32
        elif np.issubdtype(x.dtype, np.integer):
            if x.dtype not in _CODE_DTYPES:
                x = x.astype(np.int32)
            x = np.ascontiguousarray(x)
            dtype = _CODE_DTYPES[x.dtype]
        else:
            raise InvalidTypeError(f"input must be integer codes or floats, got dtype {x.dtype}")
        with self._run_lock:
            if self._batch != x.shape[0]:
                self._plan(x.shape[0])
            out = np.empty(self._out_shape, dtype=self._out_dtype)
            _check(self._lib.apnn_network_run(self._handle, self._ffi.cast("void*", x.ctypes.data), dtype,
                                              self._ffi.cast("void*", out.ctypes.data)))
        return out

    def benchmark(self, batch, iters=50, warmup=5):
        """Median ms of one forward pass of `batch` images on the device (CUDA graph replays, CUDA
        events; host: wall clock), input already uploaded; also times each layer (layer_times)."""
        with self._run_lock:
            if self._batch != batch:
                self._plan(batch)
            us = self._ffi.new("double*")
            _check(self._lib.apnn_network_benchmark(self._handle, c_int(warmup, "warmup"), c_int(iters, "iters"),
                                                    us))
            self._times = self._layer_times()
        return us[0] / 1000.0

    def _layer_times(self):
        n = len(self.specs)
        arr, count = self._ffi.new("double[]", n), self._ffi.new("int32_t*")
        _check(self._lib.apnn_network_layer_times(self._handle, arr, n, count))
        return [(self.specs[i]["name"], arr[i] / 1000.0) for i in range(n)]

    def layer_times(self):
        """[(layer name, ms)] from the last benchmark; fused / virtual layers take 0."""
        if self._times is None:
            raise InvalidArgumentError("no timings yet: call benchmark() first")
        return list(self._times)

    # ---- description ----------------------------------------------------------------------

    def layer_info(self, layer):
        i = self._id(layer)
        info = self._ffi.new("apnn_layer_info_t*")
        _check(self._lib.apnn_network_layer_info(self._handle, i, info))
        enc = {v: k for k, v in ENCODINGS.items()}
        return dict(name=self.specs[i]["name"], kind=_KINDS[int(info.kind)], input=int(info.input),
                    shape=tuple(int(s) for s in info.shape), output={v: k for k, v in OUTPUTS.items()}[int(info.output)],
                    out_bits=int(info.out_quant.bits), out_encoding=enc.get(int(info.out_quant.encoding)),
                    w_bits=int(info.weight_quant.bits), macs=int(info.macs), weight_bytes=int(info.weight_bytes),
                    fused=bool(info.fused), row_words=int(info.row_words), call_images=int(info.call_images),
                    kernel=self._ffi.string(info.kernel).decode())

    def total_macs(self):
        """Multiply-accumulates per image over all layers."""
        return sum(self.layer_info(i)["macs"] for i in range(len(self.specs)))

    def summary(self):
        """A table: id, name, kind, output shape, bits (w/x out), GOPs per image, weight bytes."""
        times = dict(self._times) if self._times else {}
        lines = [f"{'id':>3} {'name':<20} {'kind':<10} {'output':>16} {'bits':>9} {'MOPs/img':>10} {'weights':>10}"
                 + ("   ms" if times else "")]
        total_ops = total_bytes = 0
        for i in range(len(self.specs)):
            info = self.layer_info(i)
            shape = "x".join(str(s) for s in info["shape"])
            if info["output"] != "packed":
                bits = f"w{info['w_bits']}/{info['output']}"
            elif info["kind"] in ("conv", "linear"):
                bits = f"w{info['w_bits']}a{info['out_bits']}"
            else:
                bits = f"a{info['out_bits']}"
            ops = 2 * info["macs"]
            total_ops += ops
            total_bytes += info["weight_bytes"]
            kind = info["kind"] + ("*" if info["fused"] and info["kind"] == "pool" else "")
            groups = self.specs[i].get("groups", 1)
            if groups > 1:  # grouped; depthwise where every channel is its own group
                kind += "/dw" if groups == self.specs[i]["out_channels"] == info["shape"][2] and \
                    self.weight_shape(i)[3] == 1 else f"/g{groups}"
            line = (f"{i:>3} {info['name'][:20]:<20} {kind:<10} {shape:>16} {bits:>9} {ops / 1e6:>10.1f} "
                    f"{info['weight_bytes']:>10}")
            if times:
                line += f" {times.get(info['name'], 0.0):7.4f}"
            lines.append(line)
        lines.append(f"total: {total_ops / 1e9:.3f} GOPs per image, {total_bytes / 1e6:.2f} MB of packed weights"
                     + ("  (* fused into the layer before)" if any("*" in ln for ln in lines[1:]) else ""))
        return "\n".join(lines)

    def reference(self, x):
        """The numpy oracle's output for x (apnn.reference.network) with this network's weights."""
        from . import reference
        return reference.network(self.specs, self.params, x, input_scale=self.input_scale)
