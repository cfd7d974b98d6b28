/* qeval slurm MODEL [run options] --shards N [...] — a sharded run as a Slurm job array.
 *
 * Writes two batch scripts into --db-dir: array.sbatch, whose task i runs
 * `qeval run MODEL [run options] --shard i/N --db DIR/shard-i.db --skip-complete`, and
 * merge.sbatch, which merges the N shard files into one results file and, given --baseline,
 * gates it with `qeval compare` (the job's exit status is compare's). --submit runs sbatch on
 * both, the merge with --dependency=afterok on the array; --dry-run prints them and writes
 * nothing. Submitting the same command again is how a cancelled, failed or preempted task is
 * resumed: each task's command line is the same, so its results file continues the unfinished
 * run, and a finished shard exits at once. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#define QH_SLURM_MAX_SBATCH 32

typedef struct {
    const char **run_args;      /* [n_run_args] MODEL and the run options, passed through as given */
    int n_run_args;
    int n_shards;
    const char *partition, *time_limit, *job_name, *gpus_per_task, *cpus_per_task;
    const char *sbatch_lines[QH_SLURM_MAX_SBATCH]; /* --sbatch OPT: more #SBATCH lines, both scripts */
    int n_sbatch_lines;
    const char *db_dir;         /* absolute */
    const char *output;         /* the merged results file, absolute */
    const char *baseline, *max_drop, *alpha;
    const char *qeval_path;     /* this binary, absolute */
    const char *work_dir;       /* the directory the jobs run in: where qeval slurm was run */
    bool has_threads;           /* the run options set --threads */
} qh_slurm_plan;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qeval slurm MODEL [run options] --shards N [options]\n"
            "  writes a Slurm job array (task i: qeval run ... --shard i/N --db DIR/shard-i.db) and a job that\n"
            "  merges the shards when all succeed (and, given --baseline, gates them with qeval compare)\n"
            "  --shards N          array tasks, each a share of every task's documents of similar work\n"
            "  --db-dir DIR        shard files, scripts and logs (default: ./qeval-slurm)\n"
            "  -o, --output FILE   the merged results file (default: DIR/results.db)\n"
            "  --partition P       --time T   --gpus-per-task G   --cpus-per-task C (also the run's --threads)\n"
            "  --job-name NAME     (default: qeval)\n"
            "  --sbatch OPT        one more #SBATCH line in both scripts, e.g. --sbatch --account=lab\n"
            "  --baseline DB       after merging: qeval compare --baseline DB; the merge job fails on a\n"
            "                      significant drop   --max-drop P   --alpha A   (passed to compare)\n"
            "  --submit            submit both with sbatch (the merge with --dependency=afterok on the array)\n"
            "  --dry-run           print both scripts; write and submit nothing\n"
            "  run options: those of qeval run (see qeval run --help) but --shard, --db and --resume\n"
            "resume: submit the same command again; unfinished shards continue where they stopped and\n"
            "finished ones exit at once (docs/nightly.md)\n");
}

/* qeval run's options that take no value; every other option takes one. */
static bool is_run_flag(const char *a)
{
    return !strcmp(a, "--quiet") || !strcmp(a, "--json") || !strcmp(a, "--no-cache") ||
           !strcmp(a, "--skip-bad-rows") || !strcmp(a, "--skip-complete");
}

/* path made absolute against dir (a copy either way). */
static char *absolute_path(const char *dir, const char *path)
{
    size_t n = strlen(dir) + strlen(path) + 2;
    char *out = malloc(n);
    if (out && path[0] == '/')
        snprintf(out, n, "%s", path);
    else if (out)
        snprintf(out, n, "%s/%s", dir, path);
    return out;
}

/* s as one shell word: in single quotes, each ' written '\''. */
static void put_word(FILE *out, const char *s)
{
    fputc('\'', out);
    for (; *s; s++)
        if (*s == '\'')
            fputs("'\\''", out);
        else
            fputc(*s, out);
    fputc('\'', out);
}

