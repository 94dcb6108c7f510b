"""apnn.thresholds: the integer thresholds found by binary search reproduce the chain's codes for
every y in range, on random chains of every step kind (both signs of scales, batch norms, ReLU,
clips, inner quantizers, residual values, ties on exact halves, every rounding mode)."""
import numpy as np
import pytest

pytest.importorskip("qonnx")
from apnn import reference  # noqa: E402
from apnn.thresholds import Chain, Quantizer, TruncQuantizer, thresholds  # noqa: E402

ROUNDINGS = ["ROUND", "FLOOR", "CEIL", "HALF_UP", "HALF_DOWN", "UP", "DOWN"]


def random_quantizer(rng):
    bits = int(rng.integers(1, 9))
    signed = bool(rng.random() < 0.5)
    narrow = bool(rng.random() < 0.3) and bits > 1
    zp = 0 if bits == 1 and signed else int(rng.integers(-2, 3))
    scale = float(rng.choice([0.25, 0.5, 1.0, 0.3, 0.1, 2.0]))
    return Quantizer(scale, zp, bits, signed, narrow, str(rng.choice(ROUNDINGS)))


def random_chain(rng, channels):
    chain = Chain(channels, rng.choice([0.5, 0.25, 0.1, -0.25, 0.037], channels) * rng.choice([1, 1, -1]))
    for _ in range(int(rng.integers(0, 4))):
        kind = str(rng.choice(["add", "mul", "div", "sub", "relu", "clip", "bn", "quant"]))
        if kind in ("add", "sub"):
            chain.add(kind, rng.choice([0.5, -1.5, 0.25, 0.0, 1.0], channels))
        elif kind in ("mul", "div"):
            chain.add(kind, rng.choice([0.5, -2.0, 1.0, 3.0], channels))
        elif kind == "relu":
            chain.add("relu")
        elif kind == "clip":
            chain.add("clip", -1.0, 2.5)
        elif kind == "bn":
            chain.add("bn", rng.normal(0, 1, channels), rng.normal(0, 1, channels), rng.normal(0, 1, channels),
                      rng.uniform(0.5, 2, channels), 1e-5)
        else:
            chain.add("quant", random_quantizer(rng))
    return chain


@pytest.mark.parametrize("seed", range(60))
def test_thresholds_reproduce_every_code(seed):
    rng = np.random.default_rng(seed)
    channels = 5
    chain = random_chain(rng, channels)
    residual = None
    if rng.random() < 0.3:
        residual = Quantizer(float(rng.choice([0.5, 0.25])), int(rng.integers(-1, 2)), 2, bool(rng.random() < 0.5),
                             False)
        chain.add_residual(residual)
        chain.add("relu")
    chain.quantizer = random_quantizer(rng) if rng.random() < 0.85 else TruncQuantizer(
        1.0, 0, 8, 4, str(rng.choice(["FLOOR", "ROUND"])), output_scale=16.0, signed=True)
    q = chain.quantizer
    y_range = (-int(rng.integers(0, 400)), int(rng.integers(0, 400)))
    codes = None
    if residual is not None:
        lowest = -2 if residual.signed else 0
        codes = [lowest + r for r in range(4)]
    try:
        table, down = thresholds(chain, y_range, codes)
    except ValueError:
        pytest.skip("codes outside the output's range (refused, as the importer does)")
    y = np.arange(y_range[0], y_range[1] + 1)[None, :, None, None].repeat(channels, axis=0).transpose(1, 2, 3, 0)
    enc = "binary" if q.bipolar else ("signed" if q.signed else "unsigned")
    for r, code in enumerate(codes or [None]):
        want = chain.codes(np.broadcast_to(np.arange(y_range[0], y_range[1] + 1), (channels, y.shape[0])), code).T
        got = reference.threshold_codes(y, table[r][None], bits=q.bits, encoding=enc, descending=down)
        np.testing.assert_array_equal(got.reshape(-1, channels), want, f"seed {seed}, table {r}")
