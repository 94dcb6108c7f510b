// The halo convolution of sm_90a (conv_halo.cu), "same" padding: 3x3 kernels over at most 256
// channels and 5x5 over at most 128 at stride 1, 1x1 and 3x3 over at most 256 at stride 2:
// networks' wide early layers (VGG's 224x224 to 56x56 maps, ResNet's layer1 to layer3 and its
// stride-2 convolutions and downsamples, AlexNet's conv2, conv3 and conv5), where the implicit
// GEMM spends most of its instructions computing one copy address per tap, pixel and stage. Compiled for sm_90a only (cuda/BUILD.bazel:
// cuda_sm90a); the dispatcher (conv_dispatch.cu) checks the device and the call first.
#pragma once

#include <cuda_runtime.h>

#include "conv/conv_params.h"

namespace apnn {

// What the kernel writes: int32 results, or packed codes through the threshold table (no
// residual, a fused 2x2 / 2 max pool, or a packed residual with one table part per code).
enum class HaloOutput { kInt32, kPacked, kPackedPool, kPackedResidual };

// Whether the kernel is built for p x q planes (1 x 1, 2 x 1 and 2 x 2).
bool halo_conv_planes(int p, int q);

// The widest output-channel group per block for p x q planes and O channels: 128 where the
// accumulators of every plane pair fit (p * q <= 2) and the last tile is no emptier than with
// 64, else 64. The kernel is built for 64 with every plane count (the planner may narrow).
int halo_conv_tile_n(int p, int q, int out_channels);

// Whether the kernel is built for K x K kernels (padding K / 2) at this stride over C channels:
// stride 1, 3x3 up to 256 channels (two 128-channel entries per pixel) and 5x5 up to 128; stride
// 2, 1x1 and 3x3 up to 256.
bool halo_conv_shape(int kernel, int stride, int channels);

// Whether the kernel reads activation rows of `words` 32-bit words per pixel and plane over
// `channels` channels: the packed layout's 256-bit rows (8 words), or a network's unpadded rows
// of 64 channels (2 words, copied 8 bytes at a time) or 128 channels (4 words).
bool halo_conv_row_words(int64_t words, int64_t channels);

// Whether the kernel is built for this output at this stride: every output at stride 1, int32
// and plain packed outputs (no fused pool, no residual) at stride 2.
bool halo_conv_outputs(int stride, HaloOutput output);

// Output tiles of 8 x 8 pixels of one call.
int64_t halo_conv_tiles(int batch, int out_h, int out_w);

// Launches the kernel over prm (prm.tn = halo_conv_tile_n, prm.col_tiles = ceil(O / tn), prm.M
// = the pixels before pooling): persistent blocks, as many as fit on `multiprocessors` SMs.
// dependent: a programmatic dependent launch (the kernel waits before reading activations).
void launch_halo_conv(const ConvKernelParams& prm, HaloOutput output, int multiprocessors, bool dependent,
                      cudaStream_t stream);

}  // namespace apnn
