/*
 * kiln parser: typed instructions from AST nodes, with the checks and error texts of BuildKit's
 * frontend/dockerfile/instructions (parse.go, bflag.go, runmount.go), written from their
 * documented behaviour; plus the expansion of an instruction's words (df_instr_expand).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parser/parser.h"
#include "parser/sem-internal.h"

static const char *const kind_names[] = {
	[DF_INSTR_FROM] = "FROM", [DF_INSTR_RUN] = "RUN", [DF_INSTR_CMD] = "CMD",
	[DF_INSTR_ENTRYPOINT] = "ENTRYPOINT", [DF_INSTR_SHELL] = "SHELL", [DF_INSTR_ENV] = "ENV",
	[DF_INSTR_ARG] = "ARG", [DF_INSTR_LABEL] = "LABEL", [DF_INSTR_EXPOSE] = "EXPOSE",
	[DF_INSTR_WORKDIR] = "WORKDIR", [DF_INSTR_USER] = "USER", [DF_INSTR_VOLUME] = "VOLUME",
	[DF_INSTR_COPY] = "COPY", [DF_INSTR_ADD] = "ADD", [DF_INSTR_STOPSIGNAL] = "STOPSIGNAL",
	[DF_INSTR_HEALTHCHECK] = "HEALTHCHECK", [DF_INSTR_ONBUILD] = "ONBUILD",
	[DF_INSTR_MAINTAINER] = "MAINTAINER",
};

const char *df_instr_kind_name(enum df_instr_kind kind)
{
	if ((size_t)kind < KN_ARRAY_SIZE(kind_names) && kind_names[kind])
		return kind_names[kind];
	return "?";
}

/* ---- freeing and copying -------------------------------------------------------------------- */

static void heredocs_free(struct df_heredoc *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].name);
		free(h[i].content);
	}
	free(h);
}

static struct df_heredoc *heredocs_dup(const struct df_heredoc *h, size_t n)
{
	struct df_heredoc *r;

	if (n == 0)
		return NULL;
	r = xcalloc(n, sizeof(*r));
	for (size_t i = 0; i < n; i++) {
		r[i] = h[i];
		r[i].name = xstrdup(h[i].name ? h[i].name : "");
		r[i].content = xstrdup(h[i].content ? h[i].content : "");
	}
	return r;
}

static void cmdline_release(struct df_cmdline *c)
{
	kn_strv_free(c->argv);
	heredocs_free(c->heredocs, c->n_heredocs);
	memset(c, 0, sizeof(*c));
}

static void cmdline_copy(struct df_cmdline *dst, const struct df_cmdline *src)
{
	dst->argv = kn_strv_dup(src->argv);
	dst->json = src->json;
	dst->heredocs = heredocs_dup(src->heredocs, src->n_heredocs);
	dst->n_heredocs = src->n_heredocs;
}

static void mount_release(struct df_mount *m)
{
	free(m->target);
	free(m->source);
	free(m->from);
	free(m->id);
	free(m->env);
	free(m->raw);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void kvs_free(struct df_kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kvs[i].key);
		free(kvs[i].value);
	}
	free(kvs);
}

void df_instr_free(struct df_instr *in)
{
	if (!in)
		return;
	free(in->file);
	free(in->original);
	kn_strv_release(&in->matched);
	kn_strv_release(&in->unmatched);
	switch (in->kind) {
	case DF_INSTR_FROM:
		free(in->from.base);
		free(in->from.name);
		free(in->from.platform);
		break;
	case DF_INSTR_RUN:
		cmdline_release(&in->run.cmd);
		for (size_t i = 0; i < in->run.n_mounts; i++)
			mount_release(&in->run.mounts[i]);
		free(in->run.mounts);
		break;
	case DF_INSTR_CMD:
	case DF_INSTR_ENTRYPOINT:
		cmdline_release(&in->cmd);
		break;
	case DF_INSTR_SHELL:
		kn_strv_free(in->shell.argv);
		break;
	case DF_INSTR_ENV:
	case DF_INSTR_ARG:
	case DF_INSTR_LABEL:
		kvs_free(in->kv.kvs, in->kv.n);
		break;
	case DF_INSTR_EXPOSE:
		kn_strv_free(in->expose.ports);
		break;
	case DF_INSTR_WORKDIR:
		free(in->workdir.path);
		break;
	case DF_INSTR_USER:
		free(in->user.user);
		break;
	case DF_INSTR_VOLUME:
		kn_strv_free(in->volume.paths);
		break;
	case DF_INSTR_COPY:
	case DF_INSTR_ADD:
		kn_strv_free(in->copy.sources);
		free(in->copy.dest);
		heredocs_free(in->copy.heredocs, in->copy.n_heredocs);
		free(in->copy.from);
		free(in->copy.chown);
		free(in->copy.chmod);
		kn_strv_free(in->copy.excludes);
		free(in->copy.checksum);
		break;
	case DF_INSTR_STOPSIGNAL:
		free(in->stopsignal.signal);
		break;
	case DF_INSTR_HEALTHCHECK:
		cmdline_release(&in->healthcheck.test);
		break;
	case DF_INSTR_ONBUILD:
		free(in->onbuild.expression);
		break;
	case DF_INSTR_MAINTAINER:
		free(in->maintainer.name);
		break;
	}
	free(in);
}

static struct df_kv *kvs_dup(const struct df_kv *kvs, size_t n)
{
	struct df_kv *r = xcalloc(n ? n : 1, sizeof(*r));

	for (size_t i = 0; i < n; i++) {
		r[i].key = xstrdup(kvs[i].key);
		r[i].value = dup_or_null(kvs[i].value);
	}
	return r;
}

static struct df_instr *instr_dup(const struct df_instr *in)
{
	struct df_instr *r = xcalloc(1, sizeof(*r));

	r->kind = in->kind;
	r->file = dup_or_null(in->file);
	r->line = in->line;
	r->end_line = in->end_line;
	r->col = in->col;
	r->original = dup_or_null(in->original);
	r->escape = in->escape;
	for (size_t i = 0; i < in->matched.n; i++)
		kn_strv_push(&r->matched, in->matched.v[i]);
	for (size_t i = 0; i < in->unmatched.n; i++)
		kn_strv_push(&r->unmatched, in->unmatched.v[i]);
	switch (in->kind) {
	case DF_INSTR_FROM:
		r->from.base = dup_or_null(in->from.base);
		r->from.name = dup_or_null(in->from.name);
		r->from.platform = dup_or_null(in->from.platform);
		break;
	case DF_INSTR_RUN:
		cmdline_copy(&r->run.cmd, &in->run.cmd);
		r->run.network = in->run.network;
		r->run.security = in->run.security;
		r->run.n_mounts = in->run.n_mounts;
		r->run.mounts = xcalloc(in->run.n_mounts ? in->run.n_mounts : 1, sizeof(*r->run.mounts));
		for (size_t i = 0; i < in->run.n_mounts; i++) {
			const struct df_mount *m = &in->run.mounts[i];
			struct df_mount *d = &r->run.mounts[i];

			*d = *m;
			d->target = dup_or_null(m->target);
			d->source = dup_or_null(m->source);
			d->from = dup_or_null(m->from);
			d->id = dup_or_null(m->id);
			d->env = dup_or_null(m->env);
			d->raw = dup_or_null(m->raw);
		}
		break;
	case DF_INSTR_CMD:
	case DF_INSTR_ENTRYPOINT:
		cmdline_copy(&r->cmd, &in->cmd);
		break;
	case DF_INSTR_SHELL:
		r->shell.argv = kn_strv_dup(in->shell.argv);
		break;
	case DF_INSTR_ENV:
	case DF_INSTR_ARG:
	case DF_INSTR_LABEL:
		r->kv.kvs = kvs_dup(in->kv.kvs, in->kv.n);
		r->kv.n = in->kv.n;
		break;
	case DF_INSTR_EXPOSE:
		r->expose.ports = kn_strv_dup(in->expose.ports);
		break;
	case DF_INSTR_WORKDIR:
		r->workdir.path = dup_or_null(in->workdir.path);
		break;
	case DF_INSTR_USER:
		r->user.user = dup_or_null(in->user.user);
		break;
	case DF_INSTR_VOLUME:
		r->volume.paths = kn_strv_dup(in->volume.paths);
		break;
	case DF_INSTR_COPY:
	case DF_INSTR_ADD:
		r->copy = in->copy;
		r->copy.sources = kn_strv_dup(in->copy.sources);
		r->copy.dest = dup_or_null(in->copy.dest);
		r->copy.heredocs = heredocs_dup(in->copy.heredocs, in->copy.n_heredocs);
		r->copy.from = dup_or_null(in->copy.from);
		r->copy.chown = dup_or_null(in->copy.chown);
		r->copy.chmod = dup_or_null(in->copy.chmod);
		r->copy.excludes = kn_strv_dup(in->copy.excludes);
		r->copy.checksum = dup_or_null(in->copy.checksum);
		break;
	case DF_INSTR_STOPSIGNAL:
		r->stopsignal.signal = dup_or_null(in->stopsignal.signal);
		break;
	case DF_INSTR_HEALTHCHECK:
		r->healthcheck = in->healthcheck;
		cmdline_copy(&r->healthcheck.test, &in->healthcheck.test);
		break;
	case DF_INSTR_ONBUILD:
		r->onbuild.expression = dup_or_null(in->onbuild.expression);
		break;
	case DF_INSTR_MAINTAINER:
		r->maintainer.name = dup_or_null(in->maintainer.name);
		break;
	}
	return r;
}

