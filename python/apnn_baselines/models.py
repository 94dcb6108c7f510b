"""Layer tables of the three networks of the APNN-TC paper (ImageNet, 224 x 224 x 3 input).

Plain data, no library needed: apnn_baselines.Net builds them on CUTLASS (FP32 / FP16 / INT8)
or as a binarized network, and apnn.models can reuse the same tables.

A layer is a dict with
  type          "conv", "fc", "maxpool" or "avgpool" (global average)
  name          a label for reports
  out_channels  conv / fc
  kernel, stride, pad   conv / maxpool (square windows)
  relu          conv / fc: ReLU after bias (+ residual)
  input         index of the layer it reads, -1 = the previous one (the image for layer 0)
  residual      index of a layer whose output is added before the ReLU, -1 = none
Activations are NHWC; an fc layer reads its whole input (H x W x C flattened in NHWC order).

  AlexNet      Conv1 224x224x3->64 k11 s4 p2, pool 3/2 -> 28x28; Conv2 64->192 k5, pool -> 14x14;
               Conv3 192->384, Conv4 384->256, Conv5 256->256 (k3), pool -> 7x7;
               Fc1 12544->4096, Fc2 4096->4096, Fout 4096->1000   (as in APNN-TC)
  VGG-variant  the VGG-16 layout of APNN-TC's vgg.cu: 13 k3 convs 64,64 | 128,128 | 256 x3 |
               512 x3 | 512 x3 with a 2x2 max pool after each group -> 7x7x512; Fc 4096, 4096, 1000
  ResNet-18    conv 7x7/2 64, max pool 3/2; 4 stages of 2 basic blocks (64, 128, 256, 512; stages
               2-4 start with stride 2 and a 1x1/2 projection shortcut); global avg pool; Fc 1000
"""
import copy

INPUT_SHAPE = (224, 224, 3)
NUM_CLASSES = 1000


def conv(out_channels, kernel, stride=1, pad=None, relu=True, input=-1, residual=-1, name=""):
    return dict(type="conv", name=name, out_channels=out_channels, kernel=kernel, stride=stride,
                pad=kernel // 2 if pad is None else pad, relu=relu, input=input, residual=residual)


def fc(out_channels, relu=True, name=""):
    return dict(type="fc", name=name, out_channels=out_channels, kernel=0, stride=1, pad=0, relu=relu, input=-1,
                residual=-1)


def maxpool(kernel, stride, pad=0, name="", input=-1):
    return dict(type="maxpool", name=name, out_channels=0, kernel=kernel, stride=stride, pad=pad, relu=False,
                input=input, residual=-1)


def avgpool(name="avgpool"):
    return dict(type="avgpool", name=name, out_channels=0, kernel=0, stride=1, pad=0, relu=False, input=-1,
                residual=-1)


def alexnet():
    return [
        conv(64, 11, 4, 2, name="conv1"), maxpool(3, 2, 1, name="pool1"),
        conv(192, 5, name="conv2"), maxpool(3, 2, 1, name="pool2"),
        conv(384, 3, name="conv3"), conv(256, 3, name="conv4"), conv(256, 3, name="conv5"),
        maxpool(3, 2, 1, name="pool5"),
        fc(4096, name="fc1"), fc(4096, name="fc2"), fc(NUM_CLASSES, relu=False, name="fout"),
    ]


def vgg_variant():
    layers = []
    index = 1
    for group, (channels, count) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], 1):
        for _ in range(count):
            layers.append(conv(channels, 3, name=f"conv{index}"))
            index += 1
        layers.append(maxpool(2, 2, name=f"pool{group}"))
    layers += [fc(4096, name="fc1"), fc(4096, name="fc2"), fc(NUM_CLASSES, relu=False, name="fout")]
    return layers


