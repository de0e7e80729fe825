/*
 * Unit tests of the Dockerfile AST (parser/ast*.c) through the public API: line numbers,
 * heredocs, directives, comments, errors with locations, dump details and hostile input.
 * BuildKit's own line-number case and buildah's heredoc Dockerfiles come from
 * $KILN_CONFORMANCE_DIR; the test fails (does not skip) when that is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "parser/parser.h"

static const char *conformance_dir(void)
{
	const char *d = getenv("KILN_CONFORMANCE_DIR");

	if (!d || !*d || !kn_path_exists(d))
		fail_msg(
		    "KILN_CONFORMANCE_DIR is not set or missing: the conformance data is required");
	return d;
}

static struct df_ast *parse_str(const char *text, kn_error **err)
{
	return df_parse(text, strlen(text), "Dockerfile", err);
}

static struct df_ast *must_parse(const char *text)
{
	kn_error *err = NULL;
	struct df_ast *ast = parse_str(text, &err);

	if (!ast) {
		_cleanup_free_ char *m = kn_error_format(err);

		kn_error_free(err);
		fail_msg("unexpected parse error: %s", m);
	}
	return ast;
}

static struct df_ast *must_parse_file(const char *rel)
{
	_cleanup_free_ char *path = kn_path_join(conformance_dir(), rel);
	_cleanup_(kn_buf_release) struct kn_buf b = KN_BUF_INIT;
	kn_error *err = NULL;
	struct df_ast *ast;

	if (kn_read_file(path, 0, &b, &err) < 0)
		fail_msg("cannot read %s", path);
	ast = df_parse(b.buf, b.len, rel, &err);
	if (!ast) {
		_cleanup_free_ char *m = kn_error_format(err);

		kn_error_free(err);
		fail_msg("unexpected parse error: %s", m);
	}
	return ast;
}

/* Parses text, expects failure, and returns the formatted error (owned). */
static char *must_fail(const char *text, size_t len)
{
	kn_error *err = NULL;
	struct df_ast *ast = df_parse(text, len, "Dockerfile", &err);
	char *m;

	if (ast) {
		df_ast_free(ast);
		fail_msg("parse unexpectedly succeeded");
	}
	assert_non_null(err);
	m = kn_error_format(err);
	kn_error_free(err);
	return m;
}

static void assert_dump(const char *text, const char *expected)
{
	_cleanup_(df_ast_freep) struct df_ast *ast = must_parse(text);
	_cleanup_free_ char *d = df_ast_dump(ast);

	assert_string_equal(d, expected);
}

static void assert_error(const char *text, const char *expected)
{
	_cleanup_free_ char *m = must_fail(text, strlen(text));

	assert_string_equal(m, expected);
}

static const struct df_node *child(const struct df_ast *ast, size_t i)
{
	assert_true(i < ast->root->n_children);
	return ast->root->children[i];
}

/* ---- line numbers -------------------------------------------------------------------------- */

static void test_line_numbers_buildkit(void **state)
{
	/* BuildKit's TestParseIncludesLineNumbers on testfile-line/Dockerfile */
	_cleanup_(df_ast_freep) struct df_ast *ast =
	    must_parse_file("buildkit-parser/testfile-line/Dockerfile");
	static const int expected[][2] = {{5, 5}, {11, 12}, {17, 31}};

	(void)state;
	assert_int_equal(ast->root->start_line, 5);
	assert_int_equal(ast->root->end_line, 31);
	assert_int_equal(ast->root->n_children, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(child(ast, i)->start_line, expected[i][0]);
		assert_int_equal(child(ast, i)->end_line, expected[i][1]);
	}
	/* `# ESCAPE=\` on line 1 is a directive (names are case-insensitive) */
	assert_string_equal(df_ast_directive(ast, "escape"), "\\");
}

static void test_line_numbers_heredoc_and_col(void **state)
{
	_cleanup_(df_ast_freep) struct df_ast *ast =
	    must_parse("FROM a\n\n  RUN <<EOF\nx\nEOF\n\tCOPY b \\\n  c\n");

	(void)state;
	assert_int_equal(child(ast, 0)->start_line, 1);
	assert_int_equal(child(ast, 1)->start_line, 3);
	assert_int_equal(child(ast, 1)->end_line, 5);
	assert_int_equal(child(ast, 1)->start_col, 3);
	assert_int_equal(child(ast, 2)->start_line, 6);
	assert_int_equal(child(ast, 2)->end_line, 7);
	assert_int_equal(child(ast, 2)->start_col, 2);
	/* argument nodes carry their instruction's lines */
	assert_int_equal(child(ast, 2)->next->start_line, 6);
}

/* ---- heredocs ------------------------------------------------------------------------------ */

