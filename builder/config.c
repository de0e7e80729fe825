/* kiln builder: how each instruction changes the image config and history, as BuildKit's
 * dockerfile2llb does (created_by texts included, so `kiln history` reads like docker's). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builder/build-internal.h"

/* Go's %q of one string: double quotes, backslash escapes. */
static void add_go_quoted(struct kn_buf *b, const char *s)
{
	kn_buf_addch(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			kn_buf_addch(b, '\\');
			kn_buf_addch(b, c);
		} else if (c == '\n') {
			kn_buf_adds(b, "\\n");
		} else if (c == '\t') {
			kn_buf_adds(b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			kn_buf_addf(b, "\\x%02x", c);
		} else {
			kn_buf_addch(b, c);
		}
	}
	kn_buf_addch(b, '"');
}

/* Go's %q of a []string: ["a" "b"]. */
static void add_go_quoted_list(struct kn_buf *b, char *const *v)
{
	kn_buf_addch(b, '[');
	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			kn_buf_addch(b, ' ');
		add_go_quoted(b, v[i]);
	}
	kn_buf_addch(b, ']');
}

/* Go's %v of a []string: [a b]. */
static void add_go_list(struct kn_buf *b, char *const *v)
{
	kn_buf_addch(b, '[');
	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			kn_buf_addch(b, ' ');
		kn_buf_adds(b, v[i]);
	}
	kn_buf_addch(b, ']');
}

static void strv_add_unique(char ***vp, const char *s)
{
	struct kn_strv sv = KN_STRV_INIT;

	for (size_t i = 0; *vp && (*vp)[i]; i++) {
		if (!strcmp((*vp)[i], s))
			return;
	}
	for (size_t i = 0; *vp && (*vp)[i]; i++)
		kn_strv_push(&sv, (*vp)[i]);
	kn_strv_push(&sv, s);
	kn_strv_free(*vp);
	*vp = kn_strv_detach(&sv);
}

char **cfg_command_argv(const struct image_config *c, const struct df_cmdline *cl)
{
	struct kn_strv sv = KN_STRV_INIT;

	if (cl->json) {
		for (size_t i = 0; cl->argv && cl->argv[i]; i++)
			kn_strv_push(&sv, cl->argv[i]);
		return kn_strv_detach(&sv);
	}
	if (c->shell && c->shell[0]) {
		for (size_t i = 0; c->shell[i]; i++)
			kn_strv_push(&sv, c->shell[i]);
	} else {
		kn_strv_push(&sv, "/bin/sh");
		kn_strv_push(&sv, "-c");
	}
	kn_strv_push(&sv, cl->argv && cl->argv[0] ? cl->argv[0] : "");
	return kn_strv_detach(&sv);
}

static void add_copy_text(struct kn_buf *b, const struct df_instr *x)
{
	kn_buf_adds(b, x->kind == DF_INSTR_ADD ? "ADD " : "COPY ");
	if (x->copy.from)
		kn_buf_addf(b, "--from=%s ", x->copy.from);
	if (x->copy.chown)
		kn_buf_addf(b, "--chown=%s ", x->copy.chown);
	if (x->copy.chmod)
		kn_buf_addf(b, "--chmod=%s ", x->copy.chmod);
	if (x->copy.link)
		kn_buf_adds(b, "--link ");
	if (x->copy.parents)
		kn_buf_adds(b, "--parents ");
	for (size_t i = 0; x->copy.excludes && x->copy.excludes[i]; i++)
		kn_buf_addf(b, "--exclude=%s ", x->copy.excludes[i]);
	if (x->copy.checksum)
		kn_buf_addf(b, "--checksum=%s ", x->copy.checksum);
	for (size_t i = 0; x->copy.sources && x->copy.sources[i]; i++)
		kn_buf_addf(b, "%s ", x->copy.sources[i]);
	kn_buf_adds(b, x->copy.dest ? x->copy.dest : "");
}

