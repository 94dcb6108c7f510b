"""Train a low-bit CNN with Brevitas, bring it to apnn in one call, and check that apnn predicts
exactly what the trained model predicts; on a GPU, time it against PyTorch FP16 of the same
architecture.

    PYTHONPATH=python:tools python3 examples/brevitas_qat.py --model=cnn_w2a2 [--epochs=30]

Needs torch, brevitas, onnx, qonnx, scikit-learn. The models and the data (scikit-learn's digits,
upscaled to 16 x 16) are those of tools/make_qonnx_models.py.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))


def fp16_twin_time(torch, model, batch, shape):
    """Median microseconds of a float twin of `model` (same layers, plain PyTorch, FP16,
    channels_last, one CUDA graph) on `batch` images."""
    import torch.nn as nn
    import torch_baselines

    def plain(m):
        if isinstance(m, nn.Sequential):
            return nn.Sequential(*[plain(c) for c in m])
        name = type(m).__name__
        if name == "QuantConv2d":
            return nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=False)
        if name == "QuantLinear":
            return nn.Linear(m.in_features, m.out_features)
        if name in ("QuantReLU",):
            return nn.ReLU()
        if name == "QuantIdentity":
            return nn.Identity()
        if name == "BasicBlock":
            raise NotImplementedError("the float twin covers the plain CNNs")
        return m
    twin = plain(model).cuda().half().eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, *shape, device="cuda", dtype=torch.half).to(memory_format=torch.channels_last)
    with torch.no_grad():
        return torch_baselines.time_graph(torch, lambda: twin(x))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cnn_w2a2")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=256)
    args = p.parse_args()
    import torch
    import apnn
    import make_qonnx_models as zoo

    data = zoo.digits()
    make, w_bit, a_bit = zoo.MODELS[args.model]
    torch.manual_seed(0)
    model = make(w_bit, a_bit)
    acc = zoo.train(model, data, args.epochs, seed=0)
    xte, yte = data[2], data[3]
    with torch.no_grad():
        trained = model(xte).argmax(1).numpy()

    net = apnn.from_torch(model, xte[:1])                       # export to QONNX, import
    print(net.summary())
    logits = net(xte.numpy())
    ours = logits.argmax(1)
    print(f"{args.model}: Brevitas accuracy {acc:.4f}, apnn accuracy {(ours == yte.numpy()).mean():.4f} "
          f"on {len(yte)} held-out digits; predictions identical: {bool((ours == trained).all())} "
          f"({int((ours != trained).sum())} differ)")

    if net.context.backend == "cuda" and torch.cuda.is_available():
        ms = net.benchmark(args.batch)
        fp16 = fp16_twin_time(torch, model, args.batch, tuple(xte.shape[1:])) / 1000.0
        print(f"batch {args.batch}: apnn {ms * 1000:.1f} us, PyTorch FP16 (cuDNN, CUDA graph) {fp16 * 1000:.1f} us "
              f"({fp16 / ms:.2f}x), same run, {torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()
