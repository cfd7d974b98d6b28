/* The decoder forward pass, written once against the backend's op table.
 *
 * Tokens run in chunks of at most m->chunk_tokens (on a GPU m->pass_tokens; a benchmark's
 * m->max_batch) through the whole stack; each chunk's keys and values go into the KV cache
 * before its attention, so a chunk attends to everything before it. Kernels give every token the same numbers whatever the chunking, so prefill, cached
 * decoding and reuse of a cached prefix all agree exactly.
 *
 * The cache follows qe_kv_positions (model_config.h): a sliding-window layer keeps a ring of
 * window + chunk_tokens - 1 rows, enough for a chunk's own rows and the window before its first
 * token, so its numbers are those of a flat cache; only resuming further back than chunk_tokens
 * positions is lost (qe_model_cached_prefix then says 0).
 *
 * Ops report failure through the backend's sticky error; the pass checks it once, at the
 * backend's sync at the end (or after an allocation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define LOGIT_ROWS 16             /* lm_head rows computed per block (bounds scratch for big vocabularies) */

#define N_SCRATCH_BUFFERS (11 + 2 * QE_MAX_ROPES)

/* The scratch's backend buffers, in the order scratch_sizes gives their sizes. */
static void scratch_slots(qe_forward_scratch *s, float **slots[N_SCRATCH_BUFFERS])
{
    float **all[N_SCRATCH_BUFFERS] = {&s->x, &s->h, &s->q, &s->k, &s->v, &s->att, &s->tmp, &s->gate, &s->up,
                                      &s->logits, &s->seg_rows, &s->cos_table[0], &s->sin_table[0],
                                      &s->cos_table[1], &s->sin_table[1]};
    memcpy(slots, all, sizeof all);
}

/* Floats of each backend buffer of a pass in chunks of c tokens (the rope tables of ropes the
 * model lacks: 0), in scratch_slots' order. The one definition of the activations: scratch_alloc
 * allocates these, the memory estimate counts them. */
static void scratch_sizes(const qe_model_config *cfg, int c, size_t n_floats[N_SCRATCH_BUFFERS])
{
    size_t qd = (size_t)cfg->n_heads * cfg->head_dim, kvd = (size_t)cfg->n_kv_heads * cfg->head_dim;
    size_t rows = (size_t)c, table = rows * (size_t)(cfg->head_dim / 2);
    size_t sizes[N_SCRATCH_BUFFERS] = {
        rows * cfg->hidden, rows * cfg->hidden, rows * qd, rows * kvd, rows * kvd, rows * qd, rows * cfg->hidden,
        rows * cfg->intermediate, rows * cfg->intermediate, (size_t)LOGIT_ROWS * cfg->n_vocab, rows,
    };
    for (int r = 0; r < cfg->n_ropes && r < QE_MAX_ROPES; r++)
        sizes[11 + 2 * r] = sizes[11 + 2 * r + 1] = table;
    memcpy(n_floats, sizes, sizeof sizes);
}

uint64_t qe_forward_activation_bytes(const qe_model_config *cfg, int chunk_tokens)
{
    size_t n_floats[N_SCRATCH_BUFFERS];
    scratch_sizes(cfg, chunk_tokens, n_floats);
    uint64_t bytes = 0;
    for (int i = 0; i < N_SCRATCH_BUFFERS; i++)
        bytes += (uint64_t)n_floats[i] * sizeof(float);
    return bytes;
}

/* The host block's rope table and seg rows, rounded up to the attention args after them. */
static uint64_t host_args_offset(const qe_model_config *cfg, int chunk_tokens)
{
    uint64_t bytes = (uint64_t)chunk_tokens * ((cfg->head_dim / 2) * sizeof(float) + sizeof(int32_t));
    return (bytes + _Alignof(qe_attention_args) - 1) / _Alignof(qe_attention_args) * _Alignof(qe_attention_args);
}

uint64_t qe_forward_host_table_bytes(const qe_model_config *cfg, int chunk_tokens)
{
    return host_args_offset(cfg, chunk_tokens) + (uint64_t)chunk_tokens * sizeof(qe_attention_args);
}

int qe_forward_chunk_tokens(const qe_model_config *cfg, int chunk_tokens, int requested, int n_tokens)
{
    int chunk = requested > 0 ? requested : chunk_tokens;
    if (chunk > chunk_tokens && qe_config_has_sliding_window(cfg)) /* rings hold window + chunk_tokens - 1 rows */
        chunk = chunk_tokens;
    return n_tokens < chunk ? n_tokens : chunk;
}