static void add_kvs(struct kn_buf *b, const struct df_instr *x)
{
	for (size_t i = 0; i < x->kv.n; i++) {
		if (i)
			kn_buf_addch(b, ' ');
		kn_buf_adds(b, x->kv.kvs[i].key);
		if (x->kv.kvs[i].value)
			kn_buf_addf(b, "=%s", x->kv.kvs[i].value);
	}
}

char *cfg_step_text(const struct df_instr *x)
{
	struct kn_buf b = KN_BUF_INIT;
	const char *orig = x->original ? x->original : "";

	switch (x->kind) {
	case DF_INSTR_COPY:
	case DF_INSTR_ADD:
		add_copy_text(&b, x);
		break;
	case DF_INSTR_FROM:
	case DF_INSTR_RUN:
	case DF_INSTR_CMD:
	case DF_INSTR_ENTRYPOINT:
	case DF_INSTR_SHELL:
	case DF_INSTR_ENV:
	case DF_INSTR_ARG:
	case DF_INSTR_LABEL:
	case DF_INSTR_EXPOSE:
	case DF_INSTR_WORKDIR:
	case DF_INSTR_USER:
	case DF_INSTR_VOLUME:
	case DF_INSTR_STOPSIGNAL:
	case DF_INSTR_HEALTHCHECK:
	case DF_INSTR_ONBUILD:
	case DF_INSTR_MAINTAINER:
		/* The instruction as written, on one line, upper-case keyword. */
		for (const char *p = orig; *p; p++)
			kn_buf_addch(&b, *p == '\n' || *p == '\t' ? ' ' : *p);
		break;
	}
	if (b.len > 200) {
		kn_buf_setlen(&b, 197);
		kn_buf_adds(&b, "...");
	}
	return kn_buf_detach(&b);
}

char *cfg_created_by(struct bld_state *st, const struct df_instr *x, char *const *run_argv)
{
	struct kn_buf b = KN_BUF_INIT;

	switch (x->kind) {
	case DF_INSTR_RUN: {
		/* BuildKit: "RUN |N K=V ... <argv joined>" listing the build args in scope that ENV
		 * does not override (their values are not kept in the config otherwise). */
		size_t n = 0;

		for (size_t i = 0; i < st->se.args.n; i++)
			if (!df_env_get(&st->se.env, st->se.args.keys[i]))
				n++;
		kn_buf_adds(&b, "RUN ");
		if (n) {
			kn_buf_addf(&b, "|%zu ", n);
			for (size_t i = 0; i < st->se.args.n; i++)
				if (!df_env_get(&st->se.env, st->se.args.keys[i]))
					kn_buf_addf(&b, "%s=%s ", st->se.args.keys[i],
						    st->se.args.values[i]);
		}
		for (size_t i = 0; run_argv && run_argv[i]; i++)
			kn_buf_addf(&b, "%s%s", i ? " " : "", run_argv[i]);
		kn_buf_adds(&b, " # buildkit");
		break;
	}
	case DF_INSTR_COPY:
	case DF_INSTR_ADD:
		add_copy_text(&b, x);
		kn_buf_adds(&b, " # buildkit");
		break;
	case DF_INSTR_ENV:
		kn_buf_adds(&b, "ENV ");
		add_kvs(&b, x);
		break;
	case DF_INSTR_ARG:
		kn_buf_adds(&b, "ARG ");
		add_kvs(&b, x);
		break;
	case DF_INSTR_LABEL:
		kn_buf_adds(&b, "LABEL ");
		add_kvs(&b, x);
		break;
	case DF_INSTR_EXPOSE:
		kn_buf_adds(&b, "EXPOSE ");
		add_go_list(&b, x->expose.ports);
		break;
	case DF_INSTR_WORKDIR:
		kn_buf_addf(&b, "WORKDIR %s", st->config->working_dir ? st->config->working_dir : "/");
		break;
	case DF_INSTR_USER:
		kn_buf_addf(&b, "USER %s", x->user.user);
		break;
	case DF_INSTR_VOLUME:
		kn_buf_adds(&b, "VOLUME ");
		add_go_list(&b, x->volume.paths);
		break;
	case DF_INSTR_CMD:
		kn_buf_adds(&b, "CMD ");
		add_go_quoted_list(&b, st->config->cmd);
		break;
	case DF_INSTR_ENTRYPOINT:
		kn_buf_adds(&b, "ENTRYPOINT ");
		add_go_quoted_list(&b, st->config->entrypoint);
		break;
	case DF_INSTR_SHELL:
		kn_buf_adds(&b, "SHELL ");
		add_go_list(&b, x->shell.argv);
		break;
	case DF_INSTR_STOPSIGNAL:
		kn_buf_addf(&b, "STOPSIGNAL %s", x->stopsignal.signal);
		break;
	case DF_INSTR_HEALTHCHECK: {
		const struct image_healthcheck *h = &st->config->healthcheck;

		kn_buf_adds(&b, "HEALTHCHECK &{");
		add_go_quoted_list(&b, h->test);
		kn_buf_addf(&b, " \"%llds\" \"%llds\" \"%llds\" \"%llds\" '\\x%02x'}",
			    (long long)(h->interval / 1000000000), (long long)(h->timeout / 1000000000),
			    (long long)(h->start_period / 1000000000),
			    (long long)(h->start_interval / 1000000000), (unsigned)h->retries & 0xff);
		break;
	}
	case DF_INSTR_ONBUILD:
		kn_buf_addf(&b, "ONBUILD %s", x->onbuild.expression);
		break;
	case DF_INSTR_MAINTAINER:
		kn_buf_addf(&b, "MAINTAINER %s", x->maintainer.name);
		break;
	case DF_INSTR_FROM:
		kn_buf_addf(&b, "FROM %s", x->from.base);
		break;
	}
	return kn_buf_detach(&b);
}

