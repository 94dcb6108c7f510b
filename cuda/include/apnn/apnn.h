/*
 * apnn.h — the public C API of libapnn: arbitrary-precision quantized neural-network
 * primitives on NVIDIA binary tensor cores, with a host (CPU) reference backend.
 *
 * Conventions
 *   - Every function returns an apnn_status_t. On failure it also sets a thread-local
 *     message, read with apnn_last_error(); the message stays until the next failure on
 *     the same thread. Outputs are written only on success.
 *   - NULL handles or pointers where an object is required fail with
 *     APNN_STATUS_INVALID_ARGUMENT, never crash.
 *   - All host pointers are plain C arrays in row-major order.
 *   - Objects (packed matrices, buffers) belong to the context that made them and must be
 *     destroyed before it. Using one with another context fails with
 *     APNN_STATUS_INVALID_ARGUMENT.
 *   - Threads: calls on one context, or on anything it made (packed matrices, buffers,
 *     weights, epilogues, networks), run one at a time: each holds the context's lock, so
 *     calls from several threads are safe and are serialized. For work in parallel, give each
 *     thread its own context (on CUDA each context has its own stream). Each call is atomic,
 *     not a sequence of them: threads sharing a network keep its apnn_network_plan and
 *     apnn_network_run together themselves (Python's Network does). Destroying a context
 *     while another thread still calls it is undefined.
 *
 * The arithmetic
 *   A quantized operand is a matrix of integer codes, each with `bits` = n in 1..8 and an
 *   encoding that gives its integer value:
 *     APNN_ENCODING_UNSIGNED  value = code, 0 .. 2^n - 1
 *     APNN_ENCODING_SIGNED    value = code, -2^(n-1) .. 2^(n-1) - 1 (two's complement)
 *     APNN_ENCODING_BINARY    n must be 1; value = code, -1 or +1 (stored as bit 1 for +1)
 *   and an optional integer zero point z: the operand's real value is (value - z).
 *   apnn_gemm computes, exactly in int32,
 *       Y[m][n] = sum_k (X[m][k] - zx) * (W[n][k] - zw)
 *   for X of M x K (activations) and W of N x K (weights), i.e. Y = X * W^T.
 *   Internally Y is a weighted sum of 1-bit matrix products (bit-plane products); no
 *   intermediate leaves int32, so the result equals an exact int64 computation whenever
 *   that fits in int32 (the library checks |Y| <= K * max|x| * max|w| fits, and refuses
 *   shapes that could overflow).
 *
 * The packed layout (the library's contract; produced only by apnn_pack*)
 *   A packed matrix of `rows` x `cols` codes with n bits holds n bit-planes. Plane i holds
 *   bit i of every code (for BINARY: the bit (value + 1) / 2). Let
 *       rows_padded = round_up(rows, APNN_ROW_ALIGN)          (128)
 *       cols_padded = round_up(cols, APNN_K_ALIGN_BITS)       (256)
 *       words       = cols_padded / 32
 *   Plane data is uint32 words, plane-major:
 *       word(plane i, row r, word w) at index (i * rows_padded + r) * words + w
 *   and element (r, k) of plane i is bit (k % 32) of word (i, r, k / 32). Padding rows and
 *   padding columns are zero bits in every plane, so they add nothing to any product.
 *   Next to the planes the library keeps one int32 per row: the sum over the real columns of
 *   sum_i c_i * bit_i (the plane part of each value, c_i the plane's coefficient); it feeds
 *   the rank-1 corrections for zero points and for the binary encoding's -1 offset.
 *   apnn_packed_read_planes copies the planes out in exactly this layout.
 */
#ifndef APNN_APNN_H_
#define APNN_APNN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define APNN_API __declspec(dllexport)
#else
#define APNN_API __attribute__((visibility("default")))
#endif

#define APNN_VERSION_MAJOR 0
#define APNN_VERSION_MINOR 1
#define APNN_VERSION_PATCH 0

/* Row padding of packed matrices, and column (K) padding in bits. */
#define APNN_ROW_ALIGN 128
#define APNN_K_ALIGN_BITS 256

typedef enum apnn_status {
  APNN_STATUS_SUCCESS = 0,
  APNN_STATUS_INVALID_ARGUMENT = 1, /* bad value, shape, dtype, pointer or handle */
  APNN_STATUS_UNSUPPORTED = 2,      /* valid request this build cannot serve */
  APNN_STATUS_NO_DEVICE = 3,        /* CUDA backend asked for, no usable GPU */
  APNN_STATUS_OUT_OF_MEMORY = 4,    /* host or device allocation failed */
  APNN_STATUS_CUDA_ERROR = 5,       /* a CUDA runtime call failed; message has details */
  APNN_STATUS_INTERNAL_ERROR = 6    /* a bug in libapnn: please report it */
} apnn_status_t;

typedef enum apnn_backend {
  APNN_BACKEND_AUTO = 0, /* CUDA when a usable GPU is present, otherwise host */
  APNN_BACKEND_CUDA = 1,
  APNN_BACKEND_HOST = 2
} apnn_backend_t;

typedef enum apnn_encoding {
  APNN_ENCODING_UNSIGNED = 0,
  APNN_ENCODING_SIGNED = 1,
  APNN_ENCODING_BINARY = 2
} apnn_encoding_t;

