#include "safetensors_write.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

qe_status qh_safetensors_write_header(FILE *f, const char *path, const qh_tensor_entry *entries, int n_entries,
                                      qe_error *err)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t offset = 0;
    for (int i = 0; i < n_entries; i++) {
        const qh_tensor_entry *e = &entries[i];
        cJSON *t = cJSON_AddObjectToObject(root, e->name), *shape = cJSON_AddArrayToObject(t, "shape");
        cJSON *offsets = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddStringToObject(t, "dtype", e->dtype);
        for (int d = 0; d < e->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(offset + e->n_bytes)));
        offset += e->n_bytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for the header", path);
    size_t n_json = strlen(json), n_header = (n_json + 7) / 8 * 8;
    unsigned char length[8];
    for (int b = 0; b < 8; b++)
        length[b] = (unsigned char)((uint64_t)n_header >> (8 * b));
    int ok = fwrite(length, 1, 8, f) == 8 && fwrite(json, 1, n_json, f) == n_json;
    for (size_t pad = n_json; ok && pad < n_header; pad++)
        ok = fputc(' ', f) != EOF;
    free(json);
    return ok ? QE_OK : qe_fail(err, QE_EIO, "%s: cannot write: %s", path, strerror(errno));
}
