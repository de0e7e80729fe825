/* Unit tests of parser/instructions.c: typed instructions, flags, and their exact error texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"

/* Parses a whole Dockerfile and returns the typed instruction on line `line`. */
static struct df_instr *instr_at(const char *text, int line)
{
	struct df_ast *ast;
	struct df_instr *in = NULL;
	kn_error *err = NULL;

	ast = df_parse(text, strlen(text), "Dockerfile", &err);
	if (!ast)
		fail_msg("df_parse: %s", err->msg);
	for (size_t i = 0; i < ast->root->n_children; i++) {
		if (ast->root->children[i]->start_line != line)
			continue;
		if (df_instr_parse(ast->root->children[i], ast->file, ast->escape, &in, &err) < 0) {
			char *m = kn_error_format(err);

			fail_msg("df_instr_parse: %s", m);
		}
	}
	df_ast_free(ast);
	assert_non_null(in);
	return in;
}

/* Parses one instruction and expects the formatted error `want`. */
static void expect_error(const char *text, const char *want)
{
	struct df_ast *ast;
	struct df_instr *in = NULL;
	kn_error *err = NULL;
	char *got = NULL;

	ast = df_parse(text, strlen(text), "Dockerfile", &err);
	if (!ast) {
		got = kn_error_format(err);
	} else {
		for (size_t i = 0; i < ast->root->n_children && !got; i++) {
			if (df_instr_parse(ast->root->children[i], ast->file, ast->escape, &in, &err) < 0)
				got = kn_error_format(err);
			else
				df_instr_free(in);
		}
	}
	df_ast_free(ast);
	kn_error_free(err);
	if (!got)
		fail_msg("'%s': no error, want '%s'", text, want);
	if (strcmp(got, want) != 0)
		fail_msg("'%s': error '%s', want '%s'", text, got, want);
	free(got);
}

static void test_from(void **state)
{
	struct df_instr *in;

	(void)state;
	in = instr_at("FROM --platform=linux/arm64 alpine:3.20 AS Build\n", 1);
	assert_int_equal(in->kind, DF_INSTR_FROM);
	assert_string_equal(in->from.base, "alpine:3.20");
	assert_string_equal(in->from.name, "build");
	assert_string_equal(in->from.platform, "linux/arm64");
	assert_int_equal(in->line, 1);
	assert_string_equal(in->file, "Dockerfile");
	df_instr_free(in);
	in = instr_at("FROM scratch\n", 1);
	assert_null(in->from.name);
	assert_null(in->from.platform);
	df_instr_free(in);
}

