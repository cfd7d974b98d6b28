/* sandbox — see sandbox.h. The child is made with a raw clone() (namespaces in one step, fork
 * semantics), so between clone and execve it only makes raw system calls on memory prepared
 * before: the harness is multi-threaded, and glibc's malloc, stdio and set*id wrappers (which
 * signal every thread glibc knows of) would wait forever on the parent's locks or threads. */
#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/securebits.h>

enum { NOBODY_ID = 65534, TOKEN_FD = 3, TOKEN_HEX = 32 };

struct qh_sandbox {
    qh_sandbox_limits limits;
};

const char *qh_isolation_name(qh_isolation_mode mode)
{
    switch (mode) {
    case QH_ISOLATION_AUTO: return "auto";
    case QH_ISOLATION_USERNS: return "userns";
    case QH_ISOLATION_ROOTNS: return "rootns";
    case QH_ISOLATION_NONE: return "none";
    }
    return "?";
}

const char *qh_outcome_name(qh_outcome outcome)
{
    switch (outcome) {
    case QH_OUTCOME_PASSED: return "passed";
    case QH_OUTCOME_FAILED: return "failed";
    case QH_OUTCOME_TIMEOUT: return "timeout";
    case QH_OUTCOME_ERROR: return "error";
    }
    return "?";
}

void qh_sandbox_config_default(qh_sandbox_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->timeout_s = 10.0;
    cfg->memory_bytes = 4ull << 30;
    cfg->fsize_bytes = 16ull << 20;
    cfg->nofile = 64;
    cfg->nproc = 64;
}

/* ---- the child: everything below until run_child's execve is async-signal-safe ------------- */

/* What the child needs, prepared by the parent before clone. */
typedef struct {
    qh_isolation_mode mode;
    const qh_sandbox_limits *limits;
    const char *scratch_dir;
    const char *tmpfs_options;
    const char *source;
    size_t n_source_bytes;
    char *const *argv;
    char *const *envp;
    int sync_fd;                    /* userns: read one byte once the parent wrote the id maps */
    int stdout_fd, stderr_fd, token_fd, status_fd;
} child_plan;

static void child_fail(int status_fd, const char *step)
{
    int e = errno;
    char buf[160];
    size_t n = 0;
    for (const char *p = step; *p && n < sizeof buf - 24; p++)
        buf[n++] = *p;
    const char *mid = ": errno ";
    for (const char *p = mid; *p; p++)
        buf[n++] = *p;
    char digits[12];
    int nd = 0;
    do digits[nd++] = (char)('0' + e % 10), e /= 10; while (e && nd < 11);
    while (nd)
        buf[n++] = digits[--nd];
    if (write(status_fd, buf, n) < 0) {
        /* nothing left to tell anyone */
    }
    _exit(126);
}

static int move_fd(int from, int to)
{
    if (from == to)
        return fcntl(to, F_SETFD, 0);
    return dup2(from, to) < 0 ? -1 : 0;
}

static void drop_capabilities(int status_fd)
{
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            child_fail(status_fd, "drop capability bounding set");
    /* uid 0 inside the namespace must not regain capabilities at execve */
    if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED, 0, 0, 0) < 0)
        child_fail(status_fd, "set securebits");
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) < 0)
        child_fail(status_fd, "capset");
}

static void setup_mounts(const child_plan *plan, int sfd)
{
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(sfd, "make mounts private");
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) < 0)
        child_fail(sfd, "remount / read-only");
    if (mount("qeval-scratch", plan->scratch_dir, "tmpfs", MS_NOSUID | MS_NODEV, plan->tmpfs_options) < 0)
        child_fail(sfd, "mount tmpfs scratch");
    /* a fresh /proc shows only this run's processes, not the harness's environment */
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        child_fail(sfd, "mount /proc");
}

