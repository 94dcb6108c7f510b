"""Quantization-aware training of a small CNN on scikit-learn's digits (8 x 8 images), then the
same network on apnn: its predictions equal the PyTorch fake-quantized model's.

    python3 examples/digits_qat.py --w_bit=1 --x_bit=2        (PYTHONPATH=python, torch + sklearn)

The model works in apnn's code space, so the export is exact and trivial:
  input   the digits' pixel values 0..16 as 8-bit unsigned codes
  conv1   3x3, 16 channels, padding 1, w_bit weights (binary for 1 bit, signed otherwise)
          epilogue a = y * scale[o] + bias[o] (learned, a folded batch-norm), ReLU, 2x2 max pool,
          x_bit unsigned codes: clamp(rint(a), 0, 2^x_bit - 1)       (out_scale 1)
  conv2   3x3, 32 channels, the same                                  -> 2 x 2 x 32
  fc      flatten (NHWC order) -> 10 float logits: y * scale + bias
Training uses straight-through estimators for the weight and activation rounding. Evaluation
runs the integer convolutions in float64 (exact) and the epilogue in float32 one rounding per
operation, as apnn.h documents, so logits match bit for bit.
"""
import argparse
import os
import sys
import tempfile

import numpy as np


def _torch():
    import torch
    return torch


def quantize_weights(w, w_bit):
    """Weight codes with a straight-through gradient: sign for 1 bit, else signed rounding."""
    torch = _torch()
    if w_bit == 1:
        q = torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))
    else:
        q = torch.clamp(torch.round(w), -(2 ** (w_bit - 1)), 2 ** (w_bit - 1) - 1)
    return w + (q - w).detach()


def quantize_acts(a, x_bit):
    """Activation codes: clamp(rint(a), 0, 2^x_bit - 1) (ReLU included), straight-through."""
    torch = _torch()
    h = torch.clamp(a, 0, 2 ** x_bit - 1)  # no gradient where it saturates
    return h + (torch.round(h) - h).detach()


def make_model(w_bit, x_bit, seed):
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(seed)
    init = 1.0 if w_bit == 1 else float(2 ** (w_bit - 1))

    class Layer(nn.Module):
        def __init__(self, shape, fan_in):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(shape).uniform_(-init, init))
            o = shape[0]
            self.log_scale = nn.Parameter(torch.full((o,), float(np.log(2.0 / (fan_in * init) ** 0.5))))
            self.bias = nn.Parameter(torch.zeros(o))

        def codes(self):
            return quantize_weights(self.weight, w_bit)

        def scale(self):
            return torch.exp(self.log_scale)

    class DigitsNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = Layer((16, 1, 3, 3), 9 * 8)
            self.conv2 = Layer((32, 16, 3, 3), 9 * 16)
            self.fc = Layer((10, 2 * 2 * 32), 128)

        def forward(self, x, exact=False):
            """x: N x 1 x 8 x 8 codes. exact: the evaluation arithmetic of apnn (see module doc)."""
            def conv(inp, layer):
                w = layer.codes()
                if exact:  # integer sums, exact in float64, then the float32 epilogue step by step
                    y = F.conv2d(inp.double(), w.double(), padding=1).float()
                    return y * layer.scale()[None, :, None, None] + layer.bias[None, :, None, None]
                return F.conv2d(inp, w, padding=1) * layer.scale()[None, :, None, None] + \
                    layer.bias[None, :, None, None]
            h = F.max_pool2d(quantize_acts(F.relu(conv(x, self.conv1)), x_bit), 2)
            h = F.max_pool2d(quantize_acts(F.relu(conv(h, self.conv2)), x_bit), 2)
            h = h.permute(0, 2, 3, 1).flatten(1)  # NHWC order, as apnn flattens
            w = self.fc.codes()
            y = (h.double() @ w.double().t()).float() if exact else h @ w.t()
            return y * self.fc.scale() + self.fc.bias

    return DigitsNet()


def load_digits_split(seed):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = digits.images.astype(np.uint8)  # 0..16
    return train_test_split(x, digits.target, test_size=0.25, random_state=seed, stratify=digits.target)


def train(w_bit=1, x_bit=2, epochs=15, seed=0, verbose=False):
    torch = _torch()
    torch.set_num_threads(1)  # tiny layers: threads cost more than they give
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    model = make_model(w_bit, x_bit, seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    xt = torch.tensor(x_train, dtype=torch.float32)[:, None]
    yt = torch.tensor(y_train, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for epoch in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if verbose:
            print(f"epoch {epoch}: loss {loss.item():.3f}")
    model.eval()
    return model, (x_test, y_test)


def export(model, path):
    """The trained network as apnn.Network.load input: codes (OHWC / O x K), scale, bias."""
    torch = _torch()
    data = {}
    with torch.no_grad():
        for name in ("conv1", "conv2", "fc"):
            layer = getattr(model, name)
            codes = layer.codes().round().to(torch.int8).numpy()
            if codes.ndim == 4:
                codes = codes.transpose(0, 2, 3, 1)  # OIHW -> OHWC
            data[f"{name}.codes"] = np.ascontiguousarray(codes)
            data[f"{name}.scale"] = layer.scale().float().numpy()
            data[f"{name}.bias"] = layer.bias.float().numpy()
    np.savez(path, **data)
    return path


def build_network(w_bit, x_bit, weights, backend="auto"):
    import apnn
    net = apnn.Network((8, 8, 1), input_bits=8, backend=backend)
    net.conv(16, 3, padding=1, w_bit=w_bit, out_bit=x_bit, pool="max", pool_size=2, name="conv1")
    net.conv(32, 3, padding=1, w_bit=w_bit, out_bit=x_bit, pool="max", pool_size=2, name="conv2")
    net.flatten()
    net.linear(10, w_bit=w_bit, output="float", name="fc")
    net.load(weights)
    return net


def run(w_bit=1, x_bit=2, epochs=15, seed=0, backend="auto", verbose=False):
    """Trains, exports, runs on apnn; returns accuracies and whether predictions / logits agree."""
    torch = _torch()
    model, (x_test, y_test) = train(w_bit, x_bit, epochs, seed, verbose)
    with torch.no_grad():
        torch_logits = model(torch.tensor(x_test, dtype=torch.float32)[:, None], exact=True).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        net = build_network(w_bit, x_bit, export(model, os.path.join(tmp, "digits.npz")), backend)
    apnn_logits = net(x_test[..., None]).reshape(len(x_test), 10)
    return dict(torch_accuracy=float((torch_logits.argmax(1) == y_test).mean()),
                apnn_accuracy=float((apnn_logits.argmax(1) == y_test).mean()),
                same_predictions=bool((torch_logits.argmax(1) == apnn_logits.argmax(1)).all()),
                same_logits=bool(np.array_equal(torch_logits, apnn_logits)),
                max_logit_diff=float(np.abs(torch_logits - apnn_logits).max()), summary=net.summary())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--w_bit", type=int, default=1)
    parser.add_argument("--x_bit", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    r = run(args.w_bit, args.x_bit, args.epochs, args.seed, args.backend, verbose=True)
    print(r.pop("summary"))
    for k, v in r.items():
        print(f"{k}: {v}")
    return 0 if r["same_predictions"] else 1


if __name__ == "__main__":
    sys.exit(main())
