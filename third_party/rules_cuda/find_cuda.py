"""Prints the root of a CUDA toolkit (bin/nvcc and include/cuda_runtime.h), or nothing.

Order: $CUDA_PATH, /usr/local/cuda, the nvcc on PATH, then the nvidia-cuda-nvcc wheel.
"""
import importlib.util
import os
import shutil


def candidates():
    if os.environ.get("CUDA_PATH"):
        yield os.environ["CUDA_PATH"]
    yield "/usr/local/cuda"
    nvcc = shutil.which("nvcc")
    if nvcc:
        yield os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    spec = importlib.util.find_spec("nvidia")
    if spec and spec.submodule_search_locations:
        for base in spec.submodule_search_locations:
            for sub in ("cu13", "cuda_nvcc"):
                yield os.path.join(base, sub)


def main():
    for root in candidates():
        if os.path.isfile(os.path.join(root, "bin", "nvcc")) and os.path.isfile(
            os.path.join(root, "include", "cuda_runtime.h")
        ):
            print(os.path.realpath(root))
            return


if __name__ == "__main__":
    main()