def _resnet(stages, block):
    """A ResNet layer table: a 7x7 / 2 stem and a 3x3 / 2 max pool, then per stage (width, blocks)
    the blocks that `block(layers, tag, block_in, width, stride)` appends (returning their output
    channels), a 1x1 projection shortcut where the shape changes, global average pool and fc."""
    layers = [conv(64, 7, 2, 3, name="conv1"), maxpool(3, 2, 1, name="pool1")]
    block_in, channels = 1, 64
    for stage, (width, blocks) in enumerate(stages, 1):
        for index in range(blocks):
            stride = 2 if stage > 1 and index == 0 else 1
            tag = f"layer{stage}.{index}"
            out = block.expansion * width
            shortcut = block_in
            if stride != 1 or out != channels:
                layers.append(conv(out, 1, stride, 0, relu=False, input=block_in, name=tag + ".downsample"))
                shortcut = len(layers) - 1
            block(layers, tag, block_in, width, stride, shortcut)
            block_in, channels = len(layers) - 1, out
    return layers + [avgpool(), fc(NUM_CLASSES, relu=False, name="fc")]


def _basic_block(layers, tag, block_in, width, stride, shortcut):
    layers.append(conv(width, 3, stride, 1, input=block_in, name=tag + ".conv1"))
    layers.append(conv(width, 3, 1, 1, residual=shortcut, name=tag + ".conv2"))


def _bottleneck(layers, tag, block_in, width, stride, shortcut):
    # torchvision v1.5: the stride in the 3x3.
    layers.append(conv(width, 1, 1, 0, input=block_in, name=tag + ".conv1"))
    layers.append(conv(width, 3, stride, 1, name=tag + ".conv2"))
    layers.append(conv(4 * width, 1, 1, 0, residual=shortcut, name=tag + ".conv3"))


_basic_block.expansion = 1
_bottleneck.expansion = 4


def resnet18():
    return _resnet([(64, 2), (128, 2), (256, 2), (512, 2)], _basic_block)


def resnet50():
    """torchvision's ResNet-50 (v1.5): bottleneck blocks (1x1, 3x3 carrying the stride, 1x1 at 4x
    the width), a 1x1 projection shortcut where the shape changes, 3 / 4 / 6 / 3 blocks."""
    return _resnet([(64, 3), (128, 4), (256, 6), (512, 3)], _bottleneck)


MODELS = {"alexnet": alexnet, "vgg_variant": vgg_variant, "resnet18": resnet18, "resnet50": resnet50}


def get(name):
    """A fresh copy of a model's layer list by name (alexnet, vgg_variant / vgg, resnet18, resnet50)."""
    name = {"vgg": "vgg_variant", "vgg-variant": "vgg_variant", "resnet": "resnet18"}.get(name, name)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return copy.deepcopy(MODELS[name]())


def shapes(layers, input_shape=INPUT_SHAPE):
    """Output (H, W, C) of every layer."""
    out = []
    for i, layer in enumerate(layers):
        src = i - 1 if layer["input"] == -1 else layer["input"]
        h, w, c = input_shape if src < 0 else out[src]
        t = layer["type"]
        if t == "conv":
            k, s, p = layer["kernel"], layer["stride"], layer["pad"]
            out.append(((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, layer["out_channels"]))
        elif t == "fc":
            out.append((1, 1, layer["out_channels"]))
        elif t == "maxpool":
            k, s, p = layer["kernel"], layer["stride"], layer["pad"]
            out.append(((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, c))
        elif t == "avgpool":
            out.append((1, 1, c))
        else:
            raise ValueError(f"layer {i}: unknown type {t!r}")
    return out


def macs(layers, input_shape=INPUT_SHAPE):
    """Multiply-accumulates per image of the conv and fc layers (ops = 2 * macs)."""
    outs = shapes(layers, input_shape)
    total = 0
    for i, layer in enumerate(layers):
        src = i - 1 if layer["input"] == -1 else layer["input"]
        h, w, c = input_shape if src < 0 else outs[src]
        oh, ow, oc = outs[i]
        if layer["type"] == "conv":
            total += oh * ow * oc * layer["kernel"] ** 2 * c
        elif layer["type"] == "fc":
            total += oc * h * w * c
    return total
