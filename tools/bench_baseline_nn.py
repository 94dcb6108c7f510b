"""Benchmark of the network baselines: AlexNet, VGG-variant, ResNet-18 (python/apnn_baselines/
models.py) in FP32 / FP16 / INT8 on CUTLASS GEMMs, and binarized (bnn, TCBNN style, w1a1: CUTLASS
b1 XOR-popc GEMM on sm_8x, AND-popc GEMM with an exact popcount identity on sm_90+).

    bazel run //tools:bench_baseline_nn -- --model=alexnet --precision=fp16 [--batch=8]

One line per (model, precision): time of one forward pass (CUDA graph replays, CUDA events,
median, after warm-up; input upload excluded), TOPS = 2 * MACs / time, and the check made:
`finite` (the output is finite), or with --verify `oracle` (random weights set from numpy,
output compared with the numpy forward pass: exact for int8 / bnn, relative 1e-3 / 3e-2 for
fp32 / fp16). --verify is slow for vgg_variant (numpy im2col at 224 x 224).
"""
import json
import sys

import numpy as np
from absl import app, flags

import apnn_baselines as ab
from apnn_baselines import models, reference

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    flags.DEFINE_list("model", ["alexnet"], "alexnet, vgg_variant, resnet18, or all.")
    flags.DEFINE_list("precision", ["fp16"], "fp32, fp16, int8, bnn, or all.")
    flags.DEFINE_integer("batch", 8, "Images per forward pass.")
    flags.DEFINE_integer("iters", 20, "Timed forward passes.")
    flags.DEFINE_integer("warmup", 3, "Untimed forward passes before timing.")
    flags.DEFINE_bool("verify", False, "Compare with the numpy oracle using random weights.")
    flags.DEFINE_string("json_out", None, "Write all results to this JSON file.")
    flags.DEFINE_integer("seed", 0, "Random seed.")


def random_params(rng, layers, precision, input_shape):
    shapes = models.shapes(layers, input_shape)
    params = {}
    for i, layer in enumerate(layers):
        if layer["type"] not in ("conv", "fc"):
            continue
        src = i - 1 if layer["input"] == -1 else layer["input"]
        cin = input_shape if src < 0 else shapes[src]
        k = layer["kernel"] ** 2 * cin[2] if layer["type"] == "conv" else int(np.prod(cin))
        o = layer["out_channels"]
        if precision == "int8":
            w = rng.integers(-63, 64, (o, k)).astype(np.float32)
        else:
            w = (rng.standard_normal((o, k)) * np.sqrt(2.0 / k)).astype(np.float32)
        params[i] = (w, rng.uniform(-0.1, 0.1, o).astype(np.float32))
    return params


def check_output(name, precision, out, ref):
    """Compares a network's output with the numpy oracle's (exact for int8 / bnn, relative 1e-3 / 3e-2 for
    fp32 / fp16); raises SystemExit when they differ."""
    if precision in ("int8", "bnn"):
        ok = np.array_equal(out, ref.astype(np.float32))
    else:
        tol = 1e-3 if precision == "fp32" else 3e-2
        ok = np.max(np.abs(out - ref)) <= tol * max(1.0, float(np.max(np.abs(ref))))
    if not ok:
        raise SystemExit(f"WRONG RESULT for {name} {precision}: differs from the numpy oracle")


def main(argv):
    del argv
    names = list(models.MODELS) if FLAGS.model == ["all"] else FLAGS.model
    precisions = list(ab.PRECISIONS) if FLAGS.precision == ["all"] else FLAGS.precision
    if ab.cuda_device_count() == 0:
        print(f"apnn_baselines {ab.version()}: no usable CUDA GPU here; the CUTLASS baselines need one")
        return 1
    print(f"apnn_baselines {ab.version()} device={ab.device_name()}  (networks, batch {FLAGS.batch})")
    rng = np.random.default_rng(FLAGS.seed)
    rows = []
    # bnn: CUTLASS b1 XOR-popc GEMM on sm_8x; AND-popc GEMM + exact popcount identity on sm_90+ (no XOR there).
    bnn_op = "xor" if ab.xor_popc_supported() else "and"
    for name in names:
        layers = models.get(name)
        macs = models.macs(layers) * FLAGS.batch
        for precision in precisions:
            net = ab.Net(layers, precision, batch=FLAGS.batch, seed=FLAGS.seed)
            x = rng.standard_normal((FLAGS.batch,) + models.INPUT_SHAPE).astype(np.float32)
            if precision == "int8":
                x *= 40.0
            params = None
            if FLAGS.verify:
                params = random_params(rng, layers, precision, models.INPUT_SHAPE)
                for i, (w, b) in params.items():
                    net.set_params(i, w, b)
            out, us = net.run(x, warmup=FLAGS.warmup, iters=FLAGS.iters)
            if not np.all(np.isfinite(out)):
                raise SystemExit(f"WRONG RESULT for {name} {precision}: non-finite output")
            mode = "finite"
            if params is not None:
                check_output(name, precision, out, reference.net(precision, layers, x, params))
                mode = "oracle"
            tops = 2.0 * macs / (us * 1e-6) / 1e12
            row = dict(model=name, precision=precision, batch=FLAGS.batch, us=us, tops=tops, verified=mode)
            if precision == "bnn":
                row["gemm"] = f"b1-{bnn_op}-popc"
            rows.append(row)
            print(f"{name:12s} {precision:5s} batch={FLAGS.batch:3d}  {us / 1000:9.3f} ms  {tops:9.3f} TOPS  "
                  f"[cutlass-{precision}{'-' + bnn_op if precision == 'bnn' else ''}] verified:{mode}", flush=True)
            del net
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(dict(device=ab.device_name(), results=rows), f, indent=1)
        print(f"wrote {FLAGS.json_out}")
    return 0


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