/* Element type of code arrays handed in by the caller. */
typedef enum apnn_dtype {
  APNN_DTYPE_INT8 = 0,
  APNN_DTYPE_UINT8 = 1,
  APNN_DTYPE_INT32 = 2,
  APNN_DTYPE_FLOAT32 = 3
} apnn_dtype_t;

/* How an operand's codes are to be read. */
typedef struct apnn_quant {
  int32_t bits;             /* 1..8 */
  apnn_encoding_t encoding; /* BINARY requires bits == 1 */
  int32_t zero_point;       /* real value = value - zero_point; 0 for none */
} apnn_quant_t;

typedef struct apnn_context* apnn_context_t;
typedef struct apnn_packed* apnn_packed_t;
typedef struct apnn_buffer* apnn_buffer_t;

typedef struct apnn_context_info {
  apnn_backend_t backend;    /* the backend actually in use (never AUTO) */
  char device_name[128];     /* GPU name, or "host" */
  int32_t compute_capability; /* e.g. 90 for sm_90; 0 on the host backend */
  int32_t multiprocessors;   /* SM count; number of host threads used on host */
} apnn_context_info_t;

/* ---- Errors and version ---------------------------------------------------------- */

/* Message of the last failure on this thread ("" if none). Never NULL. */
APNN_API const char* apnn_last_error(void);
/* Short constant name of a status, e.g. "APNN_STATUS_INVALID_ARGUMENT". Never NULL. */
APNN_API const char* apnn_status_string(apnn_status_t status);
/* "MAJOR.MINOR.PATCH". Never NULL. */
APNN_API const char* apnn_version(void);
/* Number of usable CUDA devices; 0 (and SUCCESS) when there is no GPU or driver. */
APNN_API apnn_status_t apnn_cuda_device_count(int32_t* count);

/* ---- Context ---------------------------------------------------------------------- */

/* Creates a context on the given backend. CUDA with no usable GPU: APNN_STATUS_NO_DEVICE.
 * The CUDA backend uses device 0 and one stream of its own. */
APNN_API apnn_status_t apnn_context_create(apnn_backend_t backend, apnn_context_t* ctx);
APNN_API apnn_status_t apnn_context_destroy(apnn_context_t ctx);
APNN_API apnn_status_t apnn_context_info(apnn_context_t ctx, apnn_context_info_t* info);
/* Waits until all work queued on the context is done. */
APNN_API apnn_status_t apnn_context_synchronize(apnn_context_t ctx);

/* ---- Buffers: memory of the context's backend (device memory on CUDA) ------------ */

APNN_API apnn_status_t apnn_buffer_create(apnn_context_t ctx, size_t bytes, apnn_buffer_t* buffer);
APNN_API apnn_status_t apnn_buffer_destroy(apnn_buffer_t buffer);
APNN_API apnn_status_t apnn_buffer_size(apnn_buffer_t buffer, size_t* bytes);
/* Copies `bytes` from host memory into the buffer at offset 0 (synchronous). */
APNN_API apnn_status_t apnn_buffer_write(apnn_buffer_t buffer, const void* host, size_t bytes);
/* Copies `bytes` from the buffer at offset 0 into host memory (synchronous). */
APNN_API apnn_status_t apnn_buffer_read(apnn_buffer_t buffer, void* host, size_t bytes);

/* ---- Packing ---------------------------------------------------------------------- */

/* Packs a rows x cols row-major array of integer codes (host memory, dtype INT8, UINT8 or
 * INT32) into bit-planes. Every code must lie in the range of (bits, encoding); the first
 * code out of range fails the call with its position in the message. rows, cols >= 1. */
APNN_API apnn_status_t apnn_pack(apnn_context_t ctx, const void* codes, apnn_dtype_t dtype,
                                 int64_t rows, int64_t cols, const apnn_quant_t* quant,
                                 apnn_packed_t* packed);
/* The same from codes already in a buffer of the context (no host round trip). */
APNN_API apnn_status_t apnn_pack_buffer(apnn_context_t ctx, apnn_buffer_t codes, apnn_dtype_t dtype,
                                        int64_t rows, int64_t cols, const apnn_quant_t* quant,
                                        apnn_packed_t* packed);
/* Quantizes float32 host values and packs them with the library's one rounding rule (the same
 * for network inputs, float weights and epilogue step 5):
 *   code = clamp(rint_half_even(fl(x / scale)) + zero_point, lo, hi)
 * where fl(x / scale) is the float32 quotient, [lo, hi] the code range of (bits, encoding); for
 * BINARY, code = x >= 0 ? +1 : -1 and scale is ignored. NaN fails. The packed operand keeps
 * quant->zero_point. scale > 0. (QONNX's Quant adds the zero point before rounding, which differs
 * on ties with an odd zero point: apnn.from_qonnx reproduces that rule itself.) */
APNN_API apnn_status_t apnn_quantize_pack(apnn_context_t ctx, const float* values, int64_t rows,
                                          int64_t cols, float scale, const apnn_quant_t* quant,
                                          apnn_packed_t* packed);
APNN_API apnn_status_t apnn_packed_destroy(apnn_packed_t packed);
/* Shape and quantization of a packed matrix; any output pointer may be NULL. */
APNN_API apnn_status_t apnn_packed_info(apnn_packed_t packed, int64_t* rows, int64_t* cols,
                                        apnn_quant_t* quant);
/* Copies the planes to host memory in the layout described at the top of this file.
 * `words` must be at least bits * rows_padded * cols_padded / 32. */
APNN_API apnn_status_t apnn_packed_read_planes(apnn_packed_t packed, uint32_t* host, size_t words);

