/* tokenizer — the BPE core: vocabulary and merges in hash maps, added-token matching, the
 * merge loop (a heap of candidate pairs over a linked list of symbols, as HF's BPE::merge_all
 * and llama.cpp's SPM tokenizer do it). Decoding is in tokenizer_decode.c. Normalizers and pre-tokenizer live in
 * tokenizer_pretok.c, the tokenizer.json front-end in tokenizer_hf.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"


static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    return key ^ (key >> 33);
}

static int vocab_find(const qe_tokenizer *tok, const char *s, size_t len)
{
    for (size_t i = hash_bytes(s, len) & tok->vocab_mask;; i = (i + 1) & tok->vocab_mask) {
        int id = tok->vocab_slots[i];
        if (id < 0)
            return -1;
        if ((size_t)tok->text_len[id] == len && memcmp(qe_token_text(tok, id), s, len) == 0)
            return id;
    }
}

/* Slot of the pair, empty or holding it. */
static size_t merge_slot(const qe_tokenizer *tok, int32_t left, int32_t right)
{
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = hash_pair(key) & tok->merge_mask;
    while (tok->merge_keys[i] != UINT64_MAX && tok->merge_keys[i] != key)
        i = (i + 1) & tok->merge_mask;
    return i;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p *= 2;
    return p;
}

/* ---- the piece cache ------------------------------------------------------------------------
 * The BPE of pieces already seen, as HF's BPE keeps one: text is made of a few thousand distinct
 * words, and lm-eval encodes every context once per continuation besides once alone (MMLU: a
 * 600-token prompt five times a document). A piece's tokens depend on its bytes alone, so a hit
 * gives what the merge loop would. Bounded: once PIECE_CACHE_MAX_ENTRIES are in, it takes no
 * more. Shared by the threads that encode with one tokenizer (a scoring batch tokenizes on every
 * core): a lookup takes no lock, since an entry is published by its hash, stored last, and never
 * changes after; an insertion takes the lock. */
#define PIECE_CACHE_SLOTS (1 << 15)            /* a power of two                         */
#define PIECE_CACHE_MAX_ENTRIES (PIECE_CACHE_SLOTS / 4 * 3)
#define PIECE_CACHE_MAX_BYTES 24               /* longer pieces are encoded every time   */

typedef struct {
    uint64_t hash;                             /* 0: an empty slot; atomic, stored last  */
    uint8_t n_bytes, n_ids;
    char bytes[PIECE_CACHE_MAX_BYTES];
    int32_t ids[PIECE_CACHE_MAX_BYTES];        /* a piece has at most one token a byte   */
} piece_entry;

struct qe_piece_cache {
    pthread_mutex_t lock;
    piece_entry *slots;                        /* [PIECE_CACHE_SLOTS]                    */
    int n_entries;
};

static void piece_cache_free(qe_piece_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->slots);
    free(c);
}

/* NULL when out of memory: the tokenizer then encodes every piece. */
static qe_piece_cache *piece_cache_new(void)
{
    qe_piece_cache *c = calloc(1, sizeof *c);
    if (c && !(c->slots = calloc(PIECE_CACHE_SLOTS, sizeof *c->slots))) {
        free(c);
        return NULL;
    }
    if (c)
        pthread_mutex_init(&c->lock, NULL);
    return c;
}

static uint64_t piece_hash(const char *piece, size_t len) { return hash_bytes(piece, len) | 1; }

/* The slot holding the piece (*is_found), or the empty slot where it would go, as this thread
 * sees them: a slot being filled meanwhile reads as empty until its hash is stored, so whether the
 * piece was found is decided by the one load of the hash here, never by a second look (the empty
 * slot may meanwhile hold another piece). */
static piece_entry *piece_slot(qe_piece_cache *c, uint64_t hash, const char *piece, size_t len, bool *is_found)
{
    for (size_t i = hash & (PIECE_CACHE_SLOTS - 1);; i = (i + 1) & (PIECE_CACHE_SLOTS - 1)) {
        piece_entry *e = &c->slots[i];
        uint64_t h = __atomic_load_n(&e->hash, __ATOMIC_ACQUIRE);
        *is_found = h == hash && e->n_bytes == len && memcmp(e->bytes, piece, len) == 0;
        if (h == 0 || *is_found)
            return e;
    }
}

