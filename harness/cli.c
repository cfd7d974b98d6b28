#include "cli.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "build_info.h"

int qh_report_error(const qe_error *err)
{
    fprintf(stderr, "qeval: %s\n", err->msg);
    if (err->code == QE_EINVAL)
        return QH_EXIT_USAGE;
    if (err->code == QE_EINTERRUPTED)
        return QH_EXIT_INTERRUPTED;
    return QH_EXIT_ERROR;
}

int qh_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qeval %s: ", command);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return QH_EXIT_USAGE;
}

bool qh_parse_device(const char *value, qe_device_kind *kind, int *index)
{
    if (!strcmp(value, "cpu")) {
        *kind = QE_DEVICE_CPU;
        *index = 0;
        return true;
    }
    if (strncmp(value, "cuda", 4) != 0)
        return false;
    *kind = QE_DEVICE_CUDA;
    *index = 0;
    if (value[4] == 0)
        return true;
    char *end;
    long n = value[4] == ':' && value[5] >= '0' && value[5] <= '9' ? strtol(value + 5, &end, 10) : -1;
    if (n < 0 || n > 1024 || *end)
        return false;
    *index = (int)n;
    return true;
}

int qh_print_json(struct cJSON *root)
{
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "qeval: out of memory\n");
        return QH_EXIT_ERROR;
    }
    printf("%s\n", text);
    free(text);
    return QH_EXIT_OK;
}

int qh_cmd_version(int argc, char **argv)
{
    printf("qeval %s (%s)\n", QEVAL_VERSION, qh_git_commit[0] ? qh_git_commit : "unknown commit");
    return QH_EXIT_OK;
}

void qh_raise_open_file_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}
