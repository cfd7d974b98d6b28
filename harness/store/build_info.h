/* build_info — which qeval this is: QEVAL_VERSION (a compile definition of the project's
 * version) and the git commit of the tree it was built from, refreshed at every build (not
 * only when CMake configures), so stored runs, `qeval --version` and bench records name the
 * code that produced them. */
#ifndef QH_BUILD_INFO_H
#define QH_BUILD_INFO_H

extern const char qh_git_commit[]; /* 12 hex digits (+ "-dirty": tracked files changed), or "" */

#endif
