/*
 * baselines.h — the C API of libapnn_baselines: the baselines APNN is measured against,
 * built from CUTLASS 4.2 templates (Sm80 tensor-op kernels, run on sm_80 and sm_90):
 *   - INT1 GEMM (XOR-popc and AND-popc) and INT4 GEMM,
 *   - INT1 / INT4 implicit-GEMM convolution (NHWC),
 *   (XOR-popc on sm_8x only: CUTLASS 4.2 compiles its b1 XOR mma to assert(0) for sm_90+, so
 *   there the XOR calls fail with APNNB_STATUS_UNSUPPORTED and launch nothing; see
 *   apnnb_kind_t),
 *   - whole networks (layer tables: python/apnn_baselines/models.py) in FP32, FP16 and INT8
 *     on CUTLASS GEMMs, and a binarized (w1a1, +-1) network in the style of TCBNN.
 *
 * Conventions
 *   - Every function returns an apnnb_status_t. On failure it also sets a thread-local
 *     message, read with apnnb_last_error(); outputs are written only on success.
 *   - NULL pointers where one is required fail with APNNB_STATUS_INVALID_ARGUMENT.
 *   - Without a usable GPU every compute call fails with APNNB_STATUS_NO_DEVICE (the
 *     library still loads; apnnb_cuda_device_count reports 0).
 *   - Host arrays are plain C arrays, row-major. The library copies them to the device,
 *     runs, and copies results back; timings cover device work only.
 *   - Timing (iters >= 1): `warmup` untimed runs, then a CUDA graph holding the work is
 *     replayed `iters` times, each replay timed with CUDA events; *microseconds receives
 *     the median time of one run. iters == 0: no timing (microseconds may be NULL).
 *
 * Packed operands of the GEMM and convolution (what CUTLASS reads)
 *   INT1 (APNNB_INT1_XOR, APNNB_INT1_AND): unsigned 1-bit codes; element i of a row is
 *     bit (i % 8) of byte (i / 8) (numpy: np.packbits(..., bitorder="little")).
 *   INT4 (APNNB_INT4): signed 4-bit codes -8..7 (two's complement); element i of a row is
 *     the low nibble of byte i/2 for even i, the high nibble for odd i.
 *   Row strides are the packed row lengths (no extra padding); the alignment rules below
 *   make every row a whole number of 16-byte words.
 *
 * Results (exactly what CUTLASS computes; int32, no scaling)
 *   APNNB_INT1_XOR: C[m][n] = sum_k popc(A[m][k] XOR B[n][k])
 *   APNNB_INT1_AND: C[m][n] = sum_k popc(A[m][k] AND B[n][k])
 *   APNNB_INT4:     C[m][n] = sum_k A[m][k] * B[n][k]       (signed int4 products)
 *   (+-1 dot products follow from XOR: dot = K - 2 * C.)
 */
#ifndef APNN_BASELINES_BASELINES_H_
#define APNN_BASELINES_BASELINES_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define APNNB_API __declspec(dllexport)
#else
#define APNNB_API __attribute__((visibility("default")))
#endif

#define APNNB_VERSION_MAJOR 0
#define APNNB_VERSION_MINOR 1
#define APNNB_VERSION_PATCH 0

typedef enum apnnb_status {
  APNNB_STATUS_SUCCESS = 0,
  APNNB_STATUS_INVALID_ARGUMENT = 1, /* bad value, shape, pointer or handle */
  APNNB_STATUS_UNSUPPORTED = 2,      /* valid request this build cannot serve (alignment, sizes,
                                        XOR-popc on sm_90+) */
  APNNB_STATUS_NO_DEVICE = 3,        /* no usable CUDA GPU or driver */
  APNNB_STATUS_OUT_OF_MEMORY = 4,    /* host or device allocation failed */
  APNNB_STATUS_CUDA_ERROR = 5,       /* a CUDA runtime call or CUTLASS kernel failed */
  APNNB_STATUS_INTERNAL_ERROR = 6    /* a bug: please report it */
} apnnb_status_t;

/* Low-bit kernels of the GEMM and convolution baselines. */
typedef enum apnnb_kind {
  APNNB_INT1_XOR = 0, /* cutlass::uint1b_t, arch::OpXorPopc; compute capability 8.x only: on
                         9.0+ (no native BMMA.XOR on Hopper; CUTLASS 4.2 defines
                         CUTLASS_ARCH_MMA_B1_XOR_SM80_ENABLED only up to sm_89, else its mma is
                         assert(0)) the GEMM and conv return APNNB_STATUS_UNSUPPORTED */
  APNNB_INT1_AND = 1, /* cutlass::uint1b_t, arch::OpAndPopc */
  APNNB_INT4 = 2      /* cutlass::int4b_t, arch::OpMultiplyAddSaturate */
} apnnb_kind_t;