/* ---- errors --------------------------------------------------------------------------------- */

struct pctx {
	const struct df_node *node;
	const char *file;
	int line;
	int col;
	kn_error **err;
	int escape;
};

static int perr(const struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(const struct pctx *c, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	kn_error_set_at(c->err, c->file, c->line, c->col, "%s", msg);
	free(msg);
	return -1;
}

static size_t levenshtein(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), *row, r;

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	row = xcalloc(lb + 1, sizeof(*row));
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j], best = prev + (a[i - 1] != b[j - 1]);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	r = row[lb];
	free(row);
	return r;
}

/* ---- flags (BuildKit's BFlags) -------------------------------------------------------------- */

enum flag_type { FLAG_BOOL, FLAG_STRING, FLAG_STRINGS };

struct flagdef {
	const char *name;
	enum flag_type type;
	bool used;
	char *value;		/* BOOL: "true"/"false"; STRING: the value */
	struct kn_strv values;	/* STRINGS */
};

static void flags_release(struct flagdef *defs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(defs[i].value);
		kn_strv_release(&defs[i].values);
	}
}

static int flags_parse(const struct pctx *c, struct flagdef *defs, size_t n)
{
	for (size_t i = 0; i < c->node->n_flags; i++) {
		const char *arg = c->node->flags[i], *eq;
		_cleanup_free_ char *name = NULL;
		const char *value = "";
		struct flagdef *f = NULL;

		if (strncmp(arg, "--", 2) != 0)
			return perr(c, "arg should start with -- : %s", arg);
		if (strcmp(arg, "--") == 0)
			return 0;
		arg += 2;
		eq = strchr(arg, '=');
		if (eq) {
			name = xstrndup(arg, (size_t)(eq - arg));
			value = eq + 1;
		} else {
			name = xstrdup(arg);
		}
		for (size_t k = 0; k < n; k++)
			if (strcmp(defs[k].name, name) == 0)
				f = &defs[k];
		if (!f) {
			const char *best = NULL;
			size_t bd = SIZE_MAX;

			for (size_t k = 0; k < n; k++) {
				size_t d = levenshtein(name, defs[k].name);

				if (d < bd) {
					bd = d;
					best = defs[k].name;
				}
			}
			if (best && bd <= 2 && bd < strlen(name))
				return perr(c, "unknown flag: %s (did you mean %s?)", name, best);
			return perr(c, "unknown flag: %s", name);
		}
		if (f->used && f->type != FLAG_STRINGS)
			return perr(c, "duplicate flag specified: %s", name);
		f->used = true;
		switch (f->type) {
		case FLAG_BOOL:
			if (eq && !*value)
				return perr(c, "missing a value on flag: %s", name);
			free(f->value);
			if (!*value || sem_strcaseeq(value, "true"))
				f->value = xstrdup("true");
			else if (sem_strcaseeq(value, "false"))
				f->value = xstrdup("false");
			else
				return perr(c, "expecting boolean value for flag %s, not: %s", name, value);
			break;
		case FLAG_STRING:
			if (!eq)
				return perr(c, "missing a value on flag: %s", name);
			free(f->value);
			f->value = xstrdup(value);
			break;
		case FLAG_STRINGS:
			if (!eq)
				return perr(c, "missing a value on flag: %s", name);
			kn_strv_push(&f->values, value);
			break;
		}
	}
	return 0;
}

static bool flag_true(const struct flagdef *f)
{
	return f->value && strcmp(f->value, "true") == 0;
}

/* STRING flag value, or NULL when not given (BuildKit treats "" like not given). */
static char *flag_take(struct flagdef *f)
{
	if (!f->value || !*f->value)
		return NULL;
	return steal_ptr(&f->value);
}

/* ---- helpers -------------------------------------------------------------------------------- */

static size_t node_args(const struct df_node *node, struct kn_strv *ret)
{
	for (const struct df_node *a = node->next; a; a = a->next)
		kn_strv_push(ret, a->value ? a->value : "");
	return ret->n;
}

/* handleJSONArgs: exec form keeps the array, shell form joins the words with spaces. */
static char **json_args(char *const *args, size_t n, bool json)
{
	struct kn_strv sv = KN_STRV_INIT;
	struct kn_buf b = KN_BUF_INIT;

	if (json) {
		for (size_t i = 0; i < n; i++)
			kn_strv_push(&sv, args[i]);
		if (!sv.v)
			return xcalloc(1, sizeof(char *));
		return kn_strv_detach(&sv);
	}
	if (n == 0)
		return xcalloc(1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		kn_buf_addf(&b, "%s%s", i ? " " : "", args[i]);
	kn_strv_push_owned(&sv, kn_buf_detach(&b));
	return kn_strv_detach(&sv);
}

/* parser.ParseHeredoc on one word: "<<EOF", "<<-EOF", "<<'EOF'", "3<<EOF". */
static bool word_heredoc(const char *w, char **ret_name)
{
	const char *p = w;
	struct kn_buf name = KN_BUF_INIT;

	while (*p >= '0' && *p <= '9')
		p++;
	if (strncmp(p, "<<", 2) != 0)
		return false;
	p += 2;
	if (*p == '-')
		p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || strchr(p, '<'))
		return false;
	for (; *p; p++)
		if (*p != '\'' && *p != '"')
			kn_buf_addch(&name, *p);
	if (name.len == 0) {
		kn_buf_release(&name);
		return false;
	}
	*ret_name = kn_buf_detach(&name);
	return true;
}

static bool has_dollar(const char *s)
{
	return s && strchr(s, '$');
}

/* ---- durations, chmod, ports ---------------------------------------------------------------- */