/* ---- GEMM ------------------------------------------------------------------------- */

/* Y = (X - zx) * (W - zw)^T exactly, X = x (M x K), W = w (N x K), both packed by this
 * context with equal K. Y is M x N int32, row-major, written to host memory. */
APNN_API apnn_status_t apnn_gemm(apnn_context_t ctx, apnn_packed_t x, apnn_packed_t w, int32_t* y);
/* The same, leaving Y in a buffer of at least M * N * 4 bytes (asynchronous on CUDA). */
APNN_API apnn_status_t apnn_gemm_buffer(apnn_context_t ctx, apnn_packed_t x, apnn_packed_t w,
                                        apnn_buffer_t y);
/* Times apnn_gemm_buffer: `warmup` untimed calls, then `iters` calls timed on the device
 * (CUDA: captured in a CUDA graph, replayed, timed with CUDA events; host: wall clock).
 * Writes the median time of one call in microseconds. warmup >= 0, iters >= 1. */
APNN_API apnn_status_t apnn_gemm_benchmark(apnn_context_t ctx, apnn_packed_t x, apnn_packed_t w,
                                           apnn_buffer_t y, int32_t warmup, int32_t iters,
                                           double* microseconds);
/* Name of the kernel configuration the context would use for this GEMM (for benchmarks and
 * tests), written NUL-terminated into `name` of `capacity` bytes. */
APNN_API apnn_status_t apnn_gemm_kernel_name(apnn_context_t ctx, apnn_packed_t x, apnn_packed_t w,
                                             char* name, size_t capacity);

/* ---- Convolution and fused epilogues -------------------------------------------- */
/*
 * Packed NHWC tensors
 *   An activation tensor of N x H x W x C codes (NHWC, row-major) is exactly the packed matrix
 *   of (N*H*W) rows x C columns: one row per pixel, its channels along the bit axis, padded to
 *   256 bits (layout above). apnn_pack_nhwc packs one; apnn_packed_info then reports
 *   rows = N*H*W, cols = C, and apnn_packed_tensor_shape the 4-D shape. Plain matrices from
 *   apnn_pack have no tensor shape and are refused by the convolution calls.
 *
 * Convolution weights (apnn_conv_weights_t)
 *   O x KH x KW x C codes (OHWC). Row o holds the KH*KW taps one after another, each tap's C
 *   channels padded with zero bits to the same Cpad = round_up(C, 256) as the activations:
 *       word(plane j, row o, tap t = kh*KW + kw, word w) at (j*O_padded + o)*KH*KW*Cpad/32 + t*Cpad/32 + w
 *   with O_padded = round_up(O, 128). Next to the planes the library keeps, per output channel,
 *   a summed-area table of the per-tap plane-part sums (the rank-1 corrections need the sum
 *   over the taps that are valid at each output pixel, see below).
 *
 * The convolution (stride sh, sw; zero padding ph, pw; OH = (H + 2ph - KH)/sh + 1, likewise OW)
 *   Y[n][oh][ow][o] = sum_{kh,kw,c} xr[n][oh*sh - ph + kh][ow*sw - pw + kw][c] * (W[o][kh][kw][c] - zw)
 *   exactly in int32, where xr = X - zx inside the image and xr = 0 outside it: a padding pixel
 *   is the real value 0 whatever the encoding and zero point (it is not the code 0, nor -1 for
 *   BINARY). The library refuses (UNSUPPORTED) shapes where KH*KW*C*max|x|*max|w| could
 *   overflow int32.
 *
 * Grouped convolution (groups = G > 1; G = C = O is depthwise, MobileNet's layers)
 *   The C input and O output channels form G equal groups (C and O multiples of G); weights are
 *   O x KH x KW x (C/G) and output o, of group g = o / (O/G), reads only input channels
 *   g*C/G .. (g+1)*C/G - 1:
 *       Y[n][oh][ow][o] = sum_{kh,kw,c < C/G} xr[n][..][..][g*C/G + c] * (W[o][kh][kw][c] - zw)
 *   with padding as above. The host backend runs it. The CUDA backend has a direct kernel for it
 *   (one thread per output, integer products of the unpacked codes: a depthwise output has only
 *   KH*KW of them, too few for tensor cores) and refuses it (UNSUPPORTED) until that kernel has
 *   been verified on a GPU.
 *
 * The fused epilogue (apnn_epilogue_t), per output element y = Y[n][oh][ow][o], in float32 with
 * every operation rounded to nearest even on its own (no fused multiply-add), "fl(.)":
 *   1. affine:    a = fl(fl(float(y) * scale[o]) + bias[o])      float(y): int32 -> float32, RNE
 *   2. residual:  a = fl(a + fl(float(r) * residual_scale))     r = the residual's integer real
 *                 value at the same (n, oh, ow, o): an int32 buffer, or a packed tensor's
 *                 (value - zero_point)
 *   3. activation: RELU a = (a > 0 ? a : 0);  CLIP a = (a >= lo ? a : lo), then (a > hi ? hi : a)
 *   4. pooling over k x k windows with stride s (no padding, OHp = (OH - k)/s + 1): MAX keeps m =
 *      the first element, then m = (v > m ? v : m) in row-major window order; AVG sums in
 *      row-major window order, s = fl(s + v), then a = fl(s / float(k*k)). Pooling comes after
 *      the activation and before re-quantization.
 *   5. output: float32 a; or codes of the output tensor's (bits, encoding, zero point zp):
 *      BINARY code = (a >= 0 ? +1 : -1); otherwise t = rint_half_even(fl(a / out_scale)),
 *      t = (t >= lo - zp ? t : lo - zp), t = (t > hi - zp ? hi - zp : t), code = t + zp, with
 *      [lo, hi] the code range (so a NaN becomes the lowest code). The codes are written as
 *      packed planes (and row sums) straight into the output tensor.
 *   apnn.reference.conv_epilogue (Python) is the same rule in numpy.
 */

