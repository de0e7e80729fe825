/* Unit tests of parser/plan.c: stages, edges, targets, cycles, ARG scoping, buildah testdata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

static struct df_plan *plan_of(const char *text, const char *target, char *const *build_args,
			       char **ret_err)
{
	struct df_plan_opts opts = { "Dockerfile", target, build_args, NULL };
	struct df_ast *ast;
	struct df_plan *plan = NULL;
	kn_error *err = NULL;

	ast = df_parse(text, strlen(text), "Dockerfile", &err);
	if (!ast)
		fail_msg("df_parse: %s", err->msg);
	if (df_plan_build(ast->root, ast->escape, &opts, &plan, &err) < 0) {
		if (!ret_err) {
			char *m = kn_error_format(err);

			fail_msg("df_plan_build: %s", m);
		}
		*ret_err = kn_error_format(err);
		kn_error_free(err);
	} else if (ret_err) {
		*ret_err = NULL;
	}
	df_ast_free(ast);
	return plan;
}

static void expect_plan_error(const char *text, const char *target, const char *want)
{
	char *got = NULL;
	struct df_plan *p = plan_of(text, target, NULL, &got);

	if (p)
		fail_msg("expected error '%s'", want);
	if (strcmp(got, want) != 0)
		fail_msg("error '%s', want '%s'", got, want);
	free(got);
}

static bool has_dep(const struct df_stage *s, enum df_dep_kind kind, size_t stage, const char *image,
		    const char *via)
{
	for (size_t i = 0; i < s->n_deps; i++) {
		const struct df_dep *d = &s->deps[i];

		if (d->kind == kind && strcmp(d->via, via) == 0 &&
		    (kind == DF_DEP_STAGE ? d->stage == stage : strcmp(d->image, image) == 0))
			return true;
	}
	return false;
}

/* Walks a stage with an empty base env; returns the value of `var` in the RUN environment (args
 * overlaid by env) after instruction index `upto` (exclusive; SIZE_MAX = all), or NULL. */
static char *value_after(const struct df_plan *p, size_t si, size_t upto, const char *var)
{
	struct df_stage_env se;
	struct df_env env;
	kn_error *err = NULL;
	const struct df_stage *s = &p->stages[si];
	char *r;

	assert_int_equal(df_stage_env_init(&se, p, s, NULL, &err), 0);
	for (size_t i = 0; i < s->n_instrs && i < upto; i++) {
		struct df_instr *x = NULL;

		if (df_stage_env_expand(&se, s->instrs[i], &x, &err) < 0)
			fail_msg("expand line %d: %s", s->instrs[i]->line, err->msg);
		assert_int_equal(df_stage_env_apply(&se, x, &err), 0);
		df_instr_free(x);
	}
	df_stage_env_lookup_env(&se, &env);
	r = df_env_get(&env, var) ? xstrdup(df_env_get(&env, var)) : NULL;
	df_env_release(&env);
	df_stage_env_release(&se);
	return r;
}

static void assert_value(const struct df_plan *p, size_t si, size_t upto, const char *var, const char *want)
{
	char *v = value_after(p, si, upto, var);

	if (!want) {
		if (v)
			fail_msg("%s: want unset, got '%s'", var, v);
		return;
	}
	if (!v || strcmp(v, want) != 0)
		fail_msg("%s: want '%s', got '%s'", var, want, v ? v : "(unset)");
	free(v);
}

