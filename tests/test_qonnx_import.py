"""apnn.from_qonnx against qonnx's own executor (qonnx.core.onnx_exec): every quantized activation
tensor's codes, the float output and the predictions, on hand-made graphs that sit on every
rounding rule's ties and on the Brevitas models of tests/data/qonnx (tools/make_qonnx_models.py).
"""
import glob
import json
import os

import numpy as np
import pytest

import apnn
from conftest import BACKENDS

onnx = pytest.importorskip("onnx")
pytest.importorskip("qonnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "qonnx")
QONNX_DOMAIN = "qonnx.custom_op.general"


# ---- comparing with the executor -----------------------------------------------------------

def activation_quants(mw):
    """The Quant / BipolarQuant nodes of activations: not of weights, and not the input's
    quantizer (no layer above it)."""
    inits = {i.name for i in mw.graph.initializer}
    producers = {o: n for n in mw.graph.node for o in n.output}

    def after_a_layer(name):
        stack, seen = [name], set()
        while stack:
            node = producers.get(stack.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in ("Conv", "Gemm", "MatMul"):
                return True
            stack.extend(node.input)
        return False
    return [n for n in mw.graph.node if n.op_type in ("Quant", "BipolarQuant")
            and n.input[0] not in inits and after_a_layer(n.input[0])]


def executor_codes(mw, node, value):
    """A Quant node's codes from the executor's float output (q - zp) * scale."""
    scale = np.asarray(mw.get_initializer(node.input[1]))
    zp = np.asarray(mw.get_initializer(node.input[2])) if node.op_type == "Quant" else 0.0
    return np.round(value.astype(np.float64) / scale + zp).astype(np.int64)


def boundary_distance(mw, node, pre):
    """How far the executor's value before the quantizer is from a rounding boundary, in steps."""
    scale = np.asarray(mw.get_initializer(node.input[1]))
    zp = np.asarray(mw.get_initializer(node.input[2])) if node.op_type == "Quant" else 0.0
    t = pre.astype(np.float64) / scale + zp
    if node.op_type == "BipolarQuant":
        return np.abs(t)
    return np.abs(t - np.floor(t) - 0.5)


def compare_with_executor(mw, x, backend):
    """Codes of every activation quantizer, APNN against the executor. Returns per tensor the
    number of elements and mismatches; a mismatch must be one code off at a rounding boundary of
    the executor's float32 value (|distance| < 1e-4 steps) or follow one upstream."""
    inp = mw.graph.input[0].name
    ctx = execute_onnx(cleanup_model(mw, override_inpsize=len(x)), {inp: x}, return_full_exec_context=True)
    report, upstream = {}, 0
    for node in activation_quants(mw):
        name = node.output[0]
        net = apnn.from_qonnx(mw.model, output=name, backend=backend)
        got = net.codes(x)
        want = executor_codes(mw, node, ctx[name])
        assert got.shape == want.shape, name
        wrong = got != want
        n_wrong = int(wrong.sum())
        if n_wrong:
            assert np.abs(got - want)[wrong].max() == 1, f"{name}: a mismatch of more than one code"
            at_boundary = boundary_distance(mw, node, ctx[node.input[0]])[wrong] < 1e-4
            assert upstream > 0 or at_boundary.all(), \
                f"{name}: {int((~at_boundary).sum())} mismatches away from any rounding boundary"
        upstream += n_wrong
        report[name] = (got.size, n_wrong)
    return ctx, report


# ---- hand-made graphs: one layer between two quantizers ------------------------------------

def quant(graph_inits, inp, out, scale, zp, bits, signed, narrow, rounding="ROUND"):
    names = [f"{out}_scale", f"{out}_zp", f"{out}_bits"]
    for n, v in zip(names, (scale, zp, bits)):
        graph_inits.append(numpy_helper.from_array(np.asarray(v, np.float32), n))
    return helper.make_node("Quant", [inp, *names], [out], domain=QONNX_DOMAIN, signed=int(signed),
                            narrow=int(narrow), rounding_mode=rounding)


def one_layer_model(rng, *, c=6, o=5, hw=5, in_q=(1.0, 0, 4, False, False), w_q=(1.0, 0, 2, True, False),
                    steps=(), out_q=(1.0, 3, 4, False, False), rounding="ROUND", kernel=3, linear=False,
                    w_scale_per_channel=False, group=1):
    """x -> Quant -> Conv (or flatten + Gemm) over Quant(weights) -> steps -> Quant -> y.
    steps: ('Mul' | 'Add' | 'Div' | 'Sub', constant) or ('Relu',) or ('BN', gamma, beta, mean, var)."""
    inits, nodes = [], []
    nodes.append(quant(inits, "x", "xq", *in_q))
    if linear:
        wshape = (o, c * hw * hw)
    else:
        wshape = (o, c // group, kernel, kernel)
    w = rng.integers(-2, 2, wshape).astype(np.float32) * np.float32(w_q[0])
    inits.append(numpy_helper.from_array(w, "w"))
    w_scale = w_q[0] if not w_scale_per_channel else (
        np.asarray(rng.choice([0.5, 1.0, 2.0], o), np.float32).reshape((o, 1) if linear else (o, 1, 1, 1)))
    nodes.append(quant(inits, "w", "wq", w_scale, *w_q[1:]))
    if linear:
        nodes.append(helper.make_node("Flatten", ["xq"], ["xf"], axis=1))
        nodes.append(helper.make_node("Gemm", ["xf", "wq"], ["acc0"], transB=1))
    else:
        nodes.append(helper.make_node("Conv", ["xq", "wq"], ["acc0"], kernel_shape=[kernel, kernel],
                                      pads=[kernel // 2] * 4, group=group))
    prev = "acc0"
    for i, st in enumerate(steps):
        out = f"acc{i + 1}"
        if len(st) == 1:  # a unary op: Relu, or one the importer refuses
            nodes.append(helper.make_node(st[0], [prev], [out]))
        elif st[0] == "BN":
            names = [f"bn{i}_{k}" for k in ("g", "b", "m", "v")]
            for n, v in zip(names, st[1:]):
                inits.append(numpy_helper.from_array(np.asarray(v, np.float32), n))
            nodes.append(helper.make_node("BatchNormalization", [prev, *names], [out], epsilon=1e-5))
        else:
            cname = f"c{i}"
            inits.append(numpy_helper.from_array(np.asarray(st[1], np.float32), cname))
            nodes.append(helper.make_node(st[0], [prev, cname], [out]))
        prev = out
    nodes.append(quant(inits, prev, "y", *out_q, rounding=rounding))
    out_shape = [1, o] if linear else [1, o, hw, hw]
    graph = helper.make_graph(nodes, "one_layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                 [1, c, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    return cleanup_model(ModelWrapper(model))


def integer_input(rng, n, c, hw, hi=16):
    return rng.integers(0, hi, (n, c, hw, hw)).astype(np.float32)


def assert_equal_to_executor(mw, x, backend):
    _, report = compare_with_executor(mw, x, backend)
    assert all(wrong == 0 for _, wrong in report.values()), report
    return report


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("zp", [0, 1, 3, -2])
def test_ties_with_zero_points_round_half_even_after_the_offset(backend, zp, rng):
    # y * 0.5 sits on x.5 for every odd y; the exporter adds the zero point before rounding.
    mw = one_layer_model(rng, steps=[("Mul", 0.5)], out_q=(1.0, zp, 4, True, False))
    assert_equal_to_executor(mw, integer_input(rng, 3, 6, 5), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("signed,narrow", [(False, True), (True, True), (False, False)])
def test_narrow_ranges(backend, signed, narrow, rng):
    mw = one_layer_model(rng, steps=[("Mul", 0.25)], out_q=(1.0, 0, 3, signed, narrow))
    assert_equal_to_executor(mw, integer_input(rng, 2, 6, 5), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rounding", ["ROUND", "FLOOR", "CEIL", "HALF_UP", "HALF_DOWN", "UP", "DOWN"])
def test_rounding_modes(backend, rounding, rng):
    mw = one_layer_model(rng, steps=[("Div", 4.0), ("Sub", 0.5)], out_q=(1.0, 0, 4, True, False), rounding=rounding)
    assert_equal_to_executor(mw, integer_input(rng, 2, 6, 5), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_bit_signed_quant_is_bipolar(backend, rng):
    mw = one_layer_model(rng, steps=[("Add", 0.0)], out_q=(0.5, 0, 1, True, False), w_q=(1.0, 0, 1, True, False))
    report = assert_equal_to_executor(mw, integer_input(rng, 2, 6, 5), backend)
    assert report


@pytest.mark.parametrize("backend", BACKENDS)
def test_decreasing_steps_and_batch_norm(backend, rng):
    # Negative multipliers and batch-norm gammas make some channels' codes fall as y rises.
    o = 5
    gamma = np.array([1.5, -0.7, 0.3, -2.0, 1.0], np.float32)
    mw = one_layer_model(rng, o=o, steps=[("Mul", np.array([1, -1, 1, 1, -0.5], np.float32).reshape(1, o, 1, 1)),
                                          ("BN", gamma, rng.normal(0, 1, o), rng.normal(0, 2, o), rng.uniform(0.5, 2, o)),
                                          ("Relu",)],
                         out_q=(0.37, 0, 2, False, False), w_scale_per_channel=True)
    assert_equal_to_executor(mw, integer_input(rng, 3, 6, 5), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_over_flattened_nchw(backend, rng):
    mw = one_layer_model(rng, linear=True, steps=[("Mul", 0.125), ("Add", np.arange(5, dtype=np.float32) - 2)],
                         out_q=(1.0, 1, 4, True, False), w_scale_per_channel=True)
    assert_equal_to_executor(mw, integer_input(rng, 4, 6, 5), backend)


def pooled_trunc_model(rng, version, *, rounding="FLOOR", signed=False, out_bits=6):
    """x -> Quant -> Conv 3x3 -> Relu -> Quant (4-bit) -> GlobalAveragePool -> Mul (H*W) -> Trunc
    (version 1 or 2, as Brevitas' TruncAvgPool2d exports) -> y."""
    inits, nodes = [], []
    nodes.append(quant(inits, "x", "xq", 1.0, 0, 4, False, False))
    inits.append(numpy_helper.from_array(rng.integers(-1, 2, (6, 3, 3, 3)).astype(np.float32), "w"))
    nodes.append(quant(inits, "w", "wq", 1.0, 0, 2, True, False))
    nodes.append(helper.make_node("Conv", ["xq", "wq"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c"], ["r"]))
    nodes.append(quant(inits, "r", "a", 0.5, 0, 4, signed, False))
    nodes.append(helper.make_node("GlobalAveragePool", ["a"], ["p"]))
    inits.append(numpy_helper.from_array(np.asarray(25.0, np.float32), "k2"))
    nodes.append(helper.make_node("Mul", ["p", "k2"], ["s"]))
    names = ["t_scale", "t_zp", "t_in_bits"]
    vals = [0.5, 0.0, 9.0]
    if version == 2:
        names += ["t_out_scale"]
        vals += [0.5 * 2 ** (9 - out_bits)]
    names += ["t_out_bits"]
    vals += [float(out_bits)]
    for n, v in zip(names, vals):
        inits.append(numpy_helper.from_array(np.asarray(v, np.float32), n))
    attrs = dict(rounding_mode=rounding)
    if version == 2:
        attrs.update(signed=int(signed), narrow=0)
    nodes.append(helper.make_node("Trunc", ["s", *names], ["y"], domain=QONNX_DOMAIN, **attrs))
    graph = helper.make_graph(nodes, "trunc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 1, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid(QONNX_DOMAIN, version)])
    return cleanup_model(ModelWrapper(model))


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("rounding", ["FLOOR", "ROUND"])
def test_trunc_after_average_pool(version, rounding, rng):
    mw = pooled_trunc_model(rng, version, rounding=rounding)
    x = integer_input(rng, 4, 3, 5)
    ctx = execute_onnx(cleanup_model(mw, override_inpsize=len(x)), {mw.graph.input[0].name: x}, return_full_exec_context=True)
    net = apnn.from_qonnx(mw.model, backend="host")
    want = ctx[mw.graph.output[0].name]
    assert np.unique(want).size > 2, "the test needs varied outputs"
    np.testing.assert_array_equal(net(x), want)


def test_unsupported_nodes_are_named(rng):
    mw = one_layer_model(rng, steps=[("Mul", 0.5), ("Sigmoid",)])
    with pytest.raises(apnn.UnsupportedError, match="Sigmoid_0.*Sigmoid.*not supported"):
        apnn.from_qonnx(mw.model, backend="host")


def depthwise_after_per_channel_model(rng, c=6, dense=False):
    """x -> Quant -> Conv 3x3 -> Relu -> Quant with one scale per channel -> a depthwise (or, with
    dense, an ordinary) 3x3 Conv -> Mul -> Quant -> y."""
    inits, nodes = [], []
    nodes.append(quant(inits, "x", "xq", 1.0, 0, 4, False, False))
    inits.append(numpy_helper.from_array(rng.integers(-1, 2, (c, 3, 3, 3)).astype(np.float32), "w1"))
    nodes.append(quant(inits, "w1", "w1q", 1.0, 0, 2, True, False))
    nodes.append(helper.make_node("Conv", ["xq", "w1q"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    scales = np.asarray(rng.choice([0.5, 1.0, 2.0, 4.0], c), np.float32).reshape(1, c, 1, 1)
    nodes.append(quant(inits, "r1", "a1", scales, 0, 3, False, False))
    wshape = (c, c, 3, 3) if dense else (c, 1, 3, 3)
    inits.append(numpy_helper.from_array(rng.integers(-1, 2, wshape).astype(np.float32), "w2"))
    nodes.append(quant(inits, "w2", "w2q", 1.0, 0, 2, True, False))
    nodes.append(helper.make_node("Conv", ["a1", "w2q"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                  group=1 if dense else c))
    inits.append(numpy_helper.from_array(np.asarray(0.125, np.float32), "k"))
    nodes.append(helper.make_node("Mul", ["c2", "k"], ["m2"]))
    nodes.append(quant(inits, "m2", "y", 1.0, 1, 4, True, False))
    graph = helper.make_graph(nodes, "pc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 5, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    return cleanup_model(ModelWrapper(model))


def test_per_channel_activation_scales_into_a_depthwise_layer(rng):
    mw = depthwise_after_per_channel_model(rng)
    report = assert_equal_to_executor(mw, integer_input(rng, 3, 3, 5), "host")
    assert len(report) == 2


def test_per_channel_activation_scales_into_a_dense_layer_are_refused(rng):
    mw = depthwise_after_per_channel_model(rng, dense=True)
    with pytest.raises(apnn.UnsupportedError, match="per-channel scales but mixes channels"):
        apnn.from_qonnx(mw.model, backend="host")


def test_bit_widths_over_8_are_refused(rng):
    mw = one_layer_model(rng, out_q=(1.0, 0, 9, False, False))
    with pytest.raises(apnn.UnsupportedError, match="9-bit"):
        apnn.from_qonnx(mw.model, backend="host")


@pytest.mark.parametrize("c,o,group", [(4, 6, 2), (6, 6, 6), (5, 10, 5)])
def test_grouped_and_depthwise_convolution(c, o, group, rng):
    mw = one_layer_model(rng, c=c, o=o, group=group, steps=[("Mul", 0.25)], out_q=(1.0, 1, 4, True, False),
                         w_scale_per_channel=True)
    assert_equal_to_executor(mw, integer_input(rng, 3, c, 5), "host")


def test_a_float_tensor_reaching_a_layer_is_refused(rng):
    inits = []
    nodes = [quant(inits, "x", "xq", 1.0, 0, 4, False, False)]
    w = rng.integers(-1, 2, (3, 2, 1, 1)).astype(np.float32)
    inits.append(numpy_helper.from_array(w, "w"))
    nodes.append(quant(inits, "w", "wq", 1.0, 0, 2, True, False))
    nodes.append(helper.make_node("Conv", ["xq", "wq"], ["a"], kernel_shape=[1, 1], name="conv1"))
    nodes.append(helper.make_node("Conv", ["a", "wq2"], ["b"], kernel_shape=[1, 1], name="conv2"))
    inits.append(numpy_helper.from_array(rng.integers(-1, 2, (3, 3, 1, 1)).astype(np.float32), "w2"))
    nodes.insert(2, quant(inits, "w2", "wq2", 1.0, 0, 2, True, False))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
                              [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3, 3, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    with pytest.raises(apnn.UnsupportedError, match="Conv.*unquantized float tensor"):
        apnn.from_qonnx(model, backend="host")


# ---- Brevitas models -----------------------------------------------------------------------

MODELS = sorted(glob.glob(os.path.join(DATA, "*.onnx")))


def digits():
    d = np.load(os.path.join(DATA, "digits_test.npz"))
    return d["x"], d["y"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", MODELS, ids=[os.path.basename(p)[:-5] for p in MODELS])
def test_brevitas_models_equal_the_executor(backend, path):
    mw = cleanup_model(ModelWrapper(path))
    x = digits()[0][:16]
    ctx, report = compare_with_executor(mw, x, backend)
    mismatches = sum(w for _, w in report.values())
    assert mismatches == 0, report
    assert len(report) >= 3, report  # every model has several quantized activation tensors
    net = apnn.from_qonnx(path, backend=backend)
    out = net(x)
    want = ctx[mw.graph.output[0].name]
    # Float32 sums in another order: the executor itself moves by ~1e-7 relative between batches.
    tol = 1e-5 * float(np.abs(want).max())
    np.testing.assert_allclose(out, want, rtol=0, atol=tol)
    np.testing.assert_array_equal(out.argmax(1), want.argmax(1))


@pytest.mark.parametrize("path", MODELS, ids=[os.path.basename(p)[:-5] for p in MODELS])
def test_brevitas_models_keep_their_accuracy(path):
    """On every held-out digit, apnn's accuracy is the one Brevitas measured when it trained the model."""
    with open(path[:-5] + ".json") as f:
        meta = json.load(f)
    x, y = digits()
    net = apnn.from_qonnx(path, backend="host")
    accuracy = float((net(x).argmax(1) == y).mean())
    assert abs(accuracy - meta["brevitas_test_accuracy"]) < 0.5 / len(y), (accuracy, meta)


def test_committed_models_say_how_they_were_made():
    assert len(MODELS) >= 9, f"expected the 9 trained models in {DATA}"
    for path in MODELS:
        with open(path[:-5] + ".json") as f:
            meta = json.load(f)
        assert meta["brevitas"] and meta["brevitas_test_accuracy"] > 0.9, meta