/* Appends the piece's cached tokens to ids (room for len); their number, or -1 when not cached. */
static int piece_cache_get(qe_piece_cache *c, const char *piece, size_t len, int32_t *ids)
{
    if (!c || len > PIECE_CACHE_MAX_BYTES)
        return -1;
    bool is_found;
    const piece_entry *e = piece_slot(c, piece_hash(piece, len), piece, len, &is_found);
    int n = is_found ? e->n_ids : -1;
    if (n > 0)
        memcpy(ids, e->ids, (size_t)n * sizeof *ids);
    return n;
}

static void piece_cache_put(qe_piece_cache *c, const char *piece, size_t len, const int32_t *ids, int n_ids)
{
    if (!c || len > PIECE_CACHE_MAX_BYTES || n_ids > PIECE_CACHE_MAX_BYTES)
        return;
    uint64_t hash = piece_hash(piece, len);
    pthread_mutex_lock(&c->lock);
    bool is_found;
    piece_entry *e = piece_slot(c, hash, piece, len, &is_found); /* under the lock: no slot fills meanwhile */
    if (!is_found && c->n_entries < PIECE_CACHE_MAX_ENTRIES) {
        e->n_bytes = (uint8_t)len, e->n_ids = (uint8_t)n_ids;
        memcpy(e->bytes, piece, len);
        if (n_ids > 0)
            memcpy(e->ids, ids, (size_t)n_ids * sizeof *ids);
        __atomic_store_n(&e->hash, hash, __ATOMIC_RELEASE);
        c->n_entries++;
    }
    pthread_mutex_unlock(&c->lock);
}

void qe_tokenizer_free(qe_tokenizer *tok)
{
    if (!tok)
        return;
    free(tok->text_arena);
    free(tok->text_offset);
    free(tok->text_len);
    free(tok->scores);
    free(tok->is_special);
    free(tok->vocab_slots);
    free(tok->merge_keys);
    free(tok->merge_rank);
    free(tok->merge_new_id);
    free(tok->byte_of_token);
    for (int i = 0; i < tok->n_added; i++)
        free((char *)tok->added[i].content);
    free(tok->added);
    qe_pretok_free(tok->pretok);
    piece_cache_free(tok->piece_cache);
    free(tok);
}

static qe_status build_vocab(qe_tokenizer *tok, const qe_tokenizer_spec *spec, qe_error *err)
{
    size_t arena_bytes = 0;
    for (int i = 0; i < spec->n_vocab; i++)
        arena_bytes += (spec->tokens[i] ? strlen(spec->tokens[i]) : 0) + 1;
    tok->vocab_mask = pow2_at_least(2 * (size_t)spec->n_vocab) - 1;
    tok->text_arena = malloc(arena_bytes);
    tok->text_offset = malloc(spec->n_vocab * sizeof *tok->text_offset);
    tok->text_len = malloc(spec->n_vocab * sizeof *tok->text_len);
    tok->is_special = calloc(spec->n_vocab, sizeof *tok->is_special);
    tok->vocab_slots = malloc((tok->vocab_mask + 1) * sizeof *tok->vocab_slots);
    if (!tok->text_arena || !tok->text_offset || !tok->text_len || !tok->is_special || !tok->vocab_slots)
        return qe_fail(err, QE_ENOMEM, "out of memory for a %d-token vocabulary", spec->n_vocab);
    memset(tok->vocab_slots, 0xff, (tok->vocab_mask + 1) * sizeof *tok->vocab_slots);
    size_t at = 0;
    tok->arena_bytes = arena_bytes;
    for (int id = 0; id < spec->n_vocab; id++) {
        const char *s = spec->tokens[id] ? spec->tokens[id] : "";
        size_t len = strlen(s);
        memcpy(tok->text_arena + at, s, len + 1);
        tok->text_offset[id] = at;
        tok->text_len[id] = spec->tokens[id] ? (int32_t)len : -1;
        at += len + 1;
        if (!spec->tokens[id])
            continue;
        size_t i = hash_bytes(s, len) & tok->vocab_mask;
        for (; tok->vocab_slots[i] >= 0; i = (i + 1) & tok->vocab_mask)
            if ((size_t)tok->text_len[tok->vocab_slots[i]] == len && memcmp(qe_token_text(tok, tok->vocab_slots[i]), s, len) == 0)
                break;
        if (tok->vocab_slots[i] < 0) /* a duplicate text keeps its first id */
            tok->vocab_slots[i] = id;
    }
    if (spec->scores) {
        tok->scores = malloc(spec->n_vocab * sizeof *tok->scores);
        if (!tok->scores)
            return qe_fail(err, QE_ENOMEM, "out of memory for token scores");
        memcpy(tok->scores, spec->scores, spec->n_vocab * sizeof *tok->scores);
    }
    return QE_OK;
}