int qe_forward_device_chunk(qe_device_kind device)
{
    return device == QE_DEVICE_CUDA ? QE_FORWARD_CHUNK_TOKENS_GPU : 0;
}

int qe_forward_max_n_in(const qe_model_config *cfg)
{
    int max_n_in = cfg->hidden > cfg->intermediate ? cfg->hidden : cfg->intermediate;
    return cfg->n_heads * cfg->head_dim > max_n_in ? cfg->n_heads * cfg->head_dim : max_n_in;
}

void qe_forward_scratch_free(qe_backend *be, qe_forward_scratch *s)
{
    float **all[N_SCRATCH_BUFFERS];
    scratch_slots(s, all);
    for (int i = 0; i < N_SCRATCH_BUFFERS; i++) {
        be->release(be, *all[i]);
        *all[i] = NULL;
    }
    free(s->host_table);
    s->host_table = NULL;
    s->host_seg_rows = NULL; /* the host table's tail */
    s->host_attention_args = NULL;
    s->tokens = 0;
}

/* The model's scratch for chunks of c tokens: kept when it holds them, else allocated anew. */
static qe_status scratch_reserve(qe_model *m, int c, qe_error *err)
{
    qe_backend *be = m->backend;
    qe_forward_scratch *s = &m->scratch;
    if (s->tokens >= c)
        return QE_OK;
    qe_forward_scratch_free(be, s);
    float **slots[N_SCRATCH_BUFFERS];
    size_t n_floats[N_SCRATCH_BUFFERS];
    scratch_slots(s, slots);
    scratch_sizes(&m->cfg, c, n_floats);
    s->host_table = malloc(qe_forward_host_table_bytes(&m->cfg, c));
    bool ok = s->host_table != NULL;
    if (ok) {
        s->host_seg_rows = (int32_t *)(s->host_table + (size_t)c * (m->cfg.head_dim / 2));
        s->host_attention_args = (qe_attention_args *)((char *)s->host_table + host_args_offset(&m->cfg, c));
    }
    for (int i = 0; i < N_SCRATCH_BUFFERS; i++)
        if (n_floats[i] && !(*slots[i] = be->alloc(be, n_floats[i])))
            ok = false;
    if (!ok) {
        qe_forward_scratch_free(be, s);
        /* a GPU backend's sticky error has the numbers (needed, free, device); the host's has none */
        if (be->sync(be, err) != QE_OK)
            return qe_fail_context(err, "%s: activations of %d tokens", m->path, c);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for activations of %d tokens", m->path, c);
    }
    s->tokens = c;
    return QE_OK;
}

size_t qe_kv_row_floats(const qe_model_config *cfg) { return (size_t)cfg->n_kv_heads * cfg->head_dim; }

int qe_model_cache_capacity(const qe_model *model)
{
    int most = 0;
    for (int i = 0; i < qe_model_sequence_caches(model); i++)
        if (qe_model_cache(model, i)->kv_capacity > most)
            most = qe_model_cache(model, i)->kv_capacity;
    return most;
}

/* Makes room in cache kv for n_positions, growing it geometrically; a sliding-window layer's
 * rows stop at its ring (qe_kv_positions). A ring grows only before it has wrapped, so the rows
 * kept are positions [0, n_cached) in order. */
