"""A small, offline `cuda_library` with the interface of rules_cuda's.

`load("@rules_cuda//cuda:defs.bzl", "cuda_library")` works the same with the real rules_cuda,
so a user with internet can swap the repository in WORKSPACE and change nothing else.
Each .cu file is compiled by nvcc (found by `@local_cuda`) into a PIC object; the objects
are archived and handed to the C++ rules as an always-linked static library.
"""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

CudaArchsInfo = provider(fields = ["archs"])

def _cuda_archs_flag_impl(ctx):
    return [CudaArchsInfo(archs = [a.strip() for a in ctx.build_setting_value.split(",") if a.strip()])]

cuda_archs_flag = rule(
    implementation = _cuda_archs_flag_impl,
    build_setting = config.string(flag = True),
)

def _gencode_flags(archs):
    flags = []
    for arch in archs:
        if arch.startswith("sm_"):
            num = arch[3:]
            flags.append("-gencode=arch=compute_%s,code=sm_%s" % (num, num))
        elif arch.startswith("compute_"):
            num = arch[8:]
            flags.append("-gencode=arch=compute_%s,code=compute_%s" % (num, num))
        else:
            fail("unknown CUDA architecture '%s' (expected sm_XY or compute_XY)" % arch)
    return flags

def _cuda_library_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    feature_configuration = cc_common.configure_features(
        ctx = ctx,
        cc_toolchain = cc_toolchain,
        requested_features = ctx.features,
        unsupported_features = ctx.disabled_features,
    )
    dep_cc_infos = [d[CcInfo] for d in ctx.attr.deps if CcInfo in d]
    dep_compilation = cc_common.merge_cc_infos(cc_infos = dep_cc_infos).compilation_context

    # Headers and include paths of this library, for both nvcc and dependents.
    pkg = ctx.label.package
    root = ctx.label.workspace_root
    own_includes = []
    for inc in ctx.attr.includes:
        path = "/".join([p for p in [root, pkg, inc] if p]) or "."
        own_includes.append(path)
        own_includes.append(ctx.bin_dir.path + "/" + path)
    hdrs = ctx.files.hdrs
    srcs_hdrs = [f for f in ctx.files.srcs if f.extension in ["h", "hpp", "cuh", "inc"]]
    cu_srcs = [f for f in ctx.files.srcs if f.extension in ["cu", "cc", "cpp"]]

    compilation_context = cc_common.create_compilation_context(
        headers = depset(hdrs),
        includes = depset(own_includes),
    )

    include_flags = []
    for inc in own_includes + dep_compilation.includes.to_list() + dep_compilation.quote_includes.to_list() + dep_compilation.system_includes.to_list():
        include_flags.append("-I" + inc)
    include_flags.append("-I.")
    include_flags.append("-I" + ctx.bin_dir.path)
    define_flags = ["-D" + d for d in dep_compilation.defines.to_list()]

    nvcc = ctx.file._nvcc
    # A target may name its own architectures (e.g. sm_90a for Hopper-only instructions).
    archs = ctx.attr.archs or ctx.attr._archs[CudaArchsInfo].archs
    all_inputs = depset(hdrs + srcs_hdrs, transitive = [dep_compilation.headers, ctx.attr._cuda_files.files])
    objects = []
    for src in cu_srcs:
        obj = ctx.actions.declare_file("_objs/%s/%s.pic.o" % (ctx.label.name, src.path.replace("/", "_")))
        args = ctx.actions.args()
        args.add_all(["-c", src.path, "-o", obj.path])
        args.add_all(["-std=c++17", "-O3", "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden"])
        args.add_all(_gencode_flags(archs))
        args.add_all(include_flags)
        args.add_all(define_flags)
        args.add_all(ctx.attr.copts)
        ctx.actions.run(
            executable = nvcc,
            arguments = [args],
            inputs = depset([src], transitive = [all_inputs]),
            outputs = [obj],
            mnemonic = "NvccCompile",
            progress_message = "nvcc %s" % src.short_path,
            use_default_shell_env = True,
        )
        objects.append(obj)

    archive = ctx.actions.declare_file("lib%s_cuda.pic.a" % ctx.label.name)
    ar = cc_toolchain.ar_executable
    ctx.actions.run(
        executable = ar,
        arguments = ["rcs", archive.path] + [o.path for o in objects],
        inputs = objects,
        outputs = [archive],
        mnemonic = "CudaArchive",
        tools = cc_toolchain.all_files,
    )
    library_to_link = cc_common.create_library_to_link(
        actions = ctx.actions,
        feature_configuration = feature_configuration,
        cc_toolchain = cc_toolchain,
        pic_static_library = archive,
        alwayslink = True,
    )
    linking_context = cc_common.create_linking_context(
        linker_inputs = depset([cc_common.create_linker_input(
            owner = ctx.label,
            libraries = depset([library_to_link]),
        )]),
    )
    own = CcInfo(compilation_context = compilation_context, linking_context = linking_context)
    return [
        DefaultInfo(files = depset([archive])),
        cc_common.merge_cc_infos(direct_cc_infos = [own], cc_infos = dep_cc_infos),
    ]

cuda_library = rule(
    implementation = _cuda_library_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".cu", ".cc", ".cpp", ".h", ".hpp", ".cuh", ".inc"]),
        "hdrs": attr.label_list(allow_files = [".h", ".hpp", ".cuh", ".inc"]),
        "deps": attr.label_list(providers = [CcInfo]),
        "copts": attr.string_list(),
        "includes": attr.string_list(),
        "archs": attr.string_list(),
        "_nvcc": attr.label(default = "@local_cuda//:nvcc", allow_single_file = True, executable = True, cfg = "host"),
        "_cuda_files": attr.label(default = "@local_cuda//:compiler_files"),
        "_archs": attr.label(default = "@rules_cuda//cuda:archs"),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    fragments = ["cpp"],
)
