"""Finds the local CUDA toolkit and exposes it as @local_cuda."""

_BUILD = """
package(default_visibility = ["//visibility:public"])

exports_files(["nvcc"])

# `nvcc` here is a script that runs the toolkit's nvcc by its absolute path: nvcc finds its
# tools (cicc, ptxas) and headers relative to itself, which a sandboxed symlink would break.
# Only the script is an action input; hashing the whole toolkit would slow every build.
filegroup(
    name = "compiler_files",
    srcs = ["nvcc"],
)

cc_library(
    name = "cuda_headers",
    hdrs = glob(["include/**/*.h", "include/**/*.hpp"], allow_empty = True),
    includes = ["include"],
)

cc_import(
    name = "cudart_static_archive",
    static_library = "{cudart_static}",
)

# The CUDA runtime, linked statically so libapnn.so needs only the driver at run time.
cc_library(
    name = "cudart_static",
    deps = [":cuda_headers", ":cudart_static_archive"],
    linkopts = ["-ldl", "-lpthread", "-lrt"],
)
"""

def _local_cuda_impl(rctx):
    python = rctx.which("python3") or rctx.which("python")
    if not python:
        fail("local_cuda: python3 is needed to locate the CUDA toolkit")
    script = rctx.path(Label("@rules_cuda//:find_cuda.py"))
    result = rctx.execute([python, script], environment = {})
    root = result.stdout.strip()
    if not root:
        fail("local_cuda: no CUDA toolkit with bin/nvcc found (set CUDA_PATH, put nvcc on PATH, " +
             "or run tools/bazel, which installs the nvidia-cuda-nvcc wheel)")
    for entry in ["bin", "include", "nvvm", "lib64", "lib", "targets"]:
        path = rctx.path(root + "/" + entry)
        if path.exists:
            rctx.symlink(path, entry)
    cudart = ""
    for candidate in ["lib64/libcudart_static.a", "lib/libcudart_static.a"]:
        if rctx.path(root + "/" + candidate).exists:
            cudart = candidate
            break
    if not cudart:
        fail("local_cuda: libcudart_static.a not found under " + root)
    rctx.file("nvcc", "#!/bin/sh\nexec '%s/bin/nvcc' \"$@\"\n" % root, executable = True)
    rctx.file("BUILD.bazel", _BUILD.format(cudart_static = cudart))
    rctx.file("WORKSPACE", "workspace(name = \"local_cuda\")\n")
    rctx.file("root.bzl", "CUDA_ROOT = %r\n" % root)

local_cuda = repository_rule(
    implementation = _local_cuda_impl,
    environ = ["CUDA_PATH", "PATH"],
    local = True,
)

def rules_cuda_dependencies():
    """Declares @local_cuda unless the workspace already did."""
    if "local_cuda" not in native.existing_rules():
        local_cuda(name = "local_cuda")
