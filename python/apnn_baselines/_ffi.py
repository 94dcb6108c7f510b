"""Loads libapnn_baselines.so through cffi in ABI mode; the cdef is read from the C header.

The library is found at $APNN_BASELINES_LIBRARY, else next to this package, at the root of a
Bazel runfiles tree (baselines/libapnn_baselines.so) or in the source tree's bazel-bin/. The
header likewise at $APNN_BASELINES_HEADER, next to the package, or under baselines/include/.
"""
import os
import threading

import cffi

from apnn._ffi import bind_all, cdef_from_header  # the same header dialect as apnn.h

_HERE = os.path.dirname(os.path.abspath(__file__))
_LIB = os.path.join("baselines", "libapnn_baselines.so")
_HEADER = os.path.join("baselines", "include", "apnn_baselines", "baselines.h")
_lock = threading.Lock()
_state = {}


def _find(relpath, env, hint):
    if os.environ.get(env):
        path = os.environ[env]
        if not os.path.isfile(path):
            raise OSError(f"{env}={path} does not exist")
        return path
    name = os.path.basename(relpath)
    for path in (os.path.join(_HERE, name), os.path.join(_HERE, "..", "..", relpath),
                 os.path.join(_HERE, "..", "..", "bazel-bin", relpath)):
        if os.path.isfile(path):
            return os.path.normpath(path)
    raise OSError(f"{name} not found near {_HERE}; {hint} or set {env}")


def load():
    """Returns (ffi, lib), loading the library once per process."""
    with _lock:
        if "lib" not in _state:
            ffi = cffi.FFI()
            with open(_find(_HEADER, "APNN_BASELINES_HEADER", "ship baselines.h with the package")) as f:
                ffi.cdef(cdef_from_header(f.read(), prefix="APNNB"))
            lib = bind_all(ffi.dlopen(_find(_LIB, "APNN_BASELINES_LIBRARY",
                                            "build it with `tools/bazel build //baselines:libapnn_baselines.so`")))
            _state["ffi"], _state["lib"] = ffi, lib
        return _state["ffi"], _state["lib"]