static void test_heredoc_buildah_copy(void **state)
{
	_cleanup_(df_ast_freep) struct df_ast *ast =
	    must_parse_file("buildah-testdata/heredoc/Dockerfile.heredoc_copy");
	const struct df_node *c1, *c2;
	_cleanup_free_ char *d1 = NULL, *d2 = NULL;

	(void)state;
	assert_string_equal(df_ast_directive(ast, "syntax"),
			    "mirror.gcr.io/docker/dockerfile:1.3-labs");
	assert_int_equal(ast->root->n_children, 6);
	c1 = child(ast, 4);
	c2 = child(ast, 5);
	d1 = df_node_dump(c1);
	d2 = df_node_dump(c2);
	assert_string_equal(d1, "copy \"<<robots.txt\" \"<<humans.txt\" \"file\" \"/test/\"");
	assert_string_equal(
	    d2,
	    "copy [\"--from=one\"] \"image_file\" \"<<robots.txt\" \"<<humans.txt\" \"/test2/\"");
	for (int k = 0; k < 2; k++) {
		const struct df_node *c = k ? c2 : c1;

		assert_int_equal(c->n_heredocs, 2);
		assert_string_equal(c->heredocs[0].name, "robots.txt");
		assert_string_equal(
		    c->heredocs[0].content,
		    "(robots content)\nLong file with random text\nRandom line\nHelloWorld\n");
		assert_true(c->heredocs[0].expand);
		assert_false(c->heredocs[0].chomp);
		assert_string_equal(c->heredocs[1].name, "humans.txt");
		assert_string_equal(c->heredocs[1].content, "(humans content)\n");
	}
	assert_int_equal(c1->start_line, 7);
	assert_int_equal(c1->end_line, 14);
	assert_int_equal(c2->start_line, 16);
	assert_int_equal(c2->end_line, 23);
	assert_int_equal(c1->n_prev_comment, 1);
	assert_string_equal(c1->prev_comment[0], "copy two heredoc and one from context");
}

static void test_heredoc_buildah_quoting(void **state)
{
	_cleanup_(df_ast_freep) struct df_ast *ast =
	    must_parse_file("buildah-testdata/Dockerfile.heredoc-quoting");
	size_t n_docs = 0;

	(void)state;
	/* FROM, ARG, ENV, 8 RUN, 8 COPY, 8 ADD, the final RUN */
	assert_int_equal(ast->root->n_children, 28);
	for (size_t i = 3; i < 27; i++) {
		const struct df_node *c = child(ast, i);
		/* in each group of 8, the first 4 are <<EOF and the last 4 <<"EOF" */
		bool quoted = ((i - 3) % 8) >= 4;

		assert_int_equal(c->n_heredocs, 1);
		assert_string_equal(c->heredocs[0].name, "EOF");
		assert_int_equal(c->heredocs[0].expand, !quoted);
		n_docs++;
	}
	assert_int_equal(n_docs, 24);
	assert_string_equal(child(ast, 3)->heredocs[0].content,
			    "varB=valueB\n"
			    "touch /run-argA=$argA.unquoted1.txt\n"
			    "touch /run-varA=$varA.unquoted1.txt\n"
			    "touch /run-varB=$varB.unquoted1.txt\n");
	assert_string_equal(child(ast, 7)->heredocs[0].content,
			    "varB=valueB\n"
			    "touch /run-argA=$argA.quoted1.txt\n"
			    "touch /run-varA=$varA.quoted1.txt\n"
			    "touch /run-varB=$varB.quoted1.txt\n");
	assert_string_equal(child(ast, 11)->next->value, "<<EOF");
	assert_string_equal(child(ast, 11)->next->next->value, "/copy-unquoted1.txt");
	assert_int_equal(child(ast, 27)->n_heredocs, 0);
}

