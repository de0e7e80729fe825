/* Unit tests of parser/dockerignore.c (expectations after moby/patternmatcher's own cases). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

struct one {
	const char *pattern;
	const char *path;
	bool match;
};

static const struct one singles[] = {
	{ "*", "fileutils.go", true },
	{ "*.go", "fileutils.go", true },
	{ "**", "file", true },
	{ "**", "file/", true },
	{ "**/", "file", true },
	{ "**/", "file/", true },
	{ "**", "dir/file", true },
	{ "**/", "dir/file", true },
	{ "**", "dir/file/", true },
	{ "**/", "dir/file/", true },
	{ "**/**", "dir/file", true },
	{ "**/**", "dir/file/", true },
	{ "dir/**", "dir/file", true },
	{ "dir/**", "dir/file/", true },
	{ "dir/**", "dir/dir2/file", true },
	{ "dir/**", "dir/dir2/file/", true },
	{ "**/dir", "dir", true },
	{ "**/dir", "dir/file", true },
	{ "**/dir2/*", "dir/dir2/file", true },
	{ "**/dir2/*", "dir/dir2/file/", true },
	{ "**/dir2/**", "dir/dir2/dir3/file", true },
	{ "**/dir2/**", "dir/dir2/dir3/file/", true },
	{ "**file", "file", true },
	{ "**file", "dir/file", true },
	{ "**/file", "dir/file", true },
	{ "**file", "dir/dir/file", true },
	{ "**/file", "dir/dir/file", true },
	{ "**/file*", "dir/dir/file", true },
	{ "**/file*", "dir/dir/file.txt", true },
	{ "**/file*txt", "dir/dir/file.txt", true },
	{ "**/file*.txt", "dir/dir/file.txt", true },
	{ "**/file*.txt*", "dir/dir/file.txt", true },
	{ "**/**/*.txt", "dir/dir/file.txt", true },
	{ "**/**/*.txt2", "dir/dir/file.txt", false },
	{ "**/*.txt", "file.txt", true },
	{ "**/**/*.txt", "file.txt", true },
	{ "a**/*.txt", "a/file.txt", true },
	{ "a**/*.txt", "a/dir/file.txt", true },
	{ "a**/*.txt", "a/dir/dir/file.txt", true },
	{ "a/*.txt", "a/dir/file.txt", false },
	{ "a/*.txt", "a/file.txt", true },
	{ "a/*.txt**", "a/file.txt", true },
	{ "a[b-d]e", "ae", false },
	{ "a[b-d]e", "ace", true },
	{ "a[b-d]e", "aae", false },
	{ "a[^b-d]e", "aze", true },
	{ ".*", ".foo", true },
	{ ".*", "foo", false },
	{ "abc.def", "abcdef", false },
	{ "abc.def", "abc.def", true },
	{ "abc.def", "abcZdef", false },
	{ "abc?def", "abcZdef", true },
	{ "abc?def", "abcdef", false },
	{ "**/foo/bar", "foo/bar", true },
	{ "**/foo/bar", "dir/foo/bar", true },
	{ "**/foo/bar", "dir/dir2/foo/bar", true },
	{ "abc/**", "abc", false },
	{ "abc/**", "abc/def", true },
	{ "abc/**", "abc/def/ghi", true },
	{ "**/.foo", ".foo", true },
	{ "**/.foo", "bar.foo", false },
	{ "a(b)c/def", "a(b)c/def", true },
	{ "a(b)c/def", "a(b)c/xyz", false },
	{ "a.|)$(}+{bc", "a.|)$(}+{bc", true },
	{ "dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true },
	{ "a\\\\", "a\\", true },
	{ "a\\*b", "a*b", true },
	{ "a\\*b", "ab", false },
	/* after Go's filepath.Match cases */
	{ "abc", "abc", true },
	{ "*c", "abc", true },
	{ "a*", "a", true },
	{ "a*", "ab/c", true },
	{ "a*/b", "abc/b", true },
	{ "a*/b", "a/c/b", false },
	{ "a*b*c*d*e*/f", "axbxcxdxe/f", true },
	{ "a*b*c*d*e*/f", "axbxcxdxexxx/f", true },
	{ "a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false },
	{ "a*b*c*d*e*/f", "axbxcxdxexxx/fff", false },
	{ "a*b?c*x", "abxbbxdbxebxczzx", true },
	{ "a*b?c*x", "abxbbxdbxebxczzy", false },
	{ "ab[c]", "abc", true },
	{ "ab[b-d]", "abc", true },
	{ "ab[e-g]", "abc", false },
	{ "ab[^c]", "abc", false },
	{ "ab[^b-d]", "abc", false },
	{ "ab[^e-g]", "abc", true },
	{ "a?b", "a\xe2\x98\xba" "b", true },
	{ "a[^a]b", "a\xe2\x98\xba" "b", true },
	{ "a???b", "a\xe2\x98\xba" "b", false },
	{ "[a-\xce\xb6]*", "\xce\xb1", true },
	{ "*[a-\xce\xb6]", "A", false },
	{ "a?b", "a/b", false },
	{ "a*b", "a/b", false },
	{ "[\\]a]", "]", true },
	{ "[\\-]", "-", true },
	{ "[x\\-]", "x", true },
	{ "[x\\-]", "-", true },
	{ "[x\\-]", "z", false },
	{ "[\\-x]", "x", true },
	{ "[\\-x]", "-", true },
	{ "[\\-x]", "a", false },
	{ "*x", "xxx", true },
	/* cleaning */
	{ "./docs/", "docs/a.md", true },
	{ "/docs", "docs/a.md", false }, /* only the file reader strips '/' */
	{ "docs//x/../y", "docs/y", true },
	{ "docs", "./docs/z", true },
	{ "docs", "/docs/z", true },
	{ "*.go", ".", false },
};

static const char *const bad[] = {
	"[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "!",
};

struct multi {
	const char *patterns;	/* newline-separated .dockerignore text */
	const char *path;
	bool match;
};

static const struct multi multis[] = {
	{ "**\n!util/docker/web", "util/docker/web/foo", false },
	{ "**\n!util/docker/web\nutil/docker/web/foo", "util/docker/web/foo", true },
	{ "**\n!dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", false },
	{ "!fileutils.go\n*.go", "fileutils.go", true },
	{ "docs\n!docs/README.md", "docs/README.md", false },
	{ "docs/\n!docs/README.md", "docs/README.md", false },
	{ "docs/*\n!docs/README.md", "docs/README.md", false },
	{ "*.go\n!fileutils.go", "fileutils.go", false },
	{ "*.md\n!README*.md\nREADME-secret.md", "README-secret.md", true },
	{ "*.md\n!README*.md\nREADME-secret.md", "README-public.md", false },
	{ "*.md\n!README*.md\nREADME-secret.md", "notes.md", true },
	/* comments, blank lines, BOM, CRLF, whitespace */
	{ "\xef\xbb\xbf# comment\n\n  *.tmp  \r\n", "a.tmp", true },
	{ "# *.tmp\n", "a.tmp", false },
	{ "  # not a comment\n", "# not a comment", true },
	{ "! /keep\n", "keep", false },
	{ "*\n! /keep\n", "keep", false },
	{ "*\n! /keep\n", "other", true },
	{ "*\n!keep/", "keep/file", false },
	{ "node_modules\n**/*.log\n!important.log", "src/a/debug.log", true },
	{ "node_modules\n**/*.log\n!important.log", "important.log", false },
	{ "node_modules\n**/*.log\n!important.log", "node_modules/x/y.js", true },
	{ "", "anything", false },
	{ "/docs\n", "docs/a.md", true },
};

static void test_singles(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(singles) / sizeof(singles[0]); i++) {
		const struct one *c = &singles[i];
		char *pats[] = { (char *)c->pattern };
		struct df_ignore *m = NULL;
		kn_error *err = NULL;

		if (df_ignore_new(pats, 1, &m, &err) < 0)
			fail_msg("pattern '%s': %s", c->pattern, err->msg);
		if (df_ignore_matches(m, c->path) != c->match)
			fail_msg("pattern '%s' path '%s': want %d", c->pattern, c->path, c->match);
		df_ignore_free(m);
	}
}

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *pats[] = { (char *)bad[i] };
		struct df_ignore *m = NULL;
		kn_error *err = NULL;

		if (df_ignore_new(pats, 1, &m, &err) == 0)
			fail_msg("pattern '%s' should be rejected", bad[i]);
		assert_null(m);
		assert_non_null(err);
		kn_error_free(err);
	}
	{
		char *pats[] = { (char *)"!" };
		struct df_ignore *m = NULL;
		kn_error *err = NULL;

		assert_int_equal(df_ignore_new(pats, 1, &m, &err), -1);
		assert_string_equal(err->msg, "illegal exclusion pattern: \"!\"");
		kn_error_free(err);
	}
}

