#include "check.h"
#include "qe_error.h"

int main(void)
{
    qe_error err = {0};
    CHECK_INT_EQ(QE_EFORMAT, qe_fail(&err, QE_EFORMAT, "%s: header length %d runs past the end", "m.safetensors", 99));
    CHECK_STR_EQ("m.safetensors: header length 99 runs past the end", err.msg);
    CHECK_INT_EQ(QE_EFORMAT, qe_fail_context(&err, "loading %s", "stories"));
    CHECK_STR_EQ("loading stories: m.safetensors: header length 99 runs past the end", err.msg);
    CHECK_INT_EQ(QE_EIO, qe_fail(NULL, QE_EIO, "ignored"));
    return check_summary();
}