void cfg_add_history(struct bld_state *st, const char *created_by, bool empty_layer)
{
	_cleanup_free_ char *now = bld_now(st->b);
	struct image_history h = { 0 };

	h.created = now;
	h.created_by = (char *)created_by;
	h.comment = (char *)"buildkit.dockerfile.v0";
	h.empty_layer = empty_layer;
	image_config_add_history(st->config, &h);
	free(st->config->created);
	st->config->created = xstrdup(now);
}

/* path.Join(base, p) then path.Clean, absolute. */
static char *clean_abs(const char *base, const char *p)
{
	struct kn_strv parts = KN_STRV_INIT;
	struct kn_buf b = KN_BUF_INIT;
	_cleanup_free_ char *joined = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", base ? base : "/", p);
	char *s = joined, *e;

	while (*s) {
		e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);

		if (n == 0 || (n == 1 && s[0] == '.')) {
			/* skip */
		} else if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (parts.n) {
				free(parts.v[--parts.n]);
				parts.v[parts.n] = NULL;
			}
		} else {
			kn_strv_push_owned(&parts, xstrndup(s, n));
		}
		if (!e)
			break;
		s = e + 1;
	}
	for (size_t i = 0; i < parts.n; i++)
		kn_buf_addf(&b, "/%s", parts.v[i]);
	if (!b.len)
		kn_buf_addch(&b, '/');
	kn_strv_release(&parts);
	return kn_buf_detach(&b);
}