static void test_multis(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(multis) / sizeof(multis[0]); i++) {
		const struct multi *c = &multis[i];
		struct df_ignore *m = NULL;
		kn_error *err = NULL;

		if (df_ignore_parse(c->patterns, strlen(c->patterns), &m, &err) < 0)
			fail_msg("patterns '%s': %s", c->patterns, err->msg);
		if (df_ignore_matches(m, c->path) != c->match)
			fail_msg("patterns '%s' path '%s': want %d", c->patterns, c->path, c->match);
		df_ignore_free(m);
	}
}

static void test_read(void **state)
{
	struct kn_strv sv = KN_STRV_INIT;
	const char *text = "\xef\xbb\xbf# c\n/abs/./x/\n./rel\n!  /neg/../n2\n  \n\t*.o \n!\n/\n";

	(void)state;
	df_ignore_read(text, strlen(text), &sv);
	assert_int_equal(sv.n, 6);
	assert_string_equal(sv.v[0], "abs/x");
	assert_string_equal(sv.v[1], "rel");
	assert_string_equal(sv.v[2], "!n2");
	assert_string_equal(sv.v[3], "*.o");
	assert_string_equal(sv.v[4], "!");
	assert_string_equal(sv.v[5], "/");
	kn_strv_release(&sv);
}