static void test_heredoc_forms(void **state)
{
	_cleanup_(df_ast_freep) struct df_ast *ast = must_parse(
	    "FROM a\n"
	    "RUN <<-EOT\n\techo a\n\t\techo b\n\tEOT\n"
	    "RUN cat <<'EOF1' 3<<E\"O\"F2 <<EOF3 > out\n$x\nEOF1\n\nEOF2\n# not a comment\nEOF3\n"
	    "COPY --chmod=755 <<EOF /x\r\nline\r\nEOF\r\n"
	    "RUN [\"cat\", \"<<EOF\"]\n"
	    "ENV A <<EOF\n"
	    "ONBUILD RUN <<EOF\nbody\nEOF\n"
	    "RUN echo \"<<EOF\n"
	    "RUN cat <<EOF<<EOG\n");
	const struct df_node *n;
	_cleanup_free_ char *chomped = NULL;

	(void)state;
	n = child(ast, 1);
	assert_int_equal(n->n_heredocs, 1);
	assert_string_equal(n->heredocs[0].name, "EOT");
	assert_true(n->heredocs[0].chomp);
	assert_true(n->heredocs[0].expand);
	/* the body is kept as written; df_heredoc_chomp() removes the tabs */
	assert_string_equal(n->heredocs[0].content, "\techo a\n\t\techo b\n");
	chomped = df_heredoc_chomp(&n->heredocs[0]);
	assert_string_equal(chomped, "echo a\necho b\n");

	n = child(ast, 2);
	assert_int_equal(n->n_heredocs, 3);
	assert_string_equal(n->heredocs[0].name, "EOF1");
	assert_false(n->heredocs[0].expand);
	assert_string_equal(n->heredocs[0].content, "$x\n");
	assert_string_equal(n->heredocs[1].name, "EOF2");
	assert_false(n->heredocs[1].expand);
	assert_int_equal(n->heredocs[1].fd, 3);
	assert_string_equal(n->heredocs[1].content, "\n");
	assert_string_equal(n->heredocs[2].name, "EOF3");
	assert_true(n->heredocs[2].expand);
	assert_string_equal(n->heredocs[2].content, "# not a comment\n");
	assert_int_equal(n->start_line, 6);
	assert_int_equal(n->end_line, 12);

	n = child(ast, 3);
	assert_int_equal(n->n_heredocs, 1);
	assert_string_equal(n->heredocs[0].content, "line\r\n");
	assert_string_equal(n->flags[0], "--chmod=755");

	assert_int_equal(child(ast, 4)->n_heredocs, 0); /* exec form: no heredoc */
	assert_true(child(ast, 4)->json);
	assert_int_equal(child(ast, 5)->n_heredocs, 0); /* ENV never has heredocs */

	n = child(ast, 6); /* ONBUILD RUN: the heredoc belongs to the ONBUILD node */
	assert_string_equal(n->value, "onbuild");
	assert_int_equal(n->n_heredocs, 1);
	assert_string_equal(n->heredocs[0].content, "body\n");
	assert_string_equal(n->next->children[0]->value, "run");

	/* an unterminated quote makes BuildKit's lexer give up: no heredoc on that line */
	assert_int_equal(child(ast, 7)->n_heredocs, 0);
	/* "<<EOF<<EOG" is one word with a '<' after the first "<<": not a heredoc */
	assert_int_equal(child(ast, 8)->n_heredocs, 0);
}

/*
 * The heredoc cases of BuildKit's parser_heredoc_test.go (TestParseExtractsHeredoc and
 * TestHeredocsFromLine), with their expected names, bodies and flags.
 */
struct hd_expect {
	const char *name;
	const char *content;
	bool expand;
	bool chomp;
	unsigned fd;
};