static qe_status build_merges(qe_tokenizer *tok, const qe_tokenizer_spec *spec, qe_error *err)
{
    size_t slots = pow2_at_least(2 * (size_t)spec->n_merges);
    tok->merge_mask = slots - 1;
    tok->merge_keys = malloc(slots * sizeof *tok->merge_keys);
    tok->merge_rank = malloc(slots * sizeof *tok->merge_rank);
    tok->merge_new_id = malloc(slots * sizeof *tok->merge_new_id);
    if (!tok->merge_keys || !tok->merge_rank || !tok->merge_new_id)
        return qe_fail(err, QE_ENOMEM, "out of memory for %d merges", spec->n_merges);
    memset(tok->merge_keys, 0xff, slots * sizeof *tok->merge_keys);
    char *joined = NULL;
    size_t joined_cap = 0;
    qe_status rc = QE_OK;
    for (int r = 0; r < spec->n_merges && rc == QE_OK; r++) {
        const char *left, *right;
        size_t left_len, right_len;
        if (spec->merge_pairs) {
            left = spec->merge_pairs[2 * r], right = spec->merge_pairs[2 * r + 1];
            if (!left || !right) {
                rc = qe_fail(err, QE_EFORMAT, "merge %d has no text", r);
                break;
            }
            left_len = strlen(left), right_len = strlen(right);
        } else {
            const char *m = spec->merges[r];
            const char *space = m && m[0] ? strchr(m + 1, ' ') : NULL;
            if (!space) {
                rc = qe_fail(err, QE_EFORMAT, "merge %d (\"%.80s\") is not two tokens separated by a space", r,
                             m ? m : "");
                break;
            }
            left = m, left_len = space - m, right = space + 1, right_len = strlen(right);
        }
        int left_id = vocab_find(tok, left, left_len), right_id = vocab_find(tok, right, right_len);
        if (left_id < 0 || right_id < 0) {
            rc = qe_fail(err, QE_EFORMAT, "merge %d (\"%.*s\" \"%.*s\"): \"%.*s\" is not in the vocabulary", r,
                         (int)left_len % 200, left, (int)right_len % 200, right,
                         left_id < 0 ? (int)left_len % 200 : (int)right_len % 200, left_id < 0 ? left : right);
            break;
        }
        if (left_len + right_len + 1 > joined_cap) {
            joined_cap = 2 * (left_len + right_len + 1);
            char *grown = realloc(joined, joined_cap);
            if (!grown) {
                rc = qe_fail(err, QE_ENOMEM, "out of memory for merges");
                break;
            }
            joined = grown;
        }
        memcpy(joined, left, left_len);
        memcpy(joined + left_len, right, right_len);
        int new_id = vocab_find(tok, joined, left_len + right_len);
        if (new_id < 0) {
            rc = qe_fail(err, QE_EFORMAT, "merge %d: the merged token \"%.*s\" is not in the vocabulary", r,
                         (int)(left_len + right_len) % 400, joined);
            break;
        }
        size_t i = merge_slot(tok, left_id, right_id);
        if (tok->merge_keys[i] == UINT64_MAX) { /* a repeated merge keeps its first rank */
            tok->merge_keys[i] = (uint64_t)(uint32_t)left_id << 32 | (uint32_t)right_id;
            tok->merge_rank[i] = r;
            tok->merge_new_id[i] = new_id;
        }
    }
    free(joined);
    return rc;
}

static int compare_added_first_byte(const void *a, const void *b)
{
    const qe_added_token *x = a, *y = b;
    return (int)(uint8_t)x->content[0] - (int)(uint8_t)y->content[0];
}