static void test_skippable(void **state)
{
	const char *text = "build\nnode_modules\n!node_modules/keep\nlogs\n!**/*.keep\ncache/\n";
	const char *text2 = "vendor\n!vendor/a/b.txt\nsecret\n!other\n";
	struct df_ignore *m = NULL, *m2 = NULL;
	kn_error *err = NULL;

	(void)state;
	assert_int_equal(df_ignore_parse(text, strlen(text), &m, &err), 0);
	assert_true(df_ignore_has_exceptions(m));
	/* "**" exceptions may re-include anything: nothing excluded can be skipped */
	assert_false(df_ignore_dir_skippable(m, "build"));
	assert_false(df_ignore_dir_skippable(m, "src"));
	df_ignore_free(m);

	assert_int_equal(df_ignore_parse(text2, strlen(text2), &m2, &err), 0);
	assert_false(df_ignore_dir_skippable(m2, "vendor"));
	assert_false(df_ignore_dir_skippable(m2, "vendor/a"));
	assert_true(df_ignore_dir_skippable(m2, "vendor/c"));
	assert_true(df_ignore_dir_skippable(m2, "secret"));
	assert_false(df_ignore_dir_skippable(m2, "src"));
	assert_true(df_ignore_matches(m2, "vendor/c/d"));
	assert_false(df_ignore_matches(m2, "vendor/a/b.txt"));
	assert_true(df_ignore_matches(m2, "vendor/a/c.txt"));
	df_ignore_free(m2);

	{
		const char *t3 = "*\n";
		struct df_ignore *m3 = NULL;

		assert_int_equal(df_ignore_parse(t3, strlen(t3), &m3, &err), 0);
		assert_true(df_ignore_dir_skippable(m3, "anything"));
		assert_false(df_ignore_dir_skippable(m3, "."));
		df_ignore_free(m3);
	}
	assert_false(df_ignore_matches(NULL, "x"));
}

static void test_candidates(void **state)
{
	char **c;

	(void)state;
	c = df_ignore_candidates("/ctx", "/ctx/sub/Dockerfile2");
	assert_string_equal(c[0], "/ctx/sub/Dockerfile2.dockerignore");
	assert_string_equal(c[1], "/ctx/.dockerignore");
	assert_null(c[2]);
	kn_strv_free(c);
	c = df_ignore_candidates("ctx", NULL);
	assert_string_equal(c[0], "ctx/.dockerignore");
	assert_null(c[1]);
	kn_strv_free(c);
}

static void test_many_patterns_fast(void **state)
{
	struct kn_buf text = KN_BUF_INIT;
	struct df_ignore *m = NULL;
	kn_error *err = NULL;

	(void)state;
	for (int i = 0; i < 5000; i++)
		kn_buf_addf(&text, "dir%d/**/*.o\n!dir%d/keep\n", i, i);
	assert_int_equal(df_ignore_parse(text.buf, text.len, &m, &err), 0);
	assert_int_equal(df_ignore_count(m), 10000);
	assert_true(df_ignore_matches(m, "dir4999/a/b/c.o"));
	assert_false(df_ignore_matches(m, "dir4999/keep"));
	assert_false(df_ignore_matches(m, "dir5000/a.o"));
	df_ignore_free(m);
	kn_buf_release(&text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_singles),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_multis),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_skippable),
		cmocka_unit_test(test_candidates),
		cmocka_unit_test(test_many_patterns_fast),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
