/* Threefry-2x32 and XLA:CPU's float32 normal as inline C, shared by the CPU kernels
 * (eggroll_torch/random/normal_cpu.c, eggroll_torch/fast/threefry_cpu.c).
 *
 * xla_cpu_normal_f32 follows xla_cpu_f32.py operation for operation: every fmaf() is an FMA
 * LLVM contracted in jaxlib's kernel and every other operation rounds on its own, so the file
 * must be built with -ffp-contract=off (the loaders do). Both log branches are computed and one
 * is selected, which keeps the loop branch-free for the vectorizer and gives the same values. */
#ifndef EGGROLL_XLA_NORMAL_H
#define EGGROLL_XLA_NORMAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* One build runs at the widest vector width the CPU has (x86-64 compilers with ifunc support);
 * elsewhere the loader builds with EGGROLL_NO_CLONES and the compiler's default target. */
#if defined(__x86_64__) && !defined(EGGROLL_NO_CLONES)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

/* Inlined into the vectorized loops: a call would keep the loop scalar. */
#if defined(__GNUC__)
#define EGGROLL_INLINE static inline __attribute__((always_inline))
#else
#define EGGROLL_INLINE static inline
#endif

EGGROLL_INLINE uint32_t eggroll_rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

#define EGGROLL_ROUND(r) do { y0 += y1; y1 = eggroll_rotl(y1, r) ^ y0; } while (0)

EGGROLL_INLINE void threefry2x32(uint32_t k0, uint32_t k1, uint32_t x0, uint32_t x1,
                                uint32_t *o0, uint32_t *o1) {
    uint32_t k2 = k0 ^ k1 ^ 0x1BD11BDAu;
    uint32_t y0 = x0 + k0, y1 = x1 + k1;
    EGGROLL_ROUND(13); EGGROLL_ROUND(15); EGGROLL_ROUND(26); EGGROLL_ROUND(6);
    y0 += k1; y1 += k2 + 1u;
    EGGROLL_ROUND(17); EGGROLL_ROUND(29); EGGROLL_ROUND(16); EGGROLL_ROUND(24);
    y0 += k2; y1 += k0 + 2u;
    EGGROLL_ROUND(13); EGGROLL_ROUND(15); EGGROLL_ROUND(26); EGGROLL_ROUND(6);
    y0 += k0; y1 += k1 + 3u;
    EGGROLL_ROUND(17); EGGROLL_ROUND(29); EGGROLL_ROUND(16); EGGROLL_ROUND(24);
    y0 += k1; y1 += k2 + 4u;
    EGGROLL_ROUND(13); EGGROLL_ROUND(15); EGGROLL_ROUND(26); EGGROLL_ROUND(6);
    y0 += k2; y1 += k0 + 5u;
    *o0 = y0;
    *o1 = y1;
}

EGGROLL_INLINE float eggroll_f32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

EGGROLL_INLINE uint32_t eggroll_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* log(y), finite y > 0: XLA:CPU's polynomial (see _log_f32 in xla_cpu_f32.py). */
EGGROLL_INLINE float eggroll_xla_log(float y) {
    y = y > eggroll_f32(0x00800000u) ? y : eggroll_f32(0x00800000u);
    uint32_t bits = eggroll_bits(y);
    float exponent = (float)((int32_t)(bits >> 23) - 127) + 1.0f;
    float m = eggroll_f32((bits & 0x807FFFFFu) | 0x3F000000u);
    int below = m < eggroll_f32(0x3F3504F3u);
    float xr = (m + -1.0f) + (below ? m : 0.0f);
    float e = below ? exponent - 1.0f : exponent;
    float a = fmaf(xr, fmaf(xr, eggroll_f32(0x3D9021BBu), eggroll_f32(0xBDEBD1B8u)), eggroll_f32(0x3DEF251Au));
    float b = fmaf(xr, fmaf(xr, eggroll_f32(0xBDFE5D4Fu), eggroll_f32(0x3E11E9BFu)), eggroll_f32(0xBE2AAE50u));
    float c = fmaf(xr, fmaf(xr, eggroll_f32(0x3E4CCEACu), eggroll_f32(0xBE7FFFFCu)), eggroll_f32(0x3EAAAAAAu));
    float z = xr * xr;
    float z3 = z * xr;
    float r = fmaf(z3, fmaf(z3, a, b), c);
    float s = fmaf(z3, r, e * eggroll_f32(0xB95E8083u));
    float h = fmaf(z, -0.5f, xr);
    return fmaf(e, eggroll_f32(0x3F318000u), h + s);
}