static void test_run_mounts(void **state)
{
	struct df_instr *in;
	const struct df_mount *m;

	(void)state;
	in = instr_at("FROM a\nRUN --mount=type=bind,source=/a,target=/b,from=x,rw "
		      "--mount=type=cache,target=/c,id=myid,sharing=locked,mode=0700,uid=1,gid=2 "
		      "--mount=type=tmpfs,dst=/t,size=64m --mount=type=secret,id=tok,required "
		      "--mount=type=ssh --mount=type=ssh,id=k,target=/s --mount=target=/m "
		      "--mount=type=secret,src=/run/x/y.txt --mount=type=secret,id=e,env=TOKEN "
		      "--network=none --security=insecure make all\n", 2);
	assert_int_equal(in->kind, DF_INSTR_RUN);
	assert_int_equal(in->run.n_mounts, 9);
	m = &in->run.mounts[0];
	assert_int_equal(m->type, DF_MOUNT_BIND);
	assert_string_equal(m->source, "/a");
	assert_string_equal(m->target, "/b");
	assert_string_equal(m->from, "x");
	assert_false(m->readonly);
	m = &in->run.mounts[1];
	assert_int_equal(m->type, DF_MOUNT_CACHE);
	assert_string_equal(m->id, "myid");
	assert_int_equal(m->sharing, DF_SHARING_LOCKED);
	assert_int_equal(m->mode, 0700);
	assert_int_equal(m->uid, 1);
	assert_int_equal(m->gid, 2);
	assert_false(m->readonly);
	m = &in->run.mounts[2];
	assert_int_equal(m->type, DF_MOUNT_TMPFS);
	assert_string_equal(m->target, "/t");
	assert_int_equal(m->size, 64ULL << 20);
	m = &in->run.mounts[3];
	assert_int_equal(m->type, DF_MOUNT_SECRET);
	assert_string_equal(m->target, "/run/secrets/tok");
	assert_true(m->required);
	assert_int_equal(m->mode, 0400);
	m = &in->run.mounts[4];
	assert_int_equal(m->type, DF_MOUNT_SSH);
	assert_string_equal(m->id, "default");
	assert_string_equal(m->target, "/run/buildkit/ssh_agent.0");
	m = &in->run.mounts[5];
	assert_string_equal(m->id, "k");
	assert_string_equal(m->target, "/s");
	m = &in->run.mounts[6];
	assert_int_equal(m->type, DF_MOUNT_BIND);
	assert_true(m->readonly);
	m = &in->run.mounts[7];
	assert_string_equal(m->id, "/run/x/y.txt");
	assert_string_equal(m->target, "/run/secrets/y.txt");
	m = &in->run.mounts[8];
	assert_string_equal(m->env, "TOKEN");
	assert_null(m->target);
	assert_int_equal(in->run.network, DF_NETWORK_NONE);
	assert_int_equal(in->run.security, DF_SECURITY_INSECURE);
	assert_false(in->run.cmd.json);
	assert_string_equal(in->run.cmd.argv[0], "make all");
	df_instr_free(in);

	in = instr_at("FROM a\nRUN [\"/bin/echo\", \"a b\"]\n", 2);
	assert_true(in->run.cmd.json);
	assert_string_equal(in->run.cmd.argv[1], "a b");
	assert_null(in->run.cmd.argv[2]);
	df_instr_free(in);

	in = instr_at("FROM a\nRUN <<EOF\necho hi\nEOF\n", 2);
	assert_int_equal(in->run.cmd.n_heredocs, 1);
	assert_string_equal(in->run.cmd.heredocs[0].name, "EOF");
	assert_string_equal(in->run.cmd.heredocs[0].content, "echo hi\n");
	df_instr_free(in);
}

