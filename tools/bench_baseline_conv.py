"""Benchmark of the CUTLASS INT1 / INT4 implicit-GEMM convolution baselines (NHWC, fprop).

    bazel run //tools:bench_baseline_conv -- --bits=4      (or --bits=1 [--op=xor,and])

Default shapes are the APNN-TC seed: 16 x 16 feature map, 3 x 3 kernel, pad 1, C = O =
128..1024 step 128, batch 1. Every result is checked against the numpy oracle (in full where
cheap, else on sampled outputs). Timing: CUDA graph replays, CUDA events, median, after warm-up.
TOPS = 2 * N * P * Q * O * R * R * C / time.
"""
import json
import sys

import numpy as np
from absl import app, flags

import apnn_baselines as ab
from apnn_baselines import reference
import bench_baseline_gemm

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    flags.DEFINE_list("bits", ["1"], "Code bits: 1 (CUTLASS b1) and/or 4 (CUTLASS s4).")
    flags.DEFINE_list("op", ["xor", "and"], "For 1 bit: xor (OpXorPopc) and/or and (OpAndPopc).")
    flags.DEFINE_list("channels", [str(c) for c in range(128, 1025, 128)], "C = O values.")
    flags.DEFINE_integer("hw", 16, "Feature map height = width.")
    flags.DEFINE_integer("kernel", 3, "Kernel size (pad = kernel // 2, stride 1).")
    flags.DEFINE_list("batch", ["1"], "Batch sizes.")
    flags.DEFINE_integer("iters", 100, "Timed calls per shape.")
    flags.DEFINE_integer("warmup", 10, "Untimed calls before timing.")
    flags.DEFINE_string("json_out", None, "Write all results to this JSON file.")
    flags.DEFINE_integer("seed", 0, "Random seed.")


def kinds_from_flags():
    kinds = []
    for bits in FLAGS.bits:
        if bits == "4":
            kinds.append("int4")
        elif bits == "1":
            kinds += [f"int1-{op}" for op in FLAGS.op]
        else:
            raise app.UsageError(f"--bits must be 1 and/or 4, got {bits!r}")
    return kinds


def verify(kind, y, x, w, pad, rng):
    n, p, q, o = y.shape
    if y.size * w[0].size <= 1 << 30:
        ok, mode = np.array_equal(y, reference.conv(kind, x, w, 1, pad)), "full"
    else:  # sampled output pixels, all channels
        idx = rng.integers(0, n * p * q, 64)
        cols, _ = reference.im2col(x, w.shape[1], 1, pad)
        expected = reference.gemm(kind, cols[idx], w.reshape(o, -1))
        ok, mode = np.array_equal(y.reshape(-1, o)[idx], expected), "sampled-64px"
    if not ok:
        raise SystemExit(f"WRONG RESULT for {kind} conv {x.shape} x {w.shape}: CUTLASS differs from the oracle")
    return mode


def run_one(kind, batch, hw, ch, r, rng, warmup=10, iters=100):
    """Random codes for a hw x hw x ch map and ch r x r filters (pad r // 2, stride 1), one timed CUTLASS
    convolution, verified against the oracle (SystemExit if wrong): the result row."""
    pad = r // 2
    x = reference.random_codes(rng, (batch, hw, hw, ch), kind)
    w = reference.random_codes(rng, (ch, r, r, ch), kind)
    y, us = ab.conv(kind, x, w, stride=1, pad=pad, warmup=warmup, iters=iters)
    mode = verify(kind, y, x, w, pad, rng)
    p, q = y.shape[1:3]
    tops = 2.0 * batch * p * q * ch * r * r * ch / (us * 1e-6) / 1e12
    return dict(kind=kind, N=batch, H=hw, W=hw, C=ch, O=ch, R=r, us=us, tops=tops, verified=mode)


def main(argv):
    del argv
    if ab.cuda_device_count() == 0:
        print(f"apnn_baselines {ab.version()}: no usable CUDA GPU here; the CUTLASS baselines need one")
        return 1
    print(f"apnn_baselines {ab.version()} device={ab.device_name()}  (CUTLASS Sm80 implicit-GEMM conv, NHWC)")
    rng = np.random.default_rng(FLAGS.seed)
    r, hw = FLAGS.kernel, FLAGS.hw
    pad = r // 2
    rows = []
    for kind in kinds_from_flags():
        if kind == "int1-xor" and not ab.xor_popc_supported():
            rows.append(bench_baseline_gemm.xor_unsupported_row(len(FLAGS.batch) * len(FLAGS.channels)))
            continue
        for batch in (int(b) for b in FLAGS.batch):
            for ch in (int(c) for c in FLAGS.channels):
                row = run_one(kind, batch, hw, ch, r, rng, warmup=FLAGS.warmup, iters=FLAGS.iters)
                us, tops, mode = row["us"], row["tops"], row["verified"]
                rows.append(row)
                print(f"{kind:8s} N={batch:2d} H={hw} W={hw} C={ch:5d} O={ch:5d} k{r}  {us:9.2f} us  {tops:9.3f} TOPS"
                      f"  [cutlass-{kind}-conv] verified:{mode}", flush=True)
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(dict(device=ab.device_name(), results=rows), f, indent=1)
        print(f"wrote {FLAGS.json_out}")
    return 0


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
