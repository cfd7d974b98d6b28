/* libFuzzer: arbitrary bytes as a CSV, JSONL and JSON data file. Every input must load or fail
 * with a message; never crash, leak or overrun. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "qd_table.h"

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/qeval_fuzz_csv_%d", (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    static const char *const fields[] = {"question", "A", "B", "C", "D", "answer"};
    static const char *const letters[] = {"A", "B", "C", "D"};
    static const qd_field_check check = {"answer", letters, 4};
    for (int format = 0; format < 3; format++) {
        for (int skip = 0; skip < 2; skip++) {
            qd_load_spec spec = {.format = (qd_format)format, .fields = fields, .n_fields = format == 0 ? 6 : 1,
                                 .checks = &check, .n_checks = 1, .skip_bad_rows = skip};
            qd_table table;
            qe_error err;
            if (qd_table_load(path, &spec, &table, &err) == QE_OK)
                qd_table_free(&table);
        }
    }
    qd_load_spec header = {.format = QD_FORMAT_CSV, .has_header = true, .skip_bad_rows = true};
    qd_table table;
    qe_error err;
    if (qd_table_load(path, &header, &table, &err) == QE_OK)
        qd_table_free(&table);
    return 0;
}
