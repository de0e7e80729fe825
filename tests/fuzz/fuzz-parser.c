/*
 * libFuzzer target for the Dockerfile parser: any bytes must give an AST or an error, never a
 * crash, a leak, a read past the input or a hang. The AST is dumped and walked so that every
 * field the parser fills is read, then planned (typed instructions, stage graph, expansion)
 * and the plan formatted, as `kiln parse --plan` does.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parser/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t walk(const struct df_node *n)
{
	size_t sum = 0;

	for (; n; n = n->next) {
		sum += n->value_len + strlen(n->value);
		if (n->original)
			sum += strlen(n->original);
		for (size_t i = 0; i < n->n_flags; i++)
			sum += strlen(n->flags[i]);
		for (size_t i = 0; i < n->n_prev_comment; i++)
			sum += strlen(n->prev_comment[i]);
		for (size_t i = 0; i < n->n_heredocs; i++) {
			char *c = df_heredoc_chomp(&n->heredocs[i]);

			sum += strlen(n->heredocs[i].name) + strlen(c);
			free(c);
		}
		for (size_t i = 0; i < n->n_children; i++)
			sum += walk(n->children[i]);
	}
	return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	kn_error *err = NULL;
	/* both modes: unknown instructions rejected, or kept as BuildKit's parser does */
	struct df_ast *ast = df_parse_ex((const char *)data, size, "Dockerfile",
					 (size & 1) ? DF_PARSE_ALLOW_UNKNOWN : 0, &err);
	char *dump;

	if (!ast) {
		char *msg = kn_error_format(err);

		free(msg);
		kn_error_free(err);
		return 0;
	}
	dump = df_ast_dump(ast);
	if (!dump[0] || dump[strlen(dump) - 1] != '\n')
		__builtin_trap();
	free(dump);
	for (size_t i = 0; i < ast->root->n_children; i++) {
		char *d = df_node_dump(ast->root->children[i]);

		free(d);
	}
	(void)walk(ast->root);
	(void)df_ast_directive(ast, "syntax");
	if (!(size & 1)) {
		struct df_plan_opts opts = {"Dockerfile", NULL, NULL, NULL};
		struct df_plan *plan = NULL;
		struct kn_buf out = KN_BUF_INIT;

		if (df_plan_build(ast->root, ast->escape, &opts, &plan, &err) == 0 &&
		    df_plan_format(plan, &out, &err) == 0)
			kn_buf_release(&out);
		kn_buf_release(&out);
		df_plan_free(plan);
		kn_error_free(err);
	}
	df_ast_free(ast);
	return 0;
}
