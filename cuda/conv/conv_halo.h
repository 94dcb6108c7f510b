// The halo convolution of sm_90a (conv_halo.cu): 3x3 or 5x5 kernels, stride 1, "same" padding,
// at most 128 channels: networks' wide early layers (VGG's 224x224 and 112x112 maps, ResNet's
// layer1 and layer2, AlexNet's conv2), where the implicit GEMM spends most of its instructions computing one
// copy address per tap, pixel and stage. Compiled for sm_90a only (cuda/BUILD.bazel:
// cuda_sm90a); the dispatcher (conv_dispatch.cu) checks the device and the call first.
#pragma once

#include <cuda_runtime.h>

#include "conv/conv_params.h"

namespace apnn {

// What the kernel writes: int32 results, or packed codes through the threshold table (no
// residual, a fused 2x2 / 2 max pool, or a packed residual with one table part per code).
enum class HaloOutput { kInt32, kPacked, kPackedPool, kPackedResidual };

// Output channels per block for p x q planes and O channels: 128 where the accumulators of
// every plane pair fit (p * q <= 2) and the last tile is no emptier than with 64, else 64.
// 0: no kernel for these plane counts (1 x 1, 2 x 1 and 2 x 2 are built).
int halo_conv_tile_n(int p, int q, int out_channels);

// Whether K x K kernels (with padding K / 2) are built: 3 and 5.
bool halo_conv_kernel_size(int kernel);

// Output tiles of 8 x 8 pixels of one call.
int64_t halo_conv_tiles(int batch, int out_h, int out_w);

// Launches the kernel over prm (prm.tn = halo_conv_tile_n, prm.col_tiles = ceil(O / tn), prm.M
// = the pixels before pooling): persistent blocks, as many as fit on `multiprocessors` SMs.
// dependent: a programmatic dependent launch (the kernel waits before reading activations).
void launch_halo_conv(const ConvKernelParams& prm, HaloOutput output, int multiprocessors, bool dependent,
                      cudaStream_t stream);

}  // namespace apnn