static void test_heredoc_buildkit_cases(void **state)
{
	static const char text[] =
	    "\nFROM alpine:3.6\n\nENV NAME=me\n\nRUN ls\n\nUSER <<INVALID\nINVALID\n\n"
	    "RUN <<EMPTY\nEMPTY\n\nRUN 3<<EMPTY2\nEMPTY2\n\nRUN \"<<NOHEREDOC\"\n\n"
	    "RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n\n"
	    "RUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\n\n"
	    "RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n\n"
	    "RUN <<-EXPAND\n\texpand $NAME\nEXPAND\n\n"
	    "RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n\n"
	    "RUN <<COPY\necho hello world\necho foo bar\nCOPY\n\n"
	    "RUN <<COMMENT\n# internal comment\necho hello world\necho foo bar # trailing "
	    "comment\nCOMMENT\n\n"
	    "RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\n"
	    "COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\n"
	    "COPY <<EOF /quotes\n\"foo\"\n'bar'\nEOF\n\n"
	    "COPY <<X <<Y /dest\nY\nX\nX\nY\n\n"
	    "RUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\n\n"
	    "COPY <<file.txt /dest\nhello world\nfile.txt\n\n"
	    "RUN <<eo'f'\necho foo\neof\n\n"
	    "RUN <<eo\\'f\necho foo\neo'f\n\n"
	    "RUN <<'e'o\\'f\necho foo\neo'f\n\n"
	    "RUN <<'one two'\necho bar\none two\n\n"
	    "RUN <<$EOF\n$EOF\n\n"
	    "RUN <<  EOF\nEOF\n\n"
	    "RUN <<  EOF  > foo\nEOF\n\t";
	/* per instruction after FROM: number of heredocs, then the heredocs */
	static const struct {
		size_t n;
		struct hd_expect h[2];
	} want[] = {
	    {0, {{0}}}, /* ENV */
	    {0, {{0}}}, /* RUN ls */
	    {0, {{0}}}, /* USER <<INVALID */
	    {0, {{0}}}, /* INVALID */
	    {1, {{"EMPTY", "", true, false, 0}}},
	    {1, {{"EMPTY2", "", true, false, 3}}},
	    {0, {{0}}}, /* RUN "<<NOHEREDOC" */
	    {1, {{"INDENT", "\tfoo\n\tbar\n", true, false, 0}}},
	    {1, {{"UNINDENT", "\tbaz\n\tquux\n", true, true, 0}}},
	    {1, {{"UNINDENT2", "\tbaz\n\tquux\n", true, true, 0}}},
	    {1, {{"EXPAND", "\texpand $NAME\n", true, true, 0}}},
	    {1, {{"NOEXPAND", "\tdon't expand $NAME\n", false, true, 0}}},
	    {1, {{"COPY", "echo hello world\necho foo bar\n", true, false, 0}}},
	    {1,
	     {{"COMMENT", "# internal comment\necho hello world\necho foo bar # trailing comment\n",
	       true, false, 0}}},
	    {1, {{"MOUNT", "echo hello\n", true, false, 0}}},
	    {2,
	     {{"FILE1", "content 1\n", true, false, 0}, {"FILE2", "content 2\n", true, false, 0}}},
	    {1, {{"EOF", "\"foo\"\n'bar'\n", true, false, 0}}},
	    {2, {{"X", "Y\n", true, false, 0}, {"Y", "X\n", true, false, 0}}},
	    {1, {{"COMPLEX", "print('hello world')\n", true, false, 0}}},
	    {1, {{"file.txt", "hello world\n", true, false, 0}}},
	    {1, {{"eof", "echo foo\n", false, false, 0}}},
	    {1, {{"eo'f", "echo foo\n", true, false, 0}}},
	    {1, {{"eo'f", "echo foo\n", false, false, 0}}},
	    {1, {{"one two", "echo bar\n", false, false, 0}}},
	    {1, {{"$EOF", "", true, false, 0}}},
	    {1, {{"EOF", "", true, false, 0}}},
	    {1, {{"EOF", "", true, false, 0}}},
	};
	kn_error *err = NULL;
	_cleanup_(df_ast_freep) struct df_ast *ast =
	    df_parse_ex(text, strlen(text), "Dockerfile", DF_PARSE_ALLOW_UNKNOWN, &err);
	_cleanup_free_ char *d = NULL;

	(void)state;
	assert_non_null(ast);
	/* BuildKit's parser keeps the unknown INVALID line: so does DF_PARSE_ALLOW_UNKNOWN */
	d = df_node_dump(child(ast, 4));
	assert_string_equal(d, "invalid \"\"");
	assert_int_equal(ast->root->n_children, KN_ARRAY_SIZE(want) + 1);
	for (size_t i = 0; i < KN_ARRAY_SIZE(want); i++) {
		const struct df_node *n = child(ast, i + 1);

		assert_int_equal(n->n_heredocs, want[i].n);
		for (size_t k = 0; k < want[i].n; k++) {
			assert_string_equal(n->heredocs[k].name, want[i].h[k].name);
			assert_string_equal(n->heredocs[k].content, want[i].h[k].content);
			assert_int_equal(n->heredocs[k].expand, want[i].h[k].expand);
			assert_int_equal(n->heredocs[k].chomp, want[i].h[k].chomp);
			assert_int_equal(n->heredocs[k].fd, want[i].h[k].fd);
		}
	}
	/* TestHeredocsFromLine */
	assert_dump("FROM a\nRUN << -EOF\nEOF\n-EOF\n", "(from \"a\")\n(run \"<< -EOF\")\n");
	assert_dump("FROM a\nRUN 4<<EOF <<EOF2\nEOF\nEOF2\n",
		    "(from \"a\")\n(run \"4<<EOF <<EOF2\")\n");
	assert_dump("FROM a\nRUN '<<EOF'\n", "(from \"a\")\n(run \"'<<EOF'\")\n");
}

static void test_heredoc_errors(void **state)
{
	_cleanup_free_ char *m1 = NULL, *m2 = NULL;

	(void)state;
	m1 = must_fail("FROM a\nRUN <<EOF\nno end\n", 21);
	assert_string_equal(m1, "Dockerfile:2: unterminated heredoc \"EOF\"");
	/* the second of two heredocs is missing its terminator */
	m2 = must_fail("FROM a\n\nCOPY <<A <<B /\nA\nb\n", 25);
	assert_string_equal(m2, "Dockerfile:3: unterminated heredoc \"B\"");
}

/* ---- directives, comments, continuations --------------------------------------------------- */

static void test_directives(void **state)
{
	_cleanup_(df_ast_freep) struct df_ast *ast =
	    must_parse("# syntax = docker/dockerfile:1\n"
		       "#ESCAPE=`\n"
		       "# check=skip=JSONArgsRecommended,StageNameCasing;error=true\n"
		       "# the first comment\n"
		       "# escape=\\\n"
		       "FROM a\n"
		       "RUN echo \\\n"
		       "  RUN x `\n"
		       "  y\n");

	(void)state;
	assert_int_equal(ast->escape, '`');
	assert_int_equal(ast->n_directives, 3);
	assert_string_equal(df_ast_directive(ast, "syntax"), "docker/dockerfile:1");
	assert_string_equal(df_ast_directive(ast, "escape"), "`");
	assert_int_equal(ast->directives[1].line, 2);
	assert_true(ast->check.error);
	assert_false(ast->check.skip_all);
	assert_string_equal(ast->check.skip[0], "JSONArgsRecommended");
	assert_string_equal(ast->check.skip[1], "StageNameCasing");
	assert_null(ast->check.skip[2]);
	assert_null(ast->check.experimental[0]);
	/* comments after the directives, directives themselves excluded */
	assert_int_equal(child(ast, 0)->n_prev_comment, 2);
	assert_string_equal(child(ast, 0)->prev_comment[0], "the first comment");
	assert_string_equal(child(ast, 0)->prev_comment[1], "escape=\\");
	/* with ` as escape, a trailing \ is an ordinary character */
	{
		_cleanup_free_ char *d = df_ast_dump(ast);

		assert_string_equal(d, "(from \"a\")\n(run \"echo \\\\\")\n(run \"x   y\")\n");
	}
}

