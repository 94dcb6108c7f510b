// Programmatic dependent launch (compute capability 9.0+): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the kernel before it in the
// stream is still running, so its launch and its prologue (weights, tables, pixel decoding)
// overlap that kernel's tail. It must wait before it reads anything the earlier kernels write and
// before it writes anything at all. Both calls are no-ops in a kernel launched without the
// attribute, and compile to nothing below sm_90.
#pragma once

namespace apnn {
namespace arch {

// Blocks until every earlier kernel of the stream has finished and its writes are visible.
__device__ __forceinline__ void wait_for_previous_kernels() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel of the stream (if launched as dependent) start once every block of this
// one has called this or exited. It still waits for this kernel to finish before reading.
__device__ __forceinline__ void allow_next_kernel_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

}  // namespace arch
}  // namespace apnn
