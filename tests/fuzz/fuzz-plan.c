/*
 * libFuzzer target for the planner with its expansion limits (DF_EXPAND_MAX_LEN per word,
 * DF_PLAN_MAX_EXPANDED per plan): any Dockerfile is planned, and every needed stage's
 * instructions are expanded and applied in order as the builder does, without running out of
 * memory or time (run.sh gives this target a tight -rss_limit_mb and -timeout, fuzz-plan.options).
 * The seeds (corpus/fuzz-plan) are expansion bombs; the dictionary steers towards more.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parser/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expand_stages(const struct df_plan *plan)
{
	for (size_t si = 0; si < plan->n_stages; si++) {
		const struct df_stage *s = &plan->stages[si];
		struct df_stage_env se;

		if (s->skipped || df_stage_env_init(&se, plan, s, NULL, NULL) < 0)
			continue;
		for (size_t ii = 0; ii < s->n_instrs; ii++) {
			struct df_instr *x = NULL;
			kn_error *e = NULL;

			if (df_stage_env_expand(&se, s->instrs[ii], &x, &e) < 0) {
				kn_error_free(e);
				break;
			}
			(void)df_stage_env_apply(&se, x, NULL);
			df_instr_free(x);
		}
		df_stage_env_release(&se);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct df_plan_opts opts = {"Dockerfile", NULL, NULL, NULL};
	struct df_plan *plan = NULL;
	struct kn_buf out = KN_BUF_INIT;
	kn_error *err = NULL;
	struct df_ast *ast = df_parse_ex((const char *)data, size, "Dockerfile", 0, &err);

	if (!ast) {
		kn_error_free(err);
		return 0;
	}
	if (df_plan_build(ast->root, ast->escape, &opts, &plan, &err) == 0) {
		expand_stages(plan);
		(void)df_plan_format(plan, &out, &err);
	}
	kn_buf_release(&out);
	df_plan_free(plan);
	kn_error_free(err);
	df_ast_free(ast);
	return 0;
}