int df_duration_parse(const char *s, long long *ret_ns, kn_error **err)
{
	const char *p = s;
	bool neg = false;
	long double total = 0;
	static const struct { const char *unit; long double ns; } units[] = {
		{ "ns", 1 }, { "us", 1e3 }, { "\xc2\xb5s", 1e3 }, { "\xce\xbcs", 1e3 }, { "ms", 1e6 },
		{ "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 },
	};

	if (*p == '-' || *p == '+') {
		neg = *p == '-';
		p++;
	}
	if (strcmp(p, "0") == 0) {
		*ret_ns = 0;
		return 0;
	}
	if (!*p)
		return kn_error_set(err, 0, "time: invalid duration \"%s\"", s);
	while (*p) {
		long double v = 0, scale = 1;
		bool digits = false;
		size_t best = 0, ul;
		long double mult = 0;

		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p++ - '0');
			digits = true;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				scale /= 10;
				v += (*p++ - '0') * scale;
				digits = true;
			}
		}
		if (!digits)
			return kn_error_set(err, 0, "time: invalid duration \"%s\"", s);
		for (size_t i = 0; i < KN_ARRAY_SIZE(units); i++) {
			ul = strlen(units[i].unit);
			if (strncmp(p, units[i].unit, ul) == 0 && ul > best) {
				best = ul;
				mult = units[i].ns;
			}
		}
		if (!best) {
			if (!*p)
				return kn_error_set(err, 0, "time: missing unit in duration \"%s\"", s);
			return kn_error_set(err, 0, "time: unknown unit \"%.*s\" in duration \"%s\"",
					    (int)strcspn(p, "0123456789."), p, s);
		}
		p += best;
		total += v * mult;
		if (total > 9223372036854775807.0L)
			return kn_error_set(err, 0, "time: invalid duration \"%s\"", s);
	}
	*ret_ns = (long long)(neg ? -total : total);
	return 0;
}

static bool chmod_symbolic_valid(const char *s)
{
	/* clause[,clause]...: [ugoa]*([-+=]([rwxXst]*|[ugo]))+ */
	const char *p = s;

	if (!*p)
		return false;
	for (;;) {
		bool ops = false;

		while (*p && strchr("ugoa", *p))
			p++;
		while (*p && strchr("-+=", *p)) {
			ops = true;
			p++;
			if (*p && strchr("ugo", *p) && (!p[1] || strchr(",-+=", p[1]))) {
				p++;
				continue;
			}
			while (*p && strchr("rwxXst", *p))
				p++;
		}
		if (!ops)
			return false;
		if (!*p)
			return true;
		if (*p != ',')
			return false;
		p++;
	}
}

int df_chmod_parse(const char *s, struct df_chmod *ret, kn_error **err)
{
	const char *p = s;

	memset(ret, 0, sizeof(*ret));
	if (*p && strspn(p, "01234567") == strlen(p)) {
		unsigned long v = strtoul(p, NULL, 8);

		if (strlen(p) > 5 || v > 07777)
			return kn_error_set(err, 0, "invalid chmod parameter: '%s'. it should be octal string and between 0 and 07777", s);
		ret->mode = (unsigned int)v;
		return 0;
	}
	if (!chmod_symbolic_valid(s))
		return kn_error_set(err, 0, "invalid chmod parameter: '%s'. it should be octal string and between 0 and 07777, or a symbolic mode like 'u+x'", s);
	ret->symbolic = true;
	ret->spec = xstrdup(s);
	return 0;
}

void df_chmod_release(struct df_chmod *c)
{
	if (c) {
		free(c->spec);
		c->spec = NULL;
	}
}

unsigned int df_chmod_apply(const struct df_chmod *c, unsigned int cur, bool is_dir)
{
	const char *p;
	unsigned int mode = cur & 07777;

	if (!c->symbolic)
		return c->mode;
	p = c->spec;
	while (*p) {
		unsigned int who = 0;

		for (; *p && strchr("ugoa", *p); p++)
			who |= *p == 'u' ? 04700 : *p == 'g' ? 02070 : *p == 'o' ? 01007 : 07777;
		if (!who)
			who = 07777; /* no umask applied: docker uses the bits as given */
		while (*p && strchr("-+=", *p)) {
			char op = *p++;
			unsigned int bits = 0;

			if (*p && strchr("ugo", *p) && (!p[1] || strchr(",-+=", p[1]))) {
				unsigned int src = *p == 'u' ? (mode >> 6) & 7 : *p == 'g' ? (mode >> 3) & 7 : mode & 7;

				bits = src | (src << 3) | (src << 6);
				p++;
			} else {
				for (; *p && strchr("rwxXst", *p); p++) {
					switch (*p) {
					case 'r': bits |= 0444; break;
					case 'w': bits |= 0222; break;
					case 'x': bits |= 0111; break;
					case 'X':
						if (is_dir || (mode & 0111))
							bits |= 0111;
						break;
					case 's': bits |= 06000; break;
					case 't': bits |= 01000; break;
					default: break;
					}
				}
			}
			bits &= who;
			if (op == '+')
				mode |= bits;
			else if (op == '-')
				mode &= ~bits;
			else
				mode = (mode & ~(who & 0777)) | bits;
		}
		if (*p == ',')
			p++;
	}
	return mode;
}

int df_port_parse(const char *s, struct df_port *ret, kn_error **err)
{
	const char *slash = strrchr(s, '/');
	_cleanup_free_ char *num = xstrndup(s, slash ? (size_t)(slash - s) : strlen(s));
	const char *proto = slash ? slash + 1 : "tcp";
	char *end;
	unsigned long a, b;
	char *dash;

	memset(ret, 0, sizeof(*ret));
	if (!*proto || strlen(proto) >= sizeof(ret->proto))
		return kn_error_set(err, 0, "invalid proto: %s", proto);
	for (size_t i = 0; proto[i] && i + 1 < sizeof(ret->proto); i++)
		ret->proto[i] = (char)((proto[i] >= 'A' && proto[i] <= 'Z') ? proto[i] + 32 : proto[i]);
	if (strcmp(ret->proto, "tcp") && strcmp(ret->proto, "udp") && strcmp(ret->proto, "sctp"))
		return kn_error_set(err, 0, "invalid proto: %s", proto);
	dash = strchr(num, '-');
	if (dash)
		*dash = 0;
	if (!*num || strspn(num, "0123456789") != strlen(num))
		return kn_error_set(err, 0, "invalid containerPort: %s", s);
	a = strtoul(num, &end, 10);
	b = a;
	if (dash) {
		if (!dash[1] || strspn(dash + 1, "0123456789") != strlen(dash + 1))
			return kn_error_set(err, 0, "invalid containerPort: %s", s);
		b = strtoul(dash + 1, &end, 10);
	}
	if (a > 65535 || b > 65535 || b < a)
		return kn_error_set(err, 0, "invalid containerPort: %s", s);
	ret->start = (unsigned int)a;
	ret->end = (unsigned int)b;
	return 0;
}

/* ---- RUN --mount ---------------------------------------------------------------------------- */

/* Splits a CSV record (encoding/csv rules: "" quotes, "" inside quotes is a quote). */
static int csv_fields(const char *s, struct kn_strv *ret)
{
	struct kn_buf f = KN_BUF_INIT;
	const char *p = s;

	for (;;) {
		if (*p == '"') {
			p++;
			for (;;) {
				if (!*p) {
					kn_buf_release(&f);
					return -1;
				}
				if (*p == '"') {
					if (p[1] == '"') {
						kn_buf_addch(&f, '"');
						p += 2;
						continue;
					}
					p++;
					break;
				}
				kn_buf_addch(&f, *p++);
			}
			if (*p && *p != ',') {
				kn_buf_release(&f);
				return -1;
			}
		} else {
			while (*p && *p != ',') {
				if (*p == '"') {
					kn_buf_release(&f);
					return -1;
				}
				kn_buf_addch(&f, *p++);
			}
		}
		kn_strv_push_owned(ret, kn_buf_detach(&f));
		if (!*p)
			return 0;
		p++;
	}
}

static int parse_bool(const char *v, bool *ret)
{
	if (!strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "T") || !strcmp(v, "TRUE") ||
	    !strcmp(v, "true") || !strcmp(v, "True")) {
		*ret = true;
		return 0;
	}
	if (!strcmp(v, "0") || !strcmp(v, "f") || !strcmp(v, "F") || !strcmp(v, "FALSE") ||
	    !strcmp(v, "false") || !strcmp(v, "False")) {
		*ret = false;
		return 0;
	}
	return -1;
}