typedef struct apnn_conv_weights* apnn_conv_weights_t;
typedef struct apnn_epilogue* apnn_epilogue_t;

typedef enum apnn_activation {
  APNN_ACTIVATION_NONE = 0,
  APNN_ACTIVATION_RELU = 1,
  APNN_ACTIVATION_CLIP = 2
} apnn_activation_t;

typedef enum apnn_pool {
  APNN_POOL_NONE = 0,
  APNN_POOL_MAX = 1,
  APNN_POOL_AVG = 2
} apnn_pool_t;

/* What an epilogue does; scale and bias are copied at apnn_epilogue_create. */
typedef struct apnn_epilogue_desc {
  int64_t channels;             /* O, the number of output channels it applies to */
  const float* scale;           /* O finite values, or NULL for all 1 */
  const float* bias;            /* O finite values, or NULL for all 0 */
  float residual_scale;         /* multiplies the residual's integer value (step 2) */
  apnn_activation_t activation;
  float clip_lo, clip_hi;       /* CLIP bounds, clip_lo <= clip_hi */
  apnn_pool_t pool;
  int32_t pool_size;            /* k: 2 or 3 (ignored for NONE) */
  int32_t pool_stride;          /* s: 1..k (ignored for NONE) */
  float out_scale;              /* > 0: scale of packed output codes (step 5) */
} apnn_epilogue_desc_t;

/* One convolution call. Exactly one output: `y` (a buffer of the context) or `y_packed`.
 *   no epilogue: y receives N x OH x OW x O int32 (NHWC), no residual allowed;
 *   epilogue:    y receives N x OHp x OWp x O float32, or y_packed (an NHWC tensor of that
 *                shape made by apnn_pack_nhwc / apnn_packed_create_nhwc) receives the codes.
 * At most one residual, of the pre-pooling output shape N x OH x OW x O. */
typedef struct apnn_conv_args {
  apnn_packed_t x;              /* NHWC activations, C channels */
  apnn_conv_weights_t w;        /* O x KH x KW x C */
  int32_t stride_h, stride_w;   /* 1..16 */
  int32_t pad_h, pad_w;         /* 0..KH-1 and 0..KW-1 */
  apnn_epilogue_t epilogue;     /* NULL: raw int32 output */
  apnn_packed_t residual;       /* NULL, or an NHWC tensor */
  apnn_buffer_t residual_int32; /* NULL, or N*OH*OW*O int32 values */
  apnn_buffer_t y;
  apnn_packed_t y_packed;
  int32_t groups;               /* 0 or 1: dense; G > 1: grouped (see "Grouped convolution") */
} apnn_conv_args_t;

/* Packs n x h x w x c codes (NHWC, host memory, INT8 / UINT8 / INT32) as a packed tensor. */
APNN_API apnn_status_t apnn_pack_nhwc(apnn_context_t ctx, const void* codes, apnn_dtype_t dtype, int64_t n,
                                      int64_t h, int64_t w, int64_t c, const apnn_quant_t* quant,
                                      apnn_packed_t* packed);
/* An NHWC tensor with every bit 0 (code 0; -1 for BINARY), e.g. for a fused epilogue's output. */
APNN_API apnn_status_t apnn_packed_create_nhwc(apnn_context_t ctx, int64_t n, int64_t h, int64_t w, int64_t c,
                                               const apnn_quant_t* quant, apnn_packed_t* packed);
/* N, H, W, C of a packed tensor; INVALID_ARGUMENT for a plain matrix. */
APNN_API apnn_status_t apnn_packed_tensor_shape(apnn_packed_t packed, int64_t shape[4]);

/* Packs o x kh x kw x c weight codes (OHWC, host memory) in the layout above. kh, kw in 1..15. */
APNN_API apnn_status_t apnn_pack_conv_weights(apnn_context_t ctx, const void* codes, apnn_dtype_t dtype,
                                              int64_t o, int64_t kh, int64_t kw, int64_t c,
                                              const apnn_quant_t* quant, apnn_conv_weights_t* weights);
APNN_API apnn_status_t apnn_conv_weights_destroy(apnn_conv_weights_t weights);
/* O, KH, KW, C and quantization of packed weights; any output pointer may be NULL. */
APNN_API apnn_status_t apnn_conv_weights_info(apnn_conv_weights_t weights, int64_t shape[4], apnn_quant_t* quant);

APNN_API apnn_status_t apnn_epilogue_create(apnn_context_t ctx, const apnn_epilogue_desc_t* desc,
                                            apnn_epilogue_t* epilogue);
APNN_API apnn_status_t apnn_epilogue_destroy(apnn_epilogue_t epilogue);

/* Output shape of a call before pooling (shape[0..3] = N, OH, OW, O) and after it (pooled). */
APNN_API apnn_status_t apnn_conv2d_output_shape(apnn_context_t ctx, const apnn_conv_args_t* args,
                                                int64_t shape[4], int64_t pooled[4]);
