"""Loads libapnn.so through cffi in ABI mode; the cdef is read from the public C header."""
import os
import re
import threading

import cffi

_HERE = os.path.dirname(os.path.abspath(__file__))


def find_file(relpath, env, package_dir, hint):
    """$env if set; else the file's name beside the package (a staged install), the repository
    (or Bazel runfiles) root's relpath, or the source tree's bazel-bin/relpath."""
    if os.environ.get(env):
        path = os.environ[env]
        if not os.path.isfile(path):
            raise OSError(f"{env}={path} does not exist")
        return path
    root = os.path.join(package_dir, "..", "..")
    for path in (os.path.join(package_dir, os.path.basename(relpath)), os.path.join(root, relpath),
                 os.path.join(root, "bazel-bin", relpath)):
        if os.path.isfile(path):
            return os.path.normpath(path)
    raise OSError(f"{os.path.basename(relpath)} not found near {package_dir}; {hint} or set {env}")


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


class Binding:
    """A C library and its header (written like apnn.h, functions exported with `{prefix}_API`),
    found with find_file and loaded through cffi once per process. libapnn and the baselines'
    library each have one."""

    def __init__(self, package_dir, library, header, library_env, header_env, prefix, build_hint):
        self._package_dir = package_dir
        self._library, self._header = library, header
        self._library_env, self._header_env = library_env, header_env
        self._prefix, self._build_hint = prefix, build_hint
        self._lock = threading.Lock()
        self._loaded = None

    def load(self):
        """Returns (ffi, lib)."""
        with self._lock:
            if self._loaded is None:
                ffi = cffi.FFI()
                with open(find_file(self._header, self._header_env, self._package_dir,
                                    f"ship {os.path.basename(self._header)} with the package")) as f:
                    ffi.cdef(cdef_from_header(f.read(), prefix=self._prefix))
                lib = bind_all(ffi.dlopen(find_file(self._library, self._library_env, self._package_dir,
                                                    self._build_hint)))
                self._loaded = (ffi, lib)
            return self._loaded


_LIBAPNN = Binding(_HERE, "libapnn.so", os.path.join("cuda", "include", "apnn", "apnn.h"), "APNN_LIBRARY",
                   "APNN_HEADER", "APNN", "build it with `tools/bazel build //:libapnn.so`")


def load():
    """Returns (ffi, lib) of libapnn, loading it once per process."""
    return _LIBAPNN.load()