static void set_limit(int status_fd, int resource, unsigned long long value, const char *name)
{
    struct rlimit rl = {(rlim_t)value, (rlim_t)value};
    if (setrlimit(resource, &rl) < 0)
        child_fail(status_fd, name);
}

static void run_child(const child_plan *plan)
{
    /* the status pipe ends at fd 4, everything else above the token fd is closed */
    int sfd = fcntl(plan->status_fd, F_DUPFD_CLOEXEC, 16);
    if (sfd < 0)
        _exit(125);
    const qh_sandbox_limits *lim = plan->limits;
    if (plan->mode == QH_ISOLATION_USERNS) {
        char byte;
        if (read(plan->sync_fd, &byte, 1) != 1)
            child_fail(sfd, "wait for id maps");
        /* creds still hold the creator's ids until we switch to the mapped uid 0 */
        if (syscall(SYS_setgroups, 0, NULL) < 0 && errno != EPERM)
            child_fail(sfd, "drop supplementary groups");
        if (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0)
            child_fail(sfd, "switch to the mapped uid");
    }
    if (setpgid(0, 0) < 0 && plan->mode == QH_ISOLATION_NONE)
        child_fail(sfd, "setpgid");
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || move_fd(null_fd, 0) < 0 || move_fd(plan->stdout_fd, 1) < 0 ||
        move_fd(plan->stderr_fd, 2) < 0 || move_fd(plan->token_fd, TOKEN_FD) < 0)
        child_fail(sfd, "redirect stdio");
    if (dup3(sfd, TOKEN_FD + 1, O_CLOEXEC) < 0)
        child_fail(sfd, "move status pipe");
    sfd = TOKEN_FD + 1;
    if (syscall(SYS_close_range, TOKEN_FD + 2, ~0u, 0) < 0)
        for (int fd = TOKEN_FD + 2; fd < 4096; fd++)
            close(fd);
    if (plan->mode != QH_ISOLATION_NONE)
        setup_mounts(plan, sfd);
    if (chdir(plan->scratch_dir) < 0)
        child_fail(sfd, "chdir scratch");
    set_limit(sfd, RLIMIT_CPU, (unsigned long long)lim->cpu_s, "RLIMIT_CPU");
    set_limit(sfd, RLIMIT_AS, lim->memory_bytes, "RLIMIT_AS");
    set_limit(sfd, RLIMIT_FSIZE, lim->fsize_bytes, "RLIMIT_FSIZE");
    set_limit(sfd, RLIMIT_NOFILE, (unsigned long long)lim->nofile, "RLIMIT_NOFILE");
    set_limit(sfd, RLIMIT_NPROC, (unsigned long long)lim->nproc, "RLIMIT_NPROC");
    set_limit(sfd, RLIMIT_CORE, 0, "RLIMIT_CORE");
    if (plan->mode == QH_ISOLATION_USERNS) {
        drop_capabilities(sfd);
    } else if (geteuid() == 0) {
        gid_t gid = NOBODY_ID;
        if (syscall(SYS_setgroups, 1, &gid) < 0 || syscall(SYS_setresgid, NOBODY_ID, NOBODY_ID, NOBODY_ID) < 0 ||
            syscall(SYS_setresuid, NOBODY_ID, NOBODY_ID, NOBODY_ID) < 0)
            child_fail(sfd, "become nobody");
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(sfd, "no_new_privs");
    int prog = open("program.py", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (prog < 0)
        child_fail(sfd, "create program.py");
    for (size_t off = 0; off < plan->n_source_bytes;) {
        ssize_t n = write(prog, plan->source + off, plan->n_source_bytes - off);
        if (n <= 0)
            child_fail(sfd, "write program.py");
        off += (size_t)n;
    }
    close(prog);
    execve(plan->argv[0], plan->argv, plan->envp);
    child_fail(sfd, "execve python");
}

/* ---- the parent ---------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Keeps the last sizeof(tail)-1 bytes seen, NUL-terminated. */
static void tail_append(char *tail, size_t cap, size_t *len, const char *data, size_t n)
{
    if (n >= cap - 1) {
        memcpy(tail, data + n - (cap - 1), cap - 1);
        *len = cap - 1;
    } else {
        size_t keep = *len + n > cap - 1 ? cap - 1 - n : *len;
        memmove(tail, tail + *len - keep, keep);
        memcpy(tail + keep, data, n);
        *len = keep + n;
    }
    tail[*len] = '\0';
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st; (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static bool write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

/* Maps uid/gid 0 inside the child's user namespace to nobody (as root) or to ourselves. */
static bool write_id_maps(pid_t pid)
{
    char path[64], map[64];
    unsigned outside_uid = geteuid() == 0 ? NOBODY_ID : geteuid();
    unsigned outside_gid = geteuid() == 0 ? NOBODY_ID : getegid();
    /* only an unprivileged creator must deny setgroups; as root the child drops its groups */
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
    if (geteuid() != 0 && !write_file(path, "deny"))
        return false;
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    snprintf(map, sizeof map, "0 %u 1", outside_uid);
    if (!write_file(path, map))
        return false;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    snprintf(map, sizeof map, "0 %u 1", outside_gid);
    return write_file(path, map);
}

/* The last non-empty line of text, into out. */
static void last_line(const char *text, char *out, size_t cap)
{
    size_t end = strlen(text);
    while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' '))
        end--;
    size_t start = end;
    while (start > 0 && text[start - 1] != '\n')
        start--;
    size_t n = end - start < cap - 1 ? end - start : cap - 1;
    memcpy(out, text + start, n);
    out[n] = '\0';
}

/* A Python exception that means a sandbox limit was hit rather than a wrong answer. */
static bool is_limit_exception(const char *line)
{
    static const char *const markers[] = {"MemoryError", "[Errno 27]", "[Errno 28]", "[Errno 11]",
                                          "[Errno 24]"};
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++)
        if (strstr(line, markers[i]))
            return true;
    return false;
}

