/* qeval — the command line. Parses the subcommand, calls into the harness, prints errors as
 * "qeval: <message>" and maps them to exit codes: 0 ok, 1 error, 2 usage, 3 interrupted.
 * Each subcommand lives in its own harness/cmd_*.c and is listed in the table below. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const qh_command commands[] = {
    {"run", "run variants x benchmarks on a model into the results store", qh_cmd_run},
    {"version", "print the version", qh_cmd_version},
    {"model", "list, fetch and locate models by short name", qh_cmd_model},
    {"runs", "list the runs in a results file", qh_cmd_runs},
    {"merge", "combine the result files of a sharded run", qh_cmd_merge},
    {"slurm", "a sharded run as a Slurm job array, merged (and compared) when it is done", qh_cmd_slurm},
    {"rescore", "recompute a run's scores from its stored responses, without the model", qh_cmd_rescore},
    {"report", "write a run's report (md, html, csv, json)", qh_cmd_report},
    {"compare", "compare two runs; exit 1 on a significant drop", qh_cmd_compare},
    {"trend", "a score's history across runs, as a table and an SVG chart", qh_cmd_trend},
    {"requests", "write the requests a task makes, one JSON line each", qh_cmd_requests},
    {"data", "verify or fetch the benchmark data files", qh_cmd_data},
    {"estimate", "predict a model's memory per variant from its config; does it fit a GPU", qh_cmd_estimate},
    {"inspect", "show a model's architecture, parameter count and tensors", qh_cmd_inspect},
    {"generate", "continue a prompt greedily", qh_cmd_generate},
    {"tokenize", "print the token ids of text", qh_cmd_tokenize},
    {"bench", "measure prefill and decode speed of variants", qh_cmd_bench},
    {"verify", "compare a model's logits and greedy output with golden files", qh_cmd_verify},
    {"code-exec", "score HumanEval completions in the sandbox (runs untrusted code)", qh_cmd_code_exec},
    {"synth", "write a random-weight model with the shapes of a real one", qh_cmd_synth},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nqeval COMMAND --help shows a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return QH_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return QH_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "qeval: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return QH_EXIT_USAGE;
}
