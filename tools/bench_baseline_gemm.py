"""Benchmark of the CUTLASS INT1 / INT4 GEMM baselines: verified results, time and TOPS per shape.

    bazel run //tools:bench_baseline_gemm -- --bits=4        (or --bits=1 [--op=xor,and])

C = A B^T with A (M x K) row-major and B (N x K): CUTLASS's TN layout. Every result is checked
against the numpy oracle first (in full where cheap, else on 4096 sampled outputs). Timing: CUDA
graph replays timed with CUDA events, median, after warm-up. TOPS = 2*M*N*K / time.
"""
import json
import sys

import numpy as np
from absl import app, flags

import apnn_baselines as ab
from apnn_baselines import reference
import gemm_shapes

FLAGS = flags.FLAGS


def define_flags():
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    flags.DEFINE_list("bits", ["1"], "Code bits: 1 (CUTLASS b1) and/or 4 (CUTLASS s4).")
    flags.DEFINE_list("op", ["xor", "and"], "For 1 bit: xor (OpXorPopc) and/or and (OpAndPopc).")
    flags.DEFINE_enum("shapes", "seed", ["seed", "large", "all"], "seed: M=64, N=K=128..1024; large: 1024^3, 4096^3, "
                      "8192^3 and M=8..256 with N=K=4096, 8192.")
    flags.DEFINE_list("m", None, "M values (overrides --shapes; with --n and --k, all combinations).")
    flags.DEFINE_list("n", None, "N values.")
    flags.DEFINE_list("k", None, "K values.")
    flags.DEFINE_integer("iters", 100, "Timed calls per shape.")
    flags.DEFINE_integer("warmup", 10, "Untimed calls before timing.")
    flags.DEFINE_string("json_out", None, "Write all results to this JSON file.")
    flags.DEFINE_integer("seed", 0, "Random seed.")


def shapes_from_flags():
    return gemm_shapes.shapes_from_flags(FLAGS, app.UsageError)


def kinds_from_flags():
    kinds = []
    for bits in FLAGS.bits:
        if bits == "4":
            kinds.append("int4")
        elif bits == "1":
            for op in FLAGS.op:
                if op not in ("xor", "and"):
                    raise app.UsageError(f"--op must be xor and/or and, got {op!r}")
                kinds.append(f"int1-{op}")
        else:
            raise app.UsageError(f"--bits must be 1 and/or 4, got {bits!r}")
    return kinds


def verify(kind, c, a, b, rng):
    m, n = c.shape
    if m * n * a.shape[1] <= 1 << 31:
        ok, mode = np.array_equal(c, reference.gemm(kind, a, b)), "full"
    else:
        rows, cols = rng.integers(0, m, 4096), rng.integers(0, n, 4096)
        expected = reference.gemm(kind, a[rows], b[cols])[np.arange(4096), np.arange(4096)]
        ok, mode = np.array_equal(c[rows, cols], expected), "sampled-4096"
    if not ok:
        raise SystemExit(f"WRONG RESULT for {kind} {m}x{n}x{a.shape[1]}: CUTLASS differs from the numpy oracle")
    return mode


def run_one(kind, m, n, k, rng, warmup=10, iters=100):
    """Random codes, one timed CUTLASS GEMM, verified against the oracle (SystemExit if wrong): the result row."""
    a = reference.random_codes(rng, (m, k), kind)
    b = reference.random_codes(rng, (n, k), kind)
    c, us = ab.gemm(kind, a, b, warmup=warmup, iters=iters)
    mode = verify(kind, c, a, b, rng)
    tops = 2.0 * m * n * k / (us * 1e-6) / 1e12
    return dict(kind=kind, M=m, N=n, K=k, us=us, tops=tops, verified=mode)


def xor_unsupported_row(count):
    """CUTLASS b1 XOR-popc is refused on sm_90+ (its mma is assert(0) there): one line instead of `count` rows."""
    major, minor = ab.compute_capability()
    try:  # the library's own message (UnsupportedError); nothing is launched
        ab.gemm("int1-xor", np.zeros((1, 128), np.uint8), np.zeros((4, 128), np.uint8))
        reason = "refused"
    except ab.UnsupportedError as e:
        reason = str(e)
    print(f"int1-xor XOR: unsupported on sm_{major}{minor} ({reason}); skipped {count} shapes", flush=True)
    return dict(kind="int1-xor", unsupported=f"sm_{major}{minor}", reason=reason)


def main(argv):
    del argv
    if ab.cuda_device_count() == 0:
        print(f"apnn_baselines {ab.version()}: no usable CUDA GPU here; the CUTLASS baselines need one")
        return 1
    print(f"apnn_baselines {ab.version()} device={ab.device_name()}  (CUTLASS Sm80 GEMM, TN)")
    rng = np.random.default_rng(FLAGS.seed)
    rows = []
    for kind in kinds_from_flags():
        shapes = shapes_from_flags()
        if kind == "int1-xor" and not ab.xor_popc_supported():
            rows.append(xor_unsupported_row(len(shapes)))
            continue
        for (m, n, k) in shapes:
            row = run_one(kind, m, n, k, rng, warmup=FLAGS.warmup, iters=FLAGS.iters)
            us, tops, mode = row["us"], row["tops"], row["verified"]
            rows.append(row)
            print(f"{kind:8s} M={m:5d} N={n:5d} K={k:5d}  {us:9.2f} us  {tops:9.3f} TOPS  [cutlass-{kind}] "
                  f"verified:{mode}", flush=True)
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(dict(device=ab.device_name(), results=rows), f, indent=1)
        print(f"wrote {FLAGS.json_out}")
    return 0


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