static qe_status reserve_cache(qe_model *m, qe_kv_cache *kv, int n_positions, qe_error *err)
{
    if (n_positions <= kv->kv_capacity)
        return QE_OK;
    int cap = qe_kv_capacity(n_positions, m->max_context);
    size_t row = qe_kv_row_floats(&m->cfg);
    qe_backend *be = m->backend;
    /* growing holds a layer's old and new rows at once: without the scratch, so that the peak
     * stays what the estimate counts (weights + cache + one pass's activations) */
    qe_forward_scratch_free(be, &m->scratch);
    for (int i = 0; i < m->cfg.n_layers; i++) {
        const qe_layer_config *layer = &m->cfg.layers[i];
        int old_rows = qe_kv_positions(layer, kv->kv_capacity, m->max_context, m->chunk_tokens);
        int rows = qe_kv_positions(layer, cap, m->max_context, m->chunk_tokens);
        if (rows == old_rows)
            continue;
        size_t keep = (size_t)(kv->n_cached < old_rows ? kv->n_cached : old_rows) * row;
        float *k = be->grow(be, kv->k_cache[i], keep, (size_t)rows * row);
        if (k)
            kv->k_cache[i] = k;
        float *v = k ? be->grow(be, kv->v_cache[i], keep, (size_t)rows * row) : NULL;
        if (!v) {
            if (be->sync(be, err) != QE_OK) /* a GPU backend's message has the numbers */
                return qe_fail_context(err, "%s: a %d-position KV cache", m->path, cap);
            return qe_fail(err, QE_ENOMEM, "%s: out of memory for a %d-position KV cache", m->path, cap);
        }
        kv->v_cache[i] = v;
    }
    int32_t *ids = realloc(kv->cached_ids, (size_t)cap * sizeof *ids);
    if (!ids)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for a %d-position KV cache", m->path, cap);
    kv->cached_ids = ids;
    kv->kv_capacity = cap;
    return QE_OK;
}

qe_status qe_kv_cache_init(qe_kv_cache *kv, int n_layers, qe_error *err)
{
    memset(kv, 0, sizeof *kv);
    kv->k_cache = calloc(n_layers, sizeof *kv->k_cache);
    kv->v_cache = calloc(n_layers, sizeof *kv->v_cache);
    if (kv->k_cache && kv->v_cache)
        return QE_OK;
    free(kv->k_cache);
    free(kv->v_cache);
    memset(kv, 0, sizeof *kv);
    return qe_fail(err, QE_ENOMEM, "out of memory for a KV cache");
}

void qe_kv_cache_free(qe_backend *be, int n_layers, qe_kv_cache *kv)
{
    for (int i = 0; be && i < n_layers && kv->k_cache && kv->v_cache; i++) {
        be->release(be, kv->k_cache[i]);
        be->release(be, kv->v_cache[i]);
    }
    free(kv->k_cache);
    free(kv->v_cache);
    free(kv->cached_ids);
    memset(kv, 0, sizeof *kv);
}

/* The first position after 0 a pass on cache kv may resume from: a ring of R rows that has
 * wrapped holds positions [kv_written_end - R, n_cached), and resuming at p needs p - window + 1
 * .. p - 1. */
static int resume_floor(const qe_model *m, const qe_kv_cache *kv)
{
    int floor = 0;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        int window = m->cfg.layers[i].sliding_window;
        int ring = qe_kv_ring(&m->cfg.layers[i], m->max_context, m->chunk_tokens);
        if (window > 0 && kv->kv_written_end > ring && kv->kv_written_end - ring + window - 1 > floor)
            floor = kv->kv_written_end - ring + window - 1;
    }
    return floor;
}

/* dst rows of positions pos0 .. pos0 + c - 1 = src[c] rows; in a ring that is at most two runs */
static void write_cache(qe_backend *be, float *cache, int ring, int pos0, int c, size_t row, const float *src)
{
    int first_row = pos0 % ring, n_first = c < ring - first_row ? c : ring - first_row;
    be->copy(be, cache + (size_t)first_row * row, src, (size_t)n_first * row);
    if (n_first < c)
        be->copy(be, cache, src + (size_t)n_first * row, (size_t)(c - n_first) * row);
}

/* Where a pass's tokens sit: token i in cache row pos0 + i, at position pos0 + i; or, packed
 * (seg_start != NULL; the shared prefix is positions [0, pos0)), at position pos0 + i -
 * seg_start[g] in its segment g (qe_model_forward_packed). */
typedef struct {
    int pos0;
    const int *seg_start;         /* [n_segs + 1] or NULL */
    int n_segs;
    qe_kv_cache *const *seq_caches; /* [n_tok] or NULL: token t is the next position of its own
                                       sequence's cache (qe_model_forward_sequences; one chunk) */
    bool is_step;                 /* a decode step (one token, or one of each sequence): its
                                     positions are in s->seg_rows, for a recorded run (run_layers) */
} pass_layout;

/* Tokens [start, start + c) of a packed pass: each one's seg_row (the cache row of its segment's
 * first token, backend.h) into s->host_seg_rows and the backend's s->seg_rows. */