/* docker/go-units RAMInBytes: "64m", "1g", "512k", "100", "1.5GiB"... */
static int ram_in_bytes(const char *s, unsigned long long *ret)
{
	char *end;
	long double v;
	unsigned long long mult = 1;
	char u;

	errno = 0;
	v = strtold(s, &end);
	if (end == s || errno || v < 0)
		return -1;
	u = (char)((*end >= 'A' && *end <= 'Z') ? *end + 32 : *end);
	if (*end) {
		switch (u) {
		case 'b': mult = 1; break;
		case 'k': mult = 1ULL << 10; break;
		case 'm': mult = 1ULL << 20; break;
		case 'g': mult = 1ULL << 30; break;
		case 't': mult = 1ULL << 40; break;
		case 'p': mult = 1ULL << 50; break;
		default: return -1;
		}
		end++;
		if (u != 'b' && (*end == 'i' || *end == 'I'))
			end++;
		if (u != 'b' && (*end == 'b' || *end == 'B'))
			end++;
		if (*end)
			return -1;
	}
	v *= mult;
	if (v > 1.8e19L)
		return -1;
	*ret = (unsigned long long)v;
	return 0;
}

static bool valid_mount_type(const char *t, enum df_mount_type *ret)
{
	static const char *const names[] = { "bind", "cache", "tmpfs", "secret", "ssh" };

	for (size_t i = 0; i < KN_ARRAY_SIZE(names); i++) {
		if (strcmp(t, names[i]) == 0) {
			*ret = (enum df_mount_type)i;
			return true;
		}
	}
	return false;
}

static const char *mount_type_name(enum df_mount_type t)
{
	static const char *const names[] = { "bind", "cache", "tmpfs", "secret", "ssh" };

	return names[t];
}

/*
 * Parses one --mount value. expand: when non-NULL, every value is expanded with it first
 * (build time); when NULL (parse time) values holding '$' are kept as written and not checked.
 * ssh_index numbers ssh mounts for their default target.
 */
static int parse_mount(const struct pctx *c, const char *raw, const struct df_env *expand_env,
		       size_t ssh_index, struct df_mount *m, struct kn_strv *matched, size_t *produced)
{
	struct kn_strv fields = KN_STRV_INIT;
	bool ro_auto = true, late = expand_env == NULL;
	char *sharing = NULL;
	int r = -1;

	memset(m, 0, sizeof(*m));
	m->type = DF_MOUNT_BIND;
	m->mode = -1;
	m->uid = -1;
	m->gid = -1;
	m->raw = xstrdup(raw);
	if (csv_fields(raw, &fields) < 0) {
		r = perr(c, "failed to parse csv mounts: parse error in '%s'", raw);
		goto out;
	}
	/* the type decides which keys are allowed: read it first, wherever it is */
	for (size_t i = 0; i < fields.n; i++) {
		const char *f = fields.v[i], *eq = strchr(f, '=');

		if (eq && eq - f == 4 && strncasecmp(f, "type", 4) == 0) {
			if (!valid_mount_type(eq + 1, &m->type)) {
				r = perr(c, "unsupported mount type \"%s\"", eq + 1);
				goto out;
			}
		}
	}
	for (size_t i = 0; i < fields.n; i++) {
		const char *f = fields.v[i], *eq = strchr(f, '=');
		_cleanup_free_ char *key = NULL, *value = NULL;
		bool check;

		key = eq ? xstrndup(f, (size_t)(eq - f)) : xstrdup(f);
		for (char *k = key; *k; k++)
			if (*k >= 'A' && *k <= 'Z')
				*k += 32;
		if (!eq) {
			if (!strcmp(key, "readonly") || !strcmp(key, "ro")) {
				m->readonly = true;
				ro_auto = false;
			} else if (!strcmp(key, "readwrite") || !strcmp(key, "rw")) {
				m->readonly = false;
				ro_auto = false;
			} else if (!strcmp(key, "required")) {
				if (m->type != DF_MOUNT_SECRET && m->type != DF_MOUNT_SSH) {
					r = perr(c, "unexpected key '%s' for mount type '%s'", key, mount_type_name(m->type));
					goto out;
				}
				m->required = true;
			} else {
				r = perr(c, "invalid field '%s' must be a key=value pair", f);
				goto out;
			}
			continue;
		}
		value = xstrdup(eq + 1);
		if (expand_env && strcmp(key, "type") != 0) {
			struct df_expansion x;
			kn_error *e = NULL;

			if (df_expand(value, expand_env, c->escape, 0, &x, &e) < 0) {
				*produced += x.produced;
				r = perr(c, "%s", e->msg);
				kn_error_free(e);
				goto out;
			}
			free(value);
			value = steal_ptr(&x.result);
			*produced += x.produced;
			for (size_t k = 0; k < x.matched.n; k++)
				if (!kn_strv_contains(matched, x.matched.v[k]))
					kn_strv_push(matched, x.matched.v[k]);
			df_expansion_release(&x);
		}
		check = !(late && has_dollar(value));
		if (!strcmp(key, "type")) {
			continue;
		} else if (!strcmp(key, "id")) {
			free(m->id);
			m->id = steal_ptr(&value);
		} else if (!strcmp(key, "source") || !strcmp(key, "src")) {
			free(m->source);
			m->source = steal_ptr(&value);
		} else if (!strcmp(key, "target") || !strcmp(key, "dst") || !strcmp(key, "destination")) {
			free(m->target);
			m->target = steal_ptr(&value);
		} else if (!strcmp(key, "readonly") || !strcmp(key, "ro") || !strcmp(key, "readwrite") ||
			   !strcmp(key, "rw")) {
			bool b = false;

			if (check && parse_bool(value, &b) < 0) {
				r = perr(c, "invalid value for %s: %s", key, value);
				goto out;
			}
			m->readonly = (key[0] == 'r' && key[1] == 'o') || !strcmp(key, "readonly") ? b : !b;
			ro_auto = false;
		} else if (!strcmp(key, "required")) {
			bool b = false;

			if (m->type != DF_MOUNT_SECRET && m->type != DF_MOUNT_SSH) {
				r = perr(c, "unexpected key '%s' for mount type '%s'", key, mount_type_name(m->type));
				goto out;
			}
			if (check && parse_bool(value, &b) < 0) {
				r = perr(c, "invalid value for %s: %s", key, value);
				goto out;
			}
			m->required = b;
		} else if (!strcmp(key, "size")) {
			if (m->type != DF_MOUNT_TMPFS) {
				r = perr(c, "unexpected key '%s' for mount type '%s'", key, mount_type_name(m->type));
				goto out;
			}
			if (check && ram_in_bytes(value, &m->size) < 0) {
				r = perr(c, "invalid value for %s: %s", key, value);
				goto out;
			}
		} else if (!strcmp(key, "from")) {
			free(m->from);
			m->from = steal_ptr(&value);
		} else if (!strcmp(key, "sharing")) {
			if (*value && m->type != DF_MOUNT_CACHE) {
				r = perr(c, "unexpected key '%s' for mount type '%s'", key, mount_type_name(m->type));
				goto out;
			}
			free(sharing);
			sharing = steal_ptr(&value);
		} else if (!strcmp(key, "mode")) {
			char *end;
			unsigned long v;

			if (!check)
				continue;
			errno = 0;
			v = strtoul(value, &end, 8);
			if (!*value || *end || errno || v > 0xffffffffUL || value[0] == '-' || value[0] == '+') {
				r = perr(c, "invalid value %s for mode", value);
				goto out;
			}
			m->mode = (long)v;
		} else if (!strcmp(key, "uid") || !strcmp(key, "gid")) {
			char *end;
			unsigned long v;

			if (!check)
				continue;
			errno = 0;
			v = strtoul(value, &end, 10);
			if (!*value || *end || errno || v > 0xffffffffUL || value[0] == '-' || value[0] == '+') {
				r = perr(c, "invalid value %s for %s", value, key);
				goto out;
			}
			if (key[0] == 'u')
				m->uid = (long)v;
			else
				m->gid = (long)v;
		} else if (!strcmp(key, "env") && m->type == DF_MOUNT_SECRET) {
			free(m->env);
			m->env = steal_ptr(&value);
		} else {
			r = perr(c, "unexpected key '%s' in '%s'", key, f);
			goto out;
		}
	}
	if (ro_auto)
		m->readonly = !(m->type == DF_MOUNT_CACHE || m->type == DF_MOUNT_TMPFS);
	m->sharing = DF_SHARING_SHARED;
	if (sharing && *sharing) {
		if (!strcmp(sharing, "shared")) {
			m->sharing = DF_SHARING_SHARED;
		} else if (!strcmp(sharing, "private")) {
			m->sharing = DF_SHARING_PRIVATE;
		} else if (!strcmp(sharing, "locked")) {
			m->sharing = DF_SHARING_LOCKED;
		} else if (!(late && has_dollar(sharing))) {
			r = perr(c, "unsupported sharing value \"%s\"", sharing);
			goto out;
		}
	}
	switch (m->type) {
	case DF_MOUNT_SECRET:
		if (m->from) {
			r = perr(c, "secret mount should not have a from");
			goto out;
		}
		if (!m->source && !m->target && !m->id && !m->env) {
			r = perr(c, "invalid secret mount. one of source, target required");
			goto out;
		}
		if (m->source && m->id) {
			r = perr(c, "both source and id can't be set");
			goto out;
		}
		if (!m->id) {
			if (m->source) {
				m->id = steal_ptr(&m->source);
			} else if (m->target) {
				const char *b = strrchr(m->target, '/');

				m->id = xstrdup(b ? b + 1 : m->target);
			} else {
				m->id = xstrdup(m->env);
			}
		}
		if (!m->target && !m->env) {
			const char *b = strrchr(m->id, '/');

			m->target = xasprintf("/run/secrets/%s", b ? b + 1 : m->id);
		}
		if (m->mode < 0)
			m->mode = 0400;
		break;
	case DF_MOUNT_SSH:
		if (m->from) {
			r = perr(c, "ssh mount should not have a from");
			goto out;
		}
		if (!m->id)
			m->id = xstrdup(m->source ? m->source : "default");
		if (!m->target)
			m->target = xasprintf("/run/buildkit/ssh_agent.%zu", ssh_index);
		if (m->mode < 0)
			m->mode = 0600;
		break;
	case DF_MOUNT_CACHE:
		if (!m->target) {
			r = perr(c, "mount type cache requires a target");
			goto out;
		}
		if (!m->id)
			m->id = xstrdup(m->target);
		if (m->mode < 0)
			m->mode = 0755;
		break;
	case DF_MOUNT_BIND:
	case DF_MOUNT_TMPFS:
		if (!m->target) {
			r = perr(c, "mount type %s requires a target", mount_type_name(m->type));
			goto out;
		}
		break;
	}
	r = 0;
out:
	free(sharing);
	kn_strv_release(&fields);
	if (r < 0) {
		mount_release(m);
		memset(m, 0, sizeof(*m));
	}
	return r;
}