static qe_status build_added(qe_tokenizer *tok, const qe_tokenizer_spec *spec, qe_error *err)
{
    int n = spec->n_added;
    if (n == 0 && spec->token_types)
        for (int id = 0; id < spec->n_vocab; id++)
            n += (spec->token_types[id] == QE_TOKEN_CONTROL || spec->token_types[id] == QE_TOKEN_USER_DEFINED) &&
                 tok->text_len[id] > 0;
    tok->added = calloc(n ? n : 1, sizeof *tok->added);
    if (!tok->added)
        return qe_fail(err, QE_ENOMEM, "out of memory for added tokens");
    for (int i = 0, id = 0; i < n; i++) {
        qe_added_token a;
        if (spec->n_added) {
            a = spec->added[i];
        } else {
            while (!((spec->token_types[id] == QE_TOKEN_CONTROL || spec->token_types[id] == QE_TOKEN_USER_DEFINED) &&
                     tok->text_len[id] > 0))
                id++;
            a = (qe_added_token){.content = qe_token_text(tok, id), .id = id,
                                 .is_special = spec->token_types[id] == QE_TOKEN_CONTROL};
            id++;
        }
        if (a.id < 0 || a.id >= spec->n_vocab)
            return qe_fail(err, QE_EFORMAT, "added token %d has id %d outside the vocabulary of %d", i, a.id,
                           spec->n_vocab);
        if (!a.content || !a.content[0] || !qe_is_valid_utf8(a.content, strlen(a.content)))
            return qe_fail(err, QE_EFORMAT, "added token %d (id %d) has empty or non-UTF-8 content", i, a.id);
        a.content = strdup(a.content);
        if (!a.content)
            return qe_fail(err, QE_ENOMEM, "out of memory for added tokens");
        if (tok->text_len[a.id] < 0) { /* not in the model: decode needs its text, BPE must not see it */
            size_t len = strlen(a.content);
            char *arena = realloc(tok->text_arena, tok->arena_bytes + len + 1);
            if (!arena) {
                free((char *)a.content);
                return qe_fail(err, QE_ENOMEM, "out of memory for added tokens");
            }
            memcpy(arena + tok->arena_bytes, a.content, len + 1);
            tok->text_arena = arena;
            tok->text_offset[a.id] = tok->arena_bytes;
            tok->text_len[a.id] = (int32_t)len;
            tok->arena_bytes += len + 1;
        }
        tok->added[tok->n_added++] = a;
        tok->is_special[a.id] = a.is_special;
    }
    qsort(tok->added, tok->n_added, sizeof *tok->added, compare_added_first_byte);
    for (int b = 0, i = 0; b <= 256; b++) {
        while (i < tok->n_added && (uint8_t)tok->added[i].content[0] < b)
            i++;
        tok->first_added[b] = i;
    }
    return QE_OK;
}

static qe_status check_special_id(const char *what, int id, int n_vocab, qe_error *err)
{
    if (id < -1 || id >= n_vocab)
        return qe_fail(err, QE_EFORMAT, "%s id %d is outside the vocabulary of %d", what, id, n_vocab);
    return QE_OK;
}

static qe_status build_byte_tokens(qe_tokenizer *tok, qe_error *err)
{
    if (tok->kind == QE_TOKENIZER_BYTE_BPE) {
        /* Some vocabularies lack bytes that never occur in their training text (SmolLM2 has
         * no token for 21 of them); Hugging Face and llama.cpp drop such a byte when encoding,
         * and so do we. Printable ASCII missing, though, means this is no byte-level vocabulary. */
        for (int b = 0; b < 256; b++) {
            char s[4];
            int n = qe_utf8_encode(qe_byte_to_unicode((uint8_t)b), s);
            tok->byte_ids[b] = vocab_find(tok, s, n);
            if (tok->byte_ids[b] < 0 && b > ' ' && b < 0x7F)
                return qe_fail(err, QE_EFORMAT, "byte-level vocabulary has no token for byte 0x%02X (\"%.*s\")", b, n, s);
        }
        return QE_OK;
    }
    tok->byte_of_token = malloc(tok->n_vocab * sizeof *tok->byte_of_token);
    if (!tok->byte_of_token)
        return qe_fail(err, QE_ENOMEM, "out of memory for byte tokens");
    for (int id = 0; id < tok->n_vocab; id++)
        tok->byte_of_token[id] = -1;
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        tok->byte_ids[b] = vocab_find(tok, s, 6);
        if (tok->byte_ids[b] >= 0)
            tok->byte_of_token[tok->byte_ids[b]] = (int16_t)b;
    }
    return QE_OK;
}