static void test_graph(void **state)
{
	const char *text =
		"FROM alpine AS base\n"			/* 0 */
		"RUN true\n"
		"FROM base AS build\n"			/* 1 */
		"RUN --mount=type=bind,from=tools,target=/t make\n"
		"COPY --from=docker.io/library/busybox:1 /bin/sh /sh\n"
		"FROM golang AS tools\n"		/* 2 */
		"FROM scratch AS unused\n"		/* 3 */
		"COPY --from=2 /x /y\n"
		"FROM Build AS final\n"			/* 4 */
		"COPY --from=BASE /a /b\n"
		"COPY --from=later /c /d\n"
		"FROM alpine AS later\n";		/* 5 */
	struct df_plan *p = plan_of(text, NULL, NULL, NULL);

	(void)state;
	assert_int_equal(p->n_stages, 6);
	assert_int_equal(p->target, 5);
	assert_false(p->stages[5].skipped);
	for (size_t i = 0; i < 5; i++)
		assert_true(p->stages[i].skipped);
	df_plan_free(p);

	p = plan_of(text, "final", NULL, NULL);
	assert_int_equal(p->target, 4);
	assert_int_equal(p->stages[0].base_kind, DF_BASE_IMAGE);
	assert_string_equal(p->stages[0].base_image, "alpine");
	assert_int_equal(p->stages[1].base_kind, DF_BASE_STAGE);
	assert_int_equal(p->stages[1].base_stage, 0);
	assert_int_equal(p->stages[3].base_kind, DF_BASE_SCRATCH);
	assert_int_equal(p->stages[4].base_stage, 1);
	assert_true(has_dep(&p->stages[1], DF_DEP_STAGE, 0, NULL, "from"));
	assert_true(has_dep(&p->stages[1], DF_DEP_STAGE, 2, NULL, "mount"));
	assert_true(has_dep(&p->stages[1], DF_DEP_IMAGE, 0, "docker.io/library/busybox:1", "copy"));
	assert_true(has_dep(&p->stages[3], DF_DEP_STAGE, 2, NULL, "copy"));
	assert_true(has_dep(&p->stages[4], DF_DEP_STAGE, 0, NULL, "copy"));
	assert_true(has_dep(&p->stages[4], DF_DEP_STAGE, 5, NULL, "copy"));
	assert_false(p->stages[0].skipped);
	assert_false(p->stages[1].skipped);
	assert_false(p->stages[2].skipped);
	assert_true(p->stages[3].skipped);
	assert_false(p->stages[4].skipped);
	assert_false(p->stages[5].skipped);
	assert_string_equal(p->stages[4].name, "final");
	df_plan_free(p);

	p = plan_of(text, "unused", NULL, NULL);
	assert_false(p->stages[2].skipped);
	assert_false(p->stages[3].skipped);
	assert_true(p->stages[0].skipped);
	df_plan_free(p);

	/* FROM of a later stage name is an image, like BuildKit */
	p = plan_of("FROM later AS first\nFROM alpine AS later\n", "first", NULL, NULL);
	assert_int_equal(p->stages[0].base_kind, DF_BASE_IMAGE);
	assert_true(p->stages[1].skipped);
	df_plan_free(p);
}

static void test_errors(void **state)
{
	(void)state;
	expect_plan_error("FROM a AS x\nFROM b AS y\n", "z",
			  "target stage 'z' could not be found: the stages are x, y");
	expect_plan_error("FROM a AS x\nRUN true\nFROM b AS X\n",
			  NULL, "Dockerfile:3:1: duplicate stage name 'x' (first defined on line 1)");
	expect_plan_error("FROM a AS one\nCOPY --from=two /a /b\nFROM b AS two\nCOPY --from=one /a /b\n",
			  NULL, "Dockerfile:1:1: circular dependency detected on stage: one");
	expect_plan_error("FROM a AS one\nCOPY --from=one /a /b\n",
			  NULL, "Dockerfile:2:1: circular dependency detected on stage: one");
	expect_plan_error("FROM a AS one\nRUN --mount=from=0,target=/x true\n",
			  NULL, "Dockerfile:2:1: circular dependency detected on stage: one");
	expect_plan_error("FROM a\nCOPY --from=7 /a /b\n", NULL, "Dockerfile:2:1: invalid stage index 7");
	expect_plan_error("ARG A\nRUN true\n", NULL, "Dockerfile:2:1: no build stage in current context");
	expect_plan_error("ARG A\n", NULL, "Dockerfile: dockerfile contains no stages to build");
	expect_plan_error("ARG A\nFROM ${A}\n", NULL, "Dockerfile:2:1: base name (${A}) should not be blank");
	expect_plan_error("FROM ${A:?nobase}\n", NULL,
			  "Dockerfile:1:1: failed to process \"${A:?nobase}\": A: nobase");
	expect_plan_error("FROM a\nADD --keep-git-dir=1 x /y\n", NULL,
			  "Dockerfile:2:1: expecting boolean value for flag keep-git-dir, not: 1");
}

