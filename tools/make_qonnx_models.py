"""Trains small Brevitas networks on scikit-learn's digits (shipped offline in its wheel) and
exports them to QONNX: the files tests/data/qonnx/ holds, so CI runs the importer against qonnx's
executor without PyTorch.

    python3 tools/make_qonnx_models.py --out_dir=tests/data/qonnx [--epochs=30]

Needs torch, brevitas, onnx, onnxoptimizer and scikit-learn. Each model is written as
<name>.onnx with <name>.json: the Brevitas and torch versions, the bit widths, the accuracy on the
held-out digits (in Brevitas), and the seed; digits_test.npz holds those digits (x: N x 1 x 16 x
16 in [0, 1], y: labels).
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def digits(seed=0):
    """Digits upscaled to 1 x 16 x 16 in [0, 1]; (train x, train y, test x, test y)."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    y = torch.tensor(d.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    return x[:1500], y[:1500], x[1500:], y[1500:]


def weight_quant(w_bit):
    """Brevitas' weight quantizer keywords: binary (+-1, a constant scale) for 1 bit, else signed
    narrow-range integers with a learned per-tensor scale (a 1-bit narrow signed range is empty)."""
    if w_bit == 1:
        from brevitas.quant import SignedBinaryWeightPerTensorConst
        return dict(weight_quant=SignedBinaryWeightPerTensorConst)
    return dict(weight_bit_width=w_bit)


def plain_cnn(w_bit, a_bit):
    import brevitas.nn as qnn
    return nn.Sequential(
        qnn.QuantIdentity(bit_width=8),
        qnn.QuantConv2d(1, 32, 3, padding=1, **weight_quant(w_bit), bias=False),
        nn.BatchNorm2d(32), qnn.QuantReLU(bit_width=a_bit),
        nn.MaxPool2d(2),
        qnn.QuantConv2d(32, 64, 3, padding=1, **weight_quant(w_bit), bias=False),
        nn.BatchNorm2d(64), qnn.QuantReLU(bit_width=a_bit),
        nn.MaxPool2d(2),
        qnn.QuantConv2d(64, 64, 3, padding=1, **weight_quant(w_bit), bias=False),
        nn.BatchNorm2d(64), qnn.QuantReLU(bit_width=a_bit),
        nn.Flatten(),
        qnn.QuantLinear(64 * 4 * 4, 10, **weight_quant(w_bit), bias=True),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a residual add of the block's quantized input (or of a strided
    1x1 projection of it), then a quantized ReLU."""

    def __init__(self, cin, cout, stride, w_bit, a_bit):
        super().__init__()
        import brevitas.nn as qnn
        self.conv1 = qnn.QuantConv2d(cin, cout, 3, stride=stride, padding=1, **weight_quant(w_bit), bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = qnn.QuantReLU(bit_width=a_bit)
        self.conv2 = qnn.QuantConv2d(cout, cout, 3, padding=1, **weight_quant(w_bit), bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.project = None
        if stride != 1 or cin != cout:
            self.project = nn.Sequential(
                qnn.QuantConv2d(cin, cout, 1, stride=stride, **weight_quant(w_bit), bias=False),
                nn.BatchNorm2d(cout), qnn.QuantIdentity(bit_width=a_bit))
        self.act2 = qnn.QuantReLU(bit_width=a_bit)

    def forward(self, x):
        shortcut = x if self.project is None else self.project(x)
        return self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))) + shortcut)


def resnet(w_bit, a_bit):
    import brevitas.nn as qnn
    return nn.Sequential(
        qnn.QuantIdentity(bit_width=8),
        qnn.QuantConv2d(1, 32, 3, padding=1, weight_bit_width=8, bias=False),
        nn.BatchNorm2d(32), qnn.QuantReLU(bit_width=a_bit),
        BasicBlock(32, 32, 1, w_bit, a_bit),
        BasicBlock(32, 64, 2, w_bit, a_bit),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        qnn.QuantLinear(64, 10, weight_bit_width=8, bias=True),
    )


def mobilenet(w_bit, a_bit):
    """A stem convolution, then depthwise-separable blocks (a depthwise 3x3, a pointwise 1x1), a
    global average pool and a linear classifier."""
    import brevitas.nn as qnn

    def block(cin, cout, stride):
        return [qnn.QuantConv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, **weight_quant(w_bit), bias=False),
                nn.BatchNorm2d(cin), qnn.QuantReLU(bit_width=a_bit),
                qnn.QuantConv2d(cin, cout, 1, **weight_quant(w_bit), bias=False),
                nn.BatchNorm2d(cout), qnn.QuantReLU(bit_width=a_bit)]
    return nn.Sequential(
        qnn.QuantIdentity(bit_width=8),
        qnn.QuantConv2d(1, 32, 3, padding=1, weight_bit_width=8, bias=False),
        nn.BatchNorm2d(32), qnn.QuantReLU(bit_width=a_bit),
        *block(32, 64, 1), *block(64, 96, 2), *block(96, 128, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        qnn.QuantLinear(128, 10, weight_bit_width=8, bias=True),
    )


MODELS = {
    "cnn_w1a2": (plain_cnn, 1, 2),
    "cnn_w2a2": (plain_cnn, 2, 2),
    "cnn_w4a4": (plain_cnn, 4, 4),
    "resnet_w1a2": (resnet, 1, 2),
    "resnet_w2a2": (resnet, 2, 2),
    "resnet_w4a4": (resnet, 4, 4),
    "mobilenet_w1a2": (mobilenet, 1, 2),
    "mobilenet_w2a2": (mobilenet, 2, 2),
    "mobilenet_w4a4": (mobilenet, 4, 4),
}


def train(model, data, epochs, seed):
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = data
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        model.train()
        for i in range(0, len(ytr), 64):
            opt.zero_grad()
            F.cross_entropy(model(xtr[i:i + 64]), ytr[i:i + 64]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(xte).argmax(1) == yte).float().mean())


def export(model, path, example):
    from brevitas.export import export_qonnx
    import onnx
    model.eval()
    export_qonnx(model, example, export_path=path)
    # One self-contained file: the exporter may put the weights beside it as external data.
    proto = onnx.load(path)
    for leftover in (path + ".data",):
        if os.path.exists(leftover):
            os.remove(leftover)
    onnx.save(proto, path, save_as_external_data=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out_dir", default="tests/data/qonnx")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import brevitas
    os.makedirs(args.out_dir, exist_ok=True)
    data = digits(args.seed)
    # The held-out digits every model is checked on (the tests read them without torch).
    np.savez_compressed(os.path.join(args.out_dir, "digits_test.npz"), x=data[2].numpy(), y=data[3].numpy())
    for name in args.models.split(","):
        make, w_bit, a_bit = MODELS[name]
        torch.manual_seed(args.seed)
        model = make(w_bit, a_bit)
        acc = train(model, data, args.epochs, args.seed)
        path = os.path.join(args.out_dir, name + ".onnx")
        export(model, path, data[2][:1])
        meta = dict(model=name, w_bit=w_bit, a_bit=a_bit, epochs=args.epochs, seed=args.seed,
                    brevitas_test_accuracy=acc, test_images=int(len(data[3])), brevitas=brevitas.__version__,
                    torch=torch.__version__)
        with open(os.path.join(args.out_dir, name + ".json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(f"{name}: Brevitas accuracy {acc:.4f} on {len(data[3])} held-out digits -> {path}")


if __name__ == "__main__":
    main()