/* ---- per-instruction parsing ---------------------------------------------------------------- */

static int no_flags(const struct pctx *c)
{
	return flags_parse(c, NULL, 0);
}

static int parse_kvs(const struct pctx *c, struct df_instr *in, const char *name, bool triples)
{
	struct kn_strv args = KN_STRV_INIT;
	size_t n = node_args(c->node, &args), step = triples ? 3 : 1;
	int r = -1;

	if (n == 0) {
		r = perr(c, "%s requires at least one argument", name);
		goto out;
	}
	if (triples && n % 3 != 0) {
		r = perr(c, "Bad input to %s, too many arguments", name);
		goto out;
	}
	in->kv.kvs = xcalloc(n / step + 1, sizeof(*in->kv.kvs));
	for (size_t i = 0; i < n; i += step) {
		struct df_kv *kv = &in->kv.kvs[in->kv.n];

		if (triples) {
			if (!*args.v[i]) {
				r = perr(c, "%s names can not be blank", name);
				goto out;
			}
			kv->key = xstrdup(args.v[i]);
			kv->value = xstrdup(args.v[i + 1]);
		} else {
			const char *eq = strchr(args.v[i], '=');

			if (eq) {
				if (eq == args.v[i]) {
					r = perr(c, "%s names can not be blank", name);
					goto out;
				}
				kv->key = xstrndup(args.v[i], (size_t)(eq - args.v[i]));
				kv->value = xstrdup(eq + 1);
			} else {
				kv->key = xstrdup(args.v[i]);
			}
		}
		in->kv.n++;
	}
	r = 0;
out:
	kn_strv_release(&args);
	return r;
}

static int one_arg(const struct pctx *c, const char *name, char **ret)
{
	struct kn_strv args = KN_STRV_INIT;

	if (node_args(c->node, &args) != 1) {
		kn_strv_release(&args);
		return perr(c, "%s requires exactly one argument", name);
	}
	*ret = xstrdup(args.v[0]);
	kn_strv_release(&args);
	return 0;
}

static int parse_cmdline(const struct pctx *c, struct df_cmdline *cmd, bool with_heredocs)
{
	struct kn_strv args = KN_STRV_INIT;
	size_t n = node_args(c->node, &args);

	cmd->json = c->node->json;
	cmd->argv = json_args(args.v, n, c->node->json);
	if (with_heredocs) {
		cmd->heredocs = heredocs_dup(c->node->heredocs, c->node->n_heredocs);
		cmd->n_heredocs = c->node->n_heredocs;
	}
	kn_strv_release(&args);
	return 0;
}

static int check_multi_source_dest(const struct pctx *c, const struct df_instr *in)
{
	size_t n = kn_strv_len(in->copy.sources) + in->copy.n_heredocs;
	size_t dl = strlen(in->copy.dest);

	if (n > 1 && (dl == 0 || in->copy.dest[dl - 1] != '/')) {
		kn_error_set_at(c->err, c->file, c->line, 0,
				"%s with more than one source requires the destination to end with \"/\"",
				df_instr_kind_name(in->kind));
		return -1;
	}
	return 0;
}