static void test_args(void **state)
{
	const char *text =
		"ARG V=1\n"
		"ARG IMG=alpine:${V}\n"
		"ARG ONLY_GLOBAL=g\n"
		"FROM ${IMG} AS a\n"
		"RUN echo\n"				/* a[0] */
		"ARG V\n"				/* a[1] */
		"ARG LOCAL=l-$V\n"			/* a[2] */
		"ENV V=env-wins\n"			/* a[3] */
		"ARG TARGETARCH\n"			/* a[4] */
		"COPY --from=${IMG}-$V /x /y\n"		/* a[5] */
		"FROM a\n"
		"ARG LOCAL\n";
	char *bargs[] = { (char *)"V=2", (char *)"NOT_DECLARED=x", (char *)"HTTP_PROXY=http://p:3128",
			  (char *)"BARE", NULL };
	struct df_plan *p = plan_of(text, NULL, NULL, NULL);
	struct df_platform nat;
	kn_error *err = NULL;

	(void)state;
	assert_string_equal(p->stages[0].base_image, "alpine:1");
	assert_value(p, 0, 1, "V", NULL);		/* global only visible after re-declaration */
	assert_value(p, 0, 1, "ONLY_GLOBAL", NULL);
	assert_value(p, 0, 2, "V", "1");
	assert_value(p, 0, 3, "LOCAL", "l-1");
	assert_value(p, 0, 4, "V", "env-wins");
	assert_value(p, 0, 4, "TARGETARCH", NULL);
	assert_int_equal(df_platform_native(&nat, &err), 0);
	assert_value(p, 0, 5, "TARGETARCH", nat.arch);
	assert_true(has_dep(&p->stages[0], DF_DEP_IMAGE, 0, "alpine:1-1", "copy"));
	assert_value(p, 1, SIZE_MAX, "LOCAL", NULL);	/* stage ARGs do not cross FROM */
	assert_int_equal(p->unused_build_args.n, 0);
	df_plan_free(p);

	p = plan_of(text, NULL, bargs, NULL);
	assert_string_equal(p->stages[0].base_image, "alpine:2");
	assert_value(p, 0, 1, "V", NULL);
	assert_value(p, 0, 2, "V", "2");
	assert_value(p, 0, 3, "LOCAL", "l-2");
	{
		/* predefined: in RUN's args without a declaration, but not used to expand words */
		struct df_stage_env se;
		kn_error *e = NULL;

		assert_int_equal(df_stage_env_init(&se, p, &p->stages[0], NULL, &e), 0);
		assert_string_equal(df_env_get(&se.args, "HTTP_PROXY"), "http://p:3128");
		df_stage_env_release(&se);
		assert_value(p, 0, 0, "HTTP_PROXY", NULL);
	}
	assert_int_equal(p->unused_build_args.n, 1);
	assert_string_equal(p->unused_build_args.v[0], "NOT_DECLARED");
	df_plan_free(p);
	df_platform_release(&nat);

	/* automatic platform args in FROM */
	p = plan_of("FROM --platform=$BUILDPLATFORM img-$TARGETOS-$TARGETARCH${TARGETVARIANT:+-$TARGETVARIANT}\n", NULL, NULL, NULL);
	assert_int_equal(df_platform_native(&nat, &err), 0);
	{
		char *want = xasprintf("img-linux-%s%s%s", nat.arch, *nat.variant ? "-" : "", nat.variant);
		char *plat = df_platform_format(&nat);

		assert_string_equal(p->stages[0].base_image, want);
		assert_string_equal(p->stages[0].platform, plat);
		free(want);
		free(plat);
	}
	df_platform_release(&nat);
	df_plan_free(p);
}

static char *read_conformance(const char *rel)
{
	const char *dir = getenv("KILN_CONFORMANCE_DIR");
	struct kn_buf b = KN_BUF_INIT;
	char *path;
	kn_error *err = NULL;

	if (!dir)
		fail_msg("KILN_CONFORMANCE_DIR is not set");
	path = xasprintf("%s/buildah-testdata/%s", dir, rel);
	if (kn_read_file(path, 1 << 20, &b, &err) < 0)
		fail_msg("cannot read %s: %s", path, err->msg);
	free(path);
	return kn_buf_detach(&b);
}