static void classify(qh_exec_result *res, bool timed_out, bool has_token, int status, const char *setup_error)
{
    char line[400];
    last_line(res->stderr_tail, line, sizeof line);
    res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    res->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (setup_error[0]) {
        res->outcome = QH_OUTCOME_ERROR;
        snprintf(res->detail, sizeof res->detail, "error: sandbox setup: %s", setup_error);
    } else if (timed_out) {
        res->outcome = QH_OUTCOME_TIMEOUT;
        snprintf(res->detail, sizeof res->detail, "timed out");
    } else if (has_token && res->exit_code == 0) {
        res->outcome = QH_OUTCOME_PASSED;
        snprintf(res->detail, sizeof res->detail, "passed");
    } else if (res->term_signal) {
        res->outcome = QH_OUTCOME_ERROR;
        snprintf(res->detail, sizeof res->detail, "error: killed by signal %d%s", res->term_signal,
                 res->term_signal == SIGXCPU ? " (CPU time limit)" : res->term_signal == SIGXFSZ ? " (file size limit)" : "");
    } else if (is_limit_exception(line)) {
        res->outcome = QH_OUTCOME_ERROR;
        snprintf(res->detail, sizeof res->detail, "error: resource limit: %s", line);
    } else {
        res->outcome = QH_OUTCOME_FAILED;
        if (line[0])
            snprintf(res->detail, sizeof res->detail, "failed: %s", line);
        else
            snprintf(res->detail, sizeof res->detail, "failed: exited with status %d %s check() returned",
                     res->exit_code, has_token ? "after" : "before");
    }
}

static qe_status make_token(char hex[TOKEN_HEX + 1], qe_error *err)
{
    unsigned char raw[TOKEN_HEX / 2];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return qe_fail(err, QE_EEXEC, "sandbox: getrandom for the run token failed: %s", strerror(errno));
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    return QE_OK;
}

