"""Launches the kernels that docs/perf_log.md asks to profile, a few times each, for ncu:

    bash tools/device/run.sh ncu --clock-control none -k regex:conv_tile python3 tools/device/profile_kernels.py conv

conv: w1a2 3x3 conv, 16x16, C=O=1024, batch 8: raw int32 output, then the fused epilogue
      (scale/bias, ReLU, 2-bit packed output).  gemm: w1a2 8192^3.  alexnet: w1a2 AlexNet, batch 8.
resnet18: w1a2 ResNet-18, batch 256 (every layer's kernel; select with ncu's -k / --launch-skip).
"""
import sys

import numpy as np

import apnn
from apnn import reference


def conv(ctx, rng, repeats=3):
    n, h, w, c, o = 8, 16, 16, 1024, 1024
    x = apnn.pack_nhwc(ctx, reference.random_codes(rng, (n, h, w, c), 2, "unsigned"), 2)
    wt = apnn.pack_conv_weights(ctx, reference.random_codes(rng, (o, 3, 3, c), 1, "binary"), 1, "binary")
    ep = apnn.Epilogue(ctx, o, scale=np.full(o, 0.01, np.float32), activation="relu", out_scale=0.25)
    out = apnn.empty_nhwc(ctx, (n, h, w, o), 2, "unsigned")
    for _ in range(repeats):
        apnn.conv2d_packed(ctx, x, wt, stride=1, padding=1)
    for _ in range(repeats):
        apnn.conv2d_packed(ctx, x, wt, stride=1, padding=1, epilogue=ep, out=out)


def gemm(ctx, rng, repeats=2):
    m = n = k = 8192
    x = ctx.pack(reference.random_codes(rng, (m, k), 2, "unsigned"), 2, "unsigned")
    w = ctx.pack(reference.random_codes(rng, (n, k), 1, "binary"), 1, "binary")
    for _ in range(repeats):
        ctx.gemm(x, w)


def alexnet(ctx, rng, repeats=2):
    """The first layer's kernels: the im2col input pack and conv1 (8-bit x 1-bit), batch 8."""
    net = apnn.models.alexnet(context=ctx)
    x = rng.integers(0, 256, (8, 224, 224, 3)).astype(np.uint8)
    for _ in range(repeats):
        net(x)


def resnet18(ctx, rng, repeats=1):
    net = apnn.models.resnet18(context=ctx)
    x = rng.integers(0, 256, (256, 224, 224, 3)).astype(np.uint8)
    for _ in range(repeats):
        net(x)


def main():
    ctx = apnn.Context("cuda")
    rng = np.random.default_rng(0)
    for what in sys.argv[1:] or ["conv", "gemm"]:
        {"conv": conv, "gemm": gemm, "alexnet": alexnet, "resnet18": resnet18}[what](ctx, rng)
    print("launched", sys.argv[1:])


if __name__ == "__main__":
    main()
