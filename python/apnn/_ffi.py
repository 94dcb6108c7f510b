"""Loads libapnn.so through cffi in ABI mode; the cdef is read from the public C header."""
import os
import re
import threading

import cffi

_HERE = os.path.dirname(os.path.abspath(__file__))
_lock = threading.Lock()
_state = {}


def _candidates(name):
    """Where a file shipped beside the package, in a Bazel runfiles tree or a source tree lies."""
    return [
        os.path.join(_HERE, name),  # staged next to the package
        os.path.join(_HERE, "..", "..", name),  # runfiles root / repository root
        os.path.join(_HERE, "..", "..", "bazel-bin", name),  # source tree after a build
    ]


def _find(name, env, hint):
    if os.environ.get(env):
        path = os.environ[env]
        if not os.path.isfile(path):
            raise OSError(f"{env}={path} does not exist")
        return path
    for path in _candidates(name):
        if os.path.isfile(path):
            return os.path.normpath(path)
    raise OSError(f"{os.path.basename(name)} not found near {_HERE}; {hint} or set {env}")


def _find_header():
    if os.path.isfile(os.path.join(_HERE, "apnn.h")) and not os.environ.get("APNN_HEADER"):
        return os.path.join(_HERE, "apnn.h")
    return _find(os.path.join("cuda", "include", "apnn", "apnn.h"), "APNN_HEADER", "ship apnn.h with the package")


def cdef_from_header(text, prefix="APNN"):
    """The declarations of a C header written like apnn.h (exported with `{prefix}_API`, integer
    constants as `#define {prefix}_...`) in the subset of C that cffi's cdef accepts. The
    baselines package (apnn_baselines) reads its header with this too."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    # Drop the C++ and visibility conditionals with their bodies.
    text = re.sub(r"#ifdef __cplusplus.*?#endif", "", text, flags=re.S)
    text = re.sub(r"#if defined\(_WIN32\).*?#endif", "", text, flags=re.S)
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if re.match(rf"#define {prefix}_[A-Z0-9_]+\s+-?\d+\s*$", stripped):
                lines.append(stripped)
            continue
        lines.append(line.replace(f"{prefix}_API ", ""))
    return "\n".join(lines)


def bind_all(lib):
    """Looks up every function the cdef declares once, now. cffi resolves a library attribute on
    first use under the FFI's (non-reentrant) lock; a destructor (__del__) run by the garbage
    collector while that lock is held, e.g. inside an ffi.cast, would otherwise resolve its destroy
    function there and wait on the lock forever."""
    for name in dir(lib):
        getattr(lib, name)
    return lib


def load():
    """Returns (ffi, lib), loading the library once per process."""
    with _lock:
        if "lib" not in _state:
            ffi = cffi.FFI()
            header = _find_header()
            with open(header) as f:
                ffi.cdef(cdef_from_header(f.read()))
            lib = bind_all(ffi.dlopen(_find("libapnn.so", "APNN_LIBRARY",
                                            "build it with `tools/bazel build //:libapnn.so`")))
            _state["ffi"], _state["lib"] = ffi, lib
        return _state["ffi"], _state["lib"]
