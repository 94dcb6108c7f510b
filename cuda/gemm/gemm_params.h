// Arguments of the bit-plane GEMM kernels (one struct, passed by value).
#pragma once

#include <cstdint>

namespace apnn {

constexpr int kMaxPlanes = 8;

struct GemmParams {
  const uint32_t* x_planes;  // p planes of x_rows_padded rows, `words` words each
  const uint32_t* w_planes;  // q planes of w_rows_padded rows
  const int32_t* x_row_sums;
  const int32_t* w_row_sums;
  int32_t* y;  // M x N, row-major
  int M, N;
  int x_rows_padded, w_rows_padded;
  int words;  // uint32 words per row of a plane (K padded to 256 bits, / 32)
  int p, q;   // planes of x and w
  int tm, tn; // output rows / columns per block
  int32_t cx[kMaxPlanes], cw[kMaxPlanes];  // plane coefficients
  int64_t ox, ow, k_ox_ow;                 // real offsets and K * ox * ow
  // Split K: reduce through a thread-block cluster (sm_90) ...
  int cluster_split;
  // ... or else through M x N int32 and one counter per output tile, zero between calls.
  int32_t* workspace;
  unsigned* tile_counters;
};

}  // namespace apnn
