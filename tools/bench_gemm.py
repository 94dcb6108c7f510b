"""Benchmark of apnn's arbitrary-precision GEMM: verified results, time and TOPS per shape.

    bazel run //tools:bench_gemm -- --w_bit=1 --x_bit=2 [--shapes=seed|large|all] [--compare]

Every result is checked against the numpy oracle before it is timed (in full where the
int64 reference is cheap, otherwise on a random sample of outputs, and the line says which).
Timing: CUDA graph replays timed with CUDA events, median, after warm-up (host: wall clock).
TOPS = 2*M*N*K / time. --compare times cuBLAS FP16/INT8/FP8 (PyTorch) in the same process.
"""
import itertools
import json
import sys
import time

import numpy as np
from absl import app, flags

import apnn
from apnn import reference

import gemm_shapes
import torch_baselines

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    flags.DEFINE_list("w_bit", ["1"], "Weight bits (a list runs every combination).")
    flags.DEFINE_list("x_bit", ["2"], "Activation bits (a list runs every combination).")
    flags.DEFINE_string("x_encoding", "unsigned", "Activation encoding: unsigned, signed or binary.")
    flags.DEFINE_string("w_encoding", "auto", "Weight encoding: unsigned, signed, binary, or auto (binary for 1 bit, "
                        "else signed).")
    flags.DEFINE_enum("shapes", "seed", ["seed", "large", "all"], "seed: M=64, N=K=128..1024; large: 1024^3, 4096^3, "
                      "8192^3 and M=8..256 with N=K=4096, 8192.")
    flags.DEFINE_list("m", None, "M values (overrides --shapes; with --n and --k, all combinations).")
    flags.DEFINE_list("n", None, "N values.")
    flags.DEFINE_list("k", None, "K values.")
    flags.DEFINE_enum("backend", "auto", ["auto", "cuda", "host"], "libapnn backend.")
    flags.DEFINE_integer("iters", 100, "Timed calls per shape.")
    flags.DEFINE_integer("warmup", 10, "Untimed calls before timing.")
    flags.DEFINE_bool("compare", False, "Also time cuBLAS FP16/INT8/FP8 through PyTorch (when importable).")
    flags.DEFINE_bool("pack", False, "Also time packing of X (int8 codes in device memory -> planes).")
    flags.DEFINE_bool("sweep_configs", False, "Also time every tile configuration (apnn_context_set_gemm_override) and "
                      "print each, to tune the dispatcher.")
    flags.DEFINE_string("json_out", None, "Write all results to this JSON file.")
    flags.DEFINE_integer("seed", 0, "Random seed.")


def shapes_from_flags():
    return gemm_shapes.shapes_from_flags(FLAGS, app.UsageError)


def verify(y, x, w, x_bit, w_bit, x_enc, w_enc, rng):
    """Full check against the oracle when cheap, else 4096 random outputs. Returns the mode."""
    m, n = y.shape
    k = x.shape[1]
    kw = dict(x_bit=x_bit, w_bit=w_bit, x_encoding=x_enc, w_encoding=w_enc)
    if m * n * k <= 1 << 31:
        expected = reference.gemm(x, w, **kw)
        mode = "full"
        ok = np.array_equal(y, expected)
    else:
        rows, cols = rng.integers(0, m, 4096), rng.integers(0, n, 4096)
        xd = reference.decode(x[rows], x_bit, x_enc)
        wd = reference.decode(w[cols], w_bit, w_enc)
        expected = np.einsum("ij,ij->i", xd, wd)
        mode = "sampled-4096"
        ok = np.array_equal(y[rows, cols], expected)
    if not ok:
        raise SystemExit(f"WRONG RESULT for w{w_bit}a{x_bit} {m}x{n}x{k}: apnn differs from the numpy oracle")
    return mode


