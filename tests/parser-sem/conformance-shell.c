/*
 * Runs BuildKit's shell/envVarTest and shell/wordsTest against df_expand(), byte for byte.
 * Usage: conformance-shell env|words FILE. Missing data is a failure, not a skip.
 * envVarTest lines are PLATFORM|input|expected: A (all) and U (Unix) apply; W (Windows) lines do
 * not apply to a Linux builder ($pwd and $PWD are different variables here) and are counted apart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = 0;
	return s;
}

/* Splits the text at newlines in place: returns the next line or NULL. */
static char *next_line(char **cursor)
{
	char *line = *cursor, *nl;

	if (!line)
		return NULL;
	nl = strchr(line, '\n');
	if (nl) {
		*nl = 0;
		*cursor = nl + 1;
	} else {
		*cursor = NULL;
		if (!*line)
			return NULL;
	}
	return line;
}

static int run_env(const char *text)
{
	struct df_env env = DF_ENV_INIT;
	int pass = 0, fail = 0, na = 0, lineno = 0;
	char *copy = xstrdup(text), *cursor = copy, *line;

	df_env_set(&env, "PWD", "/home");
	df_env_set(&env, "SHELL", "bash");
	df_env_set(&env, "KOREAN", "한국어");
	df_env_set(&env, "NULL", "");
	while ((line = next_line(&cursor))) {
		char *f[4] = { 0 }, *p = line, *bar;
		int nf = 0;
		struct df_expansion x;
		kn_error *err = NULL;
		const char *platform, *src, *exp;

		lineno++;
		if (line[0] == '#' || !*trim(line))
			continue;
		while (nf < 4) {
			f[nf++] = p;
			bar = strchr(p, '|');
			if (!bar)
				break;
			*bar = 0;
			p = bar + 1;
		}
		if (nf != 3) {
			fprintf(stderr, "envVarTest: malformed line %d\n", lineno);
			fail++;
			continue;
		}
		platform = trim(f[0]);
		src = trim(f[1]);
		exp = trim(f[2]);
		if (strcmp(platform, "W") == 0) {
			na++;
			continue;
		}
		if (df_expand(src, &env, '\\', 0, &x, &err) < 0) {
			if (strcmp(exp, "error") == 0) {
				pass++;
			} else {
				fprintf(stderr, "FAIL envVarTest:%d %s: error %s, want '%s'\n", lineno, src, err->msg, exp);
				fail++;
			}
			kn_error_free(err);
			continue;
		}
		if (strcmp(exp, "error") != 0 && strcmp(x.result, exp) == 0) {
			pass++;
		} else {
			fprintf(stderr, "FAIL envVarTest:%d %s: got '%s', want '%s'\n", lineno, src, x.result, exp);
			fail++;
		}
		df_expansion_release(&x);
	}
	printf("envVarTest: %d passed, %d failed, %d not applicable (W: Windows only)\n", pass, fail, na);
	free(copy);
	df_env_release(&env);
	return fail == 0 && pass == 228 ? 0 : 1;
}

static int run_words(const char *text)
{
	struct df_env env = DF_ENV_INIT;
	int pass = 0, fail = 0, lineno = 0;
	char *copy = xstrdup(text), *cursor = copy, *line;

	while ((line = next_line(&cursor))) {
		char *bar, *test, *want;
		struct kn_buf got = KN_BUF_INIT;
		char **words;
		kn_error *err = NULL;

		lineno++;
		if (line[0] == '#')
			continue;
		if (strncmp(line, "ENV ", 4) == 0) {
			char *kv = line + 3;

			while (*kv == ' ')
				kv++;
			df_env_set_kv(&env, kv);
			continue;
		}
		bar = strchr(line, '|');
		if (!bar || strchr(bar + 1, '|')) {
			fprintf(stderr, "wordsTest: malformed line %d\n", lineno);
			fail++;
			continue;
		}
		*bar = 0;
		test = trim(line);
		want = bar + 1;
		while (*want == ' ')
			want++;
		words = df_expand_words(test, &env, '\\', &err);
		if (!words) {
			kn_buf_adds(&got, "error");
			kn_error_free(err);
		} else {
			for (size_t i = 0; words[i]; i++)
				kn_buf_addf(&got, "%s%s", i ? "," : "", words[i]);
			kn_strv_free(words);
		}
		if (strcmp(got.buf, want) == 0) {
			pass++;
		} else {
			fprintf(stderr, "FAIL wordsTest:%d '%s': got '%s', want '%s'\n", lineno, test, got.buf, want);
			fail++;
		}
		kn_buf_release(&got);
	}
	printf("wordsTest: %d passed, %d failed\n", pass, fail);
	free(copy);
	df_env_release(&env);
	return fail == 0 && pass == 24 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct kn_buf text = KN_BUF_INIT;
	kn_error *err = NULL;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: conformance-shell env|words FILE\n");
		return 2;
	}
	if (kn_read_file(argv[2], 16 << 20, &text, &err) < 0) {
		char *m = kn_error_format(err);

		fprintf(stderr, "conformance data missing (set KILN_CONFORMANCE_DIR): %s\n", m);
		free(m);
		kn_error_free(err);
		return 1;
	}
	r = strcmp(argv[1], "env") == 0 ? run_env(text.buf) : run_words(text.buf);
	kn_buf_release(&text);
	return r;
}
