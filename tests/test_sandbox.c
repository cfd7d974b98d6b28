/* The sandbox against the HumanEval canonical solutions (all pass), empty completions (none
 * pass) and hostile completions: each must give the expected outcome, leave the test running
 * and change nothing outside its scratch dir. Expected values are the brief's, by hand. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "humaneval_file.h"
#include "sandbox.h"

static const char *TEST = "def check(f):\n    pass\n";

static qh_exec_result run(qh_sandbox *sb, const char *completion)
{
    qh_exec_result res;
    qe_error err = {0};
    qh_exec_job job = {"", completion, TEST, "len"};
    memset(&res, 0, sizeof res);
    if (qh_sandbox_exec_one(sb, &job, &res, &err) != QE_OK)
        fprintf(stderr, "exec_one: %s\n", err.msg);
    if (res.outcome != QH_OUTCOME_PASSED)
        fprintf(stderr, "  [%s] %s\n", qh_outcome_name(res.outcome), res.detail);
    return res;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static bool file_is(const char *path, const char *text)
{
    char buf[256] = "";
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strcmp(buf, text) == 0;
}

/* How many processes have marker in their command line. */
static int count_processes(const char *marker)
{
    int n = 0;
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], cmd[4096];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, cmd, sizeof cmd - 1);
        close(fd);
        for (ssize_t i = 0; i < len; i++)
            if (!cmd[i]) cmd[i] = ' ';
        cmd[len > 0 ? len : 0] = '\0';
        n += strstr(cmd, marker) != NULL;
    }
    if (d)
        closedir(d);
    return n;
}

static void test_pass_at_k(void)
{
    CHECK_NEAR(0.4, qh_pass_at_k(5, 2, 1), 1e-12);
    CHECK_NEAR(1.0, qh_pass_at_k(10, 3, 10), 1e-12);
    CHECK_NEAR(0.5, qh_pass_at_k(10, 1, 5), 1e-12);     /* 1 - C(9,5)/C(10,5) = 1 - 126/252 */
    CHECK_NEAR(0.5, qh_pass_at_k(200, 1, 100), 1e-12);
    CHECK_NEAR(0.0, qh_pass_at_k(4, 0, 1), 1e-12);
    CHECK_NEAR(1.0 - 1.0 / 6.0, qh_pass_at_k(4, 2, 2), 1e-12); /* 1 - C(2,2)/C(4,2) */
}

static void test_humaneval(qh_sandbox *sb)
{
    char path[4096];
    if (!check_shared_path(path, sizeof path, "datasets/humaneval/HumanEval.jsonl.gz"))
        return;
    qh_humaneval_problem *problems = NULL;
    size_t n = 0;
    qe_error err = {0};
    if (qh_humaneval_load(path, &problems, &n, &err) != QE_OK) {
        check_n_failed++;
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_INT_EQ(164, n);
    qh_exec_job *jobs = calloc(n, sizeof *jobs);
    qh_exec_result *results = calloc(n, sizeof *results);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++)
            jobs[i] = (qh_exec_job){problems[i].prompt, pass == 0 ? problems[i].canonical_solution : "",
                                    problems[i].test, problems[i].entry_point};
        CHECK_INT_EQ(QE_OK, qh_sandbox_exec_batch(sb, jobs, n, 0, results, &err));
        int n_passed = 0;
        for (size_t i = 0; i < n; i++) {
            n_passed += results[i].outcome == QH_OUTCOME_PASSED;
            if (pass == 0 && results[i].outcome != QH_OUTCOME_PASSED)
                fprintf(stderr, "%s: %s\n", problems[i].task_id, results[i].detail);
        }
        CHECK_INT_EQ(pass == 0 ? 164 : 0, n_passed);
    }
    free(results);
    free(jobs);
    qh_humaneval_free(problems, n);
    /* a malformed file is one clear error */
    char bad[] = "/tmp/qeval-test-he-XXXXXX";
    int fd = mkstemp(bad);
    if (fd >= 0) {
        CHECK(write(fd, "{\"task_id\": \"x\"}\n", 17) == 17);
        close(fd);
        CHECK_INT_EQ(QE_EFORMAT, qh_humaneval_load(bad, &problems, &n, &err));
        CHECK(strstr(err.msg, "line 1") && strstr(err.msg, "prompt"));
        unlink(bad);
    }
}