/* ---- Errors, version, devices ---------------------------------------------------- */

/* Message of the last failure on this thread ("" if none). Never NULL. */
APNNB_API const char* apnnb_last_error(void);
/* Constant name of a status, e.g. "APNNB_STATUS_NO_DEVICE". Never NULL. */
APNNB_API const char* apnnb_status_string(apnnb_status_t status);
/* "MAJOR.MINOR.PATCH". Never NULL. */
APNNB_API const char* apnnb_version(void);
/* Number of usable CUDA devices; 0 (and SUCCESS) without a GPU or driver. */
APNNB_API apnnb_status_t apnnb_cuda_device_count(int32_t* count);
/* Name of device 0, NUL-terminated into `name` of `capacity` bytes. */
APNNB_API apnnb_status_t apnnb_device_name(char* name, size_t capacity);
/* Compute capability of device 0 (e.g. 8, 0 or 9, 0); NO_DEVICE without a usable GPU. */
APNNB_API apnnb_status_t apnnb_device_compute_capability(int32_t* major, int32_t* minor);

/* ---- GEMM: C (M x N, int32) = A (M x K, row-major) x B^T (B: N x K, row-major) ----- */
/* i.e. CUTLASS's "TN" layout: A row-major, B column-major K x N. Requirements:
 * M, N, K >= 1; K % 128 == 0 (INT1) or K % 32 == 0 (INT4); N % 4 == 0. Otherwise
 * APNNB_STATUS_UNSUPPORTED (callers pad K with zero codes and N with zero rows).
 * `c` may be NULL when only timing is wanted. */
APNNB_API apnnb_status_t apnnb_gemm(apnnb_kind_t kind, int64_t m, int64_t n, int64_t k, const void* a,
                                    const void* b, int32_t* c, int32_t warmup, int32_t iters,
                                    double* microseconds);

/* ---- Convolution: implicit GEMM, cross-correlation, NHWC ------------------------- */
/* x: batch x height x width x channels codes, packed along channels (layout above);
 * w: out_channels x kernel x kernel x channels codes, packed the same way;
 * y: batch x P x Q x out_channels int32, P = (height + 2 pad - kernel) / stride + 1, Q alike.
 * Padding pixels read as code 0 (so with XOR they count popc(0 XOR w) = popc(w)).
 * Requirements: channels % 128 == 0 (INT1) or % 32 == 0 (INT4); out_channels % 4 == 0. */
APNNB_API apnnb_status_t apnnb_conv(apnnb_kind_t kind, int64_t batch, int64_t height, int64_t width,
                                    int64_t channels, int64_t out_channels, int64_t kernel, int64_t stride,
                                    int64_t pad, const void* x, const void* w, int32_t* y, int32_t warmup,
                                    int32_t iters, double* microseconds);

/* ---- Networks ----------------------------------------------------------------------- */

typedef enum apnnb_precision {
  APNNB_FP32 = 0, /* float activations and weights, CUTLASS SIMT SGEMM */
  APNNB_FP16 = 1, /* half activations and weights, float accumulate, CUTLASS tensor-op GEMM */
  APNNB_INT8 = 2, /* int8 activations and weights, int32 accumulate, CUTLASS tensor-op GEMM */
  APNNB_BNN = 3   /* +-1 activations and weights packed 1 bit each, CUTLASS b1 GEMM: XOR-popc
                     on sm_8x, AND-popc on sm_90+ (see "BNN on sm_90" below) */
} apnnb_precision_t;

typedef enum apnnb_layer_type {
  APNNB_LAYER_CONV = 0,    /* kernel x kernel conv, stride, zero padding (BNN: padding is -1) */
  APNNB_LAYER_FC = 1,      /* fully connected over the whole input (H x W x C, NHWC order) */
  APNNB_LAYER_MAXPOOL = 2, /* kernel x kernel max over the window, padding excluded */
  APNNB_LAYER_AVGPOOL = 3  /* global average over H x W (kernel, stride, pad ignored) */
} apnnb_layer_type_t;

