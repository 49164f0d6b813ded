/* jax.random.normal for a batch of keys on the CPU, bit for bit: see native.py, which compiles
 * this file and calls it, and xla_normal.h for the arithmetic. */
#include "xla_normal.h"

#define BATCH 64

/* Flat positions [start, stop) of out (B, n), row-major: out[b, j] is the normal of key b at
 * position j of JAX's partitionable layout (counter (j >> 32, j & 0xFFFFFFFF), word y0 ^ y1).
 * table == NULL: float32 computed as XLA:CPU does; else out[b, j] = table[(word >> shift) & mask]
 * with elem_bytes-wide entries (4 or 2). */
VECTOR_CLONES
void eggroll_normal_rows(const uint32_t *keys, int64_t n, int64_t start, int64_t stop, const void *table,
                         int64_t elem_bytes, int64_t shift, uint32_t mask, void *out) {
    uint32_t index[BATCH];
    float values[BATCH];
    int64_t b = start / n, j = start % n;
    for (int64_t pos = start; pos < stop;) {
        int64_t count = n - j;
        if (count > BATCH) count = BATCH;
        if (count > stop - pos) count = stop - pos;
        uint32_t k0 = keys[2 * b], k1 = keys[2 * b + 1];
        for (int64_t i = 0; i < BATCH; ++i) {
            uint64_t counter = (uint64_t)(j + i);
            uint32_t y0, y1;
            threefry2x32(k0, k1, (uint32_t)(counter >> 32), (uint32_t)counter, &y0, &y1);
            index[i] = ((y0 ^ y1) >> shift) & mask;
        }
        if (table == 0) {
            for (int64_t i = 0; i < BATCH; ++i) values[i] = xla_cpu_normal_f32(index[i]);
            memcpy((float *)out + pos, values, (size_t)count * sizeof(float));
        } else if (elem_bytes == 4) {
            for (int64_t i = 0; i < count; ++i) ((uint32_t *)out)[pos + i] = ((const uint32_t *)table)[index[i]];
        } else {
            for (int64_t i = 0; i < count; ++i) ((uint16_t *)out)[pos + i] = ((const uint16_t *)table)[index[i]];
        }
        pos += count;
        j += count;
        if (j == n) {
            j = 0;
            ++b;
        }
    }
}

/* Every float32 normal value, indexed by mantissa: out[m] for m in [start, stop). */
VECTOR_CLONES
void eggroll_normal_f32_mantissas(int64_t start, int64_t stop, float *out) {
    for (int64_t m = start; m < stop; ++m) out[m - start] = xla_cpu_normal_f32((uint32_t)m);
}

/* The Threefry-2x32 hash of n counter pairs under n keys, element i of each contiguous array:
 * (y0[i], y1[i]) = threefry2x32((k0[i], k1[i]), (x0[i], x1[i])). */
VECTOR_CLONES
void eggroll_threefry2x32(const uint32_t *k0, const uint32_t *k1, const uint32_t *x0, const uint32_t *x1,
                          int64_t start, int64_t stop, uint32_t *y0, uint32_t *y1) {
    for (int64_t i = start; i < stop; ++i) threefry2x32(k0[i], k1[i], x0[i], x1[i], &y0[i], &y1[i]);
}