qe_status qe_tokenizer_build(const qe_tokenizer_spec *spec, qe_tokenizer **out, qe_error *err)
{
    *out = NULL;
    if (spec->n_vocab <= 0 || !spec->tokens)
        return qe_fail(err, QE_EFORMAT, "tokenizer has an empty vocabulary");
    if (spec->n_merges < 0 || (spec->n_merges > 0 && !spec->merges && !spec->merge_pairs))
        return qe_fail(err, QE_EFORMAT, "tokenizer has %d merges but no merge list", spec->n_merges);
    if (spec->kind == QE_TOKENIZER_BYTE_BPE && spec->n_merges == 0 && spec->n_vocab > 256 && !spec->scores)
        return qe_fail(err, QE_EFORMAT, "byte-level BPE tokenizer has no merges");
    qe_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        return qe_fail(err, QE_ENOMEM, "out of memory for a tokenizer");
    tok->kind = spec->kind;
    tok->n_vocab = spec->n_vocab;
    tok->ignore_merges = spec->ignore_merges;
    tok->byte_fallback = spec->byte_fallback;
    tok->fuse_unk = spec->fuse_unk;
    tok->decode_space_rule = spec->decode_space_rule;
    tok->decode_keeps_byte_tokens = spec->decode_keeps_byte_tokens;
    tok->bos_id = spec->bos_id, tok->eos_id = spec->eos_id;
    tok->unk_id = spec->unk_id, tok->pad_id = spec->pad_id;
    tok->add_bos = spec->add_bos && spec->bos_id >= 0;
    tok->add_eos = spec->add_eos && spec->eos_id >= 0;
    qe_status rc = build_vocab(tok, spec, err);
    if (rc == QE_OK && (spec->n_merges > 0 || !spec->scores))
        rc = build_merges(tok, spec, err);
    if (rc == QE_OK)
        rc = check_special_id("BOS", spec->bos_id, spec->n_vocab, err);
    if (rc == QE_OK)
        rc = check_special_id("EOS", spec->eos_id, spec->n_vocab, err);
    if (rc == QE_OK)
        rc = check_special_id("unknown-token", spec->unk_id, spec->n_vocab, err);
    if (rc == QE_OK)
        rc = check_special_id("padding", spec->pad_id, spec->n_vocab, err);
    if (rc == QE_OK)
        rc = build_byte_tokens(tok, err);
    if (rc == QE_OK)
        rc = build_added(tok, spec, err);
    if (rc == QE_OK)
        rc = qe_pretok_compile(spec, &tok->pretok, err);
    if (rc == QE_OK)
        tok->piece_cache = piece_cache_new();
    if (rc != QE_OK) {
        qe_tokenizer_free(tok);
        return rc;
    }
    *out = tok;
    return QE_OK;
}

/* ---- encoding ----------------------------------------------------------------------------- */

typedef struct {
    int32_t *data;
    int n, cap;
} id_list;

static bool ids_push(id_list *l, int32_t id)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        int32_t *grown = realloc(l->data, cap * sizeof *grown);
        if (!grown)
            return false;
        l->data = grown, l->cap = cap;
    }
    l->data[l->n++] = id;
    return true;
}

/* A candidate merge of the symbol at pos with the next one. */
typedef struct {
    double priority;           /* lower merges first: rank, or -score */
    int pos;
    int32_t left_id, right_id, new_id;
} candidate;

/* Scratch space of one encode call: symbols of the current piece and the heap. */
typedef struct {
    int32_t *id;               /* [n] token of each symbol                 */
    int32_t *start, *len;      /* [n] bytes of the piece each symbol covers */
    int *prev, *next;          /* [n] linked list; -1 at the ends          */
    bool *alive;               /* [n]                                       */
    int n, cap;
    candidate *heap;
    int n_heap, cap_heap;
} bpe_work;

static void work_free(bpe_work *w)
{
    free(w->id), free(w->start), free(w->len), free(w->prev), free(w->next), free(w->alive), free(w->heap);
}

static bool work_reserve(bpe_work *w, int n)
{
    if (n <= w->cap)
        return true;
    int cap = w->cap ? w->cap : 64;
    while (cap < n)
        cap *= 2;
    int32_t *id = realloc(w->id, cap * sizeof *id);
    if (id) w->id = id;
    int32_t *start = realloc(w->start, cap * sizeof *start);
    if (start) w->start = start;
    int32_t *len = realloc(w->len, cap * sizeof *len);
    if (len) w->len = len;
    int *prev = realloc(w->prev, cap * sizeof *prev);
    if (prev) w->prev = prev;
    int *next = realloc(w->next, cap * sizeof *next);
    if (next) w->next = next;
    bool *alive = realloc(w->alive, cap * sizeof *alive);
    if (alive) w->alive = alive;
    candidate *heap = realloc(w->heap, 2 * cap * sizeof *heap);
    if (heap) w->heap = heap;
    if (!id || !start || !len || !prev || !next || !alive || !heap)
        return false;
    w->cap = cap, w->cap_heap = 2 * cap;
    return true;
}