/* Runs the convolution (asynchronous on CUDA; read y with apnn_buffer_read). On CUDA (sm_90) a
 * convolution with padding K / 2 (3x3 over at most 256 channels or 5x5 over at most 128 at
 * stride 1, 1x1 or 3x3 over at most 256 at stride 2), 1 or 2 planes per operand, activations
 * with real offset 0, with an int32 output or a packed one of at most 2 bits (at stride 1
 * optionally with a 2x2 / 2 max pool or a packed residual of at most 2 bits) runs the halo kernel where its blocks' work (8x8 output tiles times groups of 64 or 128
 * output channels) numbers at least the SMs: one input window per tile, read in place for every
 * tap (same results; the conv_halo option, apnn_options_t). */
APNN_API apnn_status_t apnn_conv2d(apnn_context_t ctx, const apnn_conv_args_t* args);
/* Times apnn_conv2d like apnn_gemm_benchmark (median microseconds of one call). */
APNN_API apnn_status_t apnn_conv2d_benchmark(apnn_context_t ctx, const apnn_conv_args_t* args, int32_t warmup,
                                             int32_t iters, double* microseconds);
/* Name of the kernel configuration the context would use, NUL-terminated. */
APNN_API apnn_status_t apnn_conv2d_kernel_name(apnn_context_t ctx, const apnn_conv_args_t* args, char* name,
                                               size_t capacity);
/* Pins the CUDA convolution's choices, for tests and benchmarks: split_k (0: automatic, else
 * 1..64 splits of the taps x channels loop) and fuse (1: epilogue inside the convolution
 * kernel where possible, 0: always a separate epilogue kernel). Results are identical.
 * Accepted and ignored by the host backend. */
APNN_API apnn_status_t apnn_context_set_conv_override(apnn_context_t ctx, int32_t split_k, int32_t fuse);

/* Kernel choices: the options of a context.
 * Every option keeps results identical: they choose among kernels and layouts that compute the
 * same values, for tests, benchmarks and tuning. The host backend accepts and ignores them. A
 * context starts with apnn_options_init's defaults, each overridden by the APNN_* environment
 * variable of the same name in capitals where one is set (a debugging aid, read once per
 * process: APNN_CONV_TILES=legacy|0..4, APNN_CONV_HALO, APNN_FIRST_LAYER_TAPS, ... =0|1,
 * APNN_NETWORK_MAX_CALL_PIXELS=n). A network takes its context's options when it is created;
 * apnn_context_set_options affects convolutions called afterwards and networks created afterwards. */
#define APNN_OPTION_AUTO -1          /* the planners decide */
#define APNN_CONV_TILES_LEGACY -2    /* conv_tiles: the kernel without thread-block clusters */
#define APNN_CONV_TILE_CONFIGS 5     /* conv_tiles pins one of 0..APNN_CONV_TILE_CONFIGS-1 */
typedef struct apnn_options {
  /* The tiled convolution's configuration (CUDA, compute capability 9.0+): AUTO, a pinned
   * 0: 64x64 bit-rows x bit-columns with 1024-bit K steps, 1: 128x128 / 512, 2: 256x64 / 512,
   * 3: 128x64 / 512 with 3 resident blocks, 4: 256x128 / 512 (1 or 2 planes only; other counts
   * fall back to 1), or APNN_CONV_TILES_LEGACY. */
  int32_t conv_tiles;
  /* The halo convolution (apnn_conv2d's comment): AUTO where its blocks cover the SMs; 0 never;
   * 1 wherever it applies. */
  int32_t conv_halo;
  /* 1 (default): the tiled kernels finish from the wgmma accumulators where they can; 0: always
   * through shared memory. */
  int32_t conv_register_finish;
  /* 1 (default): float epilogues with packed outputs of at most 2 bits run as the integer
   * threshold tables derived from them where that is exact; 0: the float steps. */
  int32_t derived_thresholds;
  /* 1 (default): tiled and halo kernels launch as programmatic dependents of the kernel before
   * them (compute capability 9.0); 0: as plain stream work. */
  int32_t dependent_launch;
  /* A network's first layer from an 8-bit image (apnn_network_plan): AUTO; 0: always the
   * mma.sync kernel; 1: require the Hopper warpgroup kernel (UNSUPPORTED for a layer it cannot
   * take). */
  int32_t first_layer_taps;
  /* Networks (apnn_network_plan): 1 (default) or 0 for the im2col form of a narrow input's
   * first convolution, its from-image form, packed taps for layers over 64, 128 or 192
   * channels, and unpadded tensors where only the halo kernel reads them. */
  int32_t network_im2col;
  int32_t network_from_image;
  int32_t network_pack_taps;
  int32_t network_unpadded;
  /* 0 (default): a network's convolution call takes up to 2^29 int32 outputs; n > 0: also at most
   * n output pixels (smaller sub-batches). */
  int64_t network_max_call_pixels;
} apnn_options_t;

/* The defaults (no environment applied): AUTO or 1 in every field, network_max_call_pixels 0. */
APNN_API apnn_status_t apnn_options_init(apnn_options_t* options);
/* Checks every field (INVALID_ARGUMENT naming the first out of range) and sets them all. */
APNN_API apnn_status_t apnn_context_set_options(apnn_context_t ctx, const apnn_options_t* options);
APNN_API apnn_status_t apnn_context_get_options(apnn_context_t ctx, apnn_options_t* options);

