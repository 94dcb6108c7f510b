"""Packing helpers and numpy oracles of every baseline (exact for the integer ones)."""
import numpy as np

from . import models as _models

KINDS = ("int1-xor", "int1-and", "int4")


def random_codes(rng, shape, kind):
    if kind == "int4":
        return rng.integers(-8, 8, size=shape, dtype=np.int8)
    return rng.integers(0, 2, size=shape, dtype=np.uint8)


def pack(codes, kind):
    """Packs codes along the last axis (length a multiple of 8) in the layout of baselines.h."""
    c = np.ascontiguousarray(codes)
    if kind == "int4":
        u = c.astype(np.int16) & 0xF
        return np.ascontiguousarray((u[..., 0::2] | (u[..., 1::2] << 4)).astype(np.uint8))
    return np.packbits(c.astype(np.uint8), axis=-1, bitorder="little")


def gemm(kind, a, b):
    """C[m][n] for codes A (M x K) and B (N x K), as CUTLASS computes it (int32)."""
    a = a.astype(np.int64)
    b = b.astype(np.int64)
    dot = _exact_matmul(a, b.T)
    if kind == "int1-xor":
        return (a.sum(1)[:, None] + b.sum(1)[None, :] - 2 * dot).astype(np.int32)
    return dot.astype(np.int32)


def _exact_matmul(a, b):
    """Integer a @ b through float64 BLAS: exact while every partial sum stays below 2^53."""
    bound = float(np.abs(a).max(initial=0)) * float(np.abs(b).max(initial=0)) * a.shape[1]
    if bound < 2.0 ** 52:
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def im2col(x, kernel, stride, pad, pad_value=0):
    """x: N x H x W x C -> (N*P*Q) x (kernel*kernel*C) rows in (ky, kx, c) order, and (P, Q)."""
    n, h, w, c = x.shape
    xp = np.full((n, h + 2 * pad, w + 2 * pad, c), pad_value, dtype=x.dtype)
    xp[:, pad:pad + h, pad:pad + w, :] = x
    p = (h + 2 * pad - kernel) // stride + 1
    q = (w + 2 * pad - kernel) // stride + 1
    cols = np.empty((n, p, q, kernel, kernel, c), dtype=x.dtype)
    for ky in range(kernel):
        for kx in range(kernel):
            cols[:, :, :, ky, kx, :] = xp[:, ky:ky + stride * (p - 1) + 1:stride, kx:kx + stride * (q - 1) + 1:stride, :]
    return cols.reshape(n * p * q, kernel * kernel * c), (p, q)


def conv(kind, x, w, stride=1, pad=0):
    """y (N x P x Q x O) of codes x (N x H x W x C) and w (O x R x R x C); padding reads code 0."""
    n = x.shape[0]
    o, r = w.shape[0], w.shape[1]
    cols, (p, q) = im2col(x, r, stride, pad)
    return gemm(kind, cols, w.reshape(o, -1)).reshape(n, p, q, o)


# ---- Networks ---------------------------------------------------------------------------------

def _f32(v):
    return np.asarray(v, dtype=np.float32)


def default_int8_scale(k_real):
    return np.float32(1.0) / (np.float32(16.0) * np.sqrt(np.float32(k_real)))


def net(precision, layers, x, params, scales=None):
    """Forward pass with the semantics of baselines.h. x: N x H x W x C float32; params[i] =
    (weights, bias) of every conv / fc layer; scales[i]: INT8 scales (None or 0: the default).
    Returns the last layer's output as float (FP32 / FP16 within rounding, INT8 / BNN exact)."""
    x = _f32(x)
    outs = []
    if precision == "fp16":
        cur = x.astype(np.float16)
    elif precision == "int8":
        cur = np.clip(np.rint(x), -128, 127).astype(np.float32)
    elif precision == "bnn":
        cur = np.where(x >= 0, 1.0, -1.0).astype(np.float32)
    else:
        cur = x.astype(np.float64)
    inp = cur
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        src = i - 1 if layer["input"] == -1 else layer["input"]
        a = inp if src < 0 else outs[src]
        t = layer["type"]
        if t in ("conv", "fc"):
            w, b = params[i]
            o = layer["out_channels"]
            b = np.zeros(o, np.float32) if b is None else _f32(b)
            if t == "conv":
                k, s, p = layer["kernel"], layer["stride"], layer["pad"]
                pad_value = -1.0 if precision == "bnn" else 0.0
                cols, (oh, ow) = im2col(a, k, s, p, pad_value)
            else:
                oh = ow = 1
                cols = a.reshape(a.shape[0], -1)
            wm = _f32(w).reshape(o, -1)
            if precision == "fp16":
                acc = cols.astype(np.float64) @ wm.astype(np.float16).astype(np.float64).T
                y = acc + b
            elif precision == "int8":
                wq = np.clip(np.rint(wm), -128, 127).astype(np.int64)
                acc = _exact_matmul(cols.astype(np.int64), wq.T)
                scale = (scales or {}).get(i) or default_int8_scale(cols.shape[1])
                y = (acc.astype(np.float32) * np.float32(scale)).astype(np.float32) + b
            elif precision == "bnn":
                wb = np.where(wm >= 0, 1, -1).astype(np.int64)
                acc = _exact_matmul(cols.astype(np.int64), wb.T)
                y = acc.astype(np.float32) + b
            else:
                y = cols @ wm.astype(np.float64).T + b
            y = y.reshape(a.shape[0], oh, ow, o)
            if layer["residual"] >= 0:
                y = y + outs[layer["residual"]]
                if precision in ("int8", "bnn"):
                    y = y.astype(np.float32)
            if layer["relu"] and precision != "bnn":
                y = np.maximum(y, 0)
            if last:
                return np.asarray(y, dtype=np.float64)
            if precision == "fp16":
                y = y.astype(np.float16)
            elif precision == "int8":
                y = np.clip(np.rint(y), -128, 127).astype(np.float32)
            elif precision == "bnn":
                y = np.where(y >= 0, 1.0, -1.0).astype(np.float32)
        elif t == "maxpool":
            k, s, p = layer["kernel"], layer["stride"], layer["pad"]
            n, h, w_, c = a.shape
            oh, ow = (h + 2 * p - k) // s + 1, (w_ + 2 * p - k) // s + 1
            ap = np.full((n, h + 2 * p, w_ + 2 * p, c), -np.inf)
            ap[:, p:p + h, p:p + w_, :] = a
            y = np.full((n, oh, ow, c), -np.inf)
            for ky in range(k):
                for kx in range(k):
                    y = np.maximum(y, ap[:, ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s, :])
            y = y.astype(a.dtype)
        elif t == "avgpool":
            n, h, w_, c = a.shape
            if precision == "bnn":
                y = np.where(a.sum(axis=(1, 2), keepdims=True) >= 0, 1.0, -1.0).astype(np.float32)
            else:
                mean = a.astype(np.float64).sum(axis=(1, 2), keepdims=True) / (h * w_)
                if precision == "int8":
                    total = a.astype(np.float64).sum(axis=(1, 2), keepdims=True).astype(np.float32)
                    y = np.clip(np.rint(total / np.float32(h * w_)), -128, 127).astype(np.float32)
                elif precision == "fp16":
                    y = mean.astype(np.float16)
                else:
                    y = mean
        else:
            raise ValueError(f"layer {i}: unknown type {t!r}")
        if last:
            return np.asarray(y, dtype=np.float64)
        outs.append(y)
    raise AssertionError("unreachable")


def shapes(layers, input_shape):
    return _models.shapes(layers, input_shape)