static char *with_token_line(const char *source, const char *token, size_t *n_bytes)
{
    static const char fmt[] = "%s\nimport os as _qh_os\n_qh_os.write(%d, b\"%s\")\n";
    size_t cap = strlen(source) + sizeof fmt + TOKEN_HEX + 16;
    char *text = malloc(cap);
    if (text)
        *n_bytes = (size_t)snprintf(text, cap, fmt, source, TOKEN_FD, token);
    return text;
}

typedef struct {
    int out[2], err[2], token[2], status[2], sync[2];
} run_pipes;

static void close_pipes(run_pipes *p)
{
    int *fds = (int *)p;
    for (size_t i = 0; i < sizeof *p / sizeof(int); i++)
        close_fd(&fds[i]);
}

/* Reads what is available from fd, keeping a tail and/or a count; on EOF or error closes fd. */
static void drain(int *fd, char *tail, size_t cap, size_t *len, unsigned long long *n_total)
{
    char buf[8192];
    for (;;) {
        ssize_t n = read(*fd, buf, sizeof buf);
        if (n > 0) {
            if (tail)
                tail_append(tail, cap, len, buf, (size_t)n);
            if (n_total)
                *n_total += (unsigned long long)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            close_fd(fd);
        return;
    }
}

qe_status qh_sandbox_run_source(qh_sandbox *sb, const char *source, qh_exec_result *res, qe_error *err)
{
    const qh_sandbox_limits *lim = &sb->limits;
    memset(res, 0, sizeof *res);
    char token[TOKEN_HEX + 1];
    qe_status rc = make_token(token, err);
    if (rc != QE_OK)
        return rc;
    size_t n_source_bytes = 0;
    char *text = with_token_line(source, token, &n_source_bytes);
    if (!text)
        return qe_fail(err, QE_ENOMEM, "sandbox: no memory for a %zu-byte program", strlen(source));
    char scratch[] = "/tmp/qeval-sandbox-XXXXXX";
    if (!mkdtemp(scratch)) {
        free(text);
        return qe_fail(err, QE_EIO, "sandbox: mkdtemp %s: %s", scratch, strerror(errno));
    }
    bool as_root = geteuid() == 0;
    if (lim->mode == QH_ISOLATION_NONE && as_root && chown(scratch, NOBODY_ID, NOBODY_ID) < 0) {
        rmdir(scratch);
        free(text);
        return qe_fail(err, QE_EIO, "sandbox: chown %s to nobody: %s", scratch, strerror(errno));
    }
    char tmpfs_options[128], env_home[96], env_tmp[96];
    unsigned long long tmpfs_bytes = lim->fsize_bytes * 4 < (1ull << 20) ? 1ull << 20 : lim->fsize_bytes * 4;
    snprintf(tmpfs_options, sizeof tmpfs_options, "size=%llu,mode=0700%s", tmpfs_bytes,
             lim->mode == QH_ISOLATION_ROOTNS ? ",uid=65534,gid=65534" : "");
    snprintf(env_home, sizeof env_home, "HOME=%s", scratch);
    snprintf(env_tmp, sizeof env_tmp, "TMPDIR=%s", scratch);
    char *const argv[] = {(char *)lim->python, "-B", "-s", "program.py", NULL};
    char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
                          "PYTHONDONTWRITEBYTECODE=1", "PYTHONHASHSEED=0", env_home, env_tmp, NULL};

    run_pipes p;
    memset(&p, -1, sizeof p);
    if (pipe2(p.out, O_CLOEXEC) < 0 || pipe2(p.err, O_CLOEXEC) < 0 || pipe2(p.token, O_CLOEXEC) < 0 ||
        pipe2(p.status, O_CLOEXEC) < 0 || pipe2(p.sync, O_CLOEXEC) < 0) {
        rc = qe_fail(err, QE_EEXEC, "sandbox: pipe: %s", strerror(errno));
        close_pipes(&p);
        rmdir(scratch);
        free(text);
        return rc;
    }
    child_plan plan = {lim->mode, lim, scratch, tmpfs_options, text, n_source_bytes, argv, envp,
                       p.sync[0], p.out[1], p.err[1], p.token[1], p.status[1]};
    unsigned long flags = 0;
    if (lim->mode == QH_ISOLATION_USERNS || lim->mode == QH_ISOLATION_ROOTNS)
        flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    if (lim->mode == QH_ISOLATION_USERNS)
        flags |= CLONE_NEWUSER;
    double start = now_s();
    pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid == 0)
        run_child(&plan);
    char setup_error[256] = "";
    int clone_errno = errno;
    close_fd(&p.out[1]); close_fd(&p.err[1]); close_fd(&p.token[1]); close_fd(&p.status[1]); close_fd(&p.sync[0]);
    if (pid < 0) {
        snprintf(setup_error, sizeof setup_error, "clone (%s): %s", qh_isolation_name(lim->mode), strerror(clone_errno));
    } else if (lim->mode == QH_ISOLATION_USERNS && !write_id_maps(pid)) {
        snprintf(setup_error, sizeof setup_error, "writing uid/gid maps: %s", strerror(errno));
        kill(pid, SIGKILL);
    } else if (lim->mode == QH_ISOLATION_USERNS && write(p.sync[1], "g", 1) != 1) {
        snprintf(setup_error, sizeof setup_error, "releasing the child: %s", strerror(errno));
        kill(pid, SIGKILL);
    }
    close_fd(&p.sync[1]);

    bool timed_out = false;
    int status = 0;
    if (pid > 0) {
        int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        fcntl(p.out[0], F_SETFL, O_NONBLOCK);
        fcntl(p.err[0], F_SETFL, O_NONBLOCK);
        char token_got[TOKEN_HEX + 8] = "", status_msg[200] = "";
        size_t n_err = 0, n_token = 0, n_status = 0;
        double deadline = start + lim->timeout_s;
        for (bool exited = false; !exited;) {
            double left_s = deadline - now_s();
            if (left_s <= 0) {
                timed_out = true;
                break;
            }
            struct pollfd fds[5] = {{p.out[0], POLLIN, 0}, {p.err[0], POLLIN, 0}, {p.token[0], POLLIN, 0},
                                    {p.status[0], POLLIN, 0}, {pidfd, POLLIN, 0}};
            int n_ready = poll(fds, 5, (int)(left_s * 1000) + 1);
            if (n_ready < 0 && errno != EINTR)
                break;
            if (fds[0].revents)
                drain(&p.out[0], NULL, 0, NULL, &res->n_stdout_bytes);
            if (fds[1].revents)
                drain(&p.err[0], res->stderr_tail, sizeof res->stderr_tail, &n_err, NULL);
            if (fds[2].revents)
                drain(&p.token[0], token_got, sizeof token_got, &n_token, NULL);
            if (fds[3].revents)
                drain(&p.status[0], status_msg, sizeof status_msg, &n_status, NULL);
            /* without a pidfd, the end of stderr is the best sign of the end */
            exited = pidfd >= 0 ? fds[4].revents != 0 : p.err[0] < 0;
        }
        res->seconds = now_s() - start;
        if (timed_out)
            kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        /* a PID namespace dies with its first process; without one, kill the process group */
        if (lim->mode == QH_ISOLATION_NONE)
            kill(-pid, SIGKILL);
        if (pidfd >= 0)
            close(pidfd);
        fcntl(p.token[0], F_SETFL, O_NONBLOCK);
        fcntl(p.status[0], F_SETFL, O_NONBLOCK);
        if (p.out[0] >= 0) drain(&p.out[0], NULL, 0, NULL, &res->n_stdout_bytes);
        if (p.err[0] >= 0) drain(&p.err[0], res->stderr_tail, sizeof res->stderr_tail, &n_err, NULL);
        if (p.token[0] >= 0) drain(&p.token[0], token_got, sizeof token_got, &n_token, NULL);
        if (p.status[0] >= 0) drain(&p.status[0], status_msg, sizeof status_msg, &n_status, NULL);
        if (status_msg[0])
            snprintf(setup_error, sizeof setup_error, "%s", status_msg);
        classify(res, timed_out, strcmp(token_got, token) == 0, status, setup_error);
    } else {
        classify(res, false, false, 0, setup_error);
    }
    close_pipes(&p);
    /* in the namespace modes the files lived in the child's tmpfs and this dir is empty */
    nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    free(text);
    return QE_OK;
}