/* log1p(x), -1 < x <= 0 here: the rational branch below |x| < 0.4142, else log(1 + x). */
EGGROLL_INLINE float eggroll_xla_log1p(float x) {
    float num = eggroll_f32(0x383DE04Bu), den = 1.0f;
    num = fmaf(x, num, eggroll_f32(0x3EFF40C5u)); den = fmaf(x, den, eggroll_f32(0x417101ADu));
    num = fmaf(x, num, eggroll_f32(0x40D284FAu)); den = fmaf(x, den, eggroll_f32(0x42A6185Bu));
    num = fmaf(x, num, eggroll_f32(0x41EF4B9Cu)); den = fmaf(x, den, eggroll_f32(0x435DC32Du));
    num = fmaf(x, num, eggroll_f32(0x4273CC76u)); den = fmaf(x, den, eggroll_f32(0x439A8CA3u));
    num = fmaf(x, num, eggroll_f32(0x426473ADu)); den = fmaf(x, den, eggroll_f32(0x43586D8Au));
    num = fmaf(x, num, eggroll_f32(0x41A05101u)); den = fmaf(x, den, eggroll_f32(0x42707982u));
    float x2 = x * x;
    float small = x + fmaf(x2, -0.5f, (x * x2) * (num / den));
    float large = eggroll_xla_log(x + 1.0f);
    return fabsf(x) < eggroll_f32(0x3ED413CDu) ? small : large;
}

/* One Horner step of erf_inv's polynomial, the coefficient picked per branch (branch-free). */
#define EGGROLL_ERFINV_STEP(central_bits, tail_bits) \
    p = fmaf(t, p, central ? eggroll_f32(central_bits) : eggroll_f32(tail_bits))

/* jax.random.normal's float32 for the 23-bit mantissa m of a draw, as XLA:CPU computes it:
 * u = max(lo, (1.m - 1) * 2 + lo), then sqrt(2) * erf_inv(u). */
EGGROLL_INLINE float xla_cpu_normal_f32(uint32_t m) {
    const float lo = eggroll_f32(0xBF7FFFFFu);
    float unit = eggroll_f32(m | 0x3F800000u) - 1.0f;
    float u = unit * 2.0f + lo;
    u = u > lo ? u : lo;
    float w = -eggroll_xla_log1p(u * -u);
    int central = w < 5.0f;
    float root = sqrtf(w);
    float t = central ? -2.5f + w : root + -3.0f;
    float p = central ? eggroll_f32(0x32F16588u) : eggroll_f32(0xB951F09Bu);
    EGGROLL_ERFINV_STEP(0x34B84B36u, 0x38D3B56Bu);
    EGGROLL_ERFINV_STEP(0xB66C7357u, 0x3AB0DC72u);
    EGGROLL_ERFINV_STEP(0xB6935AC1u, 0xBB70BDE7u);
    EGGROLL_ERFINV_STEP(0x396532DBu, 0x3BBC127Bu);
    EGGROLL_ERFINV_STEP(0xBAA45408u, 0xBBF9C5D7u);
    EGGROLL_ERFINV_STEP(0xBB88E4EFu, 0x3C1AA57Eu);
    EGGROLL_ERFINV_STEP(0x3E7C8F63u, 0x3F8036DBu);
    EGGROLL_ERFINV_STEP(0x3FC02E2Fu, 0x40354F7Eu);
    return (u * p) * eggroll_f32(0x3FB504F3u);
}

#endif