static void test_buildah_margs(void **state)
{
	char *text = read_conformance("Dockerfile.margs");
	struct df_plan *p = plan_of(text, NULL, NULL, NULL);
	struct df_platform nat;
	kn_error *err = NULL;
	char *plat;

	(void)state;
	assert_int_equal(df_platform_native(&nat, &err), 0);
	plat = df_platform_format(&nat);
	assert_int_equal(p->n_stages, 2);
	assert_true(has_dep(&p->stages[1], DF_DEP_STAGE, 0, NULL, "copy"));
	assert_false(p->stages[0].skipped);
	for (size_t si = 0; si < 2; si++) {
		assert_value(p, si, 8, "BUILDPLATFORM", plat);
		assert_value(p, si, 8, "BUILDOS", "linux");
		assert_value(p, si, 8, "BUILDARCH", nat.arch);
		assert_value(p, si, 8, "BUILDVARIANT", nat.variant);
		assert_value(p, si, 8, "TARGETPLATFORM", plat);
		assert_value(p, si, 8, "TARGETOS", "linux");
		assert_value(p, si, 8, "TARGETARCH", nat.arch);
		assert_value(p, si, 8, "TARGETVARIANT", nat.variant);
		assert_value(p, si, 0, "TARGETARCH", NULL);
	}
	free(plat);
	df_platform_release(&nat);
	df_plan_free(p);
	free(text);
}

static void test_buildah_quoted_arg(void **state)
{
	char *text = read_conformance("Dockerfile.quoted-arg");
	struct df_plan *p = plan_of(text, NULL, NULL, NULL);

	(void)state;
	assert_int_equal(p->n_stages, 2);
	assert_int_equal(p->stages[1].base_kind, DF_BASE_STAGE);
	assert_value(p, 0, SIZE_MAX, "quoted", "words with quotes");
	assert_value(p, 0, SIZE_MAX, "expanded", "words with quotes");
	assert_value(p, 1, SIZE_MAX, "quoted", NULL);
	assert_value(p, 1, SIZE_MAX, "expanded", NULL);
	df_plan_free(p);
	free(text);
}

static void test_buildah_run_args(void **state)
{
	char *text = read_conformance("Dockerfile.run.args");
	struct df_plan *p = plan_of(text, NULL, NULL, NULL);
	const struct df_stage *s = &p->stages[0];

	(void)state;
	assert_int_equal(s->n_instrs, 4);
	assert_string_equal(s->instrs[0]->run.cmd.argv[0], "echo first second");
	assert_false(s->instrs[0]->run.cmd.json);
	assert_true(s->instrs[2]->run.cmd.json);
	assert_string_equal(s->instrs[2]->run.cmd.argv[2], "sixth");
	assert_string_equal(s->instrs[3]->run.cmd.argv[2], "echo inner $1");
	assert_string_equal(s->instrs[3]->run.cmd.argv[3], "");
	assert_string_equal(s->instrs[3]->run.cmd.argv[4], "outer");
	df_plan_free(p);
	free(text);
}

