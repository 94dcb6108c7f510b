"""Brevitas' own model definitions (brevitas_examples.bnn_pynq: CNV, LFC / SFC / TFC, ResNet-18
4w4a) with random weights, through apnn.from_torch, against qonnx's executor on the exported file.
Needs torch and brevitas (skipped without them: CI has neither; tests/data/qonnx keeps exported
models for it)."""
import numpy as np
import pytest

import apnn

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")
models = pytest.importorskip("brevitas_examples.bnn_pynq.models")
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

from test_qonnx_import import compare_with_executor  # noqa: E402

ZOO = [("cnv_1w1a", (3, 32, 32)), ("cnv_1w2a", (3, 32, 32)), ("cnv_2w2a", (3, 32, 32)),
       ("lfc_1w1a", (1, 28, 28)), ("lfc_1w2a", (1, 28, 28)), ("sfc_1w1a", (1, 28, 28)), ("sfc_2w2a", (1, 28, 28)),
       ("tfc_1w1a", (1, 28, 28)), ("tfc_2w2a", (1, 28, 28)), ("resnet18_4w4a", (3, 32, 32))]


def export(name, shape, tmp_path):
    from brevitas.export import export_qonnx
    import onnx
    torch.manual_seed(0)
    model = getattr(models, name)(pretrained=False).eval()
    if name.startswith("resnet"):
        # Its first convolution reads the float image: APNN needs it quantized (an 8-bit input
        # quantizer in front, as the README says for such models).
        import brevitas.nn as qnn
        model = torch.nn.Sequential(qnn.QuantIdentity(bit_width=8), model).eval()
    # Batch-norm statistics as after training (random, positive variances), so codes vary.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d) or isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    path = str(tmp_path / f"{name}.onnx")
    # Its residual blocks do not pass torch.export: the TorchScript exporter.
    options = dict(dynamo=False) if name.startswith("resnet") else {}
    export_qonnx(model, torch.rand(1, *shape), export_path=path, **options)
    return model, onnx.load(path)


@pytest.mark.parametrize("name,shape", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_model_equals_the_executor(name, shape, tmp_path):
    model, proto = export(name, shape, tmp_path)
    mw = cleanup_model(ModelWrapper(proto))
    x = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    if name.startswith(("cnv", "resnet")):  # the slow host convolutions: the final output only
        ctx = execute_onnx(cleanup_model(mw, override_inpsize=len(x)), {mw.graph.input[0].name: x},
                           return_full_exec_context=True)
    else:
        ctx, report = compare_with_executor(mw, x, "host")
        assert sum(w for _, w in report.values()) == 0, report
    net = apnn.from_qonnx(proto, backend="host")
    out = net(x)
    want = ctx[mw.graph.output[0].name]
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
    np.testing.assert_array_equal(out.argmax(1), want.argmax(1))


def test_plain_pytorch_layers_are_refused_by_name():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 3)).eval()
    with pytest.raises(apnn.UnsupportedError, match="Conv.*float input"):
        apnn.from_torch(model, torch.rand(1, 1, 8, 8), backend="host")


def test_hardtanh_and_trunc_avg_pool(tmp_path):
    import brevitas.nn as qnn
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(bit_width=8),
        qnn.QuantConv2d(3, 16, 3, padding=1, weight_bit_width=2, bias=False),
        torch.nn.BatchNorm2d(16), qnn.QuantHardTanh(bit_width=2, max_val=1.0, min_val=-1.0),
        qnn.QuantConv2d(16, 16, 3, padding=1, weight_bit_width=2, bias=False),
        torch.nn.BatchNorm2d(16), qnn.QuantReLU(bit_width=3, return_quant_tensor=True),
        qnn.TruncAvgPool2d(kernel_size=2, stride=2, bit_width=4),
        torch.nn.Flatten(), qnn.QuantLinear(16 * 4 * 4, 5, weight_bit_width=4, bias=True)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = np.random.default_rng(1).random((4, 3, 8, 8), dtype=np.float32)
    net = apnn.from_torch(model, torch.from_numpy(x[:1]), backend="host")
    from brevitas.export import export_qonnx
    import onnx
    path = str(tmp_path / "m.onnx")
    export_qonnx(model, torch.from_numpy(x[:1]), export_path=path)
    mw = cleanup_model(ModelWrapper(onnx.load(path)))
    ctx, report = compare_with_executor(mw, x, "host")
    assert sum(w for _, w in report.values()) == 0, report
    want = ctx[mw.graph.output[0].name]
    np.testing.assert_allclose(net(x), want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


IMAGENET = ["quant_mobilenet_v1_4b", "quant_proxylessnas_mobile14_4b"]


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_models_at_224(name, tmp_path):
    """brevitas_examples' ImageNet models (random weights), 224 x 224, one image: their first layer
    reads the float image, so an 8-bit input quantizer goes in front (what a user must add)."""
    import brevitas.nn as qnn
    from brevitas.export import export_qonnx
    from brevitas_examples.imagenet_classification import models as imagenet
    import onnx
    torch.manual_seed(0)
    model = torch.nn.Sequential(qnn.QuantIdentity(bit_width=8), getattr(imagenet, name)(pretrained=False)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    path = str(tmp_path / f"{name}.onnx")
    export_qonnx(model, torch.from_numpy(x), export_path=path)
    proto = onnx.load(path)
    mw = cleanup_model(ModelWrapper(proto))
    want = execute_onnx(mw, {mw.graph.input[0].name: x})[mw.graph.output[0].name]
    out = apnn.from_qonnx(proto, backend="host")(x)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
    assert out.argmax() == want.argmax()
