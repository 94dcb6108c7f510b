"""Property-based calls of the C API and the Python API on the host backend (Hypothesis): random
valid and invalid arguments must give an exact result (equal to the numpy oracle) or an apnn error
with a message, never a crash, a hang, a foreign exception or a wrong answer."""
import numpy as np
import pytest

import apnn
from apnn import _ffi, reference

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True, database=None)
ENCODINGS = ["unsigned", "signed", "binary"]
HUGE = [0, -1, 2**31, 2**31 + 1, 2**40, 2**62]


def mostly(valid, invalid):
    """About three valid draws to one invalid."""
    return st.tuples(st.integers(0, 3), valid, invalid).map(lambda t: t[2] if t[0] == 0 else t[1])


def quant_strategy(valid_only=False):
    bits = st.integers(1, 8) if valid_only else mostly(st.integers(1, 8), st.sampled_from([0, 9, -1, 2**31 - 1]))
    zp = st.integers(-3, 3) if valid_only else mostly(st.integers(-3, 3), st.sampled_from([-2**31, 2**31 - 1]))
    enc = st.sampled_from(["unsigned", "signed", "signed", "binary"])
    # Binary is 1-bit without a zero point; an invalid draw sometimes keeps other bits.
    return st.tuples(bits, enc, zp, st.booleans()).map(
        lambda q: (1, "binary", 0) if q[1] == "binary" and (valid_only or q[3]) else q[:3])


def valid_quant(bits, enc, zp):
    return 1 <= bits <= 8 and (enc != "binary" or bits == 1)


def codes_for(rng, shape, bits, enc):
    if valid_quant(bits, enc, 0):
        return reference.random_codes(rng, shape, bits, enc)
    return rng.integers(-2, 3, shape).astype(np.int32)


# ---- every C entry point with NULL / zero arguments ----------------------------------------

def c_functions():
    ffi, lib = _ffi.load()
    out = []
    for name in dir(lib):
        obj = getattr(lib, name)
        if not name.startswith("apnn_") or isinstance(obj, int):
            continue
        t = ffi.typeof(obj)
        if t.result.cname == "apnn_status_t":
            out.append(name)
    return out


@pytest.mark.parametrize("name", c_functions())
def test_every_status_function_refuses_null_arguments(name):
    ffi, lib = _ffi.load()
    fn = getattr(lib, name)
    args = []
    for a in ffi.typeof(fn).args:
        if a.kind == "pointer":
            args.append(ffi.NULL)
        elif a.kind == "primitive" and a.cname in ("float", "double"):
            args.append(0.0)
        else:
            args.append(0)
    if not any(a is ffi.NULL for a in args):
        pytest.skip("no pointer arguments")
    status = fn(*args)
    assert status == 1, f"{name}: status {status}"  # APNN_STATUS_INVALID_ARGUMENT
    assert ffi.string(lib.apnn_last_error()).decode()


# ---- packing from a buffer: sizes, shapes and codes ----------------------------------------

@FUZZ
@given(rows=mostly(st.integers(1, 40), st.sampled_from(HUGE)), cols=mostly(st.integers(1, 300), st.sampled_from(HUGE)),
       quant=quant_strategy(), dtype=st.sampled_from([np.int8, np.uint8, np.int32]),
       short=st.sampled_from([0, 0, 0, 1, 2]), seed=st.integers(0, 2**32 - 1))