/* One layer. Every layer reads the output of layer `input` (-1: the previous layer, or the
 * network input for layer 0) and produces an NHWC tensor. CONV and FC compute
 *     y = acc * scale + bias[o]  (+ output of layer `residual` if >= 0, same shape)
 * then ReLU if `relu`. `scale` is used by INT8 only (FP32/FP16: y = acc + bias; BNN below).
 * Storage of y per precision:
 *   FP32: float. FP16: half (round to nearest even). INT8: code = clamp(rint(y), -128, 127)
 *   with y computed in float32 as ((float)acc * scale + bias) + residual, no FMA.
 *   BNN: acc is the +-1 dot product, y = acc + bias (+ residual as +-1), stored as the bit
 *   y >= 0 (+1) else -1; `relu` is ignored (the sign is the activation).
 *   BNN on sm_8x: acc = K - 2 popc(a XOR b) from the CUTLASS b1 XOR-popc GEMM.
 *   BNN on sm_90+ (no XOR-popc there, see apnnb_kind_t): the CUTLASS b1 AND-popc GEMM and the
 *   exact identity for +-1 vectors of length K (a, b the bit vectors, bit 1 = +1; padding bits
 *   are 0 in both operands and count nowhere; K the real length):
 *       acc = 4 popc(a AND b) - 2 popc(a) - 2 popc(b) + K,
 *   with popc(b) per weight row computed once in apnnb_net_set_params and popc(a) per GEMM
 *   row by a small kernel before each GEMM. Both paths give identical results.
 * The last layer is not re-quantized: its y is the network output, as float32.
 * Pools: MAXPOOL of the stored values (BNN: OR of the bits); AVGPOOL: sum / (H * W) in
 * float32 then stored as above (BNN: +1 when the sum of +-1 values is >= 0).
 * Weights: CONV out_channels x kernel x kernel x C_in; FC out_channels x (H x W x C_in) in
 * the input's NHWC order. INT8 weights are rint+clamp'ed to int8; BNN weights are
 * +1 for w >= 0, else -1. out_channels % 8 == 0. Network input (float32 NHWC): FP16
 * rounds to half, INT8 stores clamp(rint(x)), BNN stores the bit x >= 0. */
typedef struct apnnb_layer {
  int32_t type;         /* apnnb_layer_type_t */
  int32_t out_channels; /* CONV / FC */
  int32_t kernel;       /* CONV / MAXPOOL */
  int32_t stride;       /* CONV / MAXPOOL, >= 1 */
  int32_t pad;          /* CONV / MAXPOOL, >= 0 */
  int32_t relu;         /* CONV / FC: 0 or 1 */
  int32_t input;        /* index of the producing layer (< this index), -1 = previous */
  int32_t residual;     /* index of a layer added before the activation, -1 = none */
  float scale;          /* INT8 requantization scale of CONV / FC, > 0 */
} apnnb_layer_t;

typedef struct apnnb_net* apnnb_net_t;

/* Builds a network for `batch` inputs of height x width x channels on device 0, with
 * weights drawn from a fixed generator seeded by `seed` (He-uniform for FP, uniform codes
 * for INT8, random signs for BNN; biases 0). */
APNNB_API apnnb_status_t apnnb_net_create(apnnb_precision_t precision, int32_t batch, int32_t height,
                                          int32_t width, int32_t channels, const apnnb_layer_t* layers,
                                          int32_t count, uint64_t seed, apnnb_net_t* net);
APNNB_API apnnb_status_t apnnb_net_destroy(apnnb_net_t net);
/* Output shape (per image) of layer `layer` (0 .. count-1). */
APNNB_API apnnb_status_t apnnb_net_layer_shape(apnnb_net_t net, int32_t layer, int32_t* height,
                                               int32_t* width, int32_t* channels);
/* Replaces the weights (and biases: out_channels floats, may be NULL for zeros) of a CONV
 * or FC layer; counts must match exactly. */
APNNB_API apnnb_status_t apnnb_net_set_params(apnnb_net_t net, int32_t layer, const float* weights,
                                              int64_t weight_count, const float* bias, int64_t bias_count);
/* Runs the network on `input` (batch x height x width x channels float32) and writes the
 * last layer's output (batch x its H x W x C, float32). Timing as for the GEMM (the whole
 * forward pass, input upload excluded). `output` may be NULL. */
APNNB_API apnnb_status_t apnnb_net_run(apnnb_net_t net, const float* input, int64_t input_count,
                                       float* output, int64_t output_count, int32_t warmup, int32_t iters,
                                       double* microseconds);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* APNN_BASELINES_BASELINES_H_ */