static void fill_seg_rows(const qe_model *m, const pass_layout *L, int start, int c, qe_forward_scratch *s)
{
    int g = 0;
    while (L->seg_start[g + 1] <= start)
        g++;
    for (int t = 0; t < c; t++) {
        while (L->seg_start[g + 1] <= start + t)
            g++;
        s->host_seg_rows[t] = L->pos0 + L->seg_start[g];
    }
    /* int32 values travel bit for bit: upload is a copy of 4-byte elements */
    m->backend->upload(m->backend, s->seg_rows, (const float *)s->host_seg_rows, (size_t)c);
}

/* cos/sin [c, head_dim/2] of the positions of rows p.. (p + t, packed as s->host_seg_rows says,
 * or each sequence's next) for every rope. As in transformers, the angle is a float32 product
 * (position x inv_freq); its cosine and sine are then exact. */
static void fill_rope_tables(const qe_model *m, const pass_layout *L, int p, int c, qe_forward_scratch *s)
{
    int half = m->cfg.head_dim / 2;
    float inv_freq[half];
    size_t n = (size_t)c * half;
    for (int r = 0; r < m->cfg.n_ropes; r++) {
        qe_rope_inv_freq(&m->cfg.ropes[r], m->cfg.head_dim, m->cfg.torch_dtype, inv_freq);
        for (int is_sin = 0; is_sin < 2; is_sin++) {
            for (int t = 0; t < c; t++) {
                int pos = L->seq_caches  ? L->seq_caches[t]->n_cached
                          : L->seg_start ? L->pos0 + p + t - s->host_seg_rows[t]
                                         : p + t;
                for (int i = 0; i < half; i++) {
                    float angle = (float)pos * inv_freq[i];
                    s->host_table[(size_t)t * half + i] = (float)(is_sin ? sin(angle) : cos(angle));
                }
            }
            m->backend->upload(m->backend, is_sin ? s->sin_table[r] : s->cos_table[r], s->host_table, n);
        }
    }
}

/* Layer li's attention of queries q [c, n_heads * head_dim] at cache kv's rows pos0.. into out;
 * in a decode step, that of the step's token t. */
static qe_attention_args attention_args(const qe_model *m, int li, const pass_layout *L, const qe_kv_cache *kv,
                                        int pos0, int c, int t, const float *q, float *out,
                                        const qe_forward_scratch *s)
{
    const qe_model_config *cfg = &m->cfg;
    return (qe_attention_args){
        .q = q, .k_cache = kv->k_cache[li], .v_cache = kv->v_cache[li], .out = out,
        .n_tok = c, .pos0 = pos0, .n_heads = cfg->n_heads, .n_kv_heads = cfg->n_kv_heads, .head_dim = cfg->head_dim,
        .window = cfg->layers[li].sliding_window,
        .kv_ring = qe_kv_ring(&cfg->layers[li], m->max_context, m->chunk_tokens), .scale = cfg->attn_scale,
        .seg_row = L->seg_start ? (const int32_t *)s->seg_rows : NULL, .shared_len = L->seg_start ? L->pos0 : 0,
        .pos_buf = L->is_step ? (const int32_t *)s->seg_rows + t : NULL,
    };
}

/* Layer li's keys k and values v [c, n_kv_heads * head_dim] of positions pos0.. into cache kv,
 * then attention of queries q [c, n_heads * head_dim] over it into out; q and k rotated first. */
static void attend(qe_model *m, int li, const pass_layout *L, qe_kv_cache *kv, int pos0, int c, float *q, float *k,
                   const float *v, float *out, const qe_forward_scratch *s)
{
    const qe_model_config *cfg = &m->cfg;
    qe_backend *be = m->backend;
    size_t kvd = qe_kv_row_floats(cfg);
    int rope = cfg->layers[li].rope_index;
    qe_attention_args args = attention_args(m, li, L, kv, pos0, c, 0, q, out, s);
    if (c == 1 && !L->seg_start) { /* a decode step: rope, cache rows and attention in the op's one launch */
        qe_backend_attend_rows(be, 1, &args, k, v, s->cos_table[rope], s->sin_table[rope], m->compute_dtype);
        return;
    }
    qe_backend_rope_qk(be, q, k, c, cfg->n_heads, cfg->n_kv_heads, cfg->head_dim, s->cos_table[rope],
                       s->sin_table[rope], m->compute_dtype);
    write_cache(be, kv->k_cache[li], args.kv_ring, pos0, c, kvd, k);
    write_cache(be, kv->v_cache[li], args.kv_ring, pos0, c, kvd, v);
    be->attention(be, &args, m->compute_dtype);
}

