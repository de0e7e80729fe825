/* Unit tests of parser/shell.c: substitution operators, matched/unmatched names, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

struct mcase {
	const char *input;
	const char *env;	/* "K=V;K=V" */
	const char *expected;	/* NULL: error */
	const char *matched;	/* "A,B" in first-use order */
	const char *unmatched;
};

/* After BuildKit's TestProcessWithMatches expectations. */
static const struct mcase mcases[] = {
	{ "x", "DUMMY=dummy", "x", "", "" },
	{ "x ${UNUSED}", "DUMMY=dummy", "x ", "", "UNUSED" },
	{ "x ${FOO}", "FOO=y", "x y", "FOO", "" },
	{ "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", "FOO=xxx;BAR=", "xxx  ccc", "FOO,BAR", "BAZ" },
	{ "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", "FOO=xxx;BAR=", "xxx bbb ccc", "FOO,BAR", "BAZ" },
	{ "${FOO:-}", "FOO=xxx;BAR=", "xxx", "FOO", "" },
	{ "${FOO:-}", "", "", "", "FOO" },
	{ "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", "FOO=xxx;BAR=", "aaa bbb ", "FOO,BAR", "BAZ" },
	{ "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", "FOO=xxx;BAR=", "aaa  ", "FOO,BAR", "BAZ" },
	{ "${FOO?aaa}", "FOO=xxx;BAR=", "xxx", "FOO", "" },
	{ "${BAR?bbb}", "FOO=xxx;BAR=", "", "BAR", "" },
	{ "${BAZ?ccc}", "FOO=xxx;BAR=", NULL, "", "" },
	{ "${FOO:?aaa}", "FOO=xxx;BAR=", "xxx", "FOO", "" },
	{ "${BAR:?bbb}", "FOO=xxx;BAR=", NULL, "", "" },
	{ "${BAZ:?ccc}", "FOO=xxx;BAR=", NULL, "", "" },
	{ "${BAZ:?}", "FOO=xxx;BAR=", NULL, "", "" },
	{ "${FOO=aaa}", "FOO=xxx;BAR=", NULL, "", "" },
	{ "${FOO=:aaa}", "FOO=xxx;BAR=", NULL, "", "" },
	{ "${FOO=}", "", NULL, "", "" },
	{ "${FOO#()[]{\\}^$.\\*\\?|\\\\}", "FOO=()[]{}^$.*?|\\x", "x", "FOO", "" },
	{ "${FOO%%\\**}", "FOO=xx**", "xx", "FOO", "" },
	{ "${FOO#*x*y}", "FOO=xxyy", "y", "FOO", "" },
	{ "${FOO#*}", "FOO=xxyy", "xxyy", "FOO", "" },
	{ "${FOO#$BAR}", "FOO=xxyy;BAR=x", "xyy", "BAR,FOO", "" },
	{ "${FOO#$BAR}", "FOO=xxyy;BAR=", "xxyy", "BAR,FOO", "" },
	{ "${FOO#}", "FOO=xxyy", "xxyy", "FOO", "" },
	{ "${FOO##*x}", "FOO=xxyy", "yy", "FOO", "" },
	{ "${FOO##}", "FOO=xxyy", "xxyy", "FOO", "" },
	{ "${FOO#?\\?}", "FOO=???y", "?y", "FOO", "" },
	{ "${ABC:-.}${FOO%x}${ABC:-.}", "FOO=xxyy", ".xxyy.", "FOO", "ABC" },
	{ "${FOO%%\\**\\*}", "FOO=a***yy*", "a", "FOO", "" },
	{ "${FOO%}", "FOO=xxyy", "xxyy", "FOO", "" },
	{ "${FOO%%$BAR}", "FOO=xxyy;BAR=", "xxyy", "BAR,FOO", "" },
	{ "${FOO%y}", "FOO=xxyy", "xxy", "FOO", "" },
	{ "${FOO%%y*}", "FOO=xxyy", "xx", "FOO", "" },
	{ "${FOO%y*}", "FOO=xxyy", "xxy", "FOO", "" },
	{ "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", "FOO=/foo*/*/*.txt;NEEDLE=\\*/",
	  "/foo.*/*.txt - /foo..*.txt", "NEEDLE,FOO", "" },
	{ "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", "FOO=/tmp/tmp/bar.txt;NEEDLE=/tmp",
	  "/tmp/bar.txt - /bar.txt", "NEEDLE,FOO", "" },
	{ "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
	  "FOO=/a/foo/b/c.txt;NEEDLE=/?/;REPLACEMENT=/", "/foo/b/c.txt - /foo/c.txt",
	  "NEEDLE,REPLACEMENT,FOO", "" },
	{ "${FOO/$NEEDLE/$REPLACEMENT}", "FOO=http://google.de;NEEDLE=http://;REPLACEMENT=https://",
	  "https://google.de", "NEEDLE,REPLACEMENT,FOO", "" },
	{ "${FOO//\\//\\/}", "FOO=/tmp/foo.txt", "\\/tmp\\/foo.txt", "FOO", "" },
	{ "${FOO/$BAR/ww}", "FOO=xxyy;BAR=", "wwxxyy", "BAR,FOO", "" },
	{ "${FOO//ww}", "FOO=xxyy", NULL, "", "" },
	{ "${FOO//}", "FOO=xxyy", NULL, "", "" },
	{ "${FOO///}", "FOO=xxyy", "xxyy", "FOO", "" },
	{ "${FOO///}", "", "", "", "FOO" },
	{ "${FOO//x/-}", "FOO=axbxc", "a-b-c", "FOO", "" },
	{ "${FOO//*/-}", "FOO=abc", "-", "FOO", "" },
	{ "${FOO//\\x/-}", "FOO=abc", NULL, "", "" },
	{ "${FOO:?message here$ARG}", "VAR=plain;ARG=x", NULL, "", "" },
	{ "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
	  "VERSION=v1.2.3;TARGETOS=linux;TARGETARCH=arm;TARGETVARIANT=v7",
	  "something-v1.2.3.linux-arm-v7.tar.gz", "VERSION,TARGETOS,TARGETARCH,TARGETVARIANT", "" },
	{ "${안녕:-x}$KOREAN", "KOREAN=한국어", "x한국어", "KOREAN", "안녕" },
};

