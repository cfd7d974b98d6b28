#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

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

int qh_cmd_version(int argc, char **argv)
{
    printf("qeval %s (%s)\n", QEVAL_VERSION, QEVAL_GIT_COMMIT[0] ? QEVAL_GIT_COMMIT : "unknown commit");
    return QH_EXIT_OK;
}
