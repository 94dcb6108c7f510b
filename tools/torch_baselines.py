"""What a user would pick instead: cuBLAS / cuDNN through PyTorch, timed like APNN.

Each function returns microseconds per call (CUDA graph of the call, replayed, timed with CUDA
events, median of replays) or None where PyTorch, a GPU, or the data type is missing.
"""
import statistics


def torch_cuda():
    """The torch module when it is importable and sees a GPU, else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def time_graph(torch, fn, per_graph=20, replays=15, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()  # allocations of the first call happen outside the graph
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(per_graph):
            fn()
    graph.replay()
    times = []
    for _ in range(replays):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop) * 1000.0 / per_graph)
    return statistics.median(times)


def gemm_times(m, n, k):
    """{'fp16': us, 'int8': us, 'fp8': us} for an M x N x K product (Y = X W^T)."""
    torch = torch_cuda()
    if torch is None:
        return {}
    dev = "cuda"
    out = {}
    a16 = torch.randn(m, k, device=dev, dtype=torch.half)
    b16 = torch.randn(n, k, device=dev, dtype=torch.half).t()
    out["fp16"] = time_graph(torch, lambda: a16 @ b16)
    try:
        a8 = torch.randint(-8, 8, (m, k), device=dev, dtype=torch.int8)
        b8 = torch.randint(-8, 8, (n, k), device=dev, dtype=torch.int8).t()
        out["int8"] = time_graph(torch, lambda: torch._int_mm(a8, b8))
    except Exception:  # noqa: BLE001 - cuBLAS INT8 refuses some shapes (e.g. M <= 16)
        out["int8"] = None
    try:
        af = torch.randn(m, k, device=dev).to(torch.float8_e4m3fn)
        bf = torch.randn(n, k, device=dev).to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=dev)
        out["fp8"] = time_graph(torch, lambda: torch._scaled_mm(af, bf, one, one, out_dtype=torch.half))
    except Exception:  # noqa: BLE001 - FP8 needs sm_89+ and shapes that are multiples of 16
        out["fp8"] = None
    del a16, b16
    torch.cuda.empty_cache()
    return out