static void load_env(struct df_env *env, const char *spec)
{
	char *copy = xstrdup(spec), *p = copy;

	while (p && *p) {
		char *semi = strchr(p, ';');

		if (semi)
			*semi = 0;
		df_env_set_kv(env, p);
		p = semi ? semi + 1 : NULL;
	}
	free(copy);
}

static char *join(const struct kn_strv *sv)
{
	struct kn_buf b = KN_BUF_INIT;

	for (size_t i = 0; i < sv->n; i++)
		kn_buf_addf(&b, "%s%s", i ? "," : "", sv->v[i]);
	return kn_buf_detach(&b);
}

static void test_matches(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(mcases) / sizeof(mcases[0]); i++) {
		const struct mcase *c = &mcases[i];
		struct df_env env = DF_ENV_INIT;
		struct df_expansion x;
		kn_error *err = NULL;
		int r;

		load_env(&env, c->env);
		r = df_expand(c->input, &env, '\\', 0, &x, &err);
		if (!c->expected) {
			if (r == 0)
				fail_msg("%s: expected an error, got '%s'", c->input, x.result);
			kn_error_free(err);
		} else {
			_cleanup_free_ char *m = NULL, *u = NULL;

			if (r < 0)
				fail_msg("%s: unexpected error %s", c->input, err->msg);
			m = join(&x.matched);
			u = join(&x.unmatched);
			if (strcmp(x.result, c->expected) != 0 || strcmp(m, c->matched) != 0 ||
			    strcmp(u, c->unmatched) != 0)
				fail_msg("%s: got '%s' matched '%s' unmatched '%s', want '%s' '%s' '%s'",
					 c->input, x.result, m, u, c->expected, c->matched, c->unmatched);
			df_expansion_release(&x);
		}
		df_env_release(&env);
	}
}

static void expect_error(const char *word, const char *env_spec, const char *msg)
{
	struct df_env env = DF_ENV_INIT;
	kn_error *err = NULL;
	char *r;

	load_env(&env, env_spec);
	r = df_expand_word(word, &env, '\\', &err);
	if (r)
		fail_msg("%s: expected error '%s', got '%s'", word, msg, r);
	assert_non_null(err);
	if (strcmp(err->msg, msg) != 0)
		fail_msg("%s: error '%s', want '%s'", word, err->msg, msg);
	kn_error_free(err);
	df_env_release(&env);
}

