/* score — lm-evaluation-harness loglikelihood over the forward pass (qe_score_batch in
 * qeval_engine.h). Engine-internal: the one tokenization rule scoring and
 * generation share. */
#ifndef QE_SCORE_H
#define QE_SCORE_H

#include <stdbool.h>

#include "model.h"

/* lm-evaluation-harness encodes without special tokens, except for Gemma models, for which it
 * forces add_bos_token=True. */
bool qe_lm_eval_adds_special(const qe_model *model);

#endif