/* ---- Networks ----------------------------------------------------------------------- */
/*
 * A network is a graph of layers built once, planned once for a batch size (every buffer
 * allocated, weights packed, the launch sequence fixed and, on CUDA, captured as a CUDA graph)
 * and run many times. Layers are added in order; each add returns a layer id, and layer 0 is
 * the network input. A layer reads earlier layers by id; the last layer added is the output.
 * All tensors are NHWC; shapes below are per image (H x W x C), the batch N is set at plan.
 *
 * Layers
 *   input    H x W x C codes of apnn_network_input_desc_t's quant (default 8-bit unsigned, the
 *            bytes of an image). apnn_network_run takes codes (INT8 / UINT8 / INT32, each in the
 *            code range) or FLOAT32 values, quantized with step 5 of the fused epilogue
 *            (out_scale = input scale): code = clamp(rint_half_even(fl(x / scale)) ...).
 *   conv     the convolution of apnn_conv2d over its input tensor with the fused epilogue
 *            (affine scale/bias of set_weights, residual, activation, pooling, output).
 *   linear   a fully connected layer over its input, flattened in NHWC order (h, w, c): weights
 *            are O x (H*W*C), row o in that order. It runs as a convolution whose kernel covers
 *            the whole H x W input (so H, W <= 15; pool first). Same epilogue as conv (no pooling).
 *   pool     MAX: k x k windows, stride s, padding p (p <= k/2; padding pixels are ignored, never
 *            the maximum), on the codes (maximum value; requantization is monotonic, so this
 *            equals pooling before it). AVG: only global (size 0), and it must feed linear layers:
 *            a linear layer over a global average pool of an H x W x C tensor takes O x C weights
 *            and computes exactly y = sum_{h,w,c} x[h][w][c] * (W[o][c] - zw), then its epilogue
 *            uses the scale fl(scale[o] / float(H*W)) in step 1.
 *   flatten  H x W x C -> 1 x 1 x (H*W*C), NHWC order; only a linear layer may read it (it is a
 *            reinterpretation, no work).
 *   Residual add: a conv / linear layer's `residual` names a layer of the same (pre-pooling)
 *   output shape whose (code - zero_point) times residual_scale is added in epilogue step 2.
 *
 * Threshold epilogues (as FINN's MultiThreshold; what apnn.from_qonnx uses to reproduce an
 * exporter's arithmetic exactly). A conv / linear layer with a PACKED output may take its codes
 * straight from integer thresholds on its exact result y (the int32 of apnn_conv2d; over a
 * global average pool, the sum over the window), given to apnn_network_set_weights. With
 * L = 2^bits - 1 levels of the output quant (1 for BINARY) and T[r][o][0..L-1] non-decreasing,
 *     level = #{k : y >= T[r][o][k]}       channel o ascending (descending NULL or 0)
 *     level = #{k : y <  T[r][o][k]}       channel o descending
 *     code  = lowest code + level          (BINARY: -1 + 2 * level)
 * Epilogue steps 1, 2, 3 and 5 are replaced (scale, bias, activation, clip, residual_scale and
 * out_scale are ignored); a fused MAX pool keeps the largest code; an AVG pool is refused. Without
 * a residual R = 1. With a residual of b-bit codes R = 2^b (at most 256): table r serves the
 * pixels whose residual code is (lowest code + r) (BINARY: r = 0 for -1, 1 for +1).
 * Any step function of y that is monotone per channel has this form, so the importer computes
 * the tables in whatever arithmetic the model was defined in. Thresholds are checked at
 * apnn_network_set_weights (INVALID_ARGUMENT for a decreasing row or a layer that cannot take
 * them). The host backend runs them; the CUDA backend refuses them (UNSUPPORTED) until its path
 * (tables of at most 3 levels and 4 residual tables in the fused kernels as the library's own,
 * wider ones in the separate epilogue kernel) has been verified on a GPU.
 *
 * Outputs. Every layer read by another must produce packed codes (APNN_LAYER_OUTPUT_PACKED,
 * of out_quant and out_scale). The network's output layer may instead produce FLOAT32 (the
 * epilogue's float values, e.g. logits) or INT32 (raw accumulations; no epilogue at all).
 * apnn_network_run writes N x H x W x C of the output: float32, int32, or for a packed output
 * the codes as int32.
 *
 * Planning. A max pool with p = 0, k in {2, 3}, s <= k that alone reads a conv/linear layer's
 * packed output is fused into that layer's epilogue (same result). Planning fails with a clear
 * message for missing weights, a float/int32 output read by another layer, an average pool
 * not feeding linear layers, and shapes that could overflow int32. The network keeps its own
 * stream and workspaces, so its CUDA graph stays valid whatever else runs on the context.
 * Layer times (apnn_network_benchmark) are per layer id: 0 is the input packing, fused or
 * virtual layers (flatten, average pool, a fused max pool) take 0.
 */

typedef struct apnn_network* apnn_network_t;

typedef enum apnn_layer_output {
  APNN_LAYER_OUTPUT_PACKED = 0,  /* codes of out_quant (readable by later layers) */
  APNN_LAYER_OUTPUT_FLOAT32 = 1, /* float32 epilogue values (output layer only) */
  APNN_LAYER_OUTPUT_INT32 = 2    /* raw int32 accumulations, no epilogue (output layer only) */
} apnn_layer_output_t;

typedef enum apnn_layer_kind {
  APNN_LAYER_INPUT = 0,
  APNN_LAYER_CONV = 1,
  APNN_LAYER_LINEAR = 2,
  APNN_LAYER_POOL = 3,
  APNN_LAYER_FLATTEN = 4
} apnn_layer_kind_t;