static void test_directive_errors(void **state)
{
	(void)state;
	assert_error("# escape=x\nFROM a\n",
		     "Dockerfile:1: invalid escape token 'x' does not match ` or \\");
	assert_error("# escape=`\n# escape=`\nFROM a\n",
		     "Dockerfile:2: only one escape parser directive can be used");
	assert_error("# check=frob\nFROM a\n",
		     "Dockerfile:1: failed to parse check options: invalid check option 'frob'");
	assert_error("# syntax=x\n# check=error=maybe\nFROM a\n",
		     "Dockerfile:2: failed to parse check options: failed to parse check option "
		     "'error=maybe': invalid boolean");
	{
		/* as BuildKit's linter: a first #! line is skipped, the value ends at a space */
		_cleanup_(df_ast_freep) struct df_ast *ast =
		    must_parse("#!/bin/kiln\n# check = skip=all // not this\nFROM a\n");

		assert_true(ast->check.skip_all);
		assert_null(df_ast_directive(ast, "check"));
	}
	/* after an instruction, a blank line or another comment it is only a comment */
	assert_dump("FROM a\n# escape=x\n", "(from \"a\")\n");
	assert_dump("\n# escape=x\nFROM a\n", "(from \"a\")\n");
	assert_dump("# hello\n# escape=x\nFROM a\n", "(from \"a\")\n");
	assert_dump("# unknown=1\n# escape=x\nFROM a\n", "(from \"a\")\n");
}

static void test_continuations(void **state)
{
	_cleanup_(df_ast_freep) struct df_ast *ast = must_parse("\xEF\xBB\xBF"
								"FROM a\r\n"
								"RUN a \\\r\n"
								"\r\n"
								"  # comment inside\r\n"
								"  b\\\\\r\n"
								"RUN c \\ \t\n"
								"\n"
								"   \n"
								"d\n"
								"   RUN   e   \n");
	_cleanup_free_ char *d = df_ast_dump(ast);

	(void)state;
	assert_string_equal(d,
			    "(from \"a\")\n(run \"a   b\\\\\\\\\")\n(run \"c d\")\n(run \"e\")\n");
	assert_int_equal(child(ast, 1)->start_line, 2);
	assert_int_equal(child(ast, 1)->end_line, 5);
	assert_string_equal(child(ast, 1)->original, "RUN a   b\\\\");
	assert_int_equal(child(ast, 0)->start_col, 1);
	/* two instructions had empty continuation lines */
	assert_int_equal(ast->n_warnings, 2);
	assert_int_equal(ast->warnings[0].line, 5);
	assert_string_equal(ast->warnings[0].msg,
			    "Empty continuation line found in: RUN a   b\\\\");
	assert_int_equal(ast->warnings[1].line, 9);
}

/* ---- instruction shapes and dump ----------------------------------------------------------- */

/* BuildKit's TestParseWarnsOnEmptyContinutationLine and TestParseWords. */
static void test_buildkit_parser_test_cases(void **state)
{
	_cleanup_(df_ast_freep) struct df_ast *ast =
	    must_parse("\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\nRUN something \\\n\n"
		       "    following \\\n\n    more\n\nRUN another \\\n\n    thing\n\n"
		       "RUN non-indented \\\n# this is a comment\n   after-comment\n\n"
		       "RUN indented \\\n    # this is an indented comment\n    comment\n\t");

	(void)state;
	assert_int_equal(ast->n_warnings, 2);
	assert_non_null(strstr(ast->warnings[0].msg, "Empty continuation line found in"));
	assert_non_null(strstr(ast->warnings[0].msg, "RUN something     following     more"));
	assert_non_null(strstr(ast->warnings[1].msg, "RUN another     thing"));
	assert_dump(
	    "ARG foo\nARG foo bar\nARG foo\\ bar\nARG foo=bar\nARG foo bar 'abc xyz'\n"
	    "ARG foo bar \"abc xyz\"\nARG \xC3\xA0\xC3\xB6\xC3\xBB\n"
	    "ARG f\xC3\xB6o b\xC3\xA0r \"\xC3\xA2"
	    "bc x\xC3\xBFz\"\n",
	    "(arg \"foo\")\n(arg \"foo\" \"bar\")\n(arg \"foo\\\\ bar\")\n(arg \"foo=bar\")\n"
	    "(arg \"foo\" \"bar\" \"'abc xyz'\")\n(arg \"foo\" \"bar\" \"\\\"abc xyz\\\"\")\n"
	    "(arg \"\xC3\xA0\xC3\xB6\xC3\xBB\")\n"
	    "(arg \"f\xC3\xB6o\" \"b\xC3\xA0r\" \"\\\"\xC3\xA2"
	    "bc x\xC3\xBFz\\\"\")\n");
}