static void test_copy_add(void **state)
{
	struct df_instr *in;

	(void)state;
	in = instr_at("FROM a\nCOPY --from=0 --chown=app:staff --chmod=u+x,g-w --link --exclude=*.tmp "
		      "--exclude=.git --parents a b /dst/\n", 2);
	assert_int_equal(in->kind, DF_INSTR_COPY);
	assert_string_equal(in->copy.from, "0");
	assert_string_equal(in->copy.chown, "app:staff");
	assert_string_equal(in->copy.chmod, "u+x,g-w");
	assert_true(in->copy.link);
	assert_true(in->copy.parents);
	assert_string_equal(in->copy.excludes[0], "*.tmp");
	assert_string_equal(in->copy.excludes[1], ".git");
	assert_null(in->copy.excludes[2]);
	assert_string_equal(in->copy.sources[0], "a");
	assert_string_equal(in->copy.sources[1], "b");
	assert_null(in->copy.sources[2]);
	assert_string_equal(in->copy.dest, "/dst/");
	df_instr_free(in);

	in = instr_at("FROM a\nADD --checksum=sha256:abc --keep-git-dir=true --chmod=0755 https://x/y /y\n", 2);
	assert_int_equal(in->kind, DF_INSTR_ADD);
	assert_string_equal(in->copy.checksum, "sha256:abc");
	assert_true(in->copy.keep_git_dir);
	assert_string_equal(in->copy.chmod, "0755");
	assert_null(in->copy.from);
	assert_null(in->copy.excludes[0]);
	df_instr_free(in);

	in = instr_at("FROM a\nCOPY <<EOF <<-\"TWO\" /dst/\nhello $X\nEOF\n\tquoted\n\tTWO\n", 2);
	assert_int_equal(in->copy.n_heredocs, 2);
	assert_null(in->copy.sources[0]);
	assert_string_equal(in->copy.heredocs[0].name, "EOF");
	assert_string_equal(in->copy.heredocs[0].content, "hello $X\n");
	assert_true(in->copy.heredocs[0].expand);
	assert_string_equal(in->copy.heredocs[1].name, "TWO");
	assert_false(in->copy.heredocs[1].expand);
	assert_true(in->copy.heredocs[1].chomp);
	{
		struct df_env env = DF_ENV_INIT;
		struct df_instr *x = NULL;
		kn_error *err = NULL;

		df_env_set(&env, "X", "world");
		assert_int_equal(df_instr_expand(in, &env, &x, &err), 0);
		assert_string_equal(x->copy.heredocs[0].content, "hello world\n");
		assert_false(x->copy.heredocs[0].expand);
		assert_string_equal(x->copy.heredocs[1].content, "quoted\n");	/* chomped, not expanded */
		assert_false(x->copy.heredocs[1].chomp);
		assert_string_equal(x->matched.v[0], "X");
		df_instr_free(x);
		df_env_release(&env);
	}
	df_instr_free(in);

	in = instr_at("FROM a\nCOPY [\"a b\", \"c\", \"/d/\"]\n", 2);
	assert_string_equal(in->copy.sources[0], "a b");
	assert_string_equal(in->copy.dest, "/d/");
	df_instr_free(in);
}

