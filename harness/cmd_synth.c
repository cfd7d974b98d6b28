/* qeval synth --like NAME OUT_DIR [--seed N]     qeval synth --list
 *
 * Writes a random-weight model with the exact shapes of a real one (synth.h says what is in the
 * directory and how the weights are drawn), so speed, memory and footprint can be measured at
 * real scale with nothing downloaded. Its scores mean nothing. --list prints the known shapes
 * with the parameter count and BF16 bytes each writes. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "synth.h"

static int usage(FILE *out)
{
    char names[256];
    qh_synth_shape_names(names, sizeof names);
    fprintf(out, "usage: qeval synth --like NAME OUT_DIR [--seed N]\n"
                 "       qeval synth --list\n"
                 "NAME: %s\n", names);
    return QH_EXIT_USAGE;
}

static int list_shapes(void)
{
    printf("%-14s %15s %16s %6s  %s\n", "name", "parameters", "bf16_bytes", "files", "shapes of");
    for (int i = 0; qh_synth_shape_at(i); i++) {
        const qh_synth_shape *shape = qh_synth_shape_at(i);
        qh_synth_summary summary;
        qe_error err = {0};
        if (qh_synth_plan(shape, &summary, &err) != QE_OK)
            return qh_report_error(&err);
        printf("%-14s %15" PRIu64 " %16" PRIu64 " %6d  %s\n", shape->name, summary.n_params,
               summary.n_weight_bytes, summary.n_files, shape->source);
    }
    return QH_EXIT_OK;
}

int qh_cmd_synth(int argc, char **argv)
{
    const char *like = NULL, *out_dir = NULL;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--list")) {
            return list_shapes();
        } else if (!strcmp(argv[i], "--like") && i + 1 < argc) {
            like = argv[++i];
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            char *end;
            seed = strtoull(argv[++i], &end, 10);
            if (!isdigit((unsigned char)argv[i][0]) || *end)
                return qh_usage_error("synth", "--seed takes a non-negative integer, not '%s'", argv[i]);
        } else if (argv[i][0] != '-' && !out_dir) {
            out_dir = argv[i];
        } else {
            return qh_usage_error("synth", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!like || !out_dir)
        return usage(stderr);
    qe_error err = {0};
    const qh_synth_shape *shape = NULL;
    qh_synth_summary summary;
    if (qh_synth_shape_find(like, &shape, &err) || qh_synth_write(shape, out_dir, seed, &summary, &err))
        return qh_report_error(&err);
    printf("%s: random weights shaped as %s (%s), seed %" PRIu64 ": %" PRIu64 " parameters, %" PRIu64
           " bytes of BF16 in %d file%s\n",
           out_dir, shape->name, shape->source, seed, summary.n_params, summary.n_weight_bytes, summary.n_files,
           summary.n_files == 1 ? "" : "s");
    return QH_EXIT_OK;
}
