"""PyTorch (cuDNN / cuBLAS) FP16 versions of the layer tables of apnn_baselines.models, timed
like the other torch baselines (torch_baselines.time_graph: CUDA graph replays, CUDA events).

Same architecture as the CUTLASS and APNN networks (conv / fc / max pool / global average pool,
bias, ReLU, residual adds), random weights, NCHW in channels_last memory, FP16 throughout.
"""
import torch_baselines


def build(torch, layers, input_shape):
    """A torch.nn.Module computing the layer list (NCHW in, logits out)."""
    nn = torch.nn
    from apnn_baselines import models  # noqa: PLC0415 - plain data, no library needed

    shapes = models.shapes(layers, input_shape)
    mods = nn.ModuleList()
    for i, layer in enumerate(layers):
        src = i - 1 if layer["input"] == -1 else layer["input"]
        h, w, c = input_shape if src < 0 else shapes[src]
        t = layer["type"]
        if t == "conv":
            mods.append(nn.Conv2d(c, layer["out_channels"], layer["kernel"], layer["stride"], layer["pad"]))
        elif t == "fc":
            mods.append(nn.Linear(h * w * c, layer["out_channels"]))
        elif t == "maxpool":
            mods.append(nn.MaxPool2d(layer["kernel"], layer["stride"], layer["pad"]))
        elif t == "avgpool":
            mods.append(nn.AdaptiveAvgPool2d(1))
        else:
            raise ValueError(f"layer {i}: unknown type {t!r}")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.mods = mods

        def forward(self, x):
            outs = []
            for i, (layer, mod) in enumerate(zip(layers, self.mods)):
                a = x if (layer["input"] == -1 and i == 0) else outs[i - 1 if layer["input"] == -1 else layer["input"]]
                if layer["type"] == "fc":
                    a = torch.flatten(a, 1)
                y = mod(a)
                if layer["type"] in ("conv", "fc"):
                    if layer["residual"] >= 0:
                        y = y + outs[layer["residual"]]
                    if layer["relu"]:
                        y = torch.relu(y)
                outs.append(y)
            return outs[-1]

    return Net()


def net_time(layers, batch, input_shape, warmup=2, iters=5):
    """Median microseconds of one FP16 forward pass of the network on the GPU, or None without
    PyTorch / a GPU. Raises if the output is not finite."""
    torch = torch_baselines.torch_cuda()
    if torch is None:
        return None
    torch.backends.cudnn.benchmark = True
    h, w, c = input_shape
    with torch.no_grad():
        net = build(torch, layers, input_shape).to("cuda", torch.half).to(memory_format=torch.channels_last).eval()
        x = torch.randn(batch, c, h, w, device="cuda", dtype=torch.half).to(memory_format=torch.channels_last)
        y = net(x)
        if not bool(torch.isfinite(y).all()):
            raise RuntimeError("cuDNN FP16 network: non-finite output")
        us = torch_baselines.time_graph(torch, lambda: net(x), per_graph=1, replays=max(1, iters),
                                        warmup=max(1, warmup))
    del net, x, y
    torch.cuda.empty_cache()
    return us