qe_status qh_sandbox_exec_one(qh_sandbox *sb, const qh_exec_job *job, qh_exec_result *res, qe_error *err)
{
    const char *parts[] = {job->prompt, job->completion, "\n", job->test, "\ncheck(", job->entry_point, ")"};
    size_t n_bytes = 1;
    for (size_t i = 0; i < 7; i++)
        n_bytes += parts[i] ? strlen(parts[i]) : 0;
    char *source = malloc(n_bytes);
    if (!source)
        return qe_fail(err, QE_ENOMEM, "sandbox: no memory for a %zu-byte program", n_bytes);
    source[0] = '\0';
    for (size_t i = 0; i < 7; i++)
        if (parts[i])
            strcat(source, parts[i]);
    qe_status rc = qh_sandbox_run_source(sb, source, res, err);
    free(source);
    return rc;
}

typedef struct {
    qh_sandbox *sb;
    const qh_exec_job *jobs;
    size_t n_jobs;
    qh_exec_result *results;
    atomic_size_t next;
    atomic_int failed;
    pthread_mutex_t lock;
    qe_error err;
} batch_state;

static void *batch_worker(void *arg)
{
    batch_state *st = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&st->next, 1);
        if (i >= st->n_jobs || atomic_load(&st->failed))
            return NULL;
        qe_error err = {0};
        if (qh_sandbox_exec_one(st->sb, &st->jobs[i], &st->results[i], &err) != QE_OK) {
            pthread_mutex_lock(&st->lock);
            if (!atomic_exchange(&st->failed, 1))
                st->err = err;
            pthread_mutex_unlock(&st->lock);
            return NULL;
        }
    }
}