def test_pack_buffer(host_ctx, rows, cols, quant, dtype, short, seed):
    bits, enc, zp = quant
    rng = np.random.default_rng(seed)
    small = 1 <= rows <= 40 and 1 <= cols <= 300
    codes = codes_for(rng, (rows, cols), bits, enc).astype(dtype) if small else np.zeros((2, 2), dtype)
    given_bytes = max(4, codes.nbytes - short)
    buf = host_ctx.buffer(given_bytes)
    buf.write(codes.reshape(-1)[:given_bytes // codes.itemsize])
    try:
        packed = host_ctx.pack_buffer(buf, dtype, rows, cols, bits, enc, zp)
    except apnn.ApnnError as e:
        assert str(e)
        return
    assert small and given_bytes >= codes.nbytes and valid_quant(bits, enc, zp), "accepted a call it should refuse"
    np.testing.assert_array_equal(packed.planes(), host_ctx.pack(codes.astype(np.int32), bits, enc, zp).planes())


# ---- GEMM ----------------------------------------------------------------------------------

@FUZZ
@given(m=st.integers(1, 20), n=st.integers(1, 20), k=st.integers(1, 600), xq=quant_strategy(), wq=quant_strategy(),
       seed=st.integers(0, 2**32 - 1))
def test_gemm(host_ctx, m, n, k, xq, wq, seed):
    rng = np.random.default_rng(seed)
    x = codes_for(rng, (m, k), xq[0], xq[1])
    w = codes_for(rng, (n, k), wq[0], wq[1])
    try:
        y = apnn.gemm(x, w, x_bit=xq[0], w_bit=wq[0], x_encoding=xq[1], w_encoding=wq[1], x_zero_point=xq[2],
                      w_zero_point=wq[2], context=host_ctx)
    except apnn.ApnnError as e:
        assert str(e)
        return
    want = reference.gemm(x, w, x_bit=xq[0], w_bit=wq[0], x_encoding=xq[1], w_encoding=wq[1], x_zero_point=xq[2],
                          w_zero_point=wq[2])
    np.testing.assert_array_equal(y, want)


# ---- convolution, grouped too --------------------------------------------------------------

@FUZZ
@given(n=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7), cg=st.integers(1, 40), og=st.integers(1, 6),
       groups=st.sampled_from([1, 1, 2, 3]), k=st.integers(1, 5), stride=mostly(st.integers(1, 3), st.sampled_from([-1, 0, 17])),
       pad=mostly(st.integers(0, 2), st.sampled_from([-1, 5])),
       xq=quant_strategy(valid_only=True), wq=quant_strategy(valid_only=True), seed=st.integers(0, 2**32 - 1))
def test_conv2d(host_ctx, n, h, w, cg, og, groups, k, stride, pad, xq, wq, seed):
    rng = np.random.default_rng(seed)
    if not (valid_quant(*xq) and valid_quant(*wq)):
        return
    x = codes_for(rng, (n, h, w, cg * groups), xq[0], xq[1])
    wt = codes_for(rng, (og * groups, k, k, cg), wq[0], wq[1])
    kw = dict(x_bit=xq[0], w_bit=wq[0], x_encoding=xq[1], w_encoding=wq[1], x_zero_point=xq[2], w_zero_point=wq[2])
    try:
        y = apnn.conv2d(x, wt, stride=stride, padding=pad, groups=groups, context=host_ctx, **kw)
    except apnn.ApnnError as e:
        assert str(e)
        assert not (1 <= stride <= 16 and 0 <= pad < k and h + 2 * pad >= k and w + 2 * pad >= k), str(e)
        return
    np.testing.assert_array_equal(y, reference.conv2d(x, wt, stride=stride, padding=pad, groups=groups, **kw))


# ---- networks: random layer sequences --------------------------------------------------------

LAYER = st.fixed_dictionaries({
    "type": st.sampled_from(["conv", "conv", "conv", "maxpool", "dwconv"]),
    "out": st.integers(1, 40), "k": st.integers(1, 4), "stride": st.integers(1, 3), "pad": st.integers(0, 2),
    "w_bit": st.integers(1, 4), "out_bit": st.integers(1, 4), "residual": st.booleans(), "thresholds": st.booleans(),
})


@FUZZ
@given(layers=st.lists(LAYER, min_size=1, max_size=4), head=st.sampled_from(["float", "int32", "packed", "avg"]),
       in_c=st.integers(1, 8), size=st.integers(3, 9), seed=st.integers(0, 2**32 - 1))
def test_networks(host_ctx, layers, head, in_c, size, seed):
    rng = np.random.default_rng(seed)
    try:
        net = apnn.Network((size, size, in_c), context=host_ctx)
        for spec in layers:
            last = len(net.specs) - 1
            shape = net.layer_info(last)["shape"]
            if spec["type"] == "maxpool":
                net.maxpool(min(spec["k"] + 1, 3), stride=spec["stride"], padding=min(spec["pad"], 1))
                continue
            groups = shape[2] if spec["type"] == "dwconv" else 1
            out = shape[2] if spec["type"] == "dwconv" else spec["out"]
            residual = None
            if spec["residual"] and last > 0 and spec["stride"] == 1 and 2 * spec["pad"] == spec["k"] - 1 \
                    and out == shape[2] and net.specs[last]["type"] == "conv":
                residual = last
            enc = "binary" if spec["w_bit"] == 1 else "signed"
            layer = net.conv(out, spec["k"], stride=spec["stride"], padding=spec["pad"], groups=groups,
                             w_bit=spec["w_bit"], residual=residual, out_bit=spec["out_bit"], out_scale=0.5)
            wshape = net.weight_shape(layer)
            params = dict(codes=reference.random_codes(rng, wshape, spec["w_bit"], enc))
            if spec["thresholds"]:
                tables = 2 ** net.specs[residual]["out_bit"] if residual else 1
                t = np.sort(rng.integers(-30, 30, (tables, out, 2 ** spec["out_bit"] - 1)), axis=-1)
                params.update(thresholds=t, descending=rng.random(out) < 0.3)
            else:
                params.update(scale=rng.uniform(-0.2, 0.2, out).astype(np.float32))
            net.set_weights(layer, **params)
        if head == "avg":
            net.avgpool()
            fc = net.linear(3, w_bit=2, output="float")
        else:
            fc = net.conv(3, 1, w_bit=2, output=head) if head != "packed" else net.conv(3, 1, w_bit=2, out_bit=2)
        net.set_weights(fc, codes=reference.random_codes(rng, net.weight_shape(fc), 2, "signed"))
        x = rng.integers(0, 256, (2, size, size, in_c)).astype(np.uint8)
        got = net(x)
    except apnn.ApnnError as e:
        assert str(e)
        return
    np.testing.assert_array_equal(got, net.reference(x))
