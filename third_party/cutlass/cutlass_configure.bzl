"""Exposes the CUTLASS headers of the installed `nvidia-cutlass` wheel as @cutlass//:cutlass."""

_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "cutlass",
    hdrs = glob(["include/cutlass/**", "include/cute/**"]),
    includes = ["include"],
)
"""

def _cutlass_configure_impl(rctx):
    python = rctx.which("python3") or rctx.which("python")
    result = rctx.execute([python, "-c", "import cutlass_library, os; print(os.path.dirname(cutlass_library.__file__))"])
    root = result.stdout.strip()
    include = root + "/source/include"
    if result.return_code != 0 or not rctx.path(include + "/cutlass/cutlass.h").exists:
        fail("cutlass_configure: the nvidia-cutlass wheel is not installed (pip install nvidia-cutlass==4.2.0.0, " +
             "or run tools/bazel, which installs it)")
    rctx.symlink(include, "include")
    rctx.file("BUILD.bazel", _BUILD)
    rctx.file("WORKSPACE", "workspace(name = \"cutlass\")\n")

cutlass_configure = repository_rule(
    implementation = _cutlass_configure_impl,
    environ = ["PATH", "PYTHONPATH"],
    local = True,
)