static void run_layer(qe_model *m, int li, const pass_layout *L, int pos0, int c, qe_forward_scratch *s)
{
    const qe_model_config *cfg = &m->cfg;
    const qe_layer *l = &m->layers[li];
    qe_backend *be = m->backend;
    qe_dtype dt = m->compute_dtype;
    int hd = cfg->head_dim, rope = cfg->layers[li].rope_index;
    size_t n_x = (size_t)c * cfg->hidden;

    if (li == 0) /* the later layers' norm comes with the residual add that ends the layer before */
        be->rmsnorm(be, s->x, l->attn_norm, cfg->norm_weight_offset, cfg->rms_norm_eps, c, cfg->hidden, dt, s->h);
    const qe_backend_linear *qkv[] = {l->q, l->k, l->v};
    qe_backend_linears(be, 3, qkv, s->h, c, dt, (float *const[]){s->q, s->k, s->v});
    if (l->q_norm) {
        be->rmsnorm(be, s->q, l->q_norm, cfg->norm_weight_offset, cfg->rms_norm_eps, c * cfg->n_heads, hd, dt, s->q);
        be->rmsnorm(be, s->k, l->k_norm, cfg->norm_weight_offset, cfg->rms_norm_eps, c * cfg->n_kv_heads, hd, dt,
                    s->k);
    }
    if (L->seq_caches) { /* each token to its own sequence's cache, attending to that alone */
        size_t q_row = (size_t)cfg->n_heads * hd;
        for (int t = 0; t < c; t++)
            s->host_attention_args[t] = attention_args(m, li, L, L->seq_caches[t], L->seq_caches[t]->n_cached, 1, t,
                                                       s->q + t * q_row, s->att + t * q_row, s);
        qe_backend_attend_rows(be, c, s->host_attention_args, s->k, s->v, s->cos_table[rope], s->sin_table[rope], dt);
    } else {
        attend(m, li, L, &m->kv, pos0, c, s->q, s->k, s->v, s->att, s);
    }
    be->linear(be, l->o, s->att, c, dt, s->tmp);
    if (l->post_attn_norm)
        be->rmsnorm(be, s->tmp, l->post_attn_norm, cfg->norm_weight_offset, cfg->rms_norm_eps, c, cfg->hidden, dt,
                    s->tmp);
    qe_backend_add_rmsnorm(be, s->x, s->tmp, l->ffn_norm, cfg->norm_weight_offset, cfg->rms_norm_eps, c, cfg->hidden,
                           dt, s->h);

    qe_backend_glu_linears(be, cfg->activation, l->gate, l->up, s->h, c, cfg->intermediate, dt, s->gate, s->up);
    be->linear(be, l->down, s->gate, c, dt, s->tmp);
    if (l->post_ffn_norm)
        be->rmsnorm(be, s->tmp, l->post_ffn_norm, cfg->norm_weight_offset, cfg->rms_norm_eps, c, cfg->hidden, dt,
                    s->tmp);
    if (li + 1 < cfg->n_layers)
        qe_backend_add_rmsnorm(be, s->x, s->tmp, m->layers[li + 1].attn_norm, cfg->norm_weight_offset,
                               cfg->rms_norm_eps, c, cfg->hidden, dt, s->h);
    else
        be->add(be, s->x, s->tmp, n_x, dt);
}

/* What the caller wants of the logit rows: host logits and/or row stats (with targets). */
typedef struct {
    float *logits;                /* [n_rows, n_vocab] or NULL */
    const int32_t *targets;       /* [n_rows] or NULL */
    qe_row_stats *stats;          /* [n_rows] or NULL */
} head_out;

/* Final norm and head for the n residual rows at x (backend memory; not s->h). */
static void run_head(qe_model *m, const float *x, int n_rows, qe_forward_scratch *s, head_out out)
{
    const qe_model_config *cfg = &m->cfg;
    qe_backend *be = m->backend;
    for (int r = 0; r < n_rows; r += LOGIT_ROWS) {
        int n = n_rows - r < LOGIT_ROWS ? n_rows - r : LOGIT_ROWS;
        float *hr = s->h + (size_t)r * cfg->hidden;
        be->rmsnorm(be, x + (size_t)r * cfg->hidden, m->final_norm, cfg->norm_weight_offset, cfg->rms_norm_eps, n,
                    cfg->hidden, m->compute_dtype, hr);
        be->linear(be, m->lm_head, hr, n, m->compute_dtype, s->logits);
        if (out.logits)
            be->download(be, out.logits + (size_t)r * cfg->n_vocab, s->logits, (size_t)n * cfg->n_vocab);
        if (out.stats)
            be->row_stats(be, s->logits, n, cfg->n_vocab, out.targets ? out.targets + r : NULL, out.stats + r);
    }
}

