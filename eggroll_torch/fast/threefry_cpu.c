/* Every antithetic pair's normal draws for a group of layers, on the CPU, bit for bit equal to
 * eggroll_torch.random.normal: see threefry_cpu.py, which compiles and calls this file. */
#include "xla_normal.h"

#define BATCH 64

/* out[l, p, j, k] (strides in elements) = normal(mantissa(hash(member_key(l, p), (row0 + j) * cols + k)))
 * for pairs p = pair0 .. pair0 + pairs - 1 (out's pair axis starts at pair0) and rows
 * j = 0 .. rows - 1 of a draw whose rows start at row0 (so one draw may fill two tensors), with
 * member_key(l, p) = fold_in(fold_in(keys[l], true_epoch), p). table == NULL: float32
 * computed as XLA:CPU does; else the value is table[mantissa], elements 4 or 2 bytes. */
VECTOR_CLONES
void eggroll_pair_normals(const uint32_t *keys, int64_t layers, int64_t pair0, int64_t pairs, uint32_t true_epoch,
                          int64_t row0, int64_t rows, int64_t cols, const void *table, int64_t elem_bytes,
                          int64_t shift, uint32_t mask, void *out, int64_t stride_l, int64_t stride_p,
                          int64_t stride_row, int64_t stride_col) {
    uint32_t index[BATCH];
    float values[BATCH];
    for (int64_t l = 0; l < layers; ++l) {
        uint32_t e0, e1;
        threefry2x32(keys[2 * l], keys[2 * l + 1], 0u, true_epoch, &e0, &e1);
        for (int64_t p = 0; p < pairs; ++p) {
            uint32_t m0, m1;
            threefry2x32(e0, e1, 0u, (uint32_t)(pair0 + p), &m0, &m1);
            for (int64_t k = 0; k < cols; ++k) {
                char *base = (char *)out + (l * stride_l + p * stride_p + k * stride_col) * elem_bytes;
                for (int64_t j0 = 0; j0 < rows; j0 += BATCH) {
                    int64_t n = rows - j0 < BATCH ? rows - j0 : BATCH;
                    for (int64_t i = 0; i < BATCH; ++i) {
                        uint32_t y0, y1;
                        threefry2x32(m0, m1, 0u, (uint32_t)((row0 + j0 + i) * cols + k), &y0, &y1);
                        index[i] = ((y0 ^ y1) >> shift) & mask;
                    }
                    if (table == 0) {
                        for (int64_t i = 0; i < BATCH; ++i) values[i] = xla_cpu_normal_f32(index[i]);
                        float *dst = (float *)base + j0 * stride_row;
                        for (int64_t i = 0; i < n; ++i) dst[i * stride_row] = values[i];
                    } else if (elem_bytes == 4) {
                        uint32_t *dst = (uint32_t *)base + j0 * stride_row;
                        for (int64_t i = 0; i < n; ++i) dst[i * stride_row] = ((const uint32_t *)table)[index[i]];
                    } else {
                        uint16_t *dst = (uint16_t *)base + j0 * stride_row;
                        for (int64_t i = 0; i < n; ++i) dst[i * stride_row] = ((const uint16_t *)table)[index[i]];
                    }
                }
            }
        }
    }
}