static void test_others(void **state)
{
	struct df_instr *in;

	(void)state;
	in = instr_at("FROM a\nEXPOSE 8080 80/tcp 53/udp 8000-8010\n", 2);
	assert_string_equal(in->expose.ports[0], "53/udp");
	assert_string_equal(in->expose.ports[1], "80/tcp");
	assert_string_equal(in->expose.ports[2], "8000-8010");
	assert_string_equal(in->expose.ports[3], "8080");
	df_instr_free(in);

	in = instr_at("FROM a\nHEALTHCHECK --interval=1m30s --timeout=5s --start-period=10s "
		      "--start-interval=2s --retries=3 CMD curl -f http://x/\n", 2);
	assert_false(in->healthcheck.none);
	assert_int_equal(in->healthcheck.interval, 90000000000LL);
	assert_int_equal(in->healthcheck.timeout, 5000000000LL);
	assert_int_equal(in->healthcheck.start_period, 10000000000LL);
	assert_int_equal(in->healthcheck.start_interval, 2000000000LL);
	assert_int_equal(in->healthcheck.retries, 3);
	assert_false(in->healthcheck.test.json);
	assert_string_equal(in->healthcheck.test.argv[0], "curl -f http://x/");
	df_instr_free(in);

	in = instr_at("FROM a\nHEALTHCHECK NONE\n", 2);
	assert_true(in->healthcheck.none);
	df_instr_free(in);

	in = instr_at("FROM a\nHEALTHCHECK CMD [\"/bin/check\", \"-q\"]\n", 2);
	assert_true(in->healthcheck.test.json);
	assert_string_equal(in->healthcheck.test.argv[0], "/bin/check");
	df_instr_free(in);

	in = instr_at("FROM a\nONBUILD RUN echo hi\n", 2);
	assert_int_equal(in->kind, DF_INSTR_ONBUILD);
	assert_string_equal(in->onbuild.expression, "RUN echo hi");
	df_instr_free(in);

	in = instr_at("FROM a\nSHELL [\"/bin/bash\", \"-c\"]\n", 2);
	assert_string_equal(in->shell.argv[0], "/bin/bash");
	assert_string_equal(in->shell.argv[1], "-c");
	df_instr_free(in);

	in = instr_at("FROM a\nVOLUME [\"/a\", \"/b\"]\n", 2);
	assert_string_equal(in->volume.paths[1], "/b");
	df_instr_free(in);
	in = instr_at("FROM a\nVOLUME /c /d\n", 2);
	assert_string_equal(in->volume.paths[0], "/c");
	assert_string_equal(in->volume.paths[1], "/d");
	df_instr_free(in);

	in = instr_at("FROM a\nARG a=1 b c=\"x y\"\n", 2);
	assert_int_equal(in->kv.n, 3);
	assert_string_equal(in->kv.kvs[0].key, "a");
	assert_string_equal(in->kv.kvs[0].value, "1");
	assert_null(in->kv.kvs[1].value);
	assert_string_equal(in->kv.kvs[2].value, "\"x y\"");
	df_instr_free(in);

	in = instr_at("FROM a\nENV k v w\n", 2);
	assert_int_equal(in->kv.n, 1);
	assert_string_equal(in->kv.kvs[0].value, "v w");
	df_instr_free(in);

	in = instr_at("FROM a\nLABEL a=1 \"b c\"=\"2 3\"\n", 2);
	assert_int_equal(in->kind, DF_INSTR_LABEL);
	assert_int_equal(in->kv.n, 2);
	df_instr_free(in);

	in = instr_at("FROM a\nSTOPSIGNAL SIGKILL\n", 2);
	assert_string_equal(in->stopsignal.signal, "SIGKILL");
	df_instr_free(in);
	in = instr_at("FROM a\nUSER app:staff\n", 2);
	assert_string_equal(in->user.user, "app:staff");
	df_instr_free(in);
	in = instr_at("FROM a\nWORKDIR /x y\n", 2);
	assert_string_equal(in->workdir.path, "/x y");
	df_instr_free(in);
	in = instr_at("FROM a\nMAINTAINER me <me@x>\n", 2);
	assert_string_equal(in->maintainer.name, "me <me@x>");
	df_instr_free(in);
	in = instr_at("FROM a\nENTRYPOINT []\n", 2);
	assert_true(in->cmd.json);
	assert_null(in->cmd.argv[0]);
	df_instr_free(in);
	in = instr_at("FROM a\nCMD echo \"hi\"\n", 2);
	assert_int_equal(in->kind, DF_INSTR_CMD);
	assert_string_equal(in->cmd.argv[0], "echo \"hi\"");
	df_instr_free(in);
	in = instr_at("# escape=`\nFROM a\nENV A=x`$y\n", 3);
	assert_int_equal(in->escape, '`');
	{
		struct df_instr *x = NULL;
		kn_error *err = NULL;

		assert_int_equal(df_instr_expand(in, NULL, &x, &err), 0);
		assert_string_equal(x->kv.kvs[0].value, "x$y");
		df_instr_free(x);
	}
	df_instr_free(in);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("FROM a\nRUN --mnt=type=bind,target=/x echo\n",
		     "Dockerfile:2:1: unknown flag: mnt (did you mean mount?)");
	expect_error("FROM a\nCOPY --chmod=99 a /b\n",
		     "Dockerfile:2:1: invalid chmod parameter: '99'. it should be octal string and between 0 and 07777, or a symbolic mode like 'u+x'");
	expect_error("FROM a\nCOPY --chmod=07778 a /b\n",
		     "Dockerfile:2:1: invalid chmod parameter: '07778'. it should be octal string and between 0 and 07777, or a symbolic mode like 'u+x'");
	expect_error("FROM a\nCOPY --from=a --from=b x /y\n", "Dockerfile:2:1: duplicate flag specified: from");
	expect_error("FROM a\nCOPY --link=maybe a /b\n",
		     "Dockerfile:2:1: expecting boolean value for flag link, not: maybe");
	expect_error("FROM a\nCOPY --from x y\n", "Dockerfile:2:1: missing a value on flag: from");
	expect_error("FROM a\nCOPY --keep-git-dir a /b\n", "Dockerfile:2:1: unknown flag: keep-git-dir");
	expect_error("FROM a\nADD --from=x a /b\n", "Dockerfile:2:1: unknown flag: from");
	expect_error("FROM a\n\n\nADD a b c\n",
		     "Dockerfile:4: ADD with more than one source requires the destination to end with \"/\"");
	expect_error("FROM a\nCOPY a b c\n",
		     "Dockerfile:2: COPY with more than one source requires the destination to end with \"/\"");
	expect_error("FROM a\nCOPY a\n",
		     "Dockerfile:2:1: COPY requires at least two arguments, but only one was provided. Destination could not be determined");
	expect_error("FROM a\nCOPY a <<EOF\nx\nEOF\n",
		     "Dockerfile:2:1: COPY cannot accept a heredoc as a destination");
	expect_error("FROM a\nONBUILD ONBUILD RUN x\n",
		     "Dockerfile:2:1: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
	expect_error("FROM a\nONBUILD FROM x\n", "Dockerfile:2:1: FROM isn't allowed as an ONBUILD trigger");
	expect_error("FROM a\nONBUILD MAINTAINER x\n",
		     "Dockerfile:2:1: MAINTAINER isn't allowed as an ONBUILD trigger");
	expect_error("FROM a\nRUN --mount=type=foo,target=/x true\n",
		     "Dockerfile:2:1: unsupported mount type \"foo\"");
	expect_error("FROM a\nRUN --mount=type=bind,size=1m,target=/x true\n",
		     "Dockerfile:2:1: unexpected key 'size' for mount type 'bind'");
	expect_error("FROM a\nRUN --mount=type=cache,target=/x,mode=9 true\n",
		     "Dockerfile:2:1: invalid value 9 for mode");
	expect_error("FROM a\nRUN --mount=type=cache,target=/x,uid=-1 true\n",
		     "Dockerfile:2:1: invalid value -1 for uid");
	expect_error("FROM a\nRUN --mount=type=cache,target=/x,sharing=bad true\n",
		     "Dockerfile:2:1: unsupported sharing value \"bad\"");
	expect_error("FROM a\nRUN --mount=target true\n",
		     "Dockerfile:2:1: invalid field 'target' must be a key=value pair");
	expect_error("FROM a\nRUN --mount=type=bind,foo=bar,target=/x true\n",
		     "Dockerfile:2:1: unexpected key 'foo' in 'foo=bar'");
	expect_error("FROM a\nRUN --mount=type=bind,ro=maybe,target=/x true\n",
		     "Dockerfile:2:1: invalid value for ro: maybe");
	expect_error("FROM a\nRUN --mount=type=tmpfs,target=/x,size=lots true\n",
		     "Dockerfile:2:1: invalid value for size: lots");
	expect_error("FROM a\nRUN --mount=type=secret,id=a,from=x true\n",
		     "Dockerfile:2:1: secret mount should not have a from");
	expect_error("FROM a\nRUN --mount=type=bind true\n",
		     "Dockerfile:2:1: mount type bind requires a target");
	expect_error("FROM a\nRUN --network=bridge x\n", "Dockerfile:2:1: unsupported network mode \"bridge\"");
	expect_error("FROM a\nRUN --security=x y\n", "Dockerfile:2:1: unsupported security mode \"x\"");
	expect_error("FROM a\nHEALTHCHECK --interval=1x CMD x\n",
		     "Dockerfile:2:1: time: unknown unit \"x\" in duration \"1x\"");
	expect_error("FROM a\nHEALTHCHECK --timeout=10 CMD x\n",
		     "Dockerfile:2:1: time: missing unit in duration \"10\"");
	expect_error("FROM a\nHEALTHCHECK --interval=100us CMD x\n",
		     "Dockerfile:2:1: Interval \"interval\" cannot be less than 1ms");
	expect_error("FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
		     "Dockerfile:2:1: --retries cannot be negative (-1)");
	expect_error("FROM a\nHEALTHCHECK --retries=x CMD x\n",
		     "Dockerfile:2:1: strconv.ParseInt: parsing \"x\": invalid syntax");
	expect_error("FROM a\nHEALTHCHECK --foo=1 CMD x\n", "Dockerfile:2:1: unknown flag: foo");
	expect_error("FROM a\nHEALTHCHECK FOO x\n",
		     "Dockerfile:2:1: Unknown type \"FOO\" in HEALTHCHECK (try CMD)");
	expect_error("FROM a\nHEALTHCHECK NONE x\n", "Dockerfile:2:1: HEALTHCHECK NONE takes no arguments");
	expect_error("FROM a\nSHELL /bin/sh -c\n",
		     "Dockerfile:2:1: SHELL requires the arguments to be in JSON form");
	expect_error("FROM a b\n", "Dockerfile:1:1: FROM requires either one or three arguments");
	expect_error("FROM a AS 1x\n",
		     "Dockerfile:1:1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols");
	expect_error("FROM a AS b$c\n",
		     "Dockerfile:1:1: invalid name for build stage: \"b$c\", name can't start with a number or contain symbols");
	expect_error("FROM --plaform=x a\n", "Dockerfile:1:1: unknown flag: plaform (did you mean platform?)");
	expect_error("FROM a\nEXPOSE 80/xyz\n", "Dockerfile:2:1: invalid proto: xyz");
	expect_error("FROM a\nEXPOSE 70000\n", "Dockerfile:2:1: invalid containerPort: 70000");
	expect_error("FROM a\nARG =x\n", "Dockerfile:2:1: ARG names can not be blank");
	expect_error("FROM a\nVOLUME [\"\"]\n", "Dockerfile:2:1: VOLUME specified can not be an empty string");
	expect_error("FROM a\nENV --x=1 a=b\n", "Dockerfile:2:1: unknown flag: x");
	expect_error("FROM a\n  WORKDIR --x=1 /a\n", "Dockerfile:2:3: unknown flag: x");
}

static void test_expand(void **state)
{
	struct df_instr *in, *x = NULL;
	struct df_env env = DF_ENV_INIT;
	kn_error *err = NULL;
	char *m;

	(void)state;
	df_env_set(&env, "DIR", "/opt/app");
	df_env_set(&env, "U", "app");
	df_env_set(&env, "P", "8080");
	df_env_set(&env, "PS", "80 443/udp");
	df_env_set(&env, "M", "0640");
	df_env_set(&env, "ST", "builder");

	in = instr_at("FROM a\nCOPY --from=$ST --chown=${U}:${U} --chmod=$M --exclude=$U.tmp src ${DIR}/\n", 2);
	assert_int_equal(df_instr_expand(in, &env, &x, &err), 0);
	assert_string_equal(x->copy.from, "builder");
	assert_string_equal(x->copy.chown, "app:app");
	assert_string_equal(x->copy.chmod, "0640");
	assert_string_equal(x->copy.excludes[0], "app.tmp");
	assert_string_equal(x->copy.dest, "/opt/app/");
	assert_int_equal(x->matched.n, 4);
	df_instr_free(x);
	df_instr_free(in);

	in = instr_at("FROM a\nEXPOSE $P $PS\n", 2);
	assert_int_equal(df_instr_expand(in, &env, &x, &err), 0);
	assert_string_equal(x->expose.ports[0], "8080");
	assert_string_equal(x->expose.ports[1], "80");
	assert_string_equal(x->expose.ports[2], "443/udp");
	df_instr_free(x);
	df_instr_free(in);

	in = instr_at("FROM a\nRUN --mount=type=cache,target=$DIR/cache,uid=$P echo $DIR\n", 2);
	assert_int_equal(df_instr_expand(in, &env, &x, &err), 0);
	assert_string_equal(x->run.mounts[0].target, "/opt/app/cache");
	assert_string_equal(x->run.mounts[0].id, "/opt/app/cache");
	assert_int_equal(x->run.mounts[0].uid, 8080);
	assert_string_equal(x->run.cmd.argv[0], "echo $DIR");	/* the shell expands RUN */
	df_instr_free(x);
	df_instr_free(in);

	/* multiple sources after expansion, dest without '/' */
	in = instr_at("FROM a\n\nCOPY a b $DIR\n", 3);
	assert_int_equal(df_instr_expand(in, &env, &x, &err), -1);
	m = kn_error_format(err);
	assert_string_equal(m, "Dockerfile:3: COPY with more than one source requires the destination to end with \"/\"");
	free(m);
	kn_error_free(err);
	err = NULL;
	df_instr_free(in);

	in = instr_at("FROM a\nWORKDIR ${NOPE:?must be set}\n", 2);
	assert_int_equal(df_instr_expand(in, &env, &x, &err), -1);
	m = kn_error_format(err);
	assert_string_equal(m, "Dockerfile:2:1: failed to process \"${NOPE:?must be set}\": NOPE: must be set");
	free(m);
	kn_error_free(err);
	df_instr_free(in);
	df_env_release(&env);
}

static void test_chmod(void **state)
{
	struct df_chmod c;
	kn_error *err = NULL;

	(void)state;
	assert_int_equal(df_chmod_parse("755", &c, &err), 0);
	assert_false(c.symbolic);
	assert_int_equal(df_chmod_apply(&c, 0600, false), 0755);
	df_chmod_release(&c);
	assert_int_equal(df_chmod_parse("u+x,g-w", &c, &err), 0);
	assert_true(c.symbolic);
	assert_int_equal(df_chmod_apply(&c, 0664, false), 0744);
	df_chmod_release(&c);
	assert_int_equal(df_chmod_parse("a=rX", &c, &err), 0);
	assert_int_equal(df_chmod_apply(&c, 0600, false), 0444);
	assert_int_equal(df_chmod_apply(&c, 0700, true), 0555);
	df_chmod_release(&c);
	assert_int_equal(df_chmod_parse("go=u", &c, &err), 0);
	assert_int_equal(df_chmod_apply(&c, 0750, false), 0777);
	df_chmod_release(&c);
	assert_int_equal(df_chmod_parse("z+x", &c, &err), -1);
	kn_error_free(err);
}

static void test_durations_ports(void **state)
{
	long long ns;
	struct df_port p;
	kn_error *err = NULL;

	(void)state;
	assert_int_equal(df_duration_parse("1h2m3.5s", &ns, &err), 0);
	assert_int_equal(ns, 3723500000000LL);
	assert_int_equal(df_duration_parse("250ms", &ns, &err), 0);
	assert_int_equal(ns, 250000000LL);
	assert_int_equal(df_duration_parse("0", &ns, &err), 0);
	assert_int_equal(ns, 0);
	assert_int_equal(df_duration_parse("", &ns, &err), -1);
	kn_error_free(err);
	err = NULL;
	assert_int_equal(df_port_parse("8000-8010/udp", &p, &err), 0);
	assert_int_equal(p.start, 8000);
	assert_int_equal(p.end, 8010);
	assert_string_equal(p.proto, "udp");
	assert_int_equal(df_port_parse("80", &p, &err), 0);
	assert_string_equal(p.proto, "tcp");
	assert_int_equal(df_port_parse("90-80", &p, &err), -1);
	kn_error_free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from),
		cmocka_unit_test(test_run_mounts),
		cmocka_unit_test(test_copy_add),
		cmocka_unit_test(test_others),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_chmod),
		cmocka_unit_test(test_durations_ports),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
