/* F32 linear kernels: y[t, r] = sum_k x[t, k] W[r, k].
 *
 * The fast kernel hands blocks of weight rows, read in place, to the dot tile (cpu/dot_tile.h),
 * which fixes each output's summation order whatever n_tok or the row split; without AVX2 the
 * reference twin runs. */
#include "cpu/dot_tile.h"
#include "linear.h"
#include "linear_quant.h"

static const float *f32_row(const qe_linear *lin, int r, float *buf)
{
    return (const float *)lin->weight + (size_t)r * lin->n_in;
}

void qe_linear_f32_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    if (!qe_cpu_has_avx2() || !qe_dot_rows(lin, f32_row, x, n_tok, y, row_begin, row_end))
        qe_linear_f32_rows_ref(lin, x, n_tok, y, row_begin, row_end);
}

void qe_linear_f32_rows_ref(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    const float *w = lin->weight;
    for (int t = 0; t < n_tok; t++)
        for (int r = row_begin; r < row_end; r++) {
            double s = 0;
            for (int k = 0; k < lin->n_in; k++)
                s += (double)w[(size_t)r * lin->n_in + k] * x[(size_t)t * lin->n_in + k];
            y[(size_t)t * lin->n_out + r] = (float)s;
        }
}
