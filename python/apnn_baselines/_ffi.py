"""Loads libapnn_baselines.so through cffi in ABI mode, the way apnn loads libapnn.so
(apnn._ffi.Binding): the library at $APNN_BASELINES_LIBRARY, else next to this package, under
baselines/ at the root of a Bazel runfiles tree or in the source tree's bazel-bin/; the header
likewise ($APNN_BASELINES_HEADER, baselines/include/apnn_baselines/baselines.h).
"""
import os

from apnn._ffi import Binding

_LIBRARY = Binding(os.path.dirname(os.path.abspath(__file__)), os.path.join("baselines", "libapnn_baselines.so"),
                   os.path.join("baselines", "include", "apnn_baselines", "baselines.h"), "APNN_BASELINES_LIBRARY",
                   "APNN_BASELINES_HEADER", "APNNB",
                   "build it with `tools/bazel build //baselines:libapnn_baselines.so`")


def load():
    """Returns (ffi, lib) of libapnn_baselines, loading it once per process."""
    return _LIBRARY.load()
