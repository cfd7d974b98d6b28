/* F32 linear kernel: y[t, r] = sum_k x[t, k] W[r, k].
 *
 * Blocks of weight rows, read in place, go to the dot tile (cpu/dot_tile.h), which fixes each
 * output's summation order whatever n_tok or the row split; without AVX2 the reference twin
 * (ref/ref_ops.h) runs. One token runs the gemv kernel (cpu/linear_gemv.c), same order. */
#include "cpu/dot_tile.h"
#include "ref/ref_ops.h"

static const float *f32_row(const qe_linear *lin, int r, float *buf) { return lin->w.f32 + (size_t)r * lin->w.n_in; }

void qe_linear_f32_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                        void *scratch)
{
    if (n_tok == 1 && lin->gemv)
        qe_linear_gemv_rows(lin, x, y, row_begin, row_end, scratch);
    else if (qe_cpu_has_avx2())
        qe_dot_rows(lin, f32_row, x, n_tok, y, row_begin, row_end, scratch);
    else
        qe_linear_f32_rows_ref(&lin->w, x, n_tok, y, row_begin, row_end);
}