static int parse_copy(const struct pctx *c, struct df_instr *in, bool add)
{
	struct flagdef defs[] = {
		{ "chown", FLAG_STRING }, { "chmod", FLAG_STRING }, { "link", FLAG_BOOL },
		{ "exclude", FLAG_STRINGS }, { add ? "keep-git-dir" : "from", add ? FLAG_BOOL : FLAG_STRING },
		{ add ? "checksum" : "parents", add ? FLAG_STRING : FLAG_BOOL },
	};
	struct kn_strv args = KN_STRV_INIT, srcs = KN_STRV_INIT;
	size_t n = node_args(c->node, &args);
	char *hname = NULL;
	int r = -1;

	if (n < 2) {
		r = perr(c, "%s requires at least two arguments, but only one was provided. Destination could not be determined",
			 add ? "ADD" : "COPY");
		goto out;
	}
	if (flags_parse(c, defs, KN_ARRAY_SIZE(defs)) < 0)
		goto out;
	in->copy.chown = flag_take(&defs[0]);
	in->copy.chmod = flag_take(&defs[1]);
	in->copy.link = flag_true(&defs[2]);
	in->copy.excludes = defs[3].values.v ? kn_strv_detach(&defs[3].values) : xcalloc(1, sizeof(char *));
	if (add) {
		in->copy.keep_git_dir = flag_true(&defs[4]);
		in->copy.checksum = flag_take(&defs[5]);
	} else {
		in->copy.from = flag_take(&defs[4]);
		in->copy.parents = flag_true(&defs[5]);
	}
	if (word_heredoc(args.v[n - 1], &hname)) {
		free(hname);
		r = perr(c, "%s cannot accept a heredoc as a destination", add ? "ADD" : "COPY");
		goto out;
	}
	in->copy.dest = xstrdup(args.v[n - 1]);
	for (size_t i = 0; i + 1 < n; i++) {
		if (word_heredoc(args.v[i], &hname)) {
			const struct df_heredoc *h = NULL;
			struct df_heredoc *d;

			for (size_t k = 0; k < c->node->n_heredocs; k++)
				if (strcmp(c->node->heredocs[k].name, hname) == 0)
					h = &c->node->heredocs[k];
			in->copy.heredocs = xreallocarray(in->copy.heredocs, in->copy.n_heredocs + 1,
							  sizeof(*in->copy.heredocs));
			d = &in->copy.heredocs[in->copy.n_heredocs++];
			memset(d, 0, sizeof(*d));
			d->name = steal_ptr(&hname);
			d->content = xstrdup(h && h->content ? h->content : "");
			d->expand = h ? h->expand : true;
			d->chomp = h ? h->chomp : false;
			d->fd = h ? h->fd : 0;
		} else {
			kn_strv_push(&srcs, args.v[i]);
		}
	}
	in->copy.sources = srcs.v ? kn_strv_detach(&srcs) : xcalloc(1, sizeof(char *));
	if (in->copy.chmod && !has_dollar(in->copy.chmod)) {
		struct df_chmod cm;
		kn_error *e = NULL;

		if (df_chmod_parse(in->copy.chmod, &cm, &e) < 0) {
			r = perr(c, "%s", e->msg);
			kn_error_free(e);
			goto out;
		}
		df_chmod_release(&cm);
	}
	if (!has_dollar(in->copy.dest) && check_multi_source_dest(c, in) < 0)
		goto out;
	r = 0;
out:
	kn_strv_release(&srcs);
	kn_strv_release(&args);
	flags_release(defs, KN_ARRAY_SIZE(defs));
	return r;
}

static int parse_run(const struct pctx *c, struct df_instr *in)
{
	struct flagdef defs[] = { { "mount", FLAG_STRINGS }, { "network", FLAG_STRING }, { "security", FLAG_STRING } };
	size_t ssh = 0;
	int r = -1;

	if (flags_parse(c, defs, KN_ARRAY_SIZE(defs)) < 0)
		goto out;
	in->run.mounts = xcalloc(defs[0].values.n + 1, sizeof(*in->run.mounts));
	for (size_t i = 0; i < defs[0].values.n; i++) {
		struct df_mount *m = &in->run.mounts[in->run.n_mounts];

		if (parse_mount(c, defs[0].values.v[i], NULL, ssh, m, NULL, NULL) < 0)
			goto out;
		if (m->type == DF_MOUNT_SSH)
			ssh++;
		in->run.n_mounts++;
	}
	if (defs[1].value) {
		const char *v = defs[1].value;

		if (!strcmp(v, "default"))
			in->run.network = DF_NETWORK_DEFAULT;
		else if (!strcmp(v, "none"))
			in->run.network = DF_NETWORK_NONE;
		else if (!strcmp(v, "host"))
			in->run.network = DF_NETWORK_HOST;
		else {
			r = perr(c, "unsupported network mode \"%s\"", v);
			goto out;
		}
	}
	if (defs[2].value) {
		const char *v = defs[2].value;

		if (!strcmp(v, "sandbox"))
			in->run.security = DF_SECURITY_SANDBOX;
		else if (!strcmp(v, "insecure"))
			in->run.security = DF_SECURITY_INSECURE;
		else {
			r = perr(c, "unsupported security mode \"%s\"", v);
			goto out;
		}
	}
	parse_cmdline(c, &in->run.cmd, true);
	r = 0;
out:
	flags_release(defs, KN_ARRAY_SIZE(defs));
	return r;
}

