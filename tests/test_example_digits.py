"""examples/digits_qat.py: QAT in PyTorch on scikit-learn's digits, then the same network on apnn
gives the same logits (bit for bit), the same predictions and so the same accuracy."""
import importlib.util
import os

import pytest

import apnn
from conftest import BACKENDS


def _require_example_dependencies():
    # Skipped inside each test, not at import: a module skipped while collected leaves pytest
    # with no tests and exit status 5, which Bazel reads as a failure.
    pytest.importorskip("torch", reason="the digits example needs PyTorch (pip install torch)")
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn (pip install scikit-learn)")


def _example():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "examples", "digits_qat.py")
    spec = importlib.util.spec_from_file_location("digits_qat", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("w_bit,min_accuracy", [(1, 0.8), (2, 0.85)], ids=["w1a2", "w2a2"])
def test_digits_qat_matches_pytorch(w_bit, min_accuracy, backend):
    _require_example_dependencies()
    r = _example().run(w_bit=w_bit, x_bit=2, epochs=15, seed=0, backend=backend)
    assert r["same_logits"], f"max |logit difference| {r['max_logit_diff']}"
    assert r["same_predictions"]
    assert r["apnn_accuracy"] == r["torch_accuracy"] >= min_accuracy, r
    assert "conv1" in r["summary"] and isinstance(apnn.Network, type)
