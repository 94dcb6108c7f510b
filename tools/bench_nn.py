"""Benchmark of whole quantized networks on apnn: AlexNet, VGG-variant, ResNet-18 (APNN-TC tables).

    bazel run //tools:bench_nn -- --model=alexnet --w_bit=1 --x_bit=2 --batch=8 [--compare]

Per model: the time of one forward pass (8-bit image codes already on the device -> float
logits; CUDA graph replays timed with CUDA events, median; host: wall clock), TOPS = 2 * MACs *
batch / time, and each layer alone (fused / virtual layers take 0; the sum of layers exceeds
the total by the launch gaps the graph removes). --compare times the same architecture built
from the same layer table in PyTorch on the same device in the same run:
  fp16       cuDNN FP16 convolutions (channels_last) + cuBLAS FP16 fc, ReLU, pooling, residuals
  int8_gemm  every conv / fc as its implicit-GEMM shape on cuBLAS INT8 (torch._int_mm), nothing
             else: a lower bound for an INT8 network (no im2col, pooling or requantization;
             PyTorch has no cuDNN INT8 convolution)
each captured in one CUDA graph and timed like apnn (tools/torch_baselines.time_graph).
--verify checks the output against the numpy oracle first (slow for vgg_variant at 224 x 224).
"""
import json

import numpy as np
from absl import app, flags

import apnn

FLAGS = flags.FLAGS
flags.DEFINE_list("model", ["alexnet"], "alexnet, vgg_variant, resnet18, resnet50, or all.")
flags.DEFINE_integer("w_bit", 1, "Weight bits (binary for 1, else signed).")
flags.DEFINE_integer("x_bit", 2, "Activation bits (unsigned after ReLU).")
flags.DEFINE_integer("batch", 8, "Images per forward pass.")
flags.DEFINE_integer("iters", 50, "Timed forward passes.")
flags.DEFINE_integer("warmup", 5, "Untimed forward passes before timing.")
flags.DEFINE_enum("backend", "auto", ["auto", "cuda", "host"], "libapnn backend.")
flags.DEFINE_bool("compare", False, "Also time PyTorch FP16 (cuDNN) and an INT8 GEMM lower bound.")
flags.DEFINE_bool("layers", True, "Print the per-layer times.")
flags.DEFINE_bool("verify", False, "Compare the output with the numpy oracle before timing.")
flags.DEFINE_list("input_shape", None, "H,W,C of the input (default 224,224,3).")
flags.DEFINE_string("json_out", None, "Write all results to this JSON file.")
flags.DEFINE_integer("seed", 0, "Random seed.")


