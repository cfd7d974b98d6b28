#include "requests.h"

#include <stdlib.h>
#include <string.h>

void qt_request_clear(qt_request *request)
{
    if (!request)
        return;
    free(request->context);
    for (int i = 0; i < request->n_continuations; i++)
        free(request->continuations[i]);
    free(request->continuations);
    memset(request, 0, sizeof *request);
}

/* Python's json.dumps escaping with ensure_ascii=False: ", \, and control characters; other
 * bytes (UTF-8 included, DEL included) pass through. */
static void write_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

qe_status qt_request_write_json(const qt_request *request, FILE *out, qe_error *err)
{
    fputs("{\"task\": ", out);
    write_string(out, request->task);
    fprintf(out, ", \"doc_id\": %d, \"type\": ", request->doc_id);
    write_string(out, request->type == QT_REQUEST_LOGLIKELIHOOD ? "loglikelihood" : "generate_until");
    fputs(", \"context\": ", out);
    write_string(out, request->context);
    if (request->type == QT_REQUEST_LOGLIKELIHOOD) {
        fputs(", \"continuations\": [", out);
        for (int i = 0; i < request->n_continuations; i++) {
            if (i)
                fputs(", ", out);
            write_string(out, request->continuations[i]);
        }
        fputs("]}\n", out);
    } else {
        fputs(", \"stop\": [", out);
        for (int i = 0; i < request->n_stops; i++) {
            if (i)
                fputs(", ", out);
            write_string(out, request->stops[i]);
        }
        fprintf(out, "], \"max_new_tokens\": %d}\n", request->max_new_tokens);
    }
    if (ferror(out))
        return qe_fail(err, QE_EIO, "writing requests failed");
    return QE_OK;
}
