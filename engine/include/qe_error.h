/* qe_error — errors as values, shared by every module.
 *
 * Library code never prints or exits: a failing function fills a qe_error with one line that
 * names the file, the field and the numbers, and returns its code. Only main() prints
 * "qeval: <message>" and maps the code to an exit status. */
#ifndef QE_ERROR_H
#define QE_ERROR_H

typedef enum {
    QE_OK = 0,
    QE_EIO,          /* open/read/write/mmap failed                          */
    QE_EFORMAT,      /* a file's content is malformed                        */
    QE_EINVAL,       /* a bad argument or option from the user               */
    QE_ENOMEM,       /* allocation failed                                    */
    QE_EUNSUPPORTED, /* well-formed but not supported (dtype, architecture)  */
    QE_EDB,          /* SQLite store error                                   */
    QE_EEXEC,        /* a child process (sandbox) could not be run           */
    QE_EINTERRUPTED, /* stopped by a signal; resumable                       */
} qe_status;

typedef struct {
    qe_status code;
    char msg[1024];
} qe_error;

/* Formats the message into err (when err is not NULL) and returns code. */
qe_status qe_fail(qe_error *err, qe_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to an error already in err; returns err->code. */
qe_status qe_fail_context(qe_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *qe_status_name(qe_status code);

#endif