static int parse_healthcheck(const struct pctx *c, struct df_instr *in)
{
	struct flagdef defs[] = {
		{ "interval", FLAG_STRING }, { "timeout", FLAG_STRING }, { "start-period", FLAG_STRING },
		{ "start-interval", FLAG_STRING }, { "retries", FLAG_STRING },
	};
	long long *durs[] = { &in->healthcheck.interval, &in->healthcheck.timeout,
			      &in->healthcheck.start_period, &in->healthcheck.start_interval };
	struct kn_strv args = KN_STRV_INIT;
	size_t n = node_args(c->node, &args);
	_cleanup_free_ char *typ = NULL;
	int r = -1;

	if (n == 0) {
		r = perr(c, "HEALTHCHECK requires at least one argument");
		goto out;
	}
	typ = xstrdup(args.v[0]);
	for (char *p = typ; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p -= 32;
	if (!strcmp(typ, "NONE")) {
		if (n != 1) {
			r = perr(c, "HEALTHCHECK NONE takes no arguments");
			goto out;
		}
		in->healthcheck.none = true;
		in->healthcheck.test.argv = xcalloc(1, sizeof(char *));
		r = 0;
		goto out;
	}
	if (flags_parse(c, defs, KN_ARRAY_SIZE(defs)) < 0)
		goto out;
	if (strcmp(typ, "CMD") != 0) {
		struct kn_buf q = KN_BUF_INIT;

		sem_add_goquoted(&q, typ);
		r = perr(c, "Unknown type %s in HEALTHCHECK (try CMD)", q.buf);
		kn_buf_release(&q);
		goto out;
	}
	in->healthcheck.test.json = c->node->json;
	in->healthcheck.test.argv = json_args(args.v + 1, n - 1, c->node->json);
	if (!in->healthcheck.test.argv[0]) {
		r = perr(c, "Missing command after HEALTHCHECK CMD");
		goto out;
	}
	for (size_t i = 0; i < 4; i++) {
		kn_error *e = NULL;
		long long d;

		if (!defs[i].value || !*defs[i].value)
			continue;
		if (df_duration_parse(defs[i].value, &d, &e) < 0) {
			r = perr(c, "%s", e->msg);
			kn_error_free(e);
			goto out;
		}
		if (d != 0 && d < 1000000) {
			r = perr(c, "Interval \"%s\" cannot be less than 1ms", defs[i].name);
			goto out;
		}
		*durs[i] = d;
	}
	if (defs[4].value && *defs[4].value) {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(defs[4].value, &end, 10);
		if (*end || errno || v > INT_MAX || v < INT_MIN) {
			r = perr(c, "strconv.ParseInt: parsing \"%s\": %s", defs[4].value,
				 errno == ERANGE || (!*end && (v > INT_MAX || v < INT_MIN)) ? "value out of range" : "invalid syntax");
			goto out;
		}
		if (v < 0) {
			r = perr(c, "--retries cannot be negative (%lld)", v);
			goto out;
		}
		in->healthcheck.retries = (int)v;
	}
	r = 0;
out:
	kn_strv_release(&args);
	flags_release(defs, KN_ARRAY_SIZE(defs));
	return r;
}

static int parse_onbuild(const struct pctx *c, struct df_instr *in)
{
	const struct df_node *sub = c->node->next && c->node->next->n_children == 1 ? c->node->next->children[0] : NULL;
	_cleanup_free_ char *trig = NULL;
	struct kn_buf expr = KN_BUF_INIT;
	const char *o;

	if (!sub || !sub->value)
		return perr(c, "ONBUILD requires at least one argument");
	if (no_flags(c) < 0)
		return -1;
	trig = xstrdup(sub->value);
	for (char *p = trig; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p -= 32;
	if (!strcmp(trig, "ONBUILD"))
		return perr(c, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
	if (!strcmp(trig, "MAINTAINER") || !strcmp(trig, "FROM"))
		return perr(c, "%s isn't allowed as an ONBUILD trigger", trig);
	o = c->node->original ? c->node->original : "";
	while (*o == ' ' || *o == '\t' || *o == '\n' || *o == '\r' || *o == '\v' || *o == '\f')
		o++;
	if (strncasecmp(o, "onbuild", 7) == 0) {
		o += 7;
		while (*o == ' ' || *o == '\t' || *o == '\n' || *o == '\r' || *o == '\v' || *o == '\f')
			o++;
	}
	kn_buf_adds(&expr, o);
	for (size_t i = 0; i < c->node->n_heredocs; i++)
		kn_buf_addf(&expr, "\n%s%s", c->node->heredocs[i].content ? c->node->heredocs[i].content : "",
			    c->node->heredocs[i].name ? c->node->heredocs[i].name : "");
	in->onbuild.expression = kn_buf_detach(&expr);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_dispatch(const struct pctx *c, struct df_instr *in, const char *name)
{
	struct kn_strv args = KN_STRV_INIT;
	int r = -1;

	if (!strcmp(name, "from")) {
		struct flagdef defs[] = { { "platform", FLAG_STRING } };
		size_t n = node_args(c->node, &args);

		in->kind = DF_INSTR_FROM;
		if (n == 3 && sem_strcaseeq(args.v[1], "as")) {
			char *lower = sem_strdup_lower(args.v[2]);
			bool ok = lower[0] >= 'a' && lower[0] <= 'z';

			for (const char *p = lower; *p && ok; p++)
				ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.';
			if (!ok) {
				struct kn_buf q = KN_BUF_INIT;

				free(lower);
				sem_add_goquoted(&q, args.v[2]);
				perr(c, "invalid name for build stage: %s, name can't start with a number or contain symbols", q.buf);
				kn_buf_release(&q);
				goto out;
			}
			in->from.name = lower;
		} else if (n != 1) {
			r = perr(c, "FROM requires either one or three arguments");
			goto out;
		}
		if (flags_parse(c, defs, 1) < 0) {
			flags_release(defs, 1);
			goto out;
		}
		in->from.platform = flag_take(&defs[0]);
		flags_release(defs, 1);
		in->from.base = xstrdup(args.v[0]);
	} else if (!strcmp(name, "run")) {
		in->kind = DF_INSTR_RUN;
		if (parse_run(c, in) < 0)
			goto out;
	} else if (!strcmp(name, "cmd") || !strcmp(name, "entrypoint")) {
		in->kind = name[0] == 'c' ? DF_INSTR_CMD : DF_INSTR_ENTRYPOINT;
		if (no_flags(c) < 0)
			goto out;
		parse_cmdline(c, &in->cmd, false);
	} else if (!strcmp(name, "shell")) {
		size_t n = node_args(c->node, &args);

		in->kind = DF_INSTR_SHELL;
		if (no_flags(c) < 0)
			goto out;
		if (n == 0) {
			r = perr(c, "SHELL requires at least one argument");
			goto out;
		}
		if (!c->node->json) {
			r = perr(c, "SHELL requires the arguments to be in JSON form");
			goto out;
		}
		in->shell.argv = json_args(args.v, n, true);
	} else if (!strcmp(name, "env") || !strcmp(name, "label")) {
		in->kind = name[0] == 'e' ? DF_INSTR_ENV : DF_INSTR_LABEL;
		if (no_flags(c) < 0 || parse_kvs(c, in, name[0] == 'e' ? "ENV" : "LABEL", true) < 0)
			goto out;
	} else if (!strcmp(name, "arg")) {
		in->kind = DF_INSTR_ARG;
		if (parse_kvs(c, in, "ARG", false) < 0)
			goto out;
	} else if (!strcmp(name, "expose")) {
		size_t n = node_args(c->node, &args);

		in->kind = DF_INSTR_EXPOSE;
		if (n == 0) {
			r = perr(c, "EXPOSE requires at least one argument");
			goto out;
		}
		if (no_flags(c) < 0)
			goto out;
		qsort(args.v, n, sizeof(char *), cmp_str);
		for (size_t i = 0; i < n; i++) {
			struct df_port p;
			kn_error *e = NULL;

			if (has_dollar(args.v[i]))
				continue;
			if (df_port_parse(args.v[i], &p, &e) < 0) {
				r = perr(c, "%s", e->msg);
				kn_error_free(e);
				goto out;
			}
		}
		in->expose.ports = kn_strv_detach(&args);
	} else if (!strcmp(name, "workdir")) {
		in->kind = DF_INSTR_WORKDIR;
		if (one_arg(c, "WORKDIR", &in->workdir.path) < 0 || no_flags(c) < 0)
			goto out;
	} else if (!strcmp(name, "user")) {
		in->kind = DF_INSTR_USER;
		if (one_arg(c, "USER", &in->user.user) < 0 || no_flags(c) < 0)
			goto out;
	} else if (!strcmp(name, "volume")) {
		size_t n = node_args(c->node, &args);
		struct kn_strv vols = KN_STRV_INIT;

		in->kind = DF_INSTR_VOLUME;
		if (n == 0) {
			r = perr(c, "VOLUME requires at least one argument");
			goto out;
		}
		if (no_flags(c) < 0)
			goto out;
		for (size_t i = 0; i < n; i++) {
			char *v = args.v[i], *e;

			while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
				v++;
			e = v + strlen(v);
			while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
				*--e = 0;
			if (!*v) {
				kn_strv_release(&vols);
				r = perr(c, "VOLUME specified can not be an empty string");
				goto out;
			}
			kn_strv_push(&vols, v);
		}
		in->volume.paths = kn_strv_detach(&vols);
	} else if (!strcmp(name, "copy") || !strcmp(name, "add")) {
		in->kind = name[0] == 'c' ? DF_INSTR_COPY : DF_INSTR_ADD;
		if (parse_copy(c, in, name[0] == 'a') < 0)
			goto out;
	} else if (!strcmp(name, "stopsignal")) {
		in->kind = DF_INSTR_STOPSIGNAL;
		if (one_arg(c, "STOPSIGNAL", &in->stopsignal.signal) < 0)
			goto out;
	} else if (!strcmp(name, "healthcheck")) {
		in->kind = DF_INSTR_HEALTHCHECK;
		if (parse_healthcheck(c, in) < 0)
			goto out;
	} else if (!strcmp(name, "onbuild")) {
		in->kind = DF_INSTR_ONBUILD;
		if (parse_onbuild(c, in) < 0)
			goto out;
	} else if (!strcmp(name, "maintainer")) {
		in->kind = DF_INSTR_MAINTAINER;
		if (one_arg(c, "MAINTAINER", &in->maintainer.name) < 0 || no_flags(c) < 0)
			goto out;
	} else {
		r = perr(c, "unknown instruction: %s", name);
		goto out;
	}
	r = 0;
out:
	kn_strv_release(&args);
	return r;
}

int df_instr_parse(const struct df_node *node, const char *file, int escape, struct df_instr **ret,
		   kn_error **err)
{
	struct pctx c = { node, file ? file : "Dockerfile", node->start_line,
			  node->start_col > 0 ? node->start_col : 1, err, escape ? escape : '\\' };
	_cleanup_(df_instr_freep) struct df_instr *in = xcalloc(1, sizeof(*in));
	_cleanup_free_ char *name = sem_strdup_lower(node->value ? node->value : "");

	/* kind must be valid before any free: start as MAINTAINER (only owns one string) */
	in->kind = DF_INSTR_MAINTAINER;
	in->file = xstrdup(c.file);
	in->line = node->start_line;
	in->end_line = node->end_line;
	in->col = c.col;
	in->original = xstrdup(node->original ? node->original : "");
	in->escape = escape ? escape : '\\';
	if (parse_dispatch(&c, in, name) < 0)
		return -1;
	*ret = steal_ptr(&in);
	return 0;
}

/* ---- expansion ------------------------------------------------------------------------------ */

struct xctx {
	const struct df_instr *in;
	const struct df_env *env;
	struct df_instr *out;
	kn_error **err;
	size_t budget;		/* what the plan has left */
	size_t produced;	/* substitution bytes, failed expansions included */
};

static void note_vars(struct df_instr *out, const struct df_expansion *x)
{
	for (size_t i = 0; i < x->matched.n; i++)
		if (!kn_strv_contains(&out->matched, x->matched.v[i]))
			kn_strv_push(&out->matched, x->matched.v[i]);
	for (size_t i = 0; i < x->unmatched.n; i++)
		if (!kn_strv_contains(&out->unmatched, x->unmatched.v[i]))
			kn_strv_push(&out->unmatched, x->unmatched.v[i]);
}

static int xerr(struct xctx *x, kn_error *e)
{
	kn_error_set_at(x->err, x->in->file, x->in->line, x->in->col, "%s", e->msg);
	kn_error_free(e);
	return -1;
}

/* Replaces *word (owned) with its expansion. */
static int xword(struct xctx *x, char **word, unsigned flags)
{
	struct df_expansion e;
	kn_error *ke = NULL;

	if (!*word)
		return 0;
	if (df_expand(*word, x->env, x->in->escape, flags | DF_LEX_PRIVATE_NO_WORDS, &e, &ke) < 0) {
		x->produced += e.produced;
		return xerr(x, ke);
	}
	free(*word);
	*word = steal_ptr(&e.result);
	x->produced += e.produced;
	note_vars(x->out, &e);
	df_expansion_release(&e);
	if (x->produced > x->budget)
		return sem_budget_error(x->in, x->err);
	return 0;
}

static int xwords(struct xctx *x, char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		if (xword(x, &v[i], 0) < 0)
			return -1;
	return 0;
}

static int instr_expand(struct xctx *x);

int df_instr_expand(const struct df_instr *in, const struct df_env *env, struct df_instr **ret,
		    kn_error **err)
{
	size_t produced;

	return sem_instr_expand(in, env, SIZE_MAX, ret, &produced, err);
}

int sem_budget_error(const struct df_instr *in, kn_error **err)
{
	return kn_error_set_at(err, in->file, in->line, in->col,
			       "variable expansions of the whole Dockerfile are longer than %u MiB",
			       DF_PLAN_MAX_EXPANDED >> 20);
}

int sem_instr_expand(const struct df_instr *in, const struct df_env *env, size_t budget,
		     struct df_instr **ret, size_t *ret_produced, kn_error **err)
{
	_cleanup_(df_instr_freep) struct df_instr *out = instr_dup(in);
	struct xctx x = { in, env, out, err, budget, 0 };
	int r;

	kn_strv_release(&out->matched);
	kn_strv_release(&out->unmatched);
	r = instr_expand(&x);
	*ret_produced = x.produced;
	if (r < 0)
		return -1;
	*ret = steal_ptr(&out);
	return 0;
}

static int instr_expand(struct xctx *x)
{
	const struct df_instr *in = x->in;
	const struct df_env *env = x->env;
	struct df_instr *out = x->out;
	kn_error **err = x->err;

	switch (out->kind) {
	case DF_INSTR_FROM:
		if (xword(x, &out->from.base, 0) < 0 || xword(x, &out->from.platform, 0) < 0)
			return -1;
		break;
	case DF_INSTR_ENV:
	case DF_INSTR_LABEL:
	case DF_INSTR_ARG:
		for (size_t i = 0; i < out->kv.n; i++)
			if (xword(x, &out->kv.kvs[i].key, 0) < 0 || xword(x, &out->kv.kvs[i].value, 0) < 0)
				return -1;
		break;
	case DF_INSTR_EXPOSE: {
		struct kn_strv ports = KN_STRV_INIT;

		for (size_t i = 0; out->expose.ports[i]; i++) {
			struct df_expansion e;
			kn_error *ke = NULL;

			if (df_expand(out->expose.ports[i], env, in->escape, 0, &e, &ke) < 0) {
				x->produced += e.produced;
				kn_strv_release(&ports);
				return xerr(x, ke);
			}
			note_vars(out, &e);
			x->produced += e.produced;
			if (x->produced > x->budget) {
				df_expansion_release(&e);
				kn_strv_release(&ports);
				return sem_budget_error(in, err);
			}
			for (size_t k = 0; e.words[k]; k++) {
				struct df_port p;

				if (df_port_parse(e.words[k], &p, &ke) < 0) {
					df_expansion_release(&e);
					kn_strv_release(&ports);
					return xerr(x, ke);
				}
				kn_strv_push(&ports, e.words[k]);
			}
			df_expansion_release(&e);
		}
		kn_strv_free(out->expose.ports);
		out->expose.ports = ports.v ? kn_strv_detach(&ports) : xcalloc(1, sizeof(char *));
		break;
	}
	case DF_INSTR_WORKDIR:
		if (xword(x, &out->workdir.path, 0) < 0)
			return -1;
		break;
	case DF_INSTR_USER:
		if (xword(x, &out->user.user, 0) < 0)
			return -1;
		break;
	case DF_INSTR_VOLUME:
		if (xwords(x, out->volume.paths) < 0)
			return -1;
		break;
	case DF_INSTR_STOPSIGNAL:
		if (xword(x, &out->stopsignal.signal, 0) < 0)
			return -1;
		break;
	case DF_INSTR_COPY:
	case DF_INSTR_ADD: {
		struct pctx c = { NULL, in->file, in->line, in->col, err, in->escape };

		if (xwords(x, out->copy.sources) < 0 || xword(x, &out->copy.dest, 0) < 0 ||
		    xword(x, &out->copy.from, 0) < 0 || xword(x, &out->copy.chown, 0) < 0 ||
		    xword(x, &out->copy.chmod, 0) < 0 || xwords(x, out->copy.excludes) < 0 ||
		    xword(x, &out->copy.checksum, 0) < 0)
			return -1;
		/* BuildKit chomps a <<- body when it parses the instruction, then expands it (keeping
		 * quotes) at build time; the expanded copy is final: chomp and expand are cleared */
		for (size_t i = 0; i < out->copy.n_heredocs; i++) {
			struct df_heredoc *h = &out->copy.heredocs[i];

			if (h->chomp) {
				char *chomped = df_heredoc_chomp(h);

				free(h->content);
				h->content = chomped;
				h->chomp = false;
			}
			if (h->expand && xword(x, &h->content, DF_LEX_SKIP_QUOTES) < 0)
				return -1;
			h->expand = false;
		}
		if (out->copy.chmod) {
			struct df_chmod cm;
			kn_error *e = NULL;

			if (df_chmod_parse(out->copy.chmod, &cm, &e) < 0)
				return xerr(x, e);
			df_chmod_release(&cm);
		}
		if (check_multi_source_dest(&c, out) < 0)
			return -1;
		break;
	}
	case DF_INSTR_RUN: {
		struct pctx c = { NULL, in->file, in->line, in->col, err, in->escape };
		size_t ssh = 0;

		for (size_t i = 0; i < out->run.n_mounts; i++) {
			struct df_mount m;

			if (parse_mount(&c, in->run.mounts[i].raw, env ? env : &(struct df_env)DF_ENV_INIT,
					ssh, &m, &out->matched, &x->produced) < 0)
				return -1;
			if (x->produced > x->budget) {
				mount_release(&m);
				return sem_budget_error(in, err);
			}
			if (m.type == DF_MOUNT_SSH)
				ssh++;
			mount_release(&out->run.mounts[i]);
			out->run.mounts[i] = m;
		}
		break;
	}
	case DF_INSTR_CMD:
	case DF_INSTR_ENTRYPOINT:
	case DF_INSTR_SHELL:
	case DF_INSTR_HEALTHCHECK:
	case DF_INSTR_ONBUILD:
	case DF_INSTR_MAINTAINER:
		break;
	}
	return 0;
}
