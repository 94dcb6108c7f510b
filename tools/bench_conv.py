"""Benchmark of apnn's arbitrary-precision convolution with and without the fused epilogue.

    bazel run //tools:bench_conv -- --w_bit=1 --x_bit=2 [--batch=8] [--shapes=seed|resnet|all] [--compare]

Every shape is checked against the numpy oracle before it is timed (the first image of the
batch, in full; images are independent). Timing: CUDA graph replays timed with CUDA events,
median, after warm-up (host: wall clock). Columns:
  conv      raw convolution, int32 NHWC output
  fused     + epilogue (folded batch-norm scale/bias, ReLU, re-quantized to --out_bit packed planes)
  separate  the same epilogue as a second kernel (apnn_context_set_conv_override fuse=0)
  TOPS      2 * N*OH*OW * O * KH*KW*C / conv time
--compare adds cuDNN FP16 (torch conv2d, channels_last) and INT8 as cuBLAS torch._int_mm on the
im2col-equivalent GEMM (PyTorch has no cuDNN INT8 convolution; this is a lower bound that
excludes the im2col itself), timed the same way in the same process.
"""
import json

import numpy as np
from absl import app, flags

import apnn
from apnn import reference

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    flags.DEFINE_integer("w_bit", 1, "Weight bits.")
    flags.DEFINE_integer("x_bit", 2, "Activation bits.")
    flags.DEFINE_string("x_encoding", "unsigned", "Activation encoding.")
    flags.DEFINE_string("w_encoding", "auto", "Weight encoding; auto: binary for 1 bit, else signed.")
    flags.DEFINE_integer("out_bit", 2, "Bits of the fused epilogue's packed output (unsigned).")
    flags.DEFINE_integer("batch", 1, "Batch size.")
    flags.DEFINE_enum("shapes", "seed", ["seed", "resnet", "mobilenet", "all"],
                      "seed: 16x16, 3x3, C=O=128..1024 step 128; resnet: ResNet-18 convolutions at 224x224; "
                      "mobilenet: MobileNet v1's depthwise 3x3 layers at 224x224.")
    flags.DEFINE_enum("backend", "auto", ["auto", "cuda", "host"], "libapnn backend.")
    flags.DEFINE_integer("iters", 100, "Timed calls per shape.")
    flags.DEFINE_integer("warmup", 10, "Untimed calls before timing.")
    flags.DEFINE_bool("compare", False, "Also time cuDNN FP16 and cuBLAS INT8 through PyTorch (when importable).")
    flags.DEFINE_string("json_out", None, "Write all results to this JSON file.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_string("sweep", None, "Tuning: comma-separated tiled configurations (conv_tiles option values, "
                        "e.g. 0,1,legacy); times every one with split_k 1,2,3,4,6,8 per shape instead of the table.")


# (name, H, W, C, O, k, stride, pad[, groups])
def seed_shapes():
    return [(f"seed_c{c}", 16, 16, c, c, 3, 1, 1) for c in range(128, 1025, 128)]


def mobilenet_shapes():
    """MobileNet v1's depthwise 3x3 layers at 224 x 224 (groups = channels)."""
    return [(f"dw{h}_c{c}" + ("_s2" if s == 2 else ""), h, h, c, c, 3, s, 1, c)
            for h, c, s in [(112, 32, 1), (112, 64, 2), (56, 128, 1), (56, 128, 2), (28, 256, 1), (28, 256, 2),
                            (14, 512, 1), (14, 512, 2), (7, 1024, 1)]]


def resnet_shapes():
    return [("stem", 224, 224, 3, 64, 7, 2, 3), ("conv2", 56, 56, 64, 64, 3, 1, 1),
            ("conv3_s2", 56, 56, 64, 128, 3, 2, 1), ("conv3", 28, 28, 128, 128, 3, 1, 1),
            ("conv4_s2", 28, 28, 128, 256, 3, 2, 1), ("conv4", 14, 14, 256, 256, 3, 1, 1),
            ("conv5_s2", 14, 14, 256, 512, 3, 2, 1), ("conv5", 7, 7, 512, 512, 3, 1, 1),
            ("down5_1x1", 14, 14, 256, 512, 1, 2, 0)]


def torch_times(n, h, w, c, o, k, stride, pad, groups=1):
    """{'cudnn_fp16': us, 'int8_gemm': us} or {} without PyTorch / GPU."""
    try:
        import torch_baselines
    except ImportError:
        return {}
    torch = torch_baselines.torch_cuda()
    if torch is None:
        return {}
    torch.backends.cudnn.benchmark = True
    out = {}
    x = torch.randn(n, c, h, w, device="cuda", dtype=torch.half).to(memory_format=torch.channels_last)
    wt = torch.randn(o, c // groups, k, k, device="cuda", dtype=torch.half).to(memory_format=torch.channels_last)
    conv = torch.nn.functional.conv2d
    out["cudnn_fp16"] = torch_baselines.time_graph(torch, lambda: conv(x, wt, stride=stride, padding=pad,
                                                                       groups=groups))
    if groups > 1:  # no INT8 GEMM equivalent of a grouped convolution
        torch.cuda.empty_cache()
        return out
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    m, kk = n * oh * ow, k * k * c
    try:
        a8 = torch.randint(-8, 8, (max(m, 32), kk), device="cuda", dtype=torch.int8)
        b8 = torch.randint(-8, 8, (o, kk), device="cuda", dtype=torch.int8).t()
        out["int8_gemm"] = torch_baselines.time_graph(torch, lambda: torch._int_mm(a8, b8))
    except Exception:  # noqa: BLE001 - cuBLAS INT8 refuses some shapes
        out["int8_gemm"] = None
    torch.cuda.empty_cache()
    return out


def run_shape(ctx, rng, name, h, w, c, o, k, stride, pad, groups=1, *, batch=1, w_bit=1, x_bit=2, x_encoding="unsigned",
              w_encoding="auto", out_bit=2, warmup=10, iters=100, compare=False, separate=True):
    """Verifies one shape against the oracle (row["exact"]), then times conv, fused (and separate) epilogue."""
    n = batch
    w_enc = w_encoding if w_encoding != "auto" else ("binary" if w_bit == 1 else "signed")
    x_codes = reference.random_codes(rng, (n, h, w, c), x_bit, x_encoding)
    w_codes = reference.random_codes(rng, (o, k, k, c // groups), w_bit, w_enc)
    x = apnn.pack_nhwc(ctx, x_codes, x_bit, x_encoding)
    wt = apnn.pack_conv_weights(ctx, w_codes, w_bit, w_enc)
    kw = dict(stride=stride, padding=pad, groups=groups)

    # Verify the raw result (first image) and the fused result against the oracle.
    y = apnn.conv2d_packed(ctx, x, wt, **kw)
    ref_kw = dict(x_bit=x_bit, w_bit=w_bit, x_encoding=x_encoding, w_encoding=w_enc, **kw)
    y_ref = reference.conv2d(x_codes[:1], w_codes, **ref_kw)
    ok = bool(np.array_equal(y[:1], y_ref))
    scale = (rng.uniform(0.5, 1.5, o) / np.sqrt(k * k * c // groups)).astype(np.float32)
    bias = rng.uniform(-1, 1, o).astype(np.float32)
    ep = apnn.Epilogue(ctx, o, scale=scale, bias=bias, activation="relu", out_scale=0.25)
    out = apnn.empty_nhwc(ctx, y.shape, out_bit, "unsigned")
    apnn.conv2d_packed(ctx, x, wt, epilogue=ep, out=out, **kw)
    fused_ref = reference.conv_epilogue(y_ref, scale=scale, bias=bias, activation="relu",
                                        out=(out_bit, "unsigned", 0, 0.25))
    ok = ok and bool(np.array_equal(out.codes()[:1], fused_ref))

    t = dict(warmup=warmup, iters=iters)
    row = {"name": name, "n": n, "h": h, "w": w, "c": c, "o": o, "k": k, "stride": stride, "pad": pad,
           "groups": groups, "exact": ok}
    row["kernel"] = apnn.conv2d_kernel_name(ctx, x, wt, epilogue=ep, out=out, **kw)
    row["conv_us"] = apnn.conv2d_benchmark(ctx, x, wt, **kw, **t)
    row["fused_us"] = apnn.conv2d_benchmark(ctx, x, wt, epilogue=ep, out=out, **kw, **t)
    if separate:
        apnn.set_conv_override(ctx, fuse=False)
        try:
            row["separate_us"] = apnn.conv2d_benchmark(ctx, x, wt, epilogue=ep, out=out, **kw, **t)
        finally:
            apnn.set_conv_override(ctx)
    m = n * y.shape[1] * y.shape[2]
    row["tops"] = 2.0 * m * o * k * k * (c // groups) / (row["conv_us"] * 1e-6) / 1e12
    if compare:
        row.update(torch_times(n, h, w, c, o, k, stride, pad, groups))
    return row


def fmt(v, spec="8.2f"):
    return format(v, spec) if isinstance(v, (int, float)) else format("-", ">" + spec.split(".")[0])


def sweep(shapes):
    """Times conv and fused per (configuration, split), each configuration on its own context."""
    for config in FLAGS.sweep.split(","):
        ctx = apnn.Context(FLAGS.backend, conv_tiles=config if config == "legacy" else int(config))
        for name, h, w, c, o, k, stride, pad, *_ in (s for s in shapes if len(s) == 8):  # dense shapes only
            rng = np.random.default_rng(FLAGS.seed)
            n = FLAGS.batch
            x = apnn.pack_nhwc(ctx, reference.random_codes(rng, (n, h, w, c), FLAGS.x_bit, "unsigned"), FLAGS.x_bit)
            wt = apnn.pack_conv_weights(ctx, reference.random_codes(rng, (o, k, k, c), 1, "binary"), 1, "binary")
            ep = apnn.Epilogue(ctx, o, scale=np.full(o, 0.01, np.float32), activation="relu", out_scale=0.25)
            out = apnn.empty_nhwc(ctx, (n, h, w, o), 2, "unsigned")
            kw = dict(stride=stride, padding=pad, warmup=FLAGS.warmup, iters=FLAGS.iters)
            line = []
            for split in (1, 2, 3, 4, 6, 8):
                apnn.set_conv_override(ctx, split_k=split)
                a = apnn.conv2d_benchmark(ctx, x, wt, **kw)
                b = apnn.conv2d_benchmark(ctx, x, wt, epilogue=ep, out=out, **kw)
                line.append(f"s{split}:{a:5.2f}/{b:5.2f}")
            apnn.set_conv_override(ctx)
            print(f"cfg={config:<6} b{n} {name:<9} " + " ".join(line), flush=True)


def main(argv):
    del argv
    ctx = apnn.Context(FLAGS.backend)
    rng = np.random.default_rng(FLAGS.seed)
    shapes = {"seed": seed_shapes, "resnet": resnet_shapes, "mobilenet": mobilenet_shapes,
              "all": lambda: seed_shapes() + resnet_shapes() + mobilenet_shapes()}[FLAGS.shapes]()
    if FLAGS.sweep:
        sweep(shapes)
        return 0
    print(f"apnn conv w{FLAGS.w_bit}a{FLAGS.x_bit} batch {FLAGS.batch} on {ctx.device_name} ({ctx.backend}); "
          f"fused epilogue: scale/bias, ReLU, {FLAGS.out_bit}-bit packed output")
    print(f"{'shape':<12} {'HxW':>7} {'C':>5} {'O':>5} {'k/s':>5} {'conv us':>8} {'fused':>8} {'separate':>8} "
          f"{'fuse +%':>7} {'TOPS':>7} {'fp16 us':>8} {'int8 us':>8} {'vs fp16':>7}  exact  kernel")
    rows = []
    for name, h, w, c, o, k, stride, pad, *groups in shapes:
        r = run_shape(ctx, rng, name, h, w, c, o, k, stride, pad, *groups, batch=FLAGS.batch, w_bit=FLAGS.w_bit,
                      x_bit=FLAGS.x_bit, x_encoding=FLAGS.x_encoding, w_encoding=FLAGS.w_encoding,
                      out_bit=FLAGS.out_bit, warmup=FLAGS.warmup, iters=FLAGS.iters, compare=FLAGS.compare)
        rows.append(r)
        over = 100.0 * (r["fused_us"] / r["conv_us"] - 1.0)
        fp16 = r.get("cudnn_fp16")
        speed = fp16 / r["fused_us"] if fp16 else None
        print(f"{name:<12} {f'{h}x{w}':>7} {c:>5} {o:>5} {f'{k}/{stride}':>5} {fmt(r['conv_us'])} "
              f"{fmt(r['fused_us'])} {fmt(r['separate_us'])} {fmt(over, '7.1f')} {fmt(r['tops'], '7.1f')} "
              f"{fmt(fp16)} {fmt(r.get('int8_gemm'))} {fmt(speed, '7.2f')}  {'yes' if r['exact'] else 'NO':<5}  "
              f"{r['kernel']}", flush=True)
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if all(r["exact"] for r in rows) else 1


if __name__ == "__main__":
    define_flags()
    app.run(main)
