"""The GEMM shape tables shared by the APNN and CUTLASS GEMM benchmarks."""


def seed_shapes():
    """APNN-TC's table: M=64, N=K=128..1024 step 128."""
    return [(64, n, n) for n in range(128, 1025, 128)]


def large_shapes():
    """Throughput-bound cubes and latency-bound skinny products."""
    return [(s, s, s) for s in (1024, 4096, 8192)] + [(m, nk, nk) for nk in (4096, 8192) for m in
                                                       (8, 16, 32, 64, 128, 256)]


def shapes_from_flags(flag_values, usage_error):
    """--m/--n/--k (all combinations) when given, else the --shapes table."""
    if flag_values.m or flag_values.n or flag_values.k:
        if not (flag_values.m and flag_values.n and flag_values.k):
            raise usage_error("--m, --n and --k go together")
        return [(int(m), int(n), int(k)) for m in flag_values.m for n in flag_values.n for k in flag_values.k]
    tables = {"seed": seed_shapes, "large": large_shapes, "all": lambda: seed_shapes() + large_shapes()}
    return tables[flag_values.shapes]()