def run_one(ctx, rng, m, n, k, x_bit, w_bit, x_enc, w_enc, warmup=10, iters=100, sweep_configs=False, pack=False):
    """Packs random codes, runs once, verifies against the oracle (raises SystemExit if wrong), then times."""
    x = reference.random_codes(rng, (m, k), x_bit, x_enc)
    w = reference.random_codes(rng, (n, k), w_bit, w_enc)
    xp = ctx.pack(x, x_bit, x_enc)
    wp = ctx.pack(w, w_bit, w_enc)
    y_buf = ctx.buffer(m * n * 4)
    ctx.gemm_into(xp, wp, y_buf)
    y = y_buf.read((m, n), np.int32)
    mode = verify(y, x, w, x_bit, w_bit, x_enc, w_enc, rng)
    us = ctx.gemm_benchmark(xp, wp, y_buf, warmup=warmup, iters=iters)
    row = dict(w_bit=w_bit, x_bit=x_bit, x_encoding=x_enc, w_encoding=w_enc, M=m, N=n, K=k,
               kernel=ctx.gemm_kernel_name(xp, wp), us=us, tops=2.0 * m * n * k / (us * 1e-6) / 1e12, verified=mode)
    if sweep_configs and ctx.backend == "cuda":
        row["sweep_us"] = {}
        for config in range(ctx.gemm_configs):
            ctx.set_gemm_override(config=config)
            ctx.gemm_into(xp, wp, y_buf)
            if not np.array_equal(y_buf.read((m, n), np.int32), y):
                raise SystemExit(f"WRONG RESULT with tile config {config}")
            row["sweep_us"][ctx.gemm_kernel_name(xp, wp)] = ctx.gemm_benchmark(xp, wp, y_buf, warmup, iters)
        ctx.set_gemm_override()
    if pack:
        codes = ctx.buffer(x.nbytes)
        codes.write(x)
        ctx.pack_buffer(codes, x.dtype, m, k, x_bit, x_enc)
        t0 = time.perf_counter()
        reps = 20
        for _ in range(reps):
            ctx.pack_buffer(codes, x.dtype, m, k, x_bit, x_enc)
        row["pack_x_us"] = (time.perf_counter() - t0) / reps * 1e6
    return row


def main(argv):
    del argv
    ctx = apnn.Context(FLAGS.backend)
    print(f"apnn {apnn.version()} backend={ctx.backend} device={ctx.device_name}"
          + ("" if ctx.backend == "cuda" else "  (no GPU: host reference backend, times are CPU times)"))
    rng = np.random.default_rng(FLAGS.seed)
    rows = []
    compare = FLAGS.compare and ctx.backend == "cuda" and torch_baselines.torch_cuda() is not None
    if FLAGS.compare and not compare:
        print("--compare: PyTorch with a GPU is not available here; skipping cuBLAS timings")
    for w_bit, x_bit in itertools.product([int(b) for b in FLAGS.w_bit], [int(b) for b in FLAGS.x_bit]):
        w_enc = FLAGS.w_encoding if FLAGS.w_encoding != "auto" else ("binary" if w_bit == 1 else "signed")
        x_enc = FLAGS.x_encoding
        for (m, n, k) in shapes_from_flags():
            if ctx.backend == "host" and m * n * k > 1 << 31:
                print(f"w{w_bit}a{x_bit} M={m} N={n} K={k}: skipped on the host backend (too slow)")
                continue
            row = run_one(ctx, rng, m, n, k, x_bit, w_bit, x_enc, w_enc, warmup=FLAGS.warmup, iters=FLAGS.iters,
                          sweep_configs=FLAGS.sweep_configs, pack=FLAGS.pack)
            line = (f"w{w_bit}a{x_bit} M={m:5d} N={n:5d} K={k:5d}  {row['us']:9.2f} us  {row['tops']:9.3f} TOPS  "
                    f"[{row['kernel']}] verified:{row['verified']}")
            if "pack_x_us" in row:
                line += f"  pack(X) {row['pack_x_us']:.1f} us"
            if "sweep_us" in row:
                line += "\n    sweep: " + "  ".join(f"{name} {t:.2f}us" for name, t in row["sweep_us"].items())
            if compare:
                base = torch_baselines.gemm_times(m, n, k)
                row["baselines_us"] = base
                line += "  |" + "".join(
                    f" {name} {t:.2f}us ({t / row['us']:.2f}x)" if t else f" {name} n/a" for name, t in base.items())
            print(line, flush=True)
            rows.append(row)
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(dict(device=ctx.device_name, backend=ctx.backend, results=rows), f, indent=1)
        print(f"wrote {FLAGS.json_out}")
    return 0


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
