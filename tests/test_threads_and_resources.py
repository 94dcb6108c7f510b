"""Threads and resources on the host backend (apnn.h, "Threads"): threads with their own contexts
running GEMMs, convolutions and networks at once stay exact, and so do threads sharing one context
or one network (their calls are serialized), errors stay per thread, and
creating and destroying contexts, buffers, packed matrices and networks thousands of times leaves
the process's memory flat."""
import gc
import os
import threading

import numpy as np
import pytest

import apnn
from apnn import reference


def resident_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker(seed, rounds, failures, shared=None):
    try:
        rng = np.random.default_rng(seed)
        ctx = shared or apnn.Context("host")
        net = apnn.Network((6, 6, 5), input_bits=3, context=ctx)
        c = net.conv(9, 3, padding=1, w_bit=2, out_bit=2, out_scale=0.5)
        fc = net.linear(4, input=net.flatten(), w_bit=1, output="float")
        net.set_weights(c, codes=reference.random_codes(rng, net.weight_shape(c), 2, "signed"),
                        scale=rng.uniform(-0.2, 0.2, 9).astype(np.float32))
        net.set_weights(fc, codes=reference.random_codes(rng, net.weight_shape(fc), 1, "binary"))
        for _ in range(rounds):
            x = reference.random_codes(rng, (5, 70), 2, "unsigned")
            w = reference.random_codes(rng, (6, 70), 3, "signed")
            if not np.array_equal(apnn.gemm(x, w, x_bit=2, w_bit=3, w_encoding="signed", context=ctx),
                                  reference.gemm(x, w, x_bit=2, w_bit=3, w_encoding="signed")):
                failures.append(f"gemm of thread {seed}")
            images = reference.random_codes(rng, (2, 6, 6, 5), 3, "unsigned")
            if not np.array_equal(net(images), net.reference(images)):
                failures.append(f"network of thread {seed}")
            # An error on this thread: its message is this thread's.
            try:
                ctx.pack(x, 9)
                failures.append(f"bits 9 accepted on thread {seed}")
            except apnn.InvalidArgumentError as e:
                if "bits must be in 1..8" not in str(e):
                    failures.append(f"thread {seed} read another thread's error: {e}")
    except Exception as e:  # noqa: BLE001 - reported below with the thread
        failures.append(f"thread {seed}: {type(e).__name__}: {e}")


def run_threads(target, count):
    """Runs target(seed, failures) on `count` threads at once; the failures they reported."""
    failures = []
    threads = [threading.Thread(target=target, args=(seed, failures)) for seed in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def test_threads_with_their_own_contexts_stay_exact():
    assert run_threads(lambda seed, failures: worker(seed, 15, failures), 8) == []


def test_threads_sharing_one_context_stay_exact():
    shared = apnn.Context("host")
    assert run_threads(lambda seed, failures: worker(seed, 10, failures, shared), 6) == []


def test_threads_sharing_one_network_with_different_batches_stay_exact():
    # Each call plans the network for its own batch and runs it; another thread's plan must not
    # slip in between (it would change how many images the run reads).
    rng = np.random.default_rng(7)
    net = apnn.Network((5, 5, 3), input_bits=2, context=apnn.Context("host"))
    c = net.conv(6, 3, padding=1, w_bit=1, out_bit=2, out_scale=0.5)
    fc = net.linear(3, input=net.flatten(), w_bit=2, output="float")
    net.set_weights(c, codes=reference.random_codes(rng, net.weight_shape(c), 1, "binary"),
                    scale=rng.uniform(0.05, 0.2, 6).astype(np.float32))
    net.set_weights(fc, codes=reference.random_codes(rng, net.weight_shape(fc), 2, "signed"))

    def caller(seed, failures):
        local = np.random.default_rng(seed)
        for round_ in range(12):
            x = reference.random_codes(local, (1 + (seed + round_) % 4, 5, 5, 3), 2, "unsigned")
            if not np.array_equal(net(x), net.reference(x)):
                failures.append(f"thread {seed} round {round_}: batch {len(x)} differs from the oracle")

    assert run_threads(caller, 5) == []


def cycle(rng):
    ctx = apnn.Context("host")
    buf = ctx.buffer(4096)
    buf.write(np.zeros(1024, np.int32))
    packed = ctx.pack(reference.random_codes(rng, (3, 40), 2, "unsigned"), 2)
    net = apnn.Network((4, 4, 3), context=ctx)
    c = net.conv(4, 3, padding=1, w_bit=1, output="float")
    net.set_weights(c, codes=reference.random_codes(rng, net.weight_shape(c), 1, "binary"))
    net(np.zeros((1, 4, 4, 3), np.uint8))
    del net, packed, buf, ctx


def test_create_and_destroy_leaves_memory_flat():
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("AddressSanitizer keeps freed memory in quarantine: resident memory says nothing there")
    rng = np.random.default_rng(0)
    for _ in range(200):  # warm up allocator pools and caches
        cycle(rng)
    gc.collect()
    before = resident_kib()
    for _ in range(3000):
        cycle(rng)
    gc.collect()
    grown = resident_kib() - before
    # Each cycle allocates tens of KiB; a leak of one object per cycle would add megabytes.
    assert grown < 2048, f"resident memory grew by {grown} KiB over 3000 cycles"