static bool candidate_before(const candidate *a, const candidate *b)
{
    return a->priority < b->priority || (a->priority == b->priority && a->pos < b->pos);
}

static bool heap_push(bpe_work *w, candidate c)
{
    if (w->n_heap == w->cap_heap) {
        candidate *grown = realloc(w->heap, 2 * w->cap_heap * sizeof *grown);
        if (!grown)
            return false;
        w->heap = grown, w->cap_heap *= 2;
    }
    int i = w->n_heap++;
    while (i > 0 && candidate_before(&c, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
    return true;
}

static candidate heap_pop(bpe_work *w)
{
    candidate top = w->heap[0], last = w->heap[--w->n_heap];
    int i = 0;
    for (;;) {
        int child = 2 * i + 1;
        if (child >= w->n_heap)
            break;
        if (child + 1 < w->n_heap && candidate_before(&w->heap[child + 1], &w->heap[child]))
            child++;
        if (!candidate_before(&w->heap[child], &last))
            break;
        w->heap[i] = w->heap[child];
        i = child;
    }
    if (w->n_heap > 0)
        w->heap[i] = last;
    return top;
}

/* Pushes the merge of symbol pos with its successor, when there is one. */
static bool push_candidate(const qe_tokenizer *tok, bpe_work *w, const char *piece, int pos)
{
    if (pos < 0)
        return true;
    int next = w->next[pos];
    if (next < 0)
        return true;
    candidate c = {.pos = pos, .left_id = w->id[pos], .right_id = w->id[next]};
    if (tok->merge_keys) {
        size_t i = merge_slot(tok, c.left_id, c.right_id);
        if (tok->merge_keys[i] == UINT64_MAX)
            return true;
        c.priority = tok->merge_rank[i];
        c.new_id = tok->merge_new_id[i];
    } else { /* SPM by score: the pair merges when its text is a token */
        c.new_id = vocab_find(tok, piece + w->start[pos], w->len[pos] + w->len[next]);
        if (c.new_id < 0)
            return true;
        c.priority = -(double)tok->scores[c.new_id];
    }
    return heap_push(w, c);
}

static bool add_symbol(bpe_work *w, int32_t id, int32_t start, int32_t len)
{
    if (!work_reserve(w, w->n + 1))
        return false;
    int i = w->n++;
    w->id[i] = id, w->start[i] = start, w->len[i] = len;
    w->prev[i] = i - 1, w->next[i] = -1, w->alive[i] = true;
    if (i > 0)
        w->next[i - 1] = i;
    return true;
}

/* The initial symbols of an SPM piece: one per character, byte tokens or unk for the rest. */
static bool spm_symbols(const qe_tokenizer *tok, bpe_work *w, const char *piece, size_t len)
{
    int unk_start = -1, unk_len = 0;
    for (size_t at = 0; at < len;) {
        uint32_t cp;
        int n = qe_utf8_decode((const uint8_t *)piece + at, len - at, &cp);
        if (n <= 0)
            n = 1;
        int id = vocab_find(tok, piece + at, n);
        if (id >= 0) {
            if (unk_start >= 0 && !add_symbol(w, tok->unk_id, unk_start, unk_len))
                return false;
            unk_start = -1;
            if (!add_symbol(w, id, (int32_t)at, n))
                return false;
        } else {
            bool has_bytes = tok->byte_fallback;
            for (int k = 0; k < n && has_bytes; k++)
                has_bytes = tok->byte_ids[(uint8_t)piece[at + k]] >= 0;
            if (has_bytes) {
                for (int k = 0; k < n; k++)
                    if (!add_symbol(w, tok->byte_ids[(uint8_t)piece[at + k]], (int32_t)(at + k), 1))
                        return false;
            } else if (tok->unk_id >= 0) {
                if (unk_start >= 0 && tok->fuse_unk) {
                    unk_len += n;
                } else {
                    if (unk_start >= 0 && !add_symbol(w, tok->unk_id, unk_start, unk_len))
                        return false;
                    unk_start = (int)at, unk_len = n;
                }
            } /* with neither byte tokens nor unk the character is dropped, as HF does */
        }
        at += n;
    }
    return unk_start < 0 || add_symbol(w, tok->unk_id, unk_start, unk_len);
}

/* BPE of one piece by the merge loop, appending its tokens to out. */
static bool merge_piece(const qe_tokenizer *tok, bpe_work *w, const char *piece, size_t len, id_list *out)
{
    w->n = 0, w->n_heap = 0;
    if (tok->kind == QE_TOKENIZER_BYTE_BPE) {
        if (tok->ignore_merges && len <= 256) { /* a piece that is a token stays whole */
            char mapped[1024];
            size_t m = 0;
            for (size_t i = 0; i < len; i++)
                m += qe_utf8_encode(qe_byte_to_unicode((uint8_t)piece[i]), mapped + m);
            int id = vocab_find(tok, mapped, m);
            if (id >= 0)
                return ids_push(out, id);
        }
        if (!work_reserve(w, (int)len))
            return false;
        for (size_t i = 0; i < len; i++)
            if (tok->byte_ids[(uint8_t)piece[i]] >= 0) /* a byte the vocabulary lacks is dropped */
                add_symbol(w, tok->byte_ids[(uint8_t)piece[i]], (int32_t)i, 1);
    } else if (!spm_symbols(tok, w, piece, len)) {
        return false;
    }
    for (int i = 0; i + 1 < w->n; i++)
        if (!push_candidate(tok, w, piece, i))
            return false;
    while (w->n_heap > 0) {
        candidate c = heap_pop(w);
        int next = w->next[c.pos];
        if (!w->alive[c.pos] || next < 0 || w->id[c.pos] != c.left_id || w->id[next] != c.right_id)
            continue; /* stale: one side was merged since */
        w->id[c.pos] = c.new_id;
        w->len[c.pos] += w->len[next];
        w->alive[next] = false;
        w->next[c.pos] = w->next[next];
        if (w->next[next] >= 0)
            w->prev[w->next[next]] = c.pos;
        if (!push_candidate(tok, w, piece, w->prev[c.pos]) || !push_candidate(tok, w, piece, c.pos))
            return false;
    }
    for (int i = w->n > 0 ? 0 : -1; i >= 0; i = w->next[i])
        if (!ids_push(out, w->id[i]))
            return false;
    return true;
}

/* BPE of one piece, appending its tokens to out: from the cache, or merged and then cached. */
static bool bpe_piece(const qe_tokenizer *tok, bpe_work *w, const char *piece, size_t len, id_list *out)
{
    int32_t cached[PIECE_CACHE_MAX_BYTES];
    int n_cached = piece_cache_get(tok->piece_cache, piece, len, cached);
    for (int i = 0; i < n_cached; i++)
        if (!ids_push(out, cached[i]))
            return false;
    if (n_cached >= 0)
        return true;
    int first = out->n;
    if (!merge_piece(tok, w, piece, len, out))
        return false;
    int n_ids = out->n - first; /* 0 for a piece of bytes the vocabulary lacks; out may have no array yet */
    piece_cache_put(tok->piece_cache, piece, len, n_ids > 0 ? out->data + first : NULL, n_ids);
    return true;
}

static qe_status encode_text(const qe_tokenizer *tok, bpe_work *w, qe_pieces *pieces, const char *text, size_t len,
                             bool is_text_start, id_list *out, qe_error *err)
{
    if (len == 0)
        return QE_OK;
    qe_status rc = qe_pretok_run(tok->pretok, text, len, is_text_start, pieces, err);
    if (rc != QE_OK)
        return rc;
    for (int i = 0; i < pieces->n_pieces; i++)
        if (!bpe_piece(tok, w, pieces->buf + pieces->starts[i], pieces->lens[i], out))
            return qe_fail(err, QE_ENOMEM, "out of memory encoding text");
    return QE_OK;
}

/* HF's single_word test: is the character before / after a match a word character? */
static bool word_char_before(const char *text, size_t at)
{
    if (at == 0)
        return false;
    size_t start = at - 1;
    while (start > 0 && ((uint8_t)text[start] & 0xC0) == 0x80)
        start--;
    uint32_t cp;
    return qe_utf8_decode((const uint8_t *)text + start, at - start, &cp) > 0 && qe_is_word_char(cp);
}

static bool word_char_at(const char *text, size_t len, size_t at)
{
    uint32_t cp;
    return at < len && qe_utf8_decode((const uint8_t *)text + at, len - at, &cp) > 0 && qe_is_word_char(cp);
}

/* The longest added token at text[at..]; NULL when none. */
static const qe_added_token *match_added(const qe_tokenizer *tok, const char *text, size_t len, size_t at)
{
    const qe_added_token *best = NULL;
    size_t best_len = 0;
    uint8_t b = (uint8_t)text[at];
    for (int i = tok->first_added[b]; i < tok->first_added[b + 1]; i++) {
        size_t n = strlen(tok->added[i].content);
        if (n > best_len && n <= len - at && memcmp(text + at, tok->added[i].content, n) == 0)
            best = &tok->added[i], best_len = n;
    }
    return best;
}

/* Byte length of the run of Unicode whitespace starting at s (forward). */
static size_t space_run(const char *s, size_t len)
{
    size_t at = 0;
    uint32_t cp;
    int n;
    while (at < len && (n = qe_utf8_decode((const uint8_t *)s + at, len - at, &cp)) > 0 && qe_is_unicode_space(cp))
        at += n;
    return at;
}

qe_status qe_tokenizer_encode(const qe_tokenizer *tok, const char *text, size_t text_len, bool add_special,
                              int32_t **ids, int *n_ids, qe_error *err)
{
    *ids = NULL, *n_ids = 0;
    if (!qe_is_valid_utf8(text, text_len))
        return qe_fail(err, QE_EINVAL, "text to encode is not valid UTF-8");
    id_list out = {0};
    bpe_work w = {0};
    qe_pieces pieces = {0};
    qe_status rc = QE_OK;
    if (add_special && tok->add_bos && !ids_push(&out, tok->bos_id))
        rc = qe_fail(err, QE_ENOMEM, "out of memory encoding text");
    size_t seg_start = 0;
    for (size_t at = 0; at < text_len && rc == QE_OK;) {
        const qe_added_token *a = tok->n_added ? match_added(tok, text, text_len, at) : NULL;
        if (!a) {
            at++;
            continue;
        }
        size_t start = at, stop = at + strlen(a->content);
        if (a->single_word && (word_char_before(text, start) || word_char_at(text, text_len, stop))) {
            at = stop; /* the match is used up, as Aho-Corasick's non-overlapping search does */
            continue;
        }
        if (a->lstrip) { /* back to the end of the last non-space character */
            size_t keep = seg_start;
            for (size_t k = seg_start; k < start;) {
                size_t sp = space_run(text + k, start - k);
                if (sp == 0) {
                    uint32_t cp;
                    k += qe_utf8_decode((const uint8_t *)text + k, start - k, &cp);
                    keep = k;
                } else {
                    k += sp;
                }
            }
            start = keep;
        }
        if (a->rstrip)
            stop += space_run(text + stop, text_len - stop);
        rc = encode_text(tok, &w, &pieces, text + seg_start, start - seg_start, seg_start == 0, &out, err);
        if (rc == QE_OK && !ids_push(&out, a->id))
            rc = qe_fail(err, QE_ENOMEM, "out of memory encoding text");
        seg_start = at = stop;
    }
    if (rc == QE_OK)
        rc = encode_text(tok, &w, &pieces, text + seg_start, text_len - seg_start, seg_start == 0, &out, err);
    if (rc == QE_OK && add_special && tok->add_eos && !ids_push(&out, tok->eos_id))
        rc = qe_fail(err, QE_ENOMEM, "out of memory encoding text");
    work_free(&w);
    qe_pieces_free(&pieces);
    if (rc != QE_OK) {
        free(out.data);
        return rc;
    }
    if (!out.data && !(out.data = malloc(sizeof *out.data)))
        return qe_fail(err, QE_ENOMEM, "out of memory encoding text");
    *ids = out.data, *n_ids = out.n;
    return QE_OK;
}

int qe_tokenizer_n_vocab(const qe_tokenizer *tok) { return tok->n_vocab; }
int qe_tokenizer_bos_id(const qe_tokenizer *tok) { return tok->bos_id; }
int qe_tokenizer_eos_id(const qe_tokenizer *tok) { return tok->eos_id; }
bool qe_tokenizer_adds_bos(const qe_tokenizer *tok) { return tok->add_bos; }

int qe_tokenizer_token_id(const qe_tokenizer *tok, const char *text)
{
    int id = vocab_find(tok, text, strlen(text));
    for (int i = 0; id < 0 && i < tok->n_added; i++)
        if (strcmp(tok->added[i].content, text) == 0)
            id = tok->added[i].id;
    return id;
}
