/*
 * libFuzzer target for the parser's semantic helpers: word expansion (parser/shell.c) with both
 * escape characters and every lexer flag, and .dockerignore reading/matching
 * (parser/dockerignore.c) with the input as patterns and as paths. Any bytes must give a result
 * or an error: no crash, leak, read past the input or hang (nesting and pattern sizes are capped).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expand_all(const char *word, const struct df_env *env)
{
	for (unsigned flags = 0; flags < 16; flags += 5) {
		for (int e = 0; e < 2; e++) {
			struct df_expansion x;
			kn_error *err = NULL;

			if (df_expand(word, env, e ? '`' : '\\', flags, &x, &err) == 0)
				df_expansion_release(&x);
			kn_error_free(err);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = { "a", "a/b", "a/b/c.txt", ".git/config", "node_modules/x/y",
					     "docs/README.md", "\xce\xb1/\xe2\x98\xba" };
	static const char *const fixed = "*.tmp\n!keep.tmp\n**/build\ndocs/**\n[a-c]?/x\n!**/*.md\n";
	char *text;
	struct df_env env = DF_ENV_INIT;
	struct df_ignore *m = NULL;
	kn_error *err = NULL;

	if (size > 65536 || memchr(data, 0, size))
		return 0;
	text = xstrndup((const char *)data, size);
	df_env_set(&env, "PWD", "/home");
	df_env_set(&env, "A", "a*b?c/d");
	df_env_set(&env, "EMPTY", "");
	expand_all(text, &env);

	if (df_ignore_parse(text, size, &m, &err) == 0) {
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			(void)df_ignore_matches(m, paths[i]);
			(void)df_ignore_dir_skippable(m, paths[i]);
		}
		df_ignore_free(m);
	}
	kn_error_free(err);
	err = NULL;
	if (df_ignore_parse(fixed, strlen(fixed), &m, &err) == 0) {
		char *line = text, *nl;

		do {
			nl = strchr(line, '\n');
			if (nl)
				*nl = 0;
			(void)df_ignore_matches(m, line);
			(void)df_ignore_dir_skippable(m, line);
			line = nl ? nl + 1 : NULL;
		} while (line);
		df_ignore_free(m);
	}
	kn_error_free(err);
	df_env_release(&env);
	free(text);
	return 0;
}