static void test_dump_details(void **state)
{
	(void)state;
	/* JSON "\u0000" keeps its NUL (value_len), Go-quoted as \x00 */
	assert_dump("CMD [\"a\\u0000b\", \"\\ud83d\\ude00\", \"\\ud800\"]\n",
		    "(cmd \"a\\x00b\" \"\xF0\x9F\x98\x80\" \"\xEF\xBF\xBD\")\n");
	/* invalid UTF-8 is \x-escaped, NBSP and other non-printables \u-escaped */
	assert_dump("RUN a\xff\xC3\xA9\xC2\xA0\x7f\x01\n",
		    "(run \"a\\xff\xC3\xA9\\u00a0\\x7f\\x01\")\n");
	/* out-of-range JSON numbers make the whole array "not JSON" */
	assert_dump("CMD [\"a\", 1e999]\n", "(cmd \"[\\\"a\\\", 1e999]\")\n");
	assert_dump("CMD [\"a\",]\n", "(cmd \"[\\\"a\\\",]\")\n");
	/* BuildKit's json_test.go: valid arrays of strings, and arrays with other values */
	assert_dump("CMD \t[\t\"a\",\t\"b\"\t]\t\n", "(cmd \"a\" \"b\")\n");
	assert_dump("CMD [\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000\"]\n",
		    "(cmd \"\\\" \\\\ / \\b \\f \\n \\r \\t \\x00\")\n");
	{
		static const char *const bad[] = {
		    "[\"a\",42,\"b\"]",	     "[\"a\",123.456,\"b\"]",
		    "[\"a\",{},\"b\"]",	     "[\"a\",{\"c\": \"d\"},\"b\"]",
		    "[\"a\",[\"c\"],\"b\"]", "[\"a\",true,\"b\"]",
		    "[\"a\",false,\"b\"]",   "[\"a\",null,\"b\"]",
		};

		for (size_t i = 0; i < KN_ARRAY_SIZE(bad); i++) {
			_cleanup_free_ char *text = xasprintf("RUN %s\n", bad[i]);
			_cleanup_free_ char *m = must_fail(text, strlen(text));

			assert_non_null(strstr(m, "arrays must be comprised of strings only"));
		}
	}
	assert_dump("VOLUME [\"/a\" \"/b\"]\n", "(volume \"[\\\"/a\\\"\" \"\\\"/b\\\"]\")\n");
	assert_dump("FROM --platform=linux/amd64 a AS b\n",
		    "(from [\"--platform=linux/amd64\"] \"a\" \"AS\" \"b\")\n");
	assert_dump("ARG a=1 b \"c=x y\"\n", "(arg \"a=1\" \"b\" \"\\\"c=x y\\\"\")\n");
	assert_dump("LABEL \"a b\"=c d=\n",
		    "(label \"\\\"a b\\\"\" \"c\" \"=\" \"d\" \"\" \"=\")\n");
	assert_dump("HEALTHCHECK NONE\n", "(healthcheck \"NONE\")\n");
	assert_dump("ONBUILD ONBUILD RUN x\n", "(onbuild (onbuild (run \"x\")))\n");
	assert_dump("COPY --chown=\"a b\" --x='c\\'' -- --y /\n",
		    "(copy [\"--chown=a b\" \"--x=c'\"] \"--y\" \"/\")\n");
	assert_dump("run --mount=type=cache,target=/c make\n",
		    "(run [\"--mount=type=cache,target=/c\"] \"make\")\n");
	assert_dump(
	    "STOPSIGNAL  SIGKILL \nUSER a:b\nWORKDIR /a b\nMAINTAINER me\nSHELL [\"sh\", \"-c\"]\n",
	    "(stopsignal \"SIGKILL\")\n(user \"a:b\")\n(workdir \"/a b\")\n(maintainer \"me\")\n"
	    "(shell \"sh\" \"-c\")\n");
	/* Go lower-cases the Kelvin sign to 'k' */
	assert_dump("HEALTHCHEC\xE2\x84\xAA NONE\n", "(healthcheck \"NONE\")\n");
	/* empty arguments, and the blanks BuildKit splits on */
	assert_dump(
	    "FROM\nRUN\nLABEL\nONBUILD\nHEALTHCHECK CMD\nENV a=\nCOPY --from=a\nEXPOSE 1\t\v2\f3\n",
	    "(from)\n(run)\n(label)\n(onbuild)\n(healthcheck \"CMD\")\n(env \"a\" \"\" \"=\")\n"
	    "(copy [\"--from=a\"])\n(expose \"1\" \"2\" \"3\")\n");
	/*
	 * BuildKit reads flags byte by byte: 0xA0 (the second byte of U+00A0 here) separates words
	 * and 0xC2 becomes U+00C2
	 */
	assert_dump("COPY --a\xC2\xA0"
		    "b c\n",
		    "(copy [\"--a\xC3\x82\"] \"b\" \"c\")\n");
	assert_dump("EXPOSE 80 53/udp 8000-8010/tcp\n",
		    "(expose \"80\" \"53/udp\" \"8000-8010/tcp\")\n");
}