/* The brief's hostile completions, with a fake results db and sentinels beside them. */
static void test_hostile(qh_sandbox *sb)
{
    const qh_sandbox_limits *lim = qh_sandbox_limits_of(sb);
    char dir[] = "/tmp/qeval-test-XXXXXX", db[256], sentinel[256], home_sentinel[512], code[4096];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(db, sizeof db, "%s/results.db", dir);
    snprintf(sentinel, sizeof sentinel, "%s/sentinel.txt", dir);
    const char *home = getenv("HOME");
    snprintf(home_sentinel, sizeof home_sentinel, "%s/.qeval-sandbox-sentinel-%d", home ? home : "/tmp", (int)getpid());
    write_text(db, "fake db");
    write_text(sentinel, "sentinel");
    write_text(home_sentinel, "home sentinel");
    setenv("QEVAL_TEST_SECRET", "hunter2-secret-value", 1);

    CHECK_INT_EQ(QH_OUTCOME_TIMEOUT, run(sb, "while True:\n    pass\n").outcome);

    qh_exec_result r = run(sb, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n");
    CHECK(r.outcome == QH_OUTCOME_ERROR || r.outcome == QH_OUTCOME_TIMEOUT);
    CHECK_INT_EQ(QH_OUTCOME_PASSED, run(sb, "x = 1\n").outcome); /* the machine still runs programs */

    CHECK_INT_EQ(QH_OUTCOME_ERROR, run(sb, "x = bytearray(50 * 1024**3)\n").outcome);

    r = run(sb, "import os, sys\nsys.stderr.write(os.getcwd() + '\\n'); sys.stderr.flush()\n"
                "chunk = b'x' * (1 << 20)\nwith open('big', 'wb') as f:\n    for i in range(10240):\n        f.write(chunk)\n");
    CHECK_INT_EQ(QH_OUTCOME_ERROR, r.outcome);
    char scratch[256] = "";
    sscanf(r.stderr_tail, "%255s", scratch);
    struct stat st;
    CHECK(scratch[0] == '/' && stat(scratch, &st) != 0 && errno == ENOENT);

    /* writes outside the scratch dir: every attempt must fail, so the program passes */
    snprintf(code, sizeof code,
             "import os\nn_ok = 0\nfor p in [%s, %s, %s, '/tmp/qeval-escape-%d', '/etc/qeval-escape']:\n"
             "    try:\n        open(p, 'w').write('pwned')\n        n_ok += 1\n    except OSError:\n        pass\n"
             "assert n_ok == 0, n_ok\n",
             "'" "%s" "'", "'" "%s" "'", "'" "%s" "'", (int)getpid());
    char code2[4096];
    snprintf(code2, sizeof code2, code, db, sentinel, home_sentinel);
    CHECK_INT_EQ(QH_OUTCOME_PASSED, run(sb, code2).outcome);
    snprintf(code, sizeof code, "/tmp/qeval-escape-%d", (int)getpid());
    CHECK(stat(code, &st) != 0);

    snprintf(code, sizeof code,
             "import os, shutil\nfor p in ['../%s/sentinel.txt', '../%s/results.db']:\n    try:\n        os.remove(p)\n"
             "    except OSError:\n        pass\nfor p in ['../%s']:\n    shutil.rmtree(p, ignore_errors=True)\n",
             strrchr(dir, '/') + 1, strrchr(dir, '/') + 1, strrchr(dir, '/') + 1);
    CHECK(file_is(sentinel, "sentinel"));
    CHECK_INT_EQ(QH_OUTCOME_PASSED, run(sb, code).outcome);

    /* a TCP connection to a port the test listens on */
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof addr;
    CHECK(bind(listener, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(listener, 4) == 0 &&
          getsockname(listener, (struct sockaddr *)&addr, &addr_len) == 0);
    snprintf(code, sizeof code, "import socket\ns = socket.create_connection(('127.0.0.1', %d), timeout=2)\ns.sendall(b'hello')\n",
             ntohs(addr.sin_port));
    r = run(sb, code);
    int conn = accept(listener, NULL, NULL);
    if (lim->is_network_isolated) {
        CHECK_INT_EQ(QH_OUTCOME_FAILED, r.outcome);
        CHECK(conn < 0);
    } else {
        fprintf(stderr, "no network namespace: the TCP case is not checked\n");
    }
    if (conn >= 0)
        close(conn);
    close(listener);

    /* the parent's environment, directly and through /proc */
    CHECK_INT_EQ(QH_OUTCOME_PASSED,
                 run(sb, "import os, glob\nassert 'QEVAL_TEST_SECRET' not in os.environ\n"
                         "for p in glob.glob('/proc/*/environ'):\n    try:\n        data = open(p, 'rb').read()\n"
                         "    except OSError:\n        continue\n    assert b'hunter2-secret-value' not in data, p\n").outcome);

    /* early exits and fake markers */
    CHECK_INT_EQ(QH_OUTCOME_FAILED, run(sb, "import os\nos._exit(0)\n").outcome);
    CHECK_INT_EQ(QH_OUTCOME_FAILED, run(sb, "import sys\nsys.exit(0)\n").outcome);
    CHECK_INT_EQ(QH_OUTCOME_FAILED, run(sb, "import os, sys\nprint('passed')\nsys.stderr.write('passed\\n')\n"
                                            "for fd in range(3, 10):\n    try:\n        os.write(fd, b'0' * 32)\n"
                                            "    except OSError:\n        pass\nos._exit(0)\n").outcome);

    /* a daemon that outlives the program */
    char marker[64];
    snprintf(marker, sizeof marker, "qeval-daemon-marker-%d", (int)getpid());
    snprintf(code, sizeof code,
             "import subprocess, os\nsubprocess.Popen(['%s', '-c', 'import time, os\\nos.setsid() if False else None\\ntime.sleep(60)', '%s'],"
             " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "if os.fork() == 0:\n    os.setsid()\n    os.execv('%s', ['%s', '-c', 'import time; time.sleep(60)', '%s'])\n"
             "import glob, time\ntime.sleep(0.5)\n"
             "alive = [p for p in glob.glob('/proc/[0-9]*/cmdline') if b'%s' in open(p, 'rb').read()]\n"
             "assert len(alive) == 2, alive\n",
             lim->python, marker, lim->python, lim->python, marker, marker);
    r = run(sb, code);
    if (lim->is_pid_isolated)
        CHECK_INT_EQ(QH_OUTCOME_PASSED, r.outcome);
    CHECK_INT_EQ(0, count_processes(marker));

    /* output floods: bounded capture, no hang */
    r = run(sb, "import sys\nfor i in range(800):\n    sys.stdout.write('x' * 65536)\n    sys.stderr.write('y' * 4096)\n");
    CHECK_INT_EQ(QH_OUTCOME_PASSED, r.outcome);
    CHECK_INT_EQ(800ull * 65536, r.n_stdout_bytes);
    CHECK(strlen(r.stderr_tail) < sizeof r.stderr_tail);
    CHECK_INT_EQ(QH_OUTCOME_TIMEOUT, run(sb, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n").outcome);

    /* nothing outside the scratch dir changed, no python left over */
    CHECK(file_is(db, "fake db"));
    CHECK(file_is(sentinel, "sentinel"));
    CHECK(file_is(home_sentinel, "home sentinel"));
    DIR *d = opendir(dir);
    int n_entries = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n_entries += e->d_name[0] != '.';
    if (d)
        closedir(d);
    CHECK_INT_EQ(2, n_entries);
    CHECK_INT_EQ(0, count_processes("program.py"));
    unlink(db);
    unlink(sentinel);
    unlink(home_sentinel);
    rmdir(dir);
}

int main(void)
{
    test_pass_at_k();
    qh_sandbox_config cfg;
    qh_sandbox_config_default(&cfg);
    cfg.timeout_s = 2;
    qh_sandbox *sb = NULL;
    qe_error err = {0};
    if (qh_sandbox_open(&cfg, &sb, &err) != QE_OK) {
        fprintf(stderr, "skipping: %s\n", err.msg);
        return 77;
    }
    const qh_sandbox_limits *lim = qh_sandbox_limits_of(sb);
    fprintf(stderr, "isolation %s, network isolated %d, fs %s%s%s\n", qh_isolation_name(lim->mode),
            lim->is_network_isolated, lim->fs_isolation, lim->note[0] ? ", " : "", lim->note);
    CHECK_NEAR(2.0, lim->timeout_s, 0);
    CHECK_INT_EQ(3, lim->cpu_s);
    CHECK_INT_EQ(4ull << 30, lim->memory_bytes);
    CHECK_INT_EQ(64, lim->nproc);
    test_humaneval(sb);
    test_hostile(sb);
    qh_sandbox_free(sb);

    /* the weakest fallback still scores right and hides the environment */
    cfg.mode = QH_ISOLATION_NONE;
    CHECK_INT_EQ(QE_OK, qh_sandbox_open(&cfg, &sb, &err));
    if (sb) {
        CHECK(!qh_sandbox_limits_of(sb)->is_network_isolated);
        CHECK_INT_EQ(QH_OUTCOME_PASSED, run(sb, "import os\nassert 'QEVAL_TEST_SECRET' not in os.environ\n").outcome);
        CHECK_INT_EQ(QH_OUTCOME_FAILED, run(sb, "import os\nos._exit(0)\n").outcome);
        CHECK_INT_EQ(QH_OUTCOME_TIMEOUT, run(sb, "while True:\n    pass\n").outcome);
        qh_sandbox_free(sb);
    }
    cfg.timeout_s = -1;
    CHECK_INT_EQ(QE_EINVAL, qh_sandbox_open(&cfg, &sb, &err));
    return check_summary();
}