static void put_common_header(FILE *out, const qh_slurm_plan *p, const char *job_name, const char *log)
{
    fprintf(out, "#SBATCH --job-name=%s\n#SBATCH --ntasks=1\n", job_name);
    if (p->partition)
        fprintf(out, "#SBATCH --partition=%s\n", p->partition);
    if (p->time_limit)
        fprintf(out, "#SBATCH --time=%s\n", p->time_limit);
    for (int i = 0; i < p->n_sbatch_lines; i++)
        fprintf(out, "#SBATCH %s\n", p->sbatch_lines[i]);
    fprintf(out, "#SBATCH --chdir=%s\n#SBATCH --output=%s/%s\n#SBATCH --open-mode=append\n", p->work_dir, p->db_dir,
            log);
}

static void write_array_script(FILE *out, const qh_slurm_plan *p)
{
    fprintf(out,
            "#!/bin/bash\n"
            "# qeval slurm: task I of this array runs shard I/%d of one qeval run into %s/shard-I.db.\n"
            "# Submitting the array again continues a cancelled, failed or preempted task where it\n"
            "# stopped (the same command line resumes its unfinished run); a finished shard exits at once.\n",
            p->n_shards, p->db_dir);
    put_common_header(out, p, p->job_name, "shard-%a.log");
    fprintf(out, "#SBATCH --array=0-%d\n#SBATCH --requeue\n", p->n_shards - 1);
    if (p->cpus_per_task)
        fprintf(out, "#SBATCH --cpus-per-task=%s\n", p->cpus_per_task);
    if (p->gpus_per_task)
        fprintf(out, "#SBATCH --gpus-per-task=%s\n", p->gpus_per_task);
    fprintf(out, "set -u\ni=${SLURM_ARRAY_TASK_ID:?not a Slurm array task}\nexec ");
    put_word(out, p->qeval_path);
    fprintf(out, " run");
    for (int i = 0; i < p->n_run_args; i++) {
        fputc(' ', out);
        put_word(out, p->run_args[i]);
    }
    if (p->cpus_per_task && !p->has_threads)
        fprintf(out, " --threads %s", p->cpus_per_task);
    fprintf(out, " --shard \"$i/%d\" --db ", p->n_shards);
    put_word(out, p->db_dir);
    fprintf(out, "/shard-\"$i\".db --skip-complete\n");
}

static void write_merge_script(FILE *out, const qh_slurm_plan *p)
{
    char name[256];
    snprintf(name, sizeof name, "%s-merge", p->job_name);
    fprintf(out,
            "#!/bin/bash\n"
            "# qeval slurm: merges the %d shard files of the array into %s%s.\n"
            "# Submitted with --dependency=afterok on the array: it runs once every shard succeeded.\n",
            p->n_shards, p->output, p->baseline ? ", then compares it with the baseline (exit 1 on a significant drop)" : "");
    put_common_header(out, p, name, "merge.log");
    fprintf(out, "set -u\nout=");
    put_word(out, p->output);
    fprintf(out, "\nrm -f \"$out.partial\" \"$out.partial-wal\" \"$out.partial-shm\"\n");
    put_word(out, p->qeval_path);
    fprintf(out, " merge");
    for (int i = 0; i < p->n_shards; i++) {
        fputc(' ', out);
        put_word(out, p->db_dir);
        fprintf(out, "/shard-%d.db", i);
    }
    fprintf(out, " -o \"$out.partial\" || exit 1\n"
                 "rm -f \"$out-wal\" \"$out-shm\" && mv -f \"$out.partial\" \"$out\" || exit 1\n");
    if (!p->baseline) {
        fprintf(out, "echo \"merged: $out\"\n");
        return;
    }
    put_word(out, p->qeval_path);
    fprintf(out, " compare --baseline ");
    put_word(out, p->baseline);
    fprintf(out, " --candidate \"$out\"");
    if (p->max_drop) {
        fprintf(out, " --max-drop ");
        put_word(out, p->max_drop);
    }
    if (p->alpha) {
        fprintf(out, " --alpha ");
        put_word(out, p->alpha);
    }
    fprintf(out, " --format md -o ");
    put_word(out, p->db_dir);
    fprintf(out, "/compare.md\nstatus=$?\ncat ");
    put_word(out, p->db_dir);
    fprintf(out, "/compare.md 2>/dev/null\nexit $status\n");
}