static void test_errors(void **state)
{
	_cleanup_free_ char *nul = NULL;

	(void)state;
	assert_error("FROM a\n\n  RUNN x\n",
		     "Dockerfile:3:3: unknown instruction \"RUNN\" (did you mean \"RUN\"?)");
	assert_error("FROM a\nform b\n",
		     "Dockerfile:2:1: unknown instruction \"form\" (did you mean \"FROM\"?)");
	assert_error("FROM a\nFOOBARBAZ x\n", "Dockerfile:2:1: unknown instruction \"FOOBARBAZ\"");
	assert_error("FROM a\n\nENV PATH\n", "Dockerfile:3: ENV must have two arguments");
	assert_error(
	    "LABEL a=b c\n",
	    "Dockerfile:1: syntax error - can't find = in \"c\". Must be of the form: name=value");
	assert_error(
	    "CMD [ \"echo\", [ \"nested json\" ] ]\n",
	    "Dockerfile:1: when using JSON array syntax, arrays must be comprised of strings only");
	assert_error("", "Dockerfile: file with no instructions");
	assert_error("# a\n\n# b\n", "Dockerfile:3: file with no instructions");
	nul = must_fail("FROM a\nRUN a\0b\n", 14);
	assert_string_equal(nul, "Dockerfile:2:6: NUL byte in Dockerfile");
	/* a syntax error is reported before an unknown instruction earlier in the file */
	assert_error("FROMM a\nRUN <<EOF\n", "Dockerfile:2: unterminated heredoc \"EOF\"");
}

/* ---- hostile input ------------------------------------------------------------------------- */

