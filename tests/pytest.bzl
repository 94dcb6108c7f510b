"""pytest_test: one py_test that runs pytest on the given test files."""

def pytest_test(name, srcs, deps = [], data = [], args = [], **kwargs):
    native.py_test(
        name = name,
        srcs = srcs + ["//tests:pytest_main.py"],
        main = "//tests:pytest_main.py",
        args = ["$(location %s)" % s for s in srcs] + args,
        data = data + ["//tests:conftest.py"],
        deps = deps + ["//python/apnn"],
        python_version = "PY3",
        **kwargs
    )