typedef struct apnn_network_input_desc {
  int64_t height, width, channels;
  apnn_quant_t quant; /* bits 0 means the default: 8-bit unsigned, zero point 0 */
  float scale;        /* > 0; used for FLOAT32 input (0 means 1) */
} apnn_network_input_desc_t;

/* A conv or linear layer. Zero-initialize it, then set what you need. */
typedef struct apnn_layer_desc {
  int32_t input;               /* id of the layer read */
  int64_t out_channels;        /* O (output features of a linear layer) */
  int32_t kernel_h, kernel_w;  /* conv: 1..15 */
  int32_t stride_h, stride_w;  /* conv: 1..16 (0 means 1) */
  int32_t pad_h, pad_w;        /* conv: 0..kernel-1 */
  apnn_quant_t weight_quant;
  apnn_activation_t activation;
  float clip_lo, clip_hi;
  apnn_pool_t pool;            /* conv: fused pooling of the epilogue (no padding) */
  int32_t pool_size, pool_stride;
  int32_t residual;            /* id of the residual layer, or 0 for none (the input cannot be one) */
  float residual_scale;
  apnn_layer_output_t output;
  apnn_quant_t out_quant;      /* PACKED output: the codes' quantization */
  float out_scale;             /* PACKED output: > 0 */
  int32_t groups;              /* conv: 0 or 1 dense, G > 1 grouped (C and O multiples of G;
                                  weights O x KH x KW x C/G; G = C = O: depthwise) */
} apnn_layer_desc_t;

/* Weights of a conv (O x KH x KW x C, OHWC) or linear (O x K) layer, copied and packed at once. */
typedef struct apnn_layer_weights {
  const void* values;  /* codes (INT8 / UINT8 / INT32) of weight_quant, or FLOAT32 values */
  apnn_dtype_t dtype;
  float weight_scale;  /* FLOAT32: code = clamp(rint_half_even(fl(w / weight_scale)) + zp), as
                          epilogue step 5 (BINARY: w >= 0 ? +1 : -1); > 0 */
  const float* scale;  /* O epilogue scales (step 1), or NULL for all 1 */
  const float* bias;   /* O epilogue biases, or NULL for all 0 */
  /* Optional threshold epilogue (see "Threshold epilogues" above): R x O x L int32, each row of
     L non-decreasing; NULL keeps the float epilogue. */
  const int32_t* thresholds;
  const uint8_t* descending; /* NULL (every channel ascending) or O flags: 1 counts y < T */
} apnn_layer_weights_t;

/* What a layer is, after it was added; shape is per image. */
typedef struct apnn_layer_info {
  apnn_layer_kind_t kind;
  int32_t input;                /* -1 for the input layer */
  int64_t shape[3];             /* output H, W, C */
  apnn_layer_output_t output;
  apnn_quant_t out_quant;       /* of a packed output */
  apnn_quant_t weight_quant;    /* conv / linear */
  int64_t macs;                 /* multiply-accumulates per image (conv / linear) */
  int64_t weight_bytes;         /* bytes of packed weight planes (conv / linear) */
  int32_t fused;                /* 1: runs inside the layer it reads (fused max pool) or is free */
  int64_t row_words;            /* planned packed output: 32-bit words per pixel and plane, 0 where
                                   the layer has no tensor of its own or before planning (see
                                   apnn_network_plan: unpadded rows) */
  int64_t call_images;          /* planned conv / linear: images per call (a sub-batch), else 0 */
  char kernel[96];              /* planned: what runs the layer's first call, NUL-terminated, ""
                                   before planning or where nothing runs: apnn_conv2d_kernel_name's
                                   name ("im2col " in front for the im2col form), the first-layer
                                   kernel for 8-bit images (first_layer_taps_wgmma or
                                   first_layer_mma_sync), or max_pool */
} apnn_layer_info_t;

APNN_API apnn_status_t apnn_network_create(apnn_context_t ctx, const apnn_network_input_desc_t* input,
                                           apnn_network_t* net);
APNN_API apnn_status_t apnn_network_destroy(apnn_network_t net);
APNN_API apnn_status_t apnn_network_add_conv(apnn_network_t net, const apnn_layer_desc_t* desc, int32_t* id);
APNN_API apnn_status_t apnn_network_add_linear(apnn_network_t net, const apnn_layer_desc_t* desc, int32_t* id);
/* MAX (size 2..15, stride 1..16 (0: size), pad <= size/2) or global AVG (size 0). */
APNN_API apnn_status_t apnn_network_add_pool(apnn_network_t net, int32_t input, apnn_pool_t pool, int32_t size,
                                             int32_t stride, int32_t pad, int32_t* id);
