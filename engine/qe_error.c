#include "qe_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

qe_status qe_fail(qe_error *err, qe_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

qe_status qe_fail_context(qe_error *err, const char *fmt, ...)
{
    if (!err)
        return QE_EINVAL;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

const char *qe_status_name(qe_status code)
{
    switch (code) {
    case QE_OK: return "ok";
    case QE_EIO: return "i/o error";
    case QE_EFORMAT: return "format error";
    case QE_EINVAL: return "invalid argument";
    case QE_ENOMEM: return "out of memory";
    case QE_EUNSUPPORTED: return "unsupported";
    case QE_EDB: return "database error";
    case QE_EEXEC: return "execution error";
    case QE_EINTERRUPTED: return "interrupted";
    }
    return "unknown error";
}