def torch_times(table, input_shape, batch, torch_baselines=None):
    """{'fp16': us, 'int8_gemm': us} of the layer table in PyTorch, or {} without torch / GPU."""
    if torch_baselines is None:
        try:
            import torch_baselines
        except ImportError:
            return {}
    torch = torch_baselines.torch_cuda()
    if torch is None:
        return {}
    from apnn_baselines import models as tables
    F = torch.nn.functional
    torch.backends.cudnn.benchmark = True
    dev, half = getattr(torch_baselines, "DEVICE", "cuda"), torch.half
    shapes = tables.shapes(table, input_shape)
    params = []
    for i, layer in enumerate(table):
        src = i - 1 if layer["input"] == -1 else layer["input"]
        h, w, c = input_shape if src < 0 else shapes[src]
        if layer["type"] == "conv":
            k = layer["kernel"]
            wt = torch.randn(layer["out_channels"], c, k, k, device=dev, dtype=half) * (1.0 / (k * k * c) ** 0.5)
            params.append((wt.to(memory_format=torch.channels_last), torch.zeros(layer["out_channels"], device=dev,
                                                                                  dtype=half)))
        elif layer["type"] == "fc":
            params.append((torch.randn(layer["out_channels"], h * w * c, device=dev, dtype=half) * 0.01,
                           torch.zeros(layer["out_channels"], device=dev, dtype=half)))
        else:
            params.append(None)
    x = torch.randn(batch, input_shape[2], input_shape[0], input_shape[1], device=dev, dtype=half)
    x = x.to(memory_format=torch.channels_last)

    def forward():
        outs = []
        for i, layer in enumerate(table):
            src = outs[-1] if layer["input"] == -1 and outs else (x if layer["input"] < 0 else outs[layer["input"]])
            t = layer["type"]
            if t == "conv":
                y = F.conv2d(src, params[i][0], params[i][1], stride=layer["stride"], padding=layer["pad"])
                if layer["residual"] >= 0:
                    y = y + outs[layer["residual"]]
                y = F.relu(y) if layer["relu"] else y
            elif t == "fc":
                y = F.linear(src.flatten(1), params[i][0], params[i][1])
                y = F.relu(y) if layer["relu"] else y
            elif t == "maxpool":
                y = F.max_pool2d(src, layer["kernel"], layer["stride"], layer["pad"])
            else:
                y = F.adaptive_avg_pool2d(src, 1)
            outs.append(y)
        return outs[-1]

    out = {"fp16": torch_baselines.time_graph(torch, forward, per_graph=5, replays=10)}
    # INT8: each conv / fc as its implicit GEMM (M = batch * OH * OW, K = KH*KW*C, N = O).
    mats = []
    for i, layer in enumerate(table):
        if layer["type"] not in ("conv", "fc"):
            continue
        src = i - 1 if layer["input"] == -1 else layer["input"]
        h, w, c = input_shape if src < 0 else shapes[src]
        oh, ow, o = shapes[i]
        m, k = batch * oh * ow, (layer["kernel"] ** 2 * c if layer["type"] == "conv" else h * w * c)
        m, k, n = max(m, 32), -(-k // 8) * 8, -(-o // 8) * 8  # cuBLAS INT8: M > 16, K and N multiples of 8
        mats.append((torch.randint(-8, 8, (m, k), device=dev, dtype=torch.int8),
                     torch.randint(-8, 8, (n, k), device=dev, dtype=torch.int8).t()))
    try:
        out["int8_gemm"] = torch_baselines.time_graph(torch, lambda: [torch._int_mm(a, b) for a, b in mats],
                                                      per_graph=5, replays=10)
    except Exception:  # noqa: BLE001 - cuBLAS INT8 refuses some shapes
        out["int8_gemm"] = None
    del mats, params
    torch.cuda.empty_cache()
    return out


def main(argv):
    del argv
    from apnn_baselines import models as tables
    names = list(tables.MODELS) if FLAGS.model == ["all"] else FLAGS.model
    shape = tuple(int(v) for v in FLAGS.input_shape) if FLAGS.input_shape else tables.INPUT_SHAPE
    ctx = apnn.Context(FLAGS.backend)
    print(f"apnn {apnn.version()} backend={ctx.backend} device={ctx.device_name}  "
          f"w{FLAGS.w_bit}a{FLAGS.x_bit} batch {FLAGS.batch} input {'x'.join(map(str, shape))}")
    rng = np.random.default_rng(FLAGS.seed)
    results = []
    for name in names:
        net = apnn.models.build(name, w_bit=FLAGS.w_bit, x_bit=FLAGS.x_bit, input_shape=shape, context=ctx,
                                seed=FLAGS.seed)
        x = rng.integers(0, 256, (FLAGS.batch, *shape)).astype(np.uint8)
        logits = net(x)
        check = "finite" if np.isfinite(logits).all() else "NOT FINITE"
        if FLAGS.verify:
            check = "oracle" if np.array_equal(logits[:1], net.reference(x[:1])) else "ORACLE MISMATCH"
        ms = net.benchmark(FLAGS.batch, iters=FLAGS.iters, warmup=FLAGS.warmup)
        macs = net.total_macs() * FLAGS.batch
        row = dict(model=name, w_bit=FLAGS.w_bit, x_bit=FLAGS.x_bit, batch=FLAGS.batch, apnn_ms=ms,
                   tops=2 * macs / (ms * 1e-3) / 1e12, check=check, layers=net.layer_times())
        print(f"\n== {name}: {ms:.4f} ms per batch of {FLAGS.batch}  ({row['tops']:.1f} TOPS, "
              f"{2 * macs / FLAGS.batch / 1e9:.2f} GOPs per image)  check: {check}")
        if FLAGS.layers:
            print(net.summary())
        if FLAGS.compare:
            t = torch_times(tables.get(name), shape, FLAGS.batch)
            if not t:
                print("   --compare: PyTorch with CUDA is not available here")
            for key in ("fp16", "int8_gemm"):
                if t.get(key):
                    row[f"torch_{key}_ms"] = t[key] / 1000.0
                    print(f"   torch {key:<10} {t[key] / 1000.0:9.4f} ms   apnn speedup x{t[key] / 1000.0 / ms:.2f}")
        results.append(row)
    print("\nmodel        batch  apnn ms   fp16 ms  speedup  int8-lb ms")
    for r in results:
        fp16, i8 = r.get("torch_fp16_ms"), r.get("torch_int8_gemm_ms")
        print(f"{r['model']:<12} {r['batch']:>5} {r['apnn_ms']:8.4f} " +
              (f"{fp16:9.4f} {fp16 / r['apnn_ms']:7.2f}x" if fp16 else f"{'-':>9} {'-':>8}") +
              (f" {i8:10.4f}" if i8 else f" {'-':>10}"))
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    app.run(main)
