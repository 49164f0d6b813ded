/* The population LayerNorm of eggroll_torch.nn on the CPU, float32: every row normalised and given
 * its member's weight and bias in one pass. See member_norm_cpu.py, which compiles and calls this
 * file; the CUDA counterpart is the Triton kernel of member_kernels.py. */
#include "xla_normal.h"

/* Independent partial sums: the loader does not allow reassociation, so a single accumulator
 * would keep each reduction scalar and latency-bound; these lanes vectorize, in a fixed order
 * that every clone of the function shares. */
#define LANES 16

EGGROLL_INLINE double combine(double *acc) {
    for (int width = LANES / 2; width > 0; width /= 2)
        for (int k = 0; k < width; ++k) acc[k] += acc[k + width];
    return acc[0];
}

EGGROLL_INLINE double row_sum(const float *x, int64_t n) {
    double acc[LANES] = {0};
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; ++k) acc[k] += (double)x[j + k];
    for (int k = 0; j + k < n; ++k) acc[k] += (double)x[j + k];
    return combine(acc);
}

EGGROLL_INLINE double row_squared_deviations(const float *x, int64_t n, double mean) {
    double acc[LANES] = {0};
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; ++k) {
            double d = (double)x[j + k] - mean;
            acc[k] += d * d;
        }
    for (int k = 0; j + k < n; ++k) {
        double d = (double)x[j + k] - mean;
        acc[k] += d * d;
    }
    return combine(acc);
}

/* A member's parameter rounded once in float32, as the functional layer forms it: shared + s * noise
 * with s = +-1 (the product is exact, so this is shared + noise or shared - noise). */
EGGROLL_INLINE void member_param(float *dst, const float *shared, const float *noise, float sign, int64_t n) {
    for (int64_t j = 0; j < n; ++j) dst[j] = shared[j] + sign * noise[j];
}

/* out[r, :] for rows r = row0 .. row0 + rows - 1 of x (M, width), both contiguous; member
 * m = r / rows_per_member, of pair m / 2 and sign s = +1 for even m, -1 for odd. w, b: (width,)
 * or NULL (no affine term); w_noise, b_noise: (P, width) sigma-scaled pair noise, or NULL for the
 * shared value. Per row, in double: mean = sum(x) / width, then the biased variance
 * var = sum((x - mean)^2) / width (two passes), rstd = 1 / sqrt(var + eps). Each output is then
 * y = (float)((x - mean) * rstd), followed in float32 by y * w_m, then + b_m. scratch: room for
 * 2 * width floats (a member's w_m and b_m, formed once per member). */
VECTOR_CLONES
void eggroll_member_layer_norm(const float *x, float *out, int64_t row0, int64_t rows, int64_t width,
                               int64_t rows_per_member, const float *w, const float *w_noise, const float *b,
                               const float *b_noise, double eps, float *scratch) {
    int w_noisy = w != NULL && w_noise != NULL, b_noisy = b != NULL && b_noise != NULL;
    const float *wm = w_noisy ? scratch : w, *bm = b_noisy ? scratch + width : b;
    int64_t formed = -1;
    for (int64_t r = row0; r < row0 + rows; ++r) {
        int64_t member = r / rows_per_member;
        if (member != formed) {
            float sign = member % 2 ? -1.0f : 1.0f;
            if (w_noisy) member_param(scratch, w, w_noise + member / 2 * width, sign, width);
            if (b_noisy) member_param(scratch + width, b, b_noise + member / 2 * width, sign, width);
            formed = member;
        }
        const float *xr = x + r * width;
        float *yr = out + r * width;
        double mean = row_sum(xr, width) / (double)width;
        double rstd = 1.0 / sqrt(row_squared_deviations(xr, width, mean) / (double)width + eps);
        if (wm != NULL && bm != NULL) {
            for (int64_t j = 0; j < width; ++j) yr[j] = (float)(((double)xr[j] - mean) * rstd) * wm[j] + bm[j];
        } else if (wm != NULL) {
            for (int64_t j = 0; j < width; ++j) yr[j] = (float)(((double)xr[j] - mean) * rstd) * wm[j];
        } else if (bm != NULL) {
            for (int64_t j = 0; j < width; ++j) yr[j] = (float)(((double)xr[j] - mean) * rstd) + bm[j];
        } else {
            for (int64_t j = 0; j < width; ++j) yr[j] = (float)(((double)xr[j] - mean) * rstd);
        }
    }
}