APNN_API apnn_status_t apnn_network_add_flatten(apnn_network_t net, int32_t input, int32_t* id);
APNN_API apnn_status_t apnn_network_set_weights(apnn_network_t net, int32_t id, const apnn_layer_weights_t* weights);
APNN_API apnn_status_t apnn_network_layer_count(apnn_network_t net, int32_t* count);
APNN_API apnn_status_t apnn_network_layer_info(apnn_network_t net, int32_t id, apnn_layer_info_t* info);
/* Validates the graph and prepares it for `batch` images (again with another batch is fine).
 * A convolution that alone reads a narrow input (KH*KW*C padded to 256 bits at least 2x smaller
 * than KH*KW taps of C padded each), whose input quant has real offset 0, is planned as a 1x1
 * convolution over the input's im2col rows; results are identical either way
 * (the network_im2col option 0 keeps the direct form). On CUDA such a layer with a
 * packed output of at most 2 bits, no residual and no pooling, KH*KW*C <= 1024 and weights whose
 * real values fit int8 runs straight from the image instead (integer dot products, the epilogue
 * as per-channel thresholds on y, same codes; network_from_image 0 keeps the packed form).
 * On compute capability 9.0, for 8-bit images (UINT8 / INT8 codes at a 4-byte aligned address)
 * with at most 4 channels, at most 64 output channels, kernels up to 16 x 16 and strides up to 4,
 * that layer runs on the warpgroup INT8 MMA (same codes; first_layer_taps 0 keeps the
 * mma.sync kernel, =1 makes a layer outside those limits fail with APNN_STATUS_UNSUPPORTED). Its
 * output, when only a max pool reads it, is stored without the 256-bit row padding. Unpadded
 * rows: on CUDA (sm_90) a layer's packed output of 33..64 or 97..128 channels that only halo
 * convolutions (apnn_conv2d: 3x3 / 5x5 at stride 1, 1x1 / 3x3 at stride 2), max pools and
 * from-image first layers write and read keeps ceil(C / 32) words per pixel and plane instead of
 * round_up(C, 256) / 32 (the layer's row_words; same results, fewer bytes;
 * network_unpadded 0 keeps every row padded).
 * On CUDA (sm_90) layers over 64, 128 or 192 channels keep their weights' taps packed back to
 * back, K padded to 256 bits once rather than per tap (same results; network_pack_taps 0
 * keeps the per-tap layout). On CUDA (sm_90) a 2x2 / 2 max pool fused into a conv layer whose
 * packed output has 1 or 2 activation planes and 1 or 2 weight planes runs inside the convolution
 * kernel (no int32 round trip), and a packed residual of at most 2 bits with a packed output of at
 * most 2 bits is folded into a threshold table per residual code (same codes;
 * derived_thresholds 0 keeps the float steps). A batch whose convolution calls would have
 * more than 2^29 int32 results (output pixels x channels) runs as consecutive sub-batches. On CUDA (sm_90) each tiled convolution is launched as a
 * programmatic dependent of the kernel before it, so its launch and constant-only prologue overlap
 * that kernel's tail; it reads nothing the earlier kernels write before they finish (same results;
 * dependent_launch 0 launches them plainly). */
APNN_API apnn_status_t apnn_network_plan(apnn_network_t net, int64_t batch);
/* N, H, W, C and element type (FLOAT32 or INT32) of the planned output. */
APNN_API apnn_status_t apnn_network_output_shape(apnn_network_t net, int64_t shape[4], apnn_dtype_t* dtype);
/* One forward pass of the planned batch: input N x H x W x C (host, `dtype`), output (host) as
 * apnn_network_output_shape says. Synchronous. */
APNN_API apnn_status_t apnn_network_run(apnn_network_t net, const void* input, apnn_dtype_t dtype, void* output);
/* Times the forward pass on the device as apnn_gemm_benchmark does (input already uploaded:
 * from the input buffer through packing to the output buffer), median microseconds, and each
 * layer alone; read those with apnn_network_layer_times. Uses the input of the last run. */
APNN_API apnn_status_t apnn_network_benchmark(apnn_network_t net, int32_t warmup, int32_t iters,
                                              double* microseconds);
/* Median microseconds per layer id from the last benchmark into `us` (capacity entries);
 * *count = number of layers. */
APNN_API apnn_status_t apnn_network_layer_times(apnn_network_t net, double* us, int32_t capacity, int32_t* count);

/* Flags of apnn_context_set_gemm_override. */
#define APNN_GEMM_FORCE_GENERIC 1 /* the generic kernel even where a specialized one exists */
#define APNN_GEMM_NO_CLUSTER 2    /* split K through global memory, not thread-block clusters */

/* Number of GEMM tile configurations apnn_context_set_gemm_override accepts (0..N-1). */
#define APNN_GEMM_CONFIGS 11

/* Pins the CUDA GEMM kernel choice, for tests and tuning: `config` is the tile configuration
 * (0: 256x128 bit-rows x bit-columns per block with 1024-bit K steps, 1: 128x128 / 512,
 * 2: 64x64 / 256, 3: 128x128 / 1024, 4: 64x64 / 1024; 5, 6: plane pairs folded in registers,
 * 128x256 and 128x128 output rows x columns, only for w1a2, w2a2 and w1a4, and without
 * split K; 7: 32x32 / 256, 8: 32x32 / 1024, latency tiles for small outputs; 9, 10: Hopper's
 * warpgroup binary MMA (wgmma), 128x128 output rows x columns for w1a1 and w1a2, 128x64 for
 * w1a1..w1a4 and w2a2, only on compute capability 9.0 and without split K; -1: automatic).
 * A configuration that cannot serve the plane counts or the device falls back to the
 * automatic choice. `split_k` is the number of K splits (0: automatic; at most 8 with
 * clusters), and `flags` a mask of APNN_GEMM_*.
 * Results are identical; only speed differs. Accepted and ignored by the host backend. */
APNN_API apnn_status_t apnn_context_set_gemm_override(apnn_context_t ctx, int32_t config, int32_t split_k,
                                                      int32_t flags);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* APNN_APNN_H_ */
