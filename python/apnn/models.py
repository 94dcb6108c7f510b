"""The networks of APNN-TC as apnn.Network: AlexNet, VGG-variant and ResNet-18, any w_bit / x_bit;
and ResNet-50 (torchvision v1.5).

    net = apnn.models.alexnet(w_bit=1, x_bit=2)                 # random weights, 224 x 224 x 3
    logits = net(images_uint8)                                  # N x 1 x 1 x 1000 float32

The layer tables are apnn_baselines.models' (the CUTLASS baselines run the same ones). Mapping:
  - the input is 8-bit unsigned image codes (input_bits); the first conv reads them directly;
  - every conv / fc with ReLU outputs x_bit unsigned codes; a layer without ReLU that feeds a
    residual (the ResNet projection shortcut) outputs x_bit signed codes;
  - the residual of a ResNet block is added in the second conv's epilogue (step 2) with the
    shortcut's scale; the global average pool is folded exactly into the fc after it;
  - the last fc outputs float32 logits;
  - weights: w_bit bits, binary for 1 bit, signed otherwise (first_w_bit / last_w_bit override
    the first conv / last fc).
`width` scales every channel count and `input_shape` the image, for small test versions.
Random weights come with per-channel epilogue scales that keep activations spread over the
codes (so that a test exercises more than all-zero codes).
"""
import numpy as np

from .network import Network


def _tables():
    try:
        from apnn_baselines import models as tables
    except ImportError as e:  # pragma: no cover - the tables ship in the same repository
        raise ImportError("apnn.models needs the layer tables of python/apnn_baselines/models.py "
                          "(put python/ on PYTHONPATH)") from e
    return tables


def specs_from_table(layers, *, w_bit=1, x_bit=2, width=1.0, num_classes=None, first_w_bit=None,
                     last_w_bit=None):
    """apnn.Network layer dicts from an apnn_baselines.models layer table."""
    feeds_residual = {layer["residual"] for layer in layers if layer["residual"] >= 0}
    weighted = [i for i, layer in enumerate(layers) if layer["type"] in ("conv", "fc")]
    first, last = weighted[0], weighted[-1]
    specs = []
    for i, layer in enumerate(layers):
        t = layer["type"]
        src = i if layer["input"] == -1 else layer["input"] + 1  # table index -> layer id
        name = layer["name"] or f"{t}{i + 1}"
        if t in ("conv", "fc"):
            out = layer["out_channels"]
            if i == last and num_classes is not None:
                out = num_classes
            elif i != last:
                out = max(1, int(round(out * width)))
            wb = first_w_bit if i == first and first_w_bit else last_w_bit if i == last and last_w_bit else w_bit
            spec = dict(type="conv" if t == "conv" else "linear", name=name, input=src, out_channels=out, w_bit=wb,
                        activation="relu" if layer["relu"] else "none")
            if t == "conv":
                spec.update(kernel=layer["kernel"], stride=layer["stride"], padding=layer["pad"])
            if layer["residual"] >= 0:
                spec["residual"] = layer["residual"] + 1
            if i == last:
                spec["output"] = "float"
            else:
                signed = not layer["relu"] and i in feeds_residual
                spec.update(out_bit=x_bit, out_encoding="signed" if signed else "unsigned")
        elif t == "maxpool":
            spec = dict(type="maxpool", name=name, input=src, kernel=layer["kernel"], stride=layer["stride"],
                        padding=layer["pad"])
        elif t == "avgpool":
            spec = dict(type="avgpool", name=name, input=src)
        else:
            raise ValueError(f"layer {i}: unknown type {t!r}")
        specs.append(spec)
    return specs


def random_weights(net, seed=0):
    """Random zero-mean codes for every conv / linear layer of `net`, with epilogue scales and
    biases that centre each channel's accumulation and spread it over a few output codes (so
    that tests see varied codes, not all-zero or saturated ones)."""
    rng = np.random.default_rng(seed)
    for i, s in enumerate(net.specs):
        if s["type"] not in ("conv", "linear"):
            continue
        shape = net.weight_shape(i)
        if s["w_encoding"] == "binary":
            codes = rng.choice(np.array([-1, 1], np.int8), size=shape)
        else:
            top = max(1, 2 ** (s["w_bit"] - 1) - 1)
            codes = rng.integers(-top, top + 1, size=shape).astype(np.int8)
        src = s["input"]
        while net.specs[src]["type"] in ("flatten", "avgpool", "maxpool"):
            src = net.specs[src]["input"]
        spec = net.specs[src]
        bits, enc = (spec["bits"], spec["encoding"]) if src == 0 else (spec["out_bit"], spec["out_encoding"])
        levels = 2 ** bits - 1
        x_mean = levels / 2.0 if enc == "unsigned" else -0.5
        x_std = max(levels / np.sqrt(12.0), 0.5)
        w2 = codes.reshape(shape[0], -1).astype(np.float64)
        w_rms = np.sqrt(np.mean(w2 ** 2)) or 1.0
        k = w2.shape[1]
        target = (2 ** s["out_bit"] - 1) * (s["out_scale"] or 1.0) / 2.0 if s["output"] == "packed" else 1.0
        scale = (target / (x_std * w_rms * np.sqrt(k)) * rng.uniform(0.7, 1.3, shape[0])).astype(np.float32)
        # Cancel the mean input's contribution, then shift by up to half the target.
        bias = (-scale * x_mean * w2.sum(axis=1) + rng.uniform(-0.5, 0.5, shape[0]) * target).astype(np.float32)
        net.set_weights(i, codes=codes, scale=scale, bias=bias)
    return net


def build(name, *, w_bit=1, x_bit=2, input_shape=None, width=1.0, num_classes=None, weights="random", seed=0,
          first_w_bit=None, last_w_bit=None, input_bits=8, backend="auto", context=None):
    """A model of the table `name` ('alexnet', 'vgg_variant', 'resnet18', 'resnet50') as a Network.
    weights: 'random', None (set them yourself), a dict or an .npz path (Network.load)."""
    tables = _tables()
    layers = tables.get(name)
    shape = tuple(input_shape or tables.INPUT_SHAPE)
    specs = specs_from_table(layers, w_bit=w_bit, x_bit=x_bit, width=width, num_classes=num_classes,
                             first_w_bit=first_w_bit, last_w_bit=last_w_bit)
    net = Network.from_specs(specs, shape, input_bits=input_bits, backend=backend, context=context)
    if isinstance(weights, str) and weights == "random":
        random_weights(net, seed)
    elif weights is not None:
        net.load(weights)
    return net


def alexnet(w_bit=1, x_bit=2, **kwargs):
    return build("alexnet", w_bit=w_bit, x_bit=x_bit, **kwargs)


def vgg_variant(w_bit=1, x_bit=2, **kwargs):
    return build("vgg_variant", w_bit=w_bit, x_bit=x_bit, **kwargs)


def resnet18(w_bit=1, x_bit=2, **kwargs):
    return build("resnet18", w_bit=w_bit, x_bit=x_bit, **kwargs)


def resnet50(w_bit=1, x_bit=2, **kwargs):
    """torchvision's ResNet-50 v1.5 topology (bottlenecks, the stride in the 3x3, projection
    shortcuts), with the same mapping as the others."""
    return build("resnet50", w_bit=w_bit, x_bit=x_bit, **kwargs)


MODELS = {"alexnet": alexnet, "vgg_variant": vgg_variant, "resnet18": resnet18, "resnet50": resnet50}