qe_status qh_sandbox_exec_batch(qh_sandbox *sb, const qh_exec_job *jobs, size_t n_jobs, int n_workers,
                                qh_exec_result *results, qe_error *err)
{
    if (n_workers <= 0) {
        long n_cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_workers = n_cores > 0 ? (int)n_cores : 1;
    }
    if ((size_t)n_workers > n_jobs)
        n_workers = n_jobs ? (int)n_jobs : 1;
    batch_state st = {.sb = sb, .jobs = jobs, .n_jobs = n_jobs, .results = results};
    atomic_init(&st.next, 0);
    atomic_init(&st.failed, 0);
    pthread_mutex_init(&st.lock, NULL);
    pthread_t *threads = calloc((size_t)n_workers, sizeof *threads);
    if (!threads) {
        pthread_mutex_destroy(&st.lock);
        return qe_fail(err, QE_ENOMEM, "sandbox: no memory for %d workers", n_workers);
    }
    int n_started = 0;
    for (; n_started < n_workers; n_started++)
        if (pthread_create(&threads[n_started], NULL, batch_worker, &st) != 0)
            break;
    if (n_started == 0)
        batch_worker(&st);
    for (int i = 0; i < n_started; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    pthread_mutex_destroy(&st.lock);
    if (atomic_load(&st.failed)) {
        if (err)
            *err = st.err;
        return st.err.code;
    }
    return QE_OK;
}

double qh_pass_at_k(int n, int c, int k)
{
    if (n - c < k)
        return 1.0;
    double prod = 1.0;
    for (int i = n - c + 1; i <= n; i++)
        prod *= 1.0 - (double)k / i;
    return 1.0 - prod;
}

static bool find_python(const char *requested, char *out, size_t cap)
{
    const char *env = getenv("QEVAL_PYTHON");
    const char *candidates[] = {requested, env, "/usr/bin/python3", "/usr/local/bin/python3"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (candidates[i] && candidates[i][0] && access(candidates[i], X_OK) == 0) {
            snprintf(out, cap, "%s", candidates[i]);
            return true;
        }
    return false;
}

qe_status qh_sandbox_open(const qh_sandbox_config *cfg, qh_sandbox **out, qe_error *err)
{
    *out = NULL;
    if (!(cfg->timeout_s > 0) || cfg->timeout_s > 86400)
        return qe_fail(err, QE_EINVAL, "sandbox: timeout %g s is not in (0, 86400]", cfg->timeout_s);
    if (cfg->memory_bytes < (64ull << 20) || cfg->fsize_bytes < 4096 || cfg->nofile < 16 || cfg->nproc < 1)
        return qe_fail(err, QE_EINVAL, "sandbox: limits too small (memory %llu B, fsize %llu B, nofile %ld, nproc %ld)",
                       cfg->memory_bytes, cfg->fsize_bytes, cfg->nofile, cfg->nproc);
    qh_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb)
        return qe_fail(err, QE_ENOMEM, "sandbox: no memory");
    qh_sandbox_limits *lim = &sb->limits;
    if (!find_python(cfg->python, lim->python, sizeof lim->python)) {
        free(sb);
        return qe_fail(err, QE_EEXEC, "sandbox: no python3 interpreter (tried %s, $QEVAL_PYTHON, /usr/bin/python3, /usr/local/bin/python3)",
                       cfg->python ? cfg->python : "(none given)");
    }
    lim->timeout_s = cfg->timeout_s;
    lim->cpu_s = cfg->cpu_s > 0 ? cfg->cpu_s : (long)ceil(cfg->timeout_s) + 1;
    lim->memory_bytes = cfg->memory_bytes;
    lim->fsize_bytes = cfg->fsize_bytes;
    lim->nofile = cfg->nofile;
    lim->nproc = cfg->nproc;
    qh_isolation_mode first = cfg->mode == QH_ISOLATION_AUTO ? QH_ISOLATION_USERNS : cfg->mode;
    qh_isolation_mode last = cfg->mode == QH_ISOLATION_AUTO ? QH_ISOLATION_NONE : cfg->mode;
    char why[256] = "";
    for (qh_isolation_mode mode = first; mode <= last; mode++) {
        if (mode == QH_ISOLATION_ROOTNS && geteuid() != 0 && cfg->mode == QH_ISOLATION_AUTO)
            continue;
        lim->mode = mode;
        qh_exec_result probe;
        qe_status rc = qh_sandbox_run_source(sb, "", &probe, err);
        if (rc != QE_OK) {
            free(sb);
            return rc;
        }
        if (probe.outcome == QH_OUTCOME_PASSED) {
            lim->is_network_isolated = lim->is_pid_isolated = mode != QH_ISOLATION_NONE;
            lim->fs_isolation = mode != QH_ISOLATION_NONE ? "readonly-root+tmpfs-scratch"
                                : geteuid() == 0          ? "uid-nobody"
                                                          : "none";
            snprintf(lim->note, sizeof lim->note, "%s", why);
            *out = sb;
            return QE_OK;
        }
        if (!why[0])
            snprintf(why, sizeof why, "%s isolation unavailable (%s)", qh_isolation_name(mode), probe.detail);
    }
    free(sb);
    return qe_fail(err, QE_EEXEC, "sandbox: cannot run %s: %s", lim->python, why);
}

void qh_sandbox_free(qh_sandbox *sb)
{
    free(sb);
}

const qh_sandbox_limits *qh_sandbox_limits_of(const qh_sandbox *sb)
{
    return &sb->limits;
}