int cfg_apply(struct bld_state *st, const struct df_instr *x, kn_error **err)
{
	struct image_config *c = st->config;
	_cleanup_free_ char *created_by = NULL;

	switch (x->kind) {
	case DF_INSTR_ENV:
		for (size_t i = 0; i < x->kv.n; i++)
			image_config_set_env(c, x->kv.kvs[i].key, x->kv.kvs[i].value ? x->kv.kvs[i].value : "");
		break;
	case DF_INSTR_ARG:
		break;
	case DF_INSTR_LABEL:
		for (size_t i = 0; i < x->kv.n; i++)
			image_config_set_label(c, x->kv.kvs[i].key, x->kv.kvs[i].value ? x->kv.kvs[i].value : "");
		break;
	case DF_INSTR_EXPOSE:
		for (size_t i = 0; x->expose.ports && x->expose.ports[i]; i++) {
			struct df_port p;

			if (df_port_parse(x->expose.ports[i], &p, err) < 0)
				return kn_error_wrap(err, "%s:%d", x->file, x->line);
			for (unsigned port = p.start; port <= p.end; port++) {
				_cleanup_free_ char *k = xasprintf("%u/%s", port, p.proto);

				strv_add_unique(&c->exposed_ports, k);
			}
		}
		break;
	case DF_INSTR_WORKDIR: {
		char *wd = clean_abs(c->working_dir, x->workdir.path);

		free(c->working_dir);
		c->working_dir = wd;
		break;
	}
	case DF_INSTR_USER:
		free(c->user);
		c->user = xstrdup(x->user.user);
		break;
	case DF_INSTR_VOLUME:
		for (size_t i = 0; x->volume.paths && x->volume.paths[i]; i++) {
			if (!*x->volume.paths[i])
				return kn_error_set_at(err, x->file, x->line, 0, "VOLUME specified can not be an empty string");
			strv_add_unique(&c->volumes, x->volume.paths[i]);
		}
		break;
	case DF_INSTR_CMD:
		kn_strv_free(c->cmd);
		c->cmd = cfg_command_argv(c, &x->cmd);
		st->cmd_set = true;
		break;
	case DF_INSTR_ENTRYPOINT:
		kn_strv_free(c->entrypoint);
		c->entrypoint = cfg_command_argv(c, &x->cmd);
		if (!st->cmd_set) {
			kn_strv_free(c->cmd);
			c->cmd = NULL;
		}
		break;
	case DF_INSTR_SHELL:
		kn_strv_free(c->shell);
		c->shell = kn_strv_dup(x->shell.argv);
		break;
	case DF_INSTR_STOPSIGNAL:
		free(c->stop_signal);
		c->stop_signal = xstrdup(x->stopsignal.signal);
		break;
	case DF_INSTR_HEALTHCHECK: {
		struct image_healthcheck *h = &c->healthcheck;
		struct kn_strv t = KN_STRV_INIT;

		kn_strv_free(h->test);
		memset(h, 0, sizeof(*h));
		if (x->healthcheck.none) {
			kn_strv_push(&t, "NONE");
		} else if (x->healthcheck.test.json) {
			kn_strv_push(&t, "CMD");
			for (size_t i = 0; x->healthcheck.test.argv && x->healthcheck.test.argv[i]; i++)
				kn_strv_push(&t, x->healthcheck.test.argv[i]);
		} else {
			kn_strv_push(&t, "CMD-SHELL");
			kn_strv_push(&t, x->healthcheck.test.argv && x->healthcheck.test.argv[0]
						 ? x->healthcheck.test.argv[0]
						 : "");
		}
		h->test = kn_strv_detach(&t);
		h->interval = x->healthcheck.interval;
		h->timeout = x->healthcheck.timeout;
		h->start_period = x->healthcheck.start_period;
		h->start_interval = x->healthcheck.start_interval;
		h->retries = x->healthcheck.retries;
		break;
	}
	case DF_INSTR_ONBUILD: {
		struct kn_strv sv = KN_STRV_INIT;

		for (size_t i = 0; c->on_build && c->on_build[i]; i++)
			kn_strv_push(&sv, c->on_build[i]);
		kn_strv_push(&sv, x->onbuild.expression);
		kn_strv_free(c->on_build);
		c->on_build = kn_strv_detach(&sv);
		break;
	}
	case DF_INSTR_MAINTAINER:
		free(c->author);
		c->author = xstrdup(x->maintainer.name);
		break;
	case DF_INSTR_FROM:
	case DF_INSTR_RUN:
	case DF_INSTR_COPY:
	case DF_INSTR_ADD:
		return kn_error_set(err, EINVAL, "'%s' is not a metadata instruction", df_instr_kind_name(x->kind));
	}
	if (x->kind == DF_INSTR_WORKDIR)
		return 0; /* the caller creates the directory and adds the history entry */
	if (x->kind == DF_INSTR_ONBUILD)
		return 0; /* BuildKit records no history entry for ONBUILD */
	created_by = cfg_created_by(st, x, NULL);
	cfg_add_history(st, created_by, true);
	return 0;
}