static void test_big_inputs(void **state)
{
	struct kn_buf b = KN_BUF_INIT;
	struct df_ast *ast;
	kn_error *err = NULL;
	char *m;

	(void)state;
	/* a 1 MiB single line */
	kn_buf_adds(&b, "FROM a\nRUN ");
	for (int i = 0; i < (1 << 20); i++)
		kn_buf_addch(&b, "ab <$\"'\\{["[i % 10]);
	kn_buf_addch(&b, '\n');
	ast = df_parse(b.buf, b.len, "Dockerfile", &err);
	assert_non_null(ast);
	assert_true(child(ast, 1)->next->value_len > 1000000);
	df_ast_free(ast);

	/* 10,000 stages */
	kn_buf_reset(&b);
	for (int i = 0; i < 10000; i++)
		kn_buf_addf(&b, "FROM base%d AS s%d\nRUN echo %d\nCOPY --from=s%d /a /b\n", i, i, i,
			    i ? i - 1 : 0);
	ast = df_parse(b.buf, b.len, "Dockerfile", &err);
	assert_non_null(ast);
	assert_int_equal(ast->root->n_children, 30000);
	assert_int_equal(child(ast, 29999)->start_line, 30000);
	df_ast_free(ast);

	/* 1 MiB of nested JSON: not JSON for Go (depth > 10000), so the shell form */
	kn_buf_reset(&b);
	kn_buf_adds(&b, "CMD ");
	for (int i = 0; i < 500000; i++)
		kn_buf_addch(&b, '[');
	for (int i = 0; i < 500000; i++)
		kn_buf_addch(&b, ']');
	ast = df_parse(b.buf, b.len, "Dockerfile", &err);
	assert_non_null(ast);
	assert_false(child(ast, 0)->json);
	df_ast_free(ast);
	/* nested JSON under Go's limit is valid JSON with a non-string element: an error */
	kn_buf_reset(&b);
	kn_buf_adds(&b, "CMD ");
	for (int i = 0; i < 100; i++)
		kn_buf_addch(&b, '[');
	for (int i = 0; i < 100; i++)
		kn_buf_addch(&b, ']');
	m = must_fail(b.buf, b.len);
	assert_non_null(strstr(m, "comprised of strings only"));
	free(m);

	/* deeply nested substitutions on a heredoc line: the heredoc is found */
	kn_buf_reset(&b);
	kn_buf_adds(&b, "RUN <<EOF ");
	for (int i = 0; i < 500; i++)
		kn_buf_adds(&b, "${a:-");
	for (int i = 0; i < 500; i++)
		kn_buf_addch(&b, '}');
	kn_buf_adds(&b, "\nbody\nEOF\n");
	ast = df_parse(b.buf, b.len, "Dockerfile", &err);
	assert_non_null(ast);
	assert_int_equal(child(ast, 0)->n_heredocs, 1);
	df_ast_free(ast);
	/* past the lexer's nesting limit the line names no heredoc: an error, not a crash */
	kn_buf_reset(&b);
	kn_buf_adds(&b, "RUN <<EOF ");
	for (int i = 0; i < 100000; i++)
		kn_buf_adds(&b, "${a:-");
	kn_buf_adds(&b, "\nbody\nEOF\n");
	m = must_fail(b.buf, b.len);
	assert_string_equal(m, "Dockerfile:2:1: unknown instruction \"body\"");
	free(m);

	/* 1 MiB of substitutions and quotes nested 500 deep on a heredoc line: linear time */
	kn_buf_reset(&b);
	kn_buf_adds(&b, "FROM a\nRUN <<EOF ");
	while (b.len < (1u << 20)) {
		for (int i = 0; i < 500; i++)
			kn_buf_adds(&b, "${a:-\"");
		for (int i = 0; i < 500; i++)
			kn_buf_adds(&b, "\"}");
		kn_buf_addch(&b, ' ');
	}
	kn_buf_adds(&b, "\nx\nEOF\n");
	ast = df_parse(b.buf, b.len, "Dockerfile", &err);
	assert_non_null(ast);
	assert_int_equal(child(ast, 1)->n_heredocs, 1);
	df_ast_free(ast);

	/* ONBUILD nesting and the node limit */
	kn_buf_reset(&b);
	for (int i = 0; i < 100000; i++)
		kn_buf_adds(&b, "ONBUILD ");
	kn_buf_adds(&b, "RUN x\n");
	m = must_fail(b.buf, b.len);
	assert_string_equal(m, "Dockerfile:1: ONBUILD nested too deeply (limit 16)");
	free(m);
	kn_buf_reset(&b);
	kn_buf_adds(&b, "EXPOSE");
	for (unsigned i = 0; i <= DF_MAX_NODES; i++)
		kn_buf_adds(&b, " 1");
	m = must_fail(b.buf, b.len);
	assert_non_null(strstr(m, "too many words"));
	free(m);

	/* the size cap */
	kn_buf_reset(&b);
	kn_buf_adds(&b, "FROM a\n#");
	while (b.len <= DF_MAX_INPUT)
		kn_buf_adds(&b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	m = must_fail(b.buf, b.len);
	assert_non_null(strstr(m, "too large"));
	free(m);
	kn_buf_release(&b);
}

static void test_random_garbage(void **state)
{
	static const char *const atoms[] = {
	    "FROM ",
	    "RUN ",
	    "COPY ",
	    "ADD ",
	    "ONBUILD ",
	    "ENV ",
	    "LABEL ",
	    "ARG ",
	    "HEALTHCHECK ",
	    "CMD ",
	    "<<EOF",
	    "<<-'E'",
	    "EOF",
	    "\n",
	    "\r\n",
	    "\\",
	    "`",
	    " ",
	    "\t",
	    "\"",
	    "'",
	    "[",
	    "]",
	    ",",
	    "=",
	    "--x=",
	    "#",
	    "# escape=`\n",
	    "$",
	    "${",
	    "}",
	    ":-",
	    "\xff",
	    "\xc3",
	    "\xEF\xBB\xBF",
	    "\xC2\xA0",
	    "\\u0000",
	    "1e999",
	    "NONE ",
	};
	uint32_t seed = 12345;

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		struct kn_buf b = KN_BUF_INIT;
		kn_error *err = NULL;
		struct df_ast *ast;
		int n;

		seed = seed * 1103515245u + 12345u;
		n = (int)((seed >> 16) % 60);
		for (int i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			kn_buf_adds(&b, atoms[(seed >> 16) % KN_ARRAY_SIZE(atoms)]);
		}
		ast = df_parse(b.buf, b.len, "Dockerfile", &err);
		if (ast) {
			char *d = df_ast_dump(ast);

			assert_true(d[strlen(d) - 1] == '\n');
			free(d);
			df_ast_free(ast);
		} else {
			assert_non_null(err);
			assert_non_null(err->msg);
			kn_error_free(err);
		}
		kn_buf_release(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_numbers_buildkit),
	    cmocka_unit_test(test_line_numbers_heredoc_and_col),
	    cmocka_unit_test(test_heredoc_buildah_copy),
	    cmocka_unit_test(test_heredoc_buildah_quoting),
	    cmocka_unit_test(test_heredoc_forms),
	    cmocka_unit_test(test_heredoc_buildkit_cases),
	    cmocka_unit_test(test_heredoc_errors),
	    cmocka_unit_test(test_directives),
	    cmocka_unit_test(test_directive_errors),
	    cmocka_unit_test(test_continuations),
	    cmocka_unit_test(test_buildkit_parser_test_cases),
	    cmocka_unit_test(test_dump_details),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_big_inputs),
	    cmocka_unit_test(test_random_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