static void test_error_text(void **state)
{
	(void)state;
	expect_error("${VAR:?message here$ARG}", "VAR=;ARG=x", "failed to process \"${VAR:?message here$ARG}\": VAR: message herex");
	expect_error("${VAR?}", "", "failed to process \"${VAR?}\": VAR: is not allowed to be unset");
	expect_error("${VAR:?}", "VAR=", "failed to process \"${VAR:?}\": VAR: is not allowed to be empty");
	expect_error("${a", "", "failed to process \"${a\": syntax error: missing '}'");
	expect_error("${a:-b", "", "failed to process \"${a:-b\": syntax error: missing '}'");
	expect_error("${}", "", "failed to process \"${}\": syntax error: bad substitution");
	expect_error("${a:=b}", "", "failed to process \"${a:=b}\": unsupported modifier (:=) in substitution");
	expect_error("'abc", "", "failed to process \"'abc\": unexpected end of statement while looking for matching single-quote");
	expect_error("\"abc", "", "failed to process \"\\\"abc\": unexpected end of statement while looking for matching double-quote");
	expect_error("${a/x", "", "failed to process \"${a/x\": syntax error: missing '/' in ${}");
	expect_error("${a#\\x}", "a=1", "failed to process \"${a#\\\\x}\": invalid pattern (\\x) in substitution: invalid escape '\\x'");
}

static void test_backtick_escape(void **state)
{
	struct df_env env = DF_ENV_INIT;
	kn_error *err = NULL;
	char *r;

	(void)state;
	df_env_set(&env, "A", "v");
	r = df_expand_word("`$A $A \\x \"`\"\"", &env, '`', &err);
	assert_non_null(r);
	assert_string_equal(r, "$A v \\x \"");
	free(r);
	df_env_release(&env);
}

static void test_deep_nesting(void **state)
{
	struct kn_buf w = KN_BUF_INIT;
	kn_error *err = NULL;
	char *r;

	(void)state;
	for (int i = 0; i < 10000; i++)
		kn_buf_addf(&w, "${a%d:-", i);
	kn_buf_adds(&w, "x");
	for (int i = 0; i < 10000; i++)
		kn_buf_addch(&w, '}');
	r = df_expand_word(w.buf, NULL, '\\', &err);
	assert_null(r);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "nested more than"));
	kn_error_free(err);
	err = NULL;
	/* within the limit it expands */
	kn_buf_reset(&w);
	for (int i = 0; i < 100; i++)
		kn_buf_addf(&w, "${a%d:-", i);
	kn_buf_adds(&w, "x");
	for (int i = 0; i < 100; i++)
		kn_buf_addch(&w, '}');
	r = df_expand_word(w.buf, NULL, '\\', &err);
	assert_non_null(r);
	assert_string_equal(r, "x");
	free(r);
	kn_buf_release(&w);
}

static void test_big_replace_is_fast(void **state)
{
	struct df_env env = DF_ENV_INIT;
	struct kn_buf v = KN_BUF_INIT;
	kn_error *err = NULL;
	char *r;

	(void)state;
	for (int i = 0; i < 200000; i++)
		kn_buf_addch(&v, 'a');
	df_env_set(&env, "V", v.buf);
	/* no match anywhere: must stay linear, not quadratic */
	r = df_expand_word("${V//*x/y}", &env, '\\', &err);
	assert_non_null(r);
	assert_int_equal(strlen(r), 200000);
	free(r);
	r = df_expand_word("${V//a/b}", &env, '\\', &err);
	assert_non_null(r);
	assert_int_equal(r[199999], 'b');
	free(r);
	kn_buf_release(&v);
	df_env_release(&env);
}

static void test_env(void **state)
{
	struct df_env env = DF_ENV_INIT;
	char **sv;

	(void)state;
	for (int i = 0; i < 1000; i++) {
		char k[32];

		snprintf(k, sizeof(k), "K%d", i);
		df_env_set(&env, k, "v");
	}
	df_env_set(&env, "K5", "later");
	assert_int_equal(env.n, 1000);
	assert_string_equal(df_env_get(&env, "K5"), "later");
	assert_true(df_env_unset(&env, "K0"));
	assert_null(df_env_get(&env, "K0"));
	assert_string_equal(df_env_get(&env, "K999"), "v");
	sv = df_env_to_strv(&env);
	assert_string_equal(sv[0], "K1=v");
	assert_string_equal(sv[4], "K5=later");
	kn_strv_free(sv);
	df_env_release(&env);
}

static void test_flags(void **state)
{
	struct df_expansion x;
	kn_error *err = NULL;

	(void)state;
	assert_int_equal(df_expand("a'b c'$U ${U:-d}", NULL, '\\', DF_LEX_RAW_QUOTES | DF_LEX_SKIP_UNSET, &x, &err), 0);
	assert_string_equal(x.result, "a'b c'$U ${U:-d}");
	df_expansion_release(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_error_text),
		cmocka_unit_test(test_backtick_escape),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_big_replace_is_fast),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