static void test_buildah_env(void **state)
{
	/* expected value of `name` after each ENV line (NULL: BuildKit's lexer rejects the line) */
	static const struct { int line; const char *key; const char *value; } want[] = {
		{ 2, "name", "value" },
		{ 3, "name", "value" },
		{ 4, "name2", "value2" },
		{ 5, "name", "value value1" },
		{ 6, "name", "value value2" },
		{ 7, "name", "value'quote space'value2" },
		{ 8, "name", "value\"double quote\"value2" },
		{ 9, "name2", "value2 value3" },
		{ 10, "name", "a\"b" },
		{ 11, "name", "a\\'b" },
		{ 12, "name", NULL },	/* 'a\'b' leaves a single quote open */
		{ 13, "name", "a\\b" },
		{ 14, "name", "a\\\"b" },
		{ 15, "name", "''" },
		{ 18, "name", "value" },
		{ 18, "name1", "value1" },
		{ 18, "name2", "value2a            value2b" },
		{ 18, "name3", "value3a\\n\"value3b\"" },
		{ 18, "name4", "value4a\\nvalue4b" },
	};
	char *text = read_conformance("Dockerfile.env");
	struct df_plan *p = plan_of(text, NULL, NULL, NULL);
	const struct df_stage *s = &p->stages[0];
	struct df_stage_env se;
	kn_error *err = NULL;
	size_t checked = 0;

	(void)state;
	assert_int_equal(df_stage_env_init(&se, p, s, NULL, &err), 0);
	for (size_t i = 0; i < s->n_instrs; i++) {
		struct df_instr *x = NULL;
		int r = df_stage_env_expand(&se, s->instrs[i], &x, &err);

		for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
			if (want[k].line != s->instrs[i]->line)
				continue;
			checked++;
			if (!want[k].value) {
				assert_int_equal(r, -1);
				continue;
			}
			if (r < 0)
				fail_msg("line %d: %s", want[k].line, err->msg);
			assert_int_equal(df_stage_env_apply(&se, x, &err), 0);
			if (!df_env_get(&se.env, want[k].key) || strcmp(df_env_get(&se.env, want[k].key), want[k].value))
				fail_msg("line %d: %s='%s', want '%s'", want[k].line, want[k].key,
					 df_env_get(&se.env, want[k].key), want[k].value);
		}
		if (r < 0) {
			kn_error_free(err);
			err = NULL;
		}
		df_instr_free(x);
	}
	assert_int_equal(checked, sizeof(want) / sizeof(want[0]));
	df_stage_env_release(&se);
	df_plan_free(p);
	free(text);
}

static void test_buildah_edgecases(void **state)
{
	char *text = read_conformance("Dockerfile.edgecases");
	struct df_plan *p = plan_of(text, NULL, NULL, NULL);
	const struct df_stage *s = &p->stages[0];
	size_t n_onbuild = 0;

	(void)state;
	for (size_t i = 0; i < s->n_instrs; i++) {
		const struct df_instr *in = s->instrs[i];

		if (in->kind == DF_INSTR_ONBUILD) {
			const char *want[] = { "RUN [\"echo\", \"test\"]", "RUN echo test", "COPY . /" };

			assert_string_equal(in->onbuild.expression, want[n_onbuild++]);
		}
		if (in->kind == DF_INSTR_ENV && in->line == 25) {
			assert_string_equal(in->kv.kvs[0].key, "SCUBA");
			assert_string_equal(in->kv.kvs[0].value, "1 DUBA 3");
		}
		if (in->kind == DF_INSTR_EXPOSE && in->line == 38) {
			assert_string_equal(in->expose.ports[0], "5000");
			assert_string_equal(in->expose.ports[2], "9000");
		}
	}
	assert_int_equal(n_onbuild, 3);
	assert_value(p, 0, SIZE_MAX, "SCUBA", "1 DUBA 3");
	df_plan_free(p);
	free(text);
}

static void test_many_stages(void **state)
{
	struct kn_buf b = KN_BUF_INIT;
	struct df_plan *p;

	(void)state;
	for (int i = 0; i < 10000; i++) {
		kn_buf_addf(&b, "FROM %s AS s%d\nARG A%d=%d\n", i ? "alpine" : "scratch", i, i, i);
		if (i)
			kn_buf_addf(&b, "COPY --from=s%d /x /y\n", i - 1);
	}
	p = plan_of(b.buf, "s9999", NULL, NULL);
	assert_int_equal(p->n_stages, 10000);
	for (int i = 0; i < 10000; i++)
		assert_false(p->stages[i].skipped);
	df_plan_free(p);
	p = plan_of(b.buf, "s0", NULL, NULL);
	assert_false(p->stages[0].skipped);
	assert_true(p->stages[1].skipped);
	df_plan_free(p);
	kn_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_graph),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_buildah_margs),
		cmocka_unit_test(test_buildah_quoted_arg),
		cmocka_unit_test(test_buildah_run_args),
		cmocka_unit_test(test_buildah_env),
		cmocka_unit_test(test_buildah_edgecases),
		cmocka_unit_test(test_many_stages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