/* The logit rows chunk [start, start + c) owes: rows [first_logit_row, n_tok) of an unpacked
 * pass, each segment's last row of a packed one (gathered into s->tmp first). */
static void chunk_head(qe_model *m, const pass_layout *L, int start, int c, int first_logit_row, head_out out)
{
    qe_forward_scratch *s = &m->scratch;
    size_t hidden = (size_t)m->cfg.hidden, n_vocab = (size_t)m->cfg.n_vocab;
    if (!L->seg_start) {
        if (start + c <= first_logit_row)
            return;
        int r0 = first_logit_row > start ? first_logit_row - start : 0;
        size_t row = (size_t)(start + r0 - first_logit_row);
        head_out at = {out.logits ? out.logits + row * n_vocab : NULL, out.targets ? out.targets + row : NULL,
                       out.stats ? out.stats + row : NULL};
        run_head(m, s->x + r0 * hidden, c - r0, s, at);
        return;
    }
    int g0 = -1, n = 0;
    for (int g = 0; g < L->n_segs; g++) {
        int last = L->seg_start[g + 1] - 1;
        if (last < start || last >= start + c)
            continue;
        if (g0 < 0)
            g0 = g;
        m->backend->copy(m->backend, s->tmp + n++ * hidden, s->x + (size_t)(last - start) * hidden, hidden);
    }
    if (n == 0)
        return;
    head_out at = {out.logits ? out.logits + (size_t)g0 * n_vocab : NULL, NULL, out.stats ? out.stats + g0 : NULL};
    run_head(m, s->tmp, n, s, at);
}

#define STEP_KEY_CACHES 64 /* sequences a recorded step's key names; more run unrecorded */

/* The layers over chunk [p, p + c) of L. A decode step's layers are ~300 small kernels: where the
 * backend records runs (graph_begin) they are recorded once per cache set and replayed, their
 * positions uploaded to s->seg_rows first (pos_buf; a decode step has no packed segments). The
 * key is the caches the kernels' arguments name; the backend drops a recording when its
 * buffers move. */
static void run_layers(qe_model *m, const pass_layout *L, int p, int c, qe_forward_scratch *s)
{
    qe_backend *be = m->backend;
    /* the token count and the entry point (their ops differ), then the caches */
    const void *key[1 + STEP_KEY_CACHES] = {(const void *)(uintptr_t)(2 * c + (L->seq_caches != NULL))};
    bool is_recorded = false;
    if (L->is_step) {
        for (int t = 0; t < c; t++)
            s->host_seg_rows[t] = L->seq_caches ? L->seq_caches[t]->n_cached : p + t;
        be->upload(be, s->seg_rows, (const float *)s->host_seg_rows, (size_t)c);
        for (int t = 0; t < c && t < STEP_KEY_CACHES; t++)
            key[1 + t] = L->seq_caches ? (const void *)L->seq_caches[t] : (const void *)&m->kv;
        if (be->graph_begin && c <= STEP_KEY_CACHES) {
            if (be->graph_begin(be, key, (size_t)(1 + c) * sizeof *key))
                return;
            is_recorded = true;
        }
    }
    for (int li = 0; li < m->cfg.n_layers; li++)
        run_layer(m, li, L, p, c, s);
    if (is_recorded)
        be->graph_end(be);
}

