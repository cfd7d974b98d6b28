#include "host.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qd_sha256.h"
#include "qeval_engine.h"

void qh_host_facts_read(qh_host_facts *facts)
{
    memset(facts, 0, sizeof *facts);
    snprintf(facts->cpu_model, sizeof facts->cpu_model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10))
            continue;
        char *colon = strchr(line, ':');
        if (colon) {
            colon += 1 + (colon[1] == ' ');
            colon[strcspn(colon, "\n")] = 0;
            snprintf(facts->cpu_model, sizeof facts->cpu_model, "%s", colon);
        }
        break;
    }
    if (f)
        fclose(f);
    facts->n_cores = sysconf(_SC_NPROCESSORS_ONLN);
    facts->ram_bytes = (int64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
    facts->gpu_memory_bytes = -1;
    qe_gpu_info gpu;
    if (qe_gpu_count() > 0 && qe_gpu_describe(0, &gpu, NULL) == QE_OK) {
        snprintf(facts->gpu_name, sizeof facts->gpu_name, "%s", gpu.name);
        snprintf(facts->gpu_driver, sizeof facts->gpu_driver, "%d.%d", gpu.driver_version / 1000,
                 gpu.driver_version % 1000 / 10);
        facts->gpu_memory_bytes = (int64_t)gpu.total_memory_bytes;
    }
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The weight files of model_path, sorted; *paths and each entry malloc'd. */
static qe_status list_weight_files(const char *model_path, char ***paths, int *n_paths, qe_error *err)
{
    struct stat st;
    *paths = NULL;
    *n_paths = 0;
    if (stat(model_path, &st) != 0)
        return qe_fail(err, QE_EIO, "%s: no such model file or directory", model_path);
    if (!S_ISDIR(st.st_mode)) {
        *paths = malloc(sizeof **paths);
        if (!*paths || !((*paths)[0] = strdup(model_path)))
            return qe_fail(err, QE_ENOMEM, "out of memory");
        *n_paths = 1;
        return QE_OK;
    }
    DIR *dir = opendir(model_path);
    if (!dir)
        return qe_fail(err, QE_EIO, "%s: cannot list the directory", model_path);
    struct dirent *entry;
    int cap = 0;
    while ((entry = readdir(dir))) {
        size_t len = strlen(entry->d_name);
        if (len < 12 || strcmp(entry->d_name + len - 12, ".safetensors") || !strncmp(entry->d_name, "golden", 6))
            continue;
        if (*n_paths == cap) {
            cap = cap ? cap * 2 : 8;
            char **grown = realloc(*paths, (size_t)cap * sizeof *grown);
            if (!grown)
                break;
            *paths = grown;
        }
        size_t n = strlen(model_path) + len + 2;
        if (!((*paths)[*n_paths] = malloc(n)))
            break;
        snprintf((*paths)[(*n_paths)++], n, "%s/%s", model_path, entry->d_name);
    }
    closedir(dir);
    if (*n_paths == 0)
        return qe_fail(err, QE_EFORMAT, "%s: no .safetensors weight files", model_path);
    qsort(*paths, (size_t)*n_paths, sizeof **paths, compare_names);
    return QE_OK;
}

qe_status qh_hash_model_weights(const char *model_path, char model_sha256[65], char **files_json, qe_error *err)
{
    char **paths = NULL;
    int n_paths = 0;
    *files_json = NULL;
    qe_status rc = list_weight_files(model_path, &paths, &n_paths, err);
    char (*hex)[65] = rc == QE_OK ? calloc((size_t)n_paths, sizeof *hex) : NULL;
    qe_error *errs = rc == QE_OK ? calloc((size_t)n_paths, sizeof *errs) : NULL;
    if (rc == QE_OK && (!hex || !errs))
        rc = qe_fail(err, QE_ENOMEM, "out of memory");
    /* the shards of a large model at once: one core hashes ~1.4 GB/s with the SHA extensions */
    int n_hashed = rc == QE_OK ? n_paths : 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (n_hashed > 1)
#endif
    for (int i = 0; i < n_hashed; i++)
        qd_sha256_file(paths[i], hex[i], &errs[i]);
    cJSON *files = rc == QE_OK ? cJSON_CreateArray() : NULL;
    qd_sha256_ctx whole;
    qd_sha256_init(&whole);
    for (int i = 0; rc == QE_OK && i < n_paths; i++) {
        if (errs[i].code != QE_OK) {
            *err = errs[i];
            rc = errs[i].code;
            break;
        }
        struct stat st;
        stat(paths[i], &st);
        const char *base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddStringToObject(entry, "file", base);
        cJSON_AddNumberToObject(entry, "bytes", (double)st.st_size);
        cJSON_AddStringToObject(entry, "sha256", hex[i]);
        cJSON_AddItemToArray(files, entry);
        char line[512];
        int n = snprintf(line, sizeof line, "%s %s\n", hex[i], base);
        qd_sha256_update(&whole, line, (size_t)n);
    }
    if (rc == QE_OK) {
        uint8_t digest[32];
        qd_sha256_final(&whole, digest);
        qd_sha256_hex(digest, model_sha256);
        *files_json = cJSON_PrintUnformatted(files);
        if (!*files_json)
            rc = qe_fail(err, QE_ENOMEM, "out of memory");
    }
    cJSON_Delete(files);
    for (int i = 0; i < n_paths; i++)
        free(paths[i]);
    free(paths);
    free(hex);
    free(errs);
    return rc;
}

int64_t qh_peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int64_t kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib < 0 ? -1 : kib * 1024;
}

void qh_reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}
