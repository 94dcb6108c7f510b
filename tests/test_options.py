"""Kernel-choice options (apnn.h, apnn_options_t): defaults, round trips, validation through the C
API and Python, the environment's debugging overrides (read once per process), and networks
taking their context's options when they are created. That each option keeps results identical
on CUDA is tested where each one acts (test_conv, test_conv_halo, test_epilogue,
test_first_layer_taps, test_network)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import apnn
from apnn import reference

DEFAULTS = {"conv_tiles": "auto", "conv_halo": "auto", "conv_register_finish": 1, "derived_thresholds": 1,
            "dependent_launch": 1, "first_layer_taps": "auto", "network_im2col": 1, "network_from_image": 1,
            "network_pack_taps": 1, "network_unpadded": 1, "network_max_call_pixels": 0}


def test_defaults_and_init(host_ctx):
    assert apnn.Context("host").options == DEFAULTS
    ffi, lib = host_ctx._ffi, host_ctx._lib
    raw = ffi.new("apnn_options_t*")
    assert lib.apnn_options_init(raw) == lib.APNN_STATUS_SUCCESS
    assert raw.conv_tiles == lib.APNN_OPTION_AUTO and raw.dependent_launch == 1 and raw.network_max_call_pixels == 0


def test_set_keeps_the_other_options():
    ctx = apnn.Context("host", conv_tiles=3, network_unpadded=False)
    ctx.set_options(conv_halo=0, first_layer_taps=1, network_max_call_pixels=2**35)
    want = dict(DEFAULTS, conv_tiles=3, network_unpadded=0, conv_halo=0, first_layer_taps=1,
                network_max_call_pixels=2**35)
    assert ctx.options == want
    ctx.set_options(conv_tiles="legacy", conv_halo="auto")
    assert ctx.options["conv_tiles"] == "legacy" and ctx.options["conv_halo"] == "auto"


@pytest.mark.parametrize("name,value,error,message", [
    ("conv_tiles", 5, apnn.InvalidArgumentError, r"conv_tiles must be in -2\.\.4, got 5"),
    ("conv_tiles", -3, apnn.InvalidArgumentError, "conv_tiles must be in"),
    ("conv_halo", 2, apnn.InvalidArgumentError, r"conv_halo must be in -1\.\.1, got 2"),
    ("dependent_launch", -1, apnn.InvalidArgumentError, r"dependent_launch must be in 0\.\.1"),
    ("network_max_call_pixels", -5, apnn.InvalidArgumentError, "network_max_call_pixels must be in"),
    ("conv_halo", "legacy", apnn.InvalidArgumentError, "must be 'auto'"),
    ("conv_tiles", "fast", apnn.InvalidArgumentError, "must be 'auto' or 'legacy'"),
    ("conv_tiles", 1.5, apnn.InvalidTypeError, "conv_tiles must be an integer"),
    ("conv_tiles", 2**40, apnn.InvalidArgumentError, "outside the range"),
    ("halo", 1, apnn.InvalidArgumentError, "unknown option 'halo'"),
])
def test_bad_options_are_refused_and_change_nothing(name, value, error, message):
    ctx = apnn.Context("host", conv_tiles=1)
    with pytest.raises(error, match=message):
        ctx.set_options(**{name: value})
    assert ctx.options == dict(DEFAULTS, conv_tiles=1)


def test_c_api_null_and_validation(host_ctx):
    ffi, lib = host_ctx._ffi, host_ctx._lib
    raw = ffi.new("apnn_options_t*")
    assert lib.apnn_options_init(ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_context_get_options(ffi.NULL, raw) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_context_get_options(host_ctx._handle, ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert lib.apnn_context_set_options(host_ctx._handle, ffi.NULL) == lib.APNN_STATUS_INVALID_ARGUMENT
    lib.apnn_options_init(raw)
    raw.network_unpadded = 7
    assert lib.apnn_context_set_options(host_ctx._handle, raw) == lib.APNN_STATUS_INVALID_ARGUMENT
    assert "network_unpadded must be in 0..1, got 7" in ffi.string(lib.apnn_last_error()).decode()


def run_with_environment(env, code):
    full = dict(os.environ, **env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_environment_overrides_are_read_once_per_process():
    code = ("import os, apnn; a = apnn.Context('host').options; os.environ['APNN_CONV_HALO'] = '1'; "
            "b = apnn.Context('host').options; print(a['conv_tiles'], a['conv_halo'], a['network_unpadded'], "
            "a['network_max_call_pixels'], a['first_layer_taps'], b['conv_halo'])")
    got = run_with_environment({"APNN_CONV_TILES": "legacy", "APNN_CONV_HALO": "0", "APNN_NETWORK_UNPADDED": "0",
                                "APNN_NETWORK_MAX_CALL_PIXELS": "123", "APNN_FIRST_LAYER_TAPS": "1"}, code)
    assert got == "legacy 0 0 123 1 0"  # the second context still sees the first reading


def first_conv_kernel(ctx, rng, change_after_create=None):
    """Builds, plans and checks a 2-layer network; the kernel its 3-channel first conv runs."""
    net = apnn.Network((8, 8, 3), context=ctx)
    if change_after_create is not None:
        ctx.set_options(**change_after_create)
    conv = net.conv(16, 3, padding=1, w_bit=2, out_bit=2, out_scale=0.5)
    net.linear(4, output="float")
    net.set_weights(conv, codes=reference.random_codes(rng, net.weight_shape(conv), 2, "signed"),
                    scale=np.full(16, 0.05, np.float32))
    net.set_weights(2, codes=reference.random_codes(rng, net.weight_shape(2), 1, "binary"))
    assert net.layer_info(conv)["kernel"] == ""  # not planned yet
    x = rng.integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    np.testing.assert_array_equal(net(x), net.reference(x))
    info = net.layer_info(conv)
    return info["kernel"], info["call_images"]


def test_networks_take_their_contexts_options_at_creation(rng):
    # A 3-channel first convolution runs as an im2col GEMM unless network_im2col is 0; a limit of
    # 70 output pixels per call runs the 5 images of 8 x 8 one per call. A network keeps the options
    # its context had when it was created, whatever the context says afterwards.
    assert first_conv_kernel(apnn.Context("host"), rng) == ("im2col host_conv_popcount", 5)
    assert first_conv_kernel(apnn.Context("host", network_im2col=0), rng) == ("host_conv_popcount", 5)
    ctx = apnn.Context("host", network_im2col=0, network_max_call_pixels=70)
    assert first_conv_kernel(ctx, rng, dict(network_im2col=1, network_max_call_pixels=0)) == ("host_conv_popcount", 1)
    assert first_conv_kernel(ctx, rng) == ("im2col host_conv_popcount", 5)