static qe_status forward_pass(qe_model *m, const int32_t *ids, int n_tok, const pass_layout *L, int first_logit_row,
                              head_out out, qe_error *err)
{
    const qe_model_config *cfg = &m->cfg;
    int pos0 = L->pos0;
    qe_status rc = reserve_cache(m, &m->kv, pos0 + n_tok, err);
    if (rc != QE_OK)
        return rc;
    int requested = m->max_batch > 0 ? m->max_batch : m->pass_tokens;
    int chunk = qe_forward_chunk_tokens(cfg, m->chunk_tokens, requested, n_tok);
    int max_n_in = qe_forward_max_n_in(cfg);
    qe_backend *be = m->backend;
    if ((rc = be->reserve_workspace(be, chunk, pos0 + n_tok, cfg->n_heads, max_n_in, err)) != QE_OK)
        return rc;
    if ((rc = scratch_reserve(m, chunk, err)) != QE_OK)
        return rc;
    qe_forward_scratch *s = &m->scratch;
    m->kv.n_cached = pos0; /* positions past pos0 are overwritten below */
    if (pos0 == 0)
        m->kv.kv_written_end = 0;
    for (int start = 0; start < n_tok; start += chunk) {
        int c = n_tok - start < chunk ? n_tok - start : chunk;
        int p = pos0 + start;
        if (L->seg_start)
            fill_seg_rows(m, L, start, c, s);
        fill_rope_tables(m, L, p, c, s);
        be->embed(be, m->embed, ids + start, c, cfg->embed_scale, m->compute_dtype, s->x);
        run_layers(m, L, p, c, s);
        if (!L->seg_start) { /* a packed pass's rows are no sequence to resume */
            memcpy(m->kv.cached_ids + p, ids + start, (size_t)c * sizeof *ids);
            m->kv.n_cached = p + c;
        }
        if (p + c > m->kv.kv_written_end)
            m->kv.kv_written_end = p + c;
        if (out.logits || out.stats)
            chunk_head(m, L, start, c, first_logit_row, out);
    }
    if ((rc = be->sync(be, err)) != QE_OK) {
        m->kv.n_cached = m->kv.kv_written_end = 0; /* what the failed pass wrote is not to be trusted */
        return qe_fail_context(err, "%s", m->path);
    }
    return QE_OK;
}

/* What every pass checks: runnable, tokens in the vocabulary, rows within the window. */
static qe_status check_pass(const qe_model *m, const int32_t *ids, int n_tok, int pos0, qe_error *err)
{
    if (!m->is_runnable)
        return qe_fail(err, QE_EINVAL, "%s: loaded for metadata only; it cannot run", m->path);
    if (n_tok <= 0)
        return qe_fail(err, QE_EINVAL, "%s: forward pass over %d tokens", m->path, n_tok);
    if (pos0 < 0 || pos0 > m->kv.n_cached)
        return qe_fail(err, QE_EINVAL, "%s: forward from position %d but only %d positions are cached", m->path, pos0,
                       m->kv.n_cached);
    if (pos0 + n_tok > m->max_context)
        return qe_fail(err, QE_EINVAL, "%s: %d positions exceed the %d-token window", m->path, pos0 + n_tok,
                       m->max_context);
    for (int t = 0; t < n_tok; t++)
        if (ids[t] < 0 || ids[t] >= m->cfg.n_vocab)
            return qe_fail(err, QE_EINVAL, "%s: token id %d at position %d is outside the vocabulary of %d", m->path,
                           ids[t], pos0 + t, m->cfg.n_vocab);
    return QE_OK;
}

qe_status qe_model_forward(qe_model *m, const int32_t *ids, int n_tok, int pos0, int first_logit_row, float *logits,
                           const int32_t *targets, qe_row_stats *stats, qe_error *err)
{
    qe_status rc = check_pass(m, ids, n_tok, pos0, err);
    if (rc != QE_OK)
        return rc;
    if (pos0 > 0 && pos0 < resume_floor(m, &m->kv))
        return qe_fail(err, QE_EINVAL, "%s: forward from position %d, but the sliding-window layers' caches hold the "
                       "keys to resume from position %d on only (or 0)", m->path, pos0, resume_floor(m, &m->kv));
    if (targets)
        for (int r = first_logit_row > 0 ? first_logit_row : 0; r < n_tok; r++)
            if (targets[r - first_logit_row] >= m->cfg.n_vocab) /* negative: no target */
                return qe_fail(err, QE_EINVAL, "%s: target id %d of row %d is outside the vocabulary of %d", m->path,
                               targets[r - first_logit_row], r, m->cfg.n_vocab);
    pass_layout layout = {.pos0 = pos0, .is_step = n_tok == 1};
    return forward_pass(m, ids, n_tok, &layout, first_logit_row, (head_out){logits, targets, stats}, err);
}