static qe_status write_file(const char *path, void (*write)(FILE *, const qh_slurm_plan *), const qh_slurm_plan *p,
                            qe_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return qe_fail(err, QE_EIO, "%s: cannot write: %s", path, strerror(errno));
    write(f, p);
    bool is_ok = !ferror(f);
    if (fclose(f) != 0 || !is_ok)
        return qe_fail(err, QE_EIO, "%s: write failed: %s", path, strerror(errno));
    chmod(path, 0755);
    return QE_OK;
}

/* Runs argv (sbatch --parsable ...) and reads the job id it prints ("ID" or "ID;cluster"). */
static qe_status sbatch(char *const *argv, long long *job_id, qe_error *err)
{
    int fds[2];
    if (pipe(fds) != 0)
        return qe_fail(err, QE_EIO, "sbatch: pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return qe_fail(err, QE_EIO, "sbatch: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "qeval: cannot run %s: %s (is Slurm's client installed and on PATH?)\n", argv[0],
                strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    char text[256];
    size_t n = 0;
    ssize_t got;
    while ((got = read(fds[0], text + n, sizeof text - 1 - n)) > 0 && n + (size_t)got < sizeof text - 1)
        n += (size_t)got;
    if (got > 0)
        n += (size_t)got;
    text[n] = '\0';
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    char *end = NULL;
    *job_id = strtoll(text, &end, 10);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return qe_fail(err, QE_EIO, "%s %s failed (exit %d); its message is above", argv[0],
                       argv[1] ? argv[1] : "", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    if (end == text || *job_id <= 0)
        return qe_fail(err, QE_EIO, "%s printed no job id (got '%.80s')", argv[0], text);
    return QE_OK;
}

static qe_status submit(const qh_slurm_plan *p, const char *array_path, const char *merge_path, qe_error *err)
{
    const char *tool = getenv("QEVAL_SBATCH");
    tool = tool && *tool ? tool : "sbatch";
    long long array_id = 0, merge_id = 0;
    char *array_argv[] = {(char *)tool, "--parsable", (char *)array_path, NULL};
    qe_status st = sbatch(array_argv, &array_id, err);
    if (st != QE_OK)
        return st;
    char dependency[64];
    snprintf(dependency, sizeof dependency, "--dependency=afterok:%lld", array_id);
    char *merge_argv[] = {(char *)tool, "--parsable", dependency, "--kill-on-invalid-dep=yes", (char *)merge_path,
                          NULL};
    if ((st = sbatch(merge_argv, &merge_id, err)) != QE_OK)
        return qe_fail_context(err, "array job %lld was submitted, its merge job not", array_id);
    printf("submitted array job %lld (%d tasks; logs %s/shard-I.log) and merge job %lld (when all succeed; "
           "log %s/merge.log)\nresults: %s\n",
           array_id, p->n_shards, p->db_dir, merge_id, p->db_dir, p->output);
    return QE_OK;
}

int qh_cmd_slurm(int argc, char **argv)
{
    qh_slurm_plan p = {.job_name = "qeval"};
    const char *db_dir = "qeval-slurm", *output = NULL, *model = NULL;
    bool is_dry_run = false, want_submit = false;
    const char **run_args = calloc((size_t)argc + 1, sizeof *run_args);
    if (!run_args) {
        qe_error err;
        qe_fail(&err, QE_ENOMEM, "slurm: out of memory");
        return qh_report_error(&err);
    }
    int rc_usage = 0;
    for (int i = 1; i < argc && !rc_usage; i++) {
        const char *a = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(run_args);
            return QH_EXIT_OK;
        } else if (!strcmp(a, "--dry-run")) {
            is_dry_run = true;
            continue;
        } else if (!strcmp(a, "--submit")) {
            want_submit = true;
            continue;
        } else if (!strcmp(a, "--shard") || !strcmp(a, "--db") || !strcmp(a, "--resume")) {
            rc_usage = qh_usage_error("slurm", "%s is the job array's to set (each task's shard and file)", a);
            break;
        } else if (a[0] != '-') {
            if (model) {
                rc_usage = qh_usage_error("slurm", "one model only (got '%s' and '%s')", model, a);
                break;
            }
            model = a;
            run_args[p.n_run_args++] = a;
            continue;
        } else if (is_run_flag(a)) {
            run_args[p.n_run_args++] = a;
            continue;
        } else if (!value) {
            rc_usage = qh_usage_error("slurm", "%s needs a value", a);
            break;
        }
        if (!strcmp(a, "--shards")) {
            char *end = NULL;
            long n = strtol(value, &end, 10);
            /* the merge job's command line names every shard file: 10000 stay far below ARG_MAX */
            if (*value == '\0' || *end != '\0' || n < 1 || n > 10000)
                rc_usage = qh_usage_error("slurm", "--shards wants a count from 1 to 10000, not '%s'", value);
            p.n_shards = (int)n;
        } else if (!strcmp(a, "--partition")) {
            slot = &p.partition;
        } else if (!strcmp(a, "--time")) {
            slot = &p.time_limit;
        } else if (!strcmp(a, "--job-name")) {
            slot = &p.job_name;
        } else if (!strcmp(a, "--gpus-per-task")) {
            slot = &p.gpus_per_task;
        } else if (!strcmp(a, "--cpus-per-task")) {
            slot = &p.cpus_per_task;
        } else if (!strcmp(a, "--db-dir")) {
            slot = &db_dir;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            slot = &output;
        } else if (!strcmp(a, "--baseline")) {
            slot = &p.baseline;
        } else if (!strcmp(a, "--max-drop")) {
            slot = &p.max_drop;
        } else if (!strcmp(a, "--alpha")) {
            slot = &p.alpha;
        } else if (!strcmp(a, "--sbatch")) {
            /* one #SBATCH line each: a line break would end the directives with a command */
            if (p.n_sbatch_lines == QH_SLURM_MAX_SBATCH)
                rc_usage = qh_usage_error("slurm", "--sbatch: at most %d", QH_SLURM_MAX_SBATCH);
            else if (strpbrk(value, "\n\r"))
                rc_usage = qh_usage_error("slurm", "--sbatch: '%s' holds a line break; give one option per --sbatch",
                                          value);
            else
                p.sbatch_lines[p.n_sbatch_lines++] = value;
        } else { /* a run option and its value, passed through */
            p.has_threads |= !strcmp(a, "--threads");
            run_args[p.n_run_args++] = a;
            run_args[p.n_run_args++] = value;
        }
        if (slot)
            *slot = value;
        /* #SBATCH lines are not shell: no quoting there, so no blanks or quotes in what goes in
         * them, and no % (Slurm expands %j, %a... in file names); the CPU count also goes
         * unquoted into the run line, so digits only */
        bool is_file = slot == &output || slot == &p.baseline;
        if (slot && (strpbrk(value, "\n\r") || (!is_file && strpbrk(value, " \t'\"\\$`%"))))
            rc_usage = qh_usage_error("slurm", "%s: '%s' cannot go into an #SBATCH line", a, value);
        else if (slot == &p.cpus_per_task && (!*value || strspn(value, "0123456789") != strlen(value)))
            rc_usage = qh_usage_error("slurm", "--cpus-per-task: '%s' is not a number of CPUs", value);
        i++;
    }
    if (!rc_usage && !model)
        rc_usage = qh_usage_error("slurm", "no model given (see qeval slurm --help)");
    if (!rc_usage && p.n_shards < 1)
        rc_usage = qh_usage_error("slurm", "--shards N is required");
    if (!rc_usage && is_dry_run && want_submit)
        rc_usage = qh_usage_error("slurm", "--dry-run and --submit exclude each other");
    if (!rc_usage && (p.max_drop || p.alpha) && !p.baseline)
        rc_usage = qh_usage_error("slurm", "--max-drop and --alpha go with --baseline");
    if (rc_usage) {
        free(run_args);
        return rc_usage;
    }
    p.run_args = run_args;

    qe_error err = {0};
    qe_status st = QE_OK;
    char cwd[PATH_MAX], self[PATH_MAX];
    char *abs_dir = NULL, *abs_output = NULL, *abs_baseline = NULL, *array_path = NULL, *merge_path = NULL;
    ssize_t n_self = readlink("/proc/self/exe", self, sizeof self - 1);
    if (!getcwd(cwd, sizeof cwd))
        st = qe_fail(&err, QE_EIO, "slurm: cannot read the current directory: %s", strerror(errno));
    else if (n_self <= 0)
        st = qe_fail(&err, QE_EIO, "slurm: cannot find the qeval binary (/proc/self/exe): %s", strerror(errno));
    else if (strpbrk(cwd, " \t\n\r'\"\\$`%"))
        st = qe_fail(&err, QE_EINVAL,
                     "slurm: the current directory '%s' cannot go into an #SBATCH line (blanks, quotes or %%)", cwd);
    if (st == QE_OK) {
        self[n_self] = '\0';
        abs_dir = absolute_path(cwd, db_dir);
        abs_baseline = p.baseline ? absolute_path(cwd, p.baseline) : NULL;
        if (abs_dir)
            abs_output = output ? absolute_path(cwd, output) : absolute_path(abs_dir, "results.db");
        if (abs_dir) {
            array_path = absolute_path(abs_dir, "array.sbatch");
            merge_path = absolute_path(abs_dir, "merge.sbatch");
        }
        if (!abs_dir || !abs_output || !array_path || !merge_path || (p.baseline && !abs_baseline))
            st = qe_fail(&err, QE_ENOMEM, "slurm: out of memory");
    }
    if (st == QE_OK) {
        p.db_dir = abs_dir;
        p.output = abs_output;
        p.baseline = abs_baseline;
        p.qeval_path = self;
        p.work_dir = cwd;
        if (is_dry_run) {
            printf("# ---- %s\n", array_path);
            write_array_script(stdout, &p);
            printf("# ---- %s\n", merge_path);
            write_merge_script(stdout, &p);
            printf("# ---- submit: a=$(sbatch --parsable %s) && sbatch --dependency=afterok:$a "
                   "--kill-on-invalid-dep=yes %s\n", array_path, merge_path);
        } else {
            if (mkdir(abs_dir, 0777) != 0 && errno != EEXIST)
                st = qe_fail(&err, QE_EIO, "%s: cannot create: %s", abs_dir, strerror(errno));
            if (st == QE_OK && (st = write_file(array_path, write_array_script, &p, &err)) == QE_OK)
                st = write_file(merge_path, write_merge_script, &p, &err);
            if (st == QE_OK && want_submit)
                st = submit(&p, array_path, merge_path, &err);
            else if (st == QE_OK)
                printf("wrote %s and %s\nsubmit: a=$(sbatch --parsable %s) && sbatch --dependency=afterok:$a "
                       "--kill-on-invalid-dep=yes %s\n(or run this command again with --submit)\n",
                       array_path, merge_path, array_path, merge_path);
        }
    }
    free(abs_dir);
    free(abs_output);
    free(abs_baseline);
    free(array_path);
    free(merge_path);
    free(run_args);
    return st == QE_OK ? QH_EXIT_OK : qh_report_error(&err);
}