qe_status qe_model_forward_packed(qe_model *m, const int32_t *ids, const int *seg_start, int n_segs, int shared_len,
                                  float *logits, qe_row_stats *stats, qe_error *err)
{
    if (n_segs <= 0 || seg_start[0] != 0)
        return qe_fail(err, QE_EINVAL, "%s: packed pass of %d segments from token %d", m->path, n_segs,
                       n_segs > 0 ? seg_start[0] : 0);
    int n_tok = seg_start[n_segs];
    qe_status rc = check_pass(m, ids, n_tok, shared_len, err);
    if (rc != QE_OK)
        return rc;
    for (int g = 0; g < n_segs; g++)
        if (seg_start[g + 1] <= seg_start[g])
            return qe_fail(err, QE_EINVAL, "%s: packed segment %d is empty (tokens %d..%d)", m->path, g, seg_start[g],
                           seg_start[g + 1]);
    if (qe_config_has_sliding_window(&m->cfg))
        return qe_fail(err, QE_EUNSUPPORTED, "%s: packed segments over sliding-window layers", m->path);
    /* the pass leaves n_cached at pos0: its rows past the prefix are no sequence to resume */
    pass_layout layout = {.pos0 = shared_len, .seg_start = seg_start, .n_segs = n_segs};
    return forward_pass(m, ids, n_tok, &layout, 0, (head_out){logits, NULL, stats}, err);
}

qe_status qe_model_forward_sequences(qe_model *m, qe_kv_cache *const *caches, const int32_t *ids, int n,
                                     float *logits, qe_row_stats *stats, qe_error *err)
{
    const qe_model_config *cfg = &m->cfg;
    if (!m->is_runnable)
        return qe_fail(err, QE_EINVAL, "%s: loaded for metadata only; it cannot run", m->path);
    if (n <= 0 || n > m->chunk_tokens)
        return qe_fail(err, QE_EINVAL, "%s: a pass of %d sequences (1 to %d)", m->path, n, m->chunk_tokens);
    int max_positions = 0;
    for (int b = 0; b < n; b++) {
        int pos = caches[b]->n_cached;
        if (pos + 1 > m->max_context)
            return qe_fail(err, QE_EINVAL, "%s: sequence %d's %d positions exceed the %d-token window", m->path, b,
                           pos + 1, m->max_context);
        if (ids[b] < 0 || ids[b] >= cfg->n_vocab)
            return qe_fail(err, QE_EINVAL, "%s: token id %d of sequence %d is outside the vocabulary of %d", m->path,
                           ids[b], b, cfg->n_vocab);
        for (int a = 0; a < b; a++)
            if (caches[a] == caches[b]) /* both would take the same position */
                return qe_fail(err, QE_EINVAL, "%s: sequences %d and %d share a cache", m->path, a, b);
        if (pos + 1 > max_positions)
            max_positions = pos + 1;
    }
    qe_status rc = QE_OK;
    for (int b = 0; b < n && rc == QE_OK; b++)
        rc = reserve_cache(m, caches[b], caches[b]->n_cached + 1, err);
    qe_backend *be = m->backend;
    if (rc != QE_OK ||
        (rc = be->reserve_workspace(be, n, max_positions, cfg->n_heads, qe_forward_max_n_in(cfg), err)) != QE_OK ||
        (rc = scratch_reserve(m, n, err)) != QE_OK)
        return rc;
    qe_forward_scratch *s = &m->scratch;
    pass_layout layout = {.seq_caches = caches, .is_step = true};
    fill_rope_tables(m, &layout, 0, n, s);
    be->embed(be, m->embed, ids, n, cfg->embed_scale, m->compute_dtype, s->x);
    run_layers(m, &layout, 0, n, s);
    for (int b = 0; b < n; b++) { /* the positions were read as n_cached through the layers */
        qe_kv_cache *kv = caches[b];
        kv->cached_ids[kv->n_cached++] = ids[b];
        if (kv->n_cached > kv->kv_written_end)
            kv->kv_written_end = kv->n_cached;
    }
    run_head(m, s->x, n, s, (head_out){logits, NULL, stats});
    if ((rc = be->sync(be, err)) != QE_OK) {
        for (int b = 0; b < n; b++)
            caches[b]->n_cached = caches[b]->kv_written_end = 0;
        return qe_fail_context(err, "%s", m->path);
    }
    return QE_OK;
}

int qe_model_cached_prefix(const qe_model *m, const int32_t *ids, int n)
{
    int p = 0;
    while (p < n && p < m->kv.n_cached && m->kv.cached_ids[p] == ids[p])
        p++;
    return p < resume_floor(m, &m->kv) ? 0 : p;
}
