/*
 * kiln parser: the stage graph (plan) of a Dockerfile, after BuildKit's dockerfile2llb: global
 * (meta) ARGs and the automatic platform ARGs, FROM resolution against earlier stages, COPY
 * --from and RUN --mount from= edges, cycles, --target selection and skipping, and the running
 * variable state of a stage (df_stage_env) that the builder and `kiln parse --plan` share.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"
#include "parser/sem-internal.h"

static const char *const proxy_args[] = {
	"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
	"NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
};

static bool is_proxy_arg(const char *k)
{
	for (size_t i = 0; i < KN_ARRAY_SIZE(proxy_args); i++)
		if (strcmp(k, proxy_args[i]) == 0)
			return true;
	return false;
}

/* ---- platforms ------------------------------------------------------------------------------ */

void df_platform_release(struct df_platform *p)
{
	if (!p)
		return;
	free(p->os);
	free(p->arch);
	free(p->variant);
	memset(p, 0, sizeof(*p));
}

int df_platform_native(struct df_platform *ret, kn_error **err)
{
	const char *arch, *variant;

	(void)err;
	memset(ret, 0, sizeof(*ret));
	kn_platform_host(NULL, &arch, &variant);
	ret->os = xstrdup("linux");
	ret->arch = xstrdup(arch);
	ret->variant = xstrdup(variant ? variant : "");
	return 0;
}

int df_platform_parse(const char *s, struct df_platform *ret, kn_error **err)
{
	_cleanup_free_ char *copy = sem_strdup_lower(s);
	char *parts[4] = { 0 };
	size_t n = 0;
	char *p = copy;

	memset(ret, 0, sizeof(*ret));
	while (p && n < 4) {
		char *slash = strchr(p, '/');

		if (slash)
			*slash = 0;
		parts[n++] = p;
		p = slash ? slash + 1 : NULL;
	}
	if (p || n == 0 || !*parts[0] || (n > 1 && !*parts[1]) || (n > 2 && !*parts[2]))
		return kn_error_set(err, 0, "invalid platform '%s': want os/arch[/variant]", s);
	ret->os = xstrdup(parts[0]);
	if (n == 1) {
		struct df_platform native;

		if (df_platform_native(&native, err) < 0) {
			df_platform_release(ret);
			return -1;
		}
		ret->arch = steal_ptr(&native.arch);
		ret->variant = steal_ptr(&native.variant);
		df_platform_release(&native);
		return 0;
	}
	kn_arch_normalize(parts[1], n > 2 ? parts[2] : "", &ret->arch, &ret->variant);
	if (!ret->variant)
		ret->variant = xstrdup("");
	return 0;
}

char *df_platform_format(const struct df_platform *p)
{
	if (p->variant && *p->variant)
		return xasprintf("%s/%s/%s", p->os, p->arch, p->variant);
	return xasprintf("%s/%s", p->os, p->arch);
}

static void platform_copy(struct df_platform *dst, const struct df_platform *src)
{
	dst->os = xstrdup(src->os);
	dst->arch = xstrdup(src->arch);
	dst->variant = xstrdup(src->variant ? src->variant : "");
}

/* ---- plan lifetime -------------------------------------------------------------------------- */

static void stage_release(struct df_stage *s)
{
	free(s->name);
	df_instr_free(s->from);
	free(s->base_image);
	free(s->platform);
	for (size_t i = 0; i < s->n_instrs; i++)
		df_instr_free(s->instrs[i]);
	free(s->instrs);
	for (size_t i = 0; i < s->n_deps; i++)
		free(s->deps[i].image);
	free(s->deps);
}

void df_plan_free(struct df_plan *plan)
{
	if (!plan)
		return;
	free(plan->file);
	for (size_t i = 0; i < plan->n_stages; i++)
		stage_release(&plan->stages[i]);
	free(plan->stages);
	df_env_release(&plan->meta_args);
	df_env_release(&plan->build_args);
	kn_strv_release(&plan->unused_build_args);
	df_platform_release(&plan->build_platform);
	df_platform_release(&plan->target_platform);
	for (size_t i = 0; i < plan->n_global_args; i++)
		df_instr_free(plan->global_args[i]);
	free(plan->global_args);
	free(plan->expanded);
	free(plan);
}

/* ---- building ------------------------------------------------------------------------------- */

struct builder {
	struct df_plan *plan;
	struct df_env names;	/* lower-cased stage name -> index (decimal) */
	kn_error **err;
};

static int berr(struct builder *b, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int berr(struct builder *b, int line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	kn_error_set_at(b->err, b->plan->file, line, line > 0 ? 1 : 0, "%s", msg);
	free(msg);
	return -1;
}

static void add_platform_args(struct df_env *env, const char *prefix, const struct df_platform *p)
{
	_cleanup_free_ char *plat = df_platform_format(p);
	char key[32];

	snprintf(key, sizeof(key), "%sPLATFORM", prefix);
	df_env_set(env, key, plat);
	snprintf(key, sizeof(key), "%sOS", prefix);
	df_env_set(env, key, p->os);
	snprintf(key, sizeof(key), "%sARCH", prefix);
	df_env_set(env, key, p->arch);
	snprintf(key, sizeof(key), "%sVARIANT", prefix);
	df_env_set(env, key, p->variant ? p->variant : "");
}

static bool is_automatic_arg(const char *k)
{
	static const char *const names[] = {
		"TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
		"BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
	};

	for (size_t i = 0; i < KN_ARRAY_SIZE(names); i++)
		if (strcmp(k, names[i]) == 0)
			return true;
	return false;
}

/* Counts n bytes of substitution against the plan's DF_PLAN_MAX_EXPANDED; errors name in. */
static int plan_charge(const struct df_plan *p, const struct df_instr *in, size_t n, kn_error **err)
{
	if (__atomic_add_fetch(p->expanded, n, __ATOMIC_RELAXED) <= DF_PLAN_MAX_EXPANDED)
		return 0;
	return sem_budget_error(in, err);
}

static bool plan_spent(const struct df_plan *p)
{
	return __atomic_load_n(p->expanded, __ATOMIC_RELAXED) > DF_PLAN_MAX_EXPANDED;
}

/* Expands a word with env (counted against the plan's budget); errors name the instruction. */
static char *expand_one(const struct df_plan *p, const struct df_instr *in, const char *word,
			const struct df_env *env, kn_error **err)
{
	struct df_expansion x;
	kn_error *e = NULL;
	char *r;

	/* failed expansions count too: their work was done */
	if (df_expand(word, env, p->escape, DF_LEX_PRIVATE_NO_WORDS, &x, &e) < 0) {
		if (plan_charge(p, in, x.produced, err) == 0)
			kn_error_set_at(err, in->file, in->line, in->col, "%s", e->msg);
		kn_error_free(e);
		return NULL;
	}
	r = steal_ptr(&x.result);
	if (plan_charge(p, in, x.produced, err) < 0) {
		free(r);
		r = NULL;
	}
	df_expansion_release(&x);
	return r;
}

static char *expand_at(struct builder *b, const struct df_instr *in, const char *word,
		       const struct df_env *env)
{
	return expand_one(b->plan, in, word, env, b->err);
}

/* ARG semantics shared by the plan and df_stage_env: the value an ARG declaration gives key. */
static const char *arg_value(const struct df_plan *plan, const char *key, const char *def,
			     bool stage_scope)
{
	const char *v = df_env_get(&plan->build_args, key);

	if (v)
		return v;
	if (def)
		return def;
	if (stage_scope)
		return df_env_get(&plan->meta_args, key);
	return NULL;
}

static long stage_by_name(const struct builder *b, const char *name)
{
	_cleanup_free_ char *lower = sem_strdup_lower(name);
	const char *v = df_env_get(&b->names, lower);

	return v ? strtol(v, NULL, 10) : -1;
}

static void add_dep(struct df_stage *s, enum df_dep_kind kind, size_t stage, const char *image,
		    const char *via, size_t instr)
{
	for (size_t i = 0; i < s->n_deps; i++) {
		const struct df_dep *d = &s->deps[i];

		if (d->kind == kind && (kind == DF_DEP_STAGE ? d->stage == stage : strcmp(d->image, image) == 0))
			return;
	}
	/* capacity is the next power of two of n_deps: grow geometrically without a field */
	if ((s->n_deps & (s->n_deps - 1)) == 0)
		s->deps = xreallocarray(s->deps, s->n_deps ? s->n_deps * 2 : 1, sizeof(*s->deps));
	s->deps[s->n_deps].kind = kind;
	s->deps[s->n_deps].stage = stage;
	s->deps[s->n_deps].image = image ? xstrdup(image) : NULL;
	s->deps[s->n_deps].via = via;
	s->deps[s->n_deps].instr = instr;
	s->n_deps++;
}

/* Resolves a --from / from= reference of stage s (index si) made by instruction in. */
static int add_ref(struct builder *b, size_t si, const struct df_instr *in, size_t ii,
		   const char *ref, const char *via)
{
	struct df_stage *s = &b->plan->stages[si];
	long idx;

	if (!ref || !*ref)
		return 0;
	if (strspn(ref, "0123456789") == strlen(ref)) {
		char *end;

		errno = 0;
		idx = strtol(ref, &end, 10);
		if (errno || idx < 0 || (size_t)idx >= b->plan->n_stages) {
			kn_error_set_at(b->err, in->file, in->line, in->col, "invalid stage index %s", ref);
			return -1;
		}
		if ((size_t)idx == si) {
			kn_error_set_at(b->err, in->file, in->line, in->col,
					"circular dependency detected on stage: %s", s->name ? s->name : ref);
			return -1;
		}
		add_dep(s, DF_DEP_STAGE, (size_t)idx, NULL, via, ii);
		return 0;
	}
	idx = stage_by_name(b, ref);
	if (idx >= 0) {
		if ((size_t)idx == si) {
			kn_error_set_at(b->err, in->file, in->line, in->col,
					"circular dependency detected on stage: %s", s->name);
			return -1;
		}
		add_dep(s, DF_DEP_STAGE, (size_t)idx, NULL, via, ii);
		return 0;
	}
	add_dep(s, DF_DEP_IMAGE, 0, ref, via, ii);
	return 0;
}

static int collect_refs(struct builder *b, size_t si)
{
	struct df_plan *p = b->plan;
	struct df_stage *s = &p->stages[si];
	struct df_env args = DF_ENV_INIT;	/* the stage's ARGs so far, over the global ones */
	bool need_args = false;
	int r = -1;

	/* only references with variables need the ARG state: skip building it otherwise */
	for (size_t ii = 0; ii < s->n_instrs && !need_args; ii++) {
		const struct df_instr *in = s->instrs[ii];

		if (in->kind == DF_INSTR_COPY || in->kind == DF_INSTR_ADD)
			need_args = in->copy.from && strchr(in->copy.from, '$');
		else if (in->kind == DF_INSTR_RUN)
			for (size_t m = 0; m < in->run.n_mounts && !need_args; m++)
				need_args = in->run.mounts[m].from && strchr(in->run.mounts[m].from, '$');
	}
	if (need_args)
		df_env_merge(&args, &p->meta_args);
	for (size_t ii = 0; ii < s->n_instrs; ii++) {
		const struct df_instr *in = s->instrs[ii];

		if (in->kind == DF_INSTR_ARG && need_args) {
			for (size_t k = 0; k < in->kv.n; k++) {
				const struct df_kv *kv = &in->kv.kvs[k];
				_cleanup_free_ char *def = NULL;
				const char *v;

				if (kv->value && !df_env_get(&p->build_args, kv->key)) {
					kn_error *e = NULL;

					/* a default that needs the base image env cannot be known here */
					def = expand_one(p, in, kv->value, &args, &e);
					if (!def && plan_spent(p)) {
						kn_error_propagate(b->err, e);
						goto out;
					}
					kn_error_free(e);
					if (!def)
						continue;
				}
				v = arg_value(p, kv->key, def, true);
				if (v)
					df_env_set(&args, kv->key, v);
			}
		} else if ((in->kind == DF_INSTR_COPY || in->kind == DF_INSTR_ADD) && in->copy.from) {
			_cleanup_free_ char *ref = expand_at(b, in, in->copy.from, &args);

			if (!ref || add_ref(b, si, in, ii, ref, "copy") < 0)
				goto out;
		} else if (in->kind == DF_INSTR_RUN) {
			for (size_t m = 0; m < in->run.n_mounts; m++) {
				_cleanup_free_ char *ref = NULL;

				if (!in->run.mounts[m].from)
					continue;
				ref = expand_at(b, in, in->run.mounts[m].from, &args);
				if (!ref || add_ref(b, si, in, ii, ref, "mount") < 0)
					goto out;
			}
		}
	}
	r = 0;
out:
	df_env_release(&args);
	return r;
}

static int check_cycles(struct builder *b)
{
	struct df_plan *p = b->plan;
	unsigned char *color = xcalloc(p->n_stages ? p->n_stages : 1, 1);
	size_t *stack = xmalloc((p->n_stages + 1) * sizeof(*stack));
	size_t *pos = xcalloc(p->n_stages + 1, sizeof(*pos));
	int r = 0;

	for (size_t root = 0; root < p->n_stages && r == 0; root++) {
		size_t sp = 0;

		if (color[root])
			continue;
		stack[sp++] = root;
		color[root] = 1;
		pos[root] = 0;
		while (sp > 0 && r == 0) {
			size_t cur = stack[sp - 1];
			struct df_stage *s = &p->stages[cur];

			if (pos[cur] < s->n_deps) {
				const struct df_dep *d = &s->deps[pos[cur]++];

				if (d->kind != DF_DEP_STAGE)
					continue;
				if (color[d->stage] == 1) {
					const struct df_stage *t = &p->stages[d->stage];
					_cleanup_free_ char *label = t->name ? xstrdup(t->name) : xasprintf("%zu", t->index);

					r = berr(b, t->from->line, "circular dependency detected on stage: %s", label);
				} else if (color[d->stage] == 0) {
					color[d->stage] = 1;
					pos[d->stage] = 0;
					stack[sp++] = d->stage;
				}
			} else {
				color[cur] = 2;
				sp--;
			}
		}
	}
	free(color);
	free(stack);
	free(pos);
	return r;
}

static void mark_needed(struct df_plan *p)
{
	size_t *queue = xmalloc((p->n_stages + 1) * sizeof(*queue)), head = 0, tail = 0;

	for (size_t i = 0; i < p->n_stages; i++)
		p->stages[i].skipped = true;
	p->stages[p->target].skipped = false;
	queue[tail++] = p->target;
	while (head < tail) {
		struct df_stage *s = &p->stages[queue[head++]];

		for (size_t i = 0; i < s->n_deps; i++) {
			if (s->deps[i].kind != DF_DEP_STAGE || !p->stages[s->deps[i].stage].skipped)
				continue;
			p->stages[s->deps[i].stage].skipped = false;
			queue[tail++] = s->deps[i].stage;
		}
	}
	free(queue);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int plan_fill(struct builder *b, const struct df_node *root, const struct df_plan_opts *opts)
{
	struct df_plan *p = b->plan;
	size_t alloc = 0, ialloc = 0, gargs_alloc = 0;
	struct df_stage *cur = NULL;

	/* platforms and the automatic ARGs */
	if (df_platform_native(&p->build_platform, b->err) < 0)
		return -1;
	if (opts && opts->platform) {
		if (df_platform_parse(opts->platform, &p->target_platform, b->err) < 0)
			return -1;
	} else {
		platform_copy(&p->target_platform, &p->build_platform);
	}
	add_platform_args(&p->meta_args, "TARGET", &p->target_platform);
	add_platform_args(&p->meta_args, "BUILD", &p->build_platform);
	for (size_t i = 0; opts && opts->build_args && opts->build_args[i]; i++)
		if (strchr(opts->build_args[i], '='))
			df_env_set_kv(&p->build_args, opts->build_args[i]);

	for (size_t i = 0; i < root->n_children; i++) {
		struct df_instr *in = NULL;

		if (df_instr_parse(root->children[i], p->file, p->escape, &in, b->err) < 0)
			return -1;
		if (in->kind == DF_INSTR_FROM) {
			if (p->n_stages >= DF_PLAN_MAX_STAGES) {
				df_instr_free(in);
				return berr(b, root->children[i]->start_line, "too many stages (more than %d)", DF_PLAN_MAX_STAGES);
			}
			KN_GROW(p->stages, alloc, p->n_stages + 1);
			cur = &p->stages[p->n_stages];
			memset(cur, 0, sizeof(*cur));
			cur->index = p->n_stages++;
			cur->from = in;
			cur->name = in->from.name ? xstrdup(in->from.name) : NULL;
			ialloc = 0;
			continue;
		}
		if (!cur) {
			if (in->kind != DF_INSTR_ARG) {
				int line = in->line;

				df_instr_free(in);
				return berr(b, line, "no build stage in current context");
			}
			KN_GROW(p->global_args, gargs_alloc, p->n_global_args + 1);
			p->global_args[p->n_global_args++] = in;
			continue;
		}
		KN_GROW(cur->instrs, ialloc, cur->n_instrs + 1);
		cur->instrs[cur->n_instrs++] = in;
	}
	if (p->n_stages == 0)
		return berr(b, 0, "dockerfile contains no stages to build");

	/* global ARGs, in order: override, else the default expanded with what came before */
	for (size_t i = 0; i < p->n_global_args; i++) {
		const struct df_instr *in = p->global_args[i];

		for (size_t k = 0; k < in->kv.n; k++) {
			const struct df_kv *kv = &in->kv.kvs[k];
			_cleanup_free_ char *def = NULL;
			const char *v;

			if (kv->value && !df_env_get(&p->build_args, kv->key)) {
				def = expand_at(b, in, kv->value, &p->meta_args);
				if (!def)
					return -1;
			}
			v = arg_value(p, kv->key, def, false);
			if (v)
				df_env_set(&p->meta_args, kv->key, v);
		}
	}

	/* stages: names, bases */
	for (size_t si = 0; si < p->n_stages; si++) {
		struct df_stage *s = &p->stages[si];
		_cleanup_free_ char *base = NULL;
		long idx;

		base = expand_at(b, s->from, s->from->from.base, &p->meta_args);
		if (!base)
			return -1;
		if (!*base)
			return berr(b, s->from->line, "base name (%s) should not be blank", s->from->from.base);
		if (s->from->from.platform) {
			s->platform = expand_at(b, s->from, s->from->from.platform, &p->meta_args);
			if (!s->platform)
				return -1;
		}
		idx = stage_by_name(b, base);
		if (strcmp(base, "scratch") == 0) {
			s->base_kind = DF_BASE_SCRATCH;
		} else if (idx >= 0) {
			s->base_kind = DF_BASE_STAGE;
			s->base_stage = (size_t)idx;
			add_dep(s, DF_DEP_STAGE, (size_t)idx, NULL, "from", SIZE_MAX);
		} else {
			s->base_kind = DF_BASE_IMAGE;
			s->base_image = xstrdup(base);
			add_dep(s, DF_DEP_IMAGE, 0, base, "from", SIZE_MAX);
		}
		if (s->name) {
			const char *prev = df_env_get(&b->names, s->name);

			if (prev) {
				const struct df_stage *first = &p->stages[strtoul(prev, NULL, 10)];

				return berr(b, s->from->line, "duplicate stage name '%s' (first defined on line %d)",
					    s->name, first->from->line);
			}
			{
				char num[32];

				snprintf(num, sizeof(num), "%zu", si);
				df_env_set(&b->names, s->name, num);
			}
		}
	}
	for (size_t si = 0; si < p->n_stages; si++)
		if (collect_refs(b, si) < 0)
			return -1;
	if (check_cycles(b) < 0)
		return -1;

	/* target */
	p->target = p->n_stages - 1;
	if (opts && opts->target && *opts->target) {
		long idx = stage_by_name(b, opts->target);

		if (idx < 0 && strspn(opts->target, "0123456789") == strlen(opts->target) &&
		    strlen(opts->target) < 10 && strtol(opts->target, NULL, 10) < (long)p->n_stages)
			idx = strtol(opts->target, NULL, 10);
		if (idx < 0) {
			struct kn_buf names = KN_BUF_INIT;

			for (size_t i = 0; i < p->n_stages; i++) {
				if (i)
					kn_buf_adds(&names, ", ");
				if (p->stages[i].name)
					kn_buf_adds(&names, p->stages[i].name);
				else
					kn_buf_addf(&names, "%zu", i);
			}
			kn_error_set(b->err, 0, "target stage '%s' could not be found: the stages are %s",
				     opts->target, names.buf);
			kn_buf_release(&names);
			return -1;
		}
		p->target = (size_t)idx;
	}
	mark_needed(p);

	/* build args nobody declares (predefined ones are exempt) */
	{
		struct df_env declared = DF_ENV_INIT;

		for (size_t i = 0; i < p->n_global_args; i++)
			for (size_t k = 0; k < p->global_args[i]->kv.n; k++)
				df_env_set(&declared, p->global_args[i]->kv.kvs[k].key, "");
		for (size_t si = 0; si < p->n_stages; si++) {
			if (p->stages[si].skipped)
				continue;
			for (size_t ii = 0; ii < p->stages[si].n_instrs; ii++) {
				const struct df_instr *in = p->stages[si].instrs[ii];

				if (in->kind == DF_INSTR_ARG)
					for (size_t k = 0; k < in->kv.n; k++)
						df_env_set(&declared, in->kv.kvs[k].key, "");
			}
		}
		for (size_t i = 0; i < p->build_args.n; i++) {
			const char *k = p->build_args.keys[i];

			if (!df_env_get(&declared, k) && !is_proxy_arg(k) && !is_automatic_arg(k) &&
			    strncmp(k, "BUILDKIT_", 9) != 0 && strcmp(k, "SOURCE_DATE_EPOCH") != 0)
				kn_strv_push(&p->unused_build_args, k);
		}
		if (p->unused_build_args.n > 1)
			qsort(p->unused_build_args.v, p->unused_build_args.n, sizeof(char *), cmp_str);
		df_env_release(&declared);
	}
	return 0;
}

int df_plan_build(const struct df_node *root, int escape, const struct df_plan_opts *opts,
		  struct df_plan **ret, kn_error **err)
{
	struct builder b = { 0 };
	int r;

	b.plan = xcalloc(1, sizeof(*b.plan));
	b.plan->expanded = xcalloc(1, sizeof(*b.plan->expanded));
	b.plan->file = xstrdup(opts && opts->file ? opts->file : "Dockerfile");
	b.plan->escape = escape ? escape : '\\';
	b.err = err;
	r = plan_fill(&b, root, opts);
	df_env_release(&b.names);
	if (r < 0) {
		df_plan_free(b.plan);
		return -1;
	}
	*ret = b.plan;
	return 0;
}

/* ---- the running state of a stage ------------------------------------------------------------ */

int df_stage_env_init(struct df_stage_env *se, const struct df_plan *plan,
		      const struct df_stage *stage, char *const *base_env, kn_error **err)
{
	(void)stage;
	(void)err;
	memset(se, 0, sizeof(*se));
	se->plan = plan;
	for (size_t i = 0; base_env && base_env[i]; i++)
		df_env_set_kv(&se->env, base_env[i]);
	/* predefined proxy ARGs reach RUN without a declaration when given as build args, but
	 * words are only expanded with them once an ARG declares them (BuildKit) */
	for (size_t i = 0; i < plan->build_args.n; i++)
		if (is_proxy_arg(plan->build_args.keys[i]))
			df_env_set(&se->args, plan->build_args.keys[i], plan->build_args.values[i]);
	df_env_merge(&se->lookup, &se->env);
	return 0;
}

void df_stage_env_inherit_args(struct df_stage_env *se, const struct df_env *args)
{
	for (size_t i = 0; i < args->n; i++) {
		df_env_set(&se->args, args->keys[i], args->values[i]);
		if (!df_env_get(&se->env, args->keys[i]))
			df_env_set(&se->lookup, args->keys[i], args->values[i]);
	}
}

void df_stage_env_release(struct df_stage_env *se)
{
	if (!se)
		return;
	df_env_release(&se->env);
	df_env_release(&se->args);
	df_env_release(&se->lookup);
	se->plan = NULL;
}

void df_stage_env_lookup_env(const struct df_stage_env *se, struct df_env *ret)
{
	df_env_init(ret);
	df_env_merge(ret, &se->lookup);
}

int df_stage_env_expand(const struct df_stage_env *se, const struct df_instr *in,
			struct df_instr **ret, kn_error **err)
{
	_cleanup_(df_instr_freep) struct df_instr *x = NULL;
	kn_error *e = NULL;
	size_t produced = 0;
	size_t spent = __atomic_load_n(se->plan->expanded, __ATOMIC_RELAXED);
	int r = sem_instr_expand(in, &se->lookup,
				 spent < DF_PLAN_MAX_EXPANDED ? DF_PLAN_MAX_EXPANDED - spent : 0, &x,
				 &produced, &e);

	/* a failed expansion's work counts too: `parse --plan` goes on past skipped stages' errors */
	if (plan_charge(se->plan, in, produced, err) < 0) {
		kn_error_free(e);
		return -1;
	}
	if (r < 0) {
		kn_error_propagate(err, e);
		return -1;
	}
	*ret = steal_ptr(&x);
	return 0;
}

int df_stage_env_apply(struct df_stage_env *se, const struct df_instr *expanded, kn_error **err)
{
	(void)err;
	if (expanded->kind == DF_INSTR_ENV) {
		for (size_t i = 0; i < expanded->kv.n; i++) {
			df_env_set(&se->env, expanded->kv.kvs[i].key, expanded->kv.kvs[i].value);
			df_env_set(&se->lookup, expanded->kv.kvs[i].key, expanded->kv.kvs[i].value);
		}
	} else if (expanded->kind == DF_INSTR_ARG) {
		for (size_t i = 0; i < expanded->kv.n; i++) {
			const struct df_kv *kv = &expanded->kv.kvs[i];
			const char *v = arg_value(se->plan, kv->key, kv->value, true);

			if (!v)
				continue;
			/* BuildKit: an ARG sets the variable in the build's environment like ENV does
			 * (not in the image's config), so the later of the two wins */
			df_env_set(&se->args, kv->key, v);
			df_env_set(&se->lookup, kv->key, v);
		}
	}
	return 0;
}

/* ---- `kiln parse --plan` text ------------------------------------------------------------------ */

static void add_json_string(struct kn_buf *b, const char *s)
{
	kn_buf_addch(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			kn_buf_addf(b, "\\%c", c);
		else if (c == '\n')
			kn_buf_adds(b, "\\n");
		else if (c == '\t')
			kn_buf_adds(b, "\\t");
		else if (c == '\r')
			kn_buf_adds(b, "\\r");
		else if (c < 0x20 || c == 0x7f)
			kn_buf_addf(b, "\\u%04x", c);
		else
			kn_buf_addch(b, c);
	}
	kn_buf_addch(b, '"');
}

static void add_json_array(struct kn_buf *b, char *const *v)
{
	kn_buf_addch(b, '[');
	for (size_t i = 0; v && v[i]; i++) {
		if (i)
			kn_buf_adds(b, ", ");
		add_json_string(b, v[i]);
	}
	kn_buf_addch(b, ']');
}

/* Text on one line: newlines shown as \n. */
static void add_oneline(struct kn_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			kn_buf_adds(b, "\\n");
		else if (*s == '\r')
			kn_buf_adds(b, "\\r");
		else
			kn_buf_addch(b, *s);
	}
}

/* A word, quoted as JSON when it is empty or holds blanks, quotes or control characters. */
static void add_word(struct kn_buf *b, const char *s)
{
	if (!*s || strpbrk(s, " \t\n\r\"'\\")) {
		add_json_string(b, s);
		return;
	}
	kn_buf_adds(b, s);
}

/* Go's time.Duration String() for whole nanoseconds. */
static void add_duration(struct kn_buf *b, long long ns)
{
	long long h, m, s, frac;

	if (ns == 0) {
		kn_buf_adds(b, "0s");
		return;
	}
	if (ns < 1000000000LL) {
		if (ns % 1000000 == 0)
			kn_buf_addf(b, "%lldms", ns / 1000000);
		else if (ns % 1000 == 0)
			kn_buf_addf(b, "%lld\xc2\xb5s", ns / 1000);
		else
			kn_buf_addf(b, "%lldns", ns);
		return;
	}
	h = ns / 3600000000000LL;
	ns %= 3600000000000LL;
	m = ns / 60000000000LL;
	ns %= 60000000000LL;
	s = ns / 1000000000LL;
	frac = ns % 1000000000LL;
	if (h)
		kn_buf_addf(b, "%lldh", h);
	if (h || m)
		kn_buf_addf(b, "%lldm", m);
	kn_buf_addf(b, "%lld", s);
	if (frac) {
		char digits[16];
		int n = snprintf(digits, sizeof(digits), ".%09lld", frac);

		while (n > 1 && digits[n - 1] == '0')
			digits[--n] = 0;
		kn_buf_adds(b, digits);
	}
	kn_buf_addch(b, 's');
}

static void add_cmdline(struct kn_buf *b, const struct df_cmdline *c)
{
	if (c->json)
		add_json_array(b, c->argv);
	else
		add_oneline(b, c->argv && c->argv[0] ? c->argv[0] : "");
	for (size_t i = 0; i < c->n_heredocs; i++) {
		kn_buf_addf(b, " <<%s=", c->heredocs[i].name);
		add_json_string(b, c->heredocs[i].content);
	}
}

static void add_mount(struct kn_buf *b, const struct df_mount *m)
{
	static const char *const types[] = { "bind", "cache", "tmpfs", "secret", "ssh" };
	static const char *const sharing[] = { "shared", "private", "locked" };

	kn_buf_addf(b, " --mount=type=%s", types[m->type]);
	if (m->target)
		kn_buf_addf(b, ",target=%s", m->target);
	if (m->source)
		kn_buf_addf(b, ",source=%s", m->source);
	if (m->from)
		kn_buf_addf(b, ",from=%s", m->from);
	if (m->id && (m->type == DF_MOUNT_CACHE || m->type == DF_MOUNT_SECRET || m->type == DF_MOUNT_SSH))
		kn_buf_addf(b, ",id=%s", m->id);
	if (m->type != DF_MOUNT_SECRET && m->type != DF_MOUNT_SSH)
		kn_buf_adds(b, m->readonly ? ",ro" : ",rw");
	if (m->type == DF_MOUNT_CACHE)
		kn_buf_addf(b, ",sharing=%s", sharing[m->sharing]);
	if (m->mode >= 0)
		kn_buf_addf(b, ",mode=0%lo", (unsigned long)m->mode);
	if (m->uid >= 0)
		kn_buf_addf(b, ",uid=%ld", m->uid);
	if (m->gid >= 0)
		kn_buf_addf(b, ",gid=%ld", m->gid);
	if (m->required)
		kn_buf_adds(b, ",required");
	if (m->size)
		kn_buf_addf(b, ",size=%llu", m->size);
	if (m->env)
		kn_buf_addf(b, ",env=%s", m->env);
}

static void add_kvs(struct kn_buf *b, const struct df_instr *in)
{
	for (size_t i = 0; i < in->kv.n; i++) {
		kn_buf_addch(b, ' ');
		add_word(b, in->kv.kvs[i].key);
		if (in->kv.kvs[i].value) {
			kn_buf_addch(b, '=');
			add_json_string(b, in->kv.kvs[i].value);
		}
	}
}

/* One instruction, expanded, on one line (without the line number). */
static void add_instr(struct kn_buf *b, const struct df_instr *in, const struct df_plan *plan)
{
	kn_buf_adds(b, df_instr_kind_name(in->kind));
	switch (in->kind) {
	case DF_INSTR_FROM:
		if (in->from.platform)
			kn_buf_addf(b, " --platform=%s", in->from.platform);
		kn_buf_addch(b, ' ');
		add_word(b, in->from.base);
		if (in->from.name)
			kn_buf_addf(b, " AS %s", in->from.name);
		break;
	case DF_INSTR_RUN:
		for (size_t i = 0; i < in->run.n_mounts; i++)
			add_mount(b, &in->run.mounts[i]);
		if (in->run.network != DF_NETWORK_DEFAULT)
			kn_buf_addf(b, " --network=%s", in->run.network == DF_NETWORK_NONE ? "none" : "host");
		if (in->run.security == DF_SECURITY_INSECURE)
			kn_buf_adds(b, " --security=insecure");
		kn_buf_addch(b, ' ');
		add_cmdline(b, &in->run.cmd);
		break;
	case DF_INSTR_CMD:
	case DF_INSTR_ENTRYPOINT:
		kn_buf_addch(b, ' ');
		add_cmdline(b, &in->cmd);
		break;
	case DF_INSTR_SHELL:
		kn_buf_addch(b, ' ');
		add_json_array(b, in->shell.argv);
		break;
	case DF_INSTR_ENV:
	case DF_INSTR_LABEL:
		add_kvs(b, in);
		break;
	case DF_INSTR_ARG:
		/* the effective values: override, else default, else the global value */
		for (size_t i = 0; i < in->kv.n; i++) {
			const struct df_kv *kv = &in->kv.kvs[i];
			const char *v = arg_value(plan, kv->key, kv->value, true);

			kn_buf_addch(b, ' ');
			add_word(b, kv->key);
			if (v) {
				kn_buf_addch(b, '=');
				add_json_string(b, v);
			}
		}
		break;
	case DF_INSTR_EXPOSE:
		for (size_t i = 0; in->expose.ports[i]; i++)
			kn_buf_addf(b, " %s", in->expose.ports[i]);
		break;
	case DF_INSTR_WORKDIR:
		kn_buf_addch(b, ' ');
		add_word(b, in->workdir.path);
		break;
	case DF_INSTR_USER:
		kn_buf_addch(b, ' ');
		add_word(b, in->user.user);
		break;
	case DF_INSTR_VOLUME:
		kn_buf_addch(b, ' ');
		add_json_array(b, in->volume.paths);
		break;
	case DF_INSTR_COPY:
	case DF_INSTR_ADD:
		if (in->copy.from)
			kn_buf_addf(b, " --from=%s", in->copy.from);
		if (in->copy.chown)
			kn_buf_addf(b, " --chown=%s", in->copy.chown);
		if (in->copy.chmod)
			kn_buf_addf(b, " --chmod=%s", in->copy.chmod);
		if (in->copy.link)
			kn_buf_adds(b, " --link");
		if (in->copy.parents)
			kn_buf_adds(b, " --parents");
		for (size_t i = 0; in->copy.excludes[i]; i++)
			kn_buf_addf(b, " --exclude=%s", in->copy.excludes[i]);
		if (in->copy.checksum)
			kn_buf_addf(b, " --checksum=%s", in->copy.checksum);
		if (in->copy.keep_git_dir)
			kn_buf_adds(b, " --keep-git-dir");
		for (size_t i = 0; in->copy.sources[i]; i++) {
			kn_buf_addch(b, ' ');
			add_word(b, in->copy.sources[i]);
		}
		for (size_t i = 0; i < in->copy.n_heredocs; i++) {
			kn_buf_addf(b, " <<%s=", in->copy.heredocs[i].name);
			add_json_string(b, in->copy.heredocs[i].content);
		}
		kn_buf_addch(b, ' ');
		add_word(b, in->copy.dest);
		break;
	case DF_INSTR_STOPSIGNAL:
		kn_buf_addf(b, " %s", in->stopsignal.signal);
		break;
	case DF_INSTR_HEALTHCHECK: {
		const struct df_healthcheck *h = &in->healthcheck;
		const char *names[] = { "interval", "timeout", "start-period", "start-interval" };
		long long vals[] = { h->interval, h->timeout, h->start_period, h->start_interval };

		if (h->none) {
			kn_buf_adds(b, " NONE");
			break;
		}
		for (size_t i = 0; i < 4; i++) {
			if (!vals[i])
				continue;
			kn_buf_addf(b, " --%s=", names[i]);
			add_duration(b, vals[i]);
		}
		if (h->retries)
			kn_buf_addf(b, " --retries=%d", h->retries);
		kn_buf_adds(b, " CMD ");
		add_cmdline(b, &h->test);
		break;
	}
	case DF_INSTR_ONBUILD:
		kn_buf_addch(b, ' ');
		add_oneline(b, in->onbuild.expression);
		break;
	case DF_INSTR_MAINTAINER:
		kn_buf_addch(b, ' ');
		add_oneline(b, in->maintainer.name);
		break;
	}
}

static void add_stage_label(struct kn_buf *b, const struct df_plan *p, size_t i)
{
	kn_buf_addf(b, "%zu", i);
	if (p->stages[i].name)
		kn_buf_addf(b, " %s", p->stages[i].name);
}

int df_plan_format(const struct df_plan *plan, struct kn_buf *out, kn_error **err)
{
	/* final env of each stage, so that FROM <stage> inherits it */
	struct df_env *final = xcalloc(plan->n_stages + 1, sizeof(*final));
	struct df_env *final_args = xcalloc(plan->n_stages + 1, sizeof(*final_args));
	int r = -1;

	if (plan->n_global_args) {
		kn_buf_adds(out, "global args:");
		for (size_t i = 0; i < plan->n_global_args; i++) {
			const struct df_instr *in = plan->global_args[i];

			for (size_t k = 0; k < in->kv.n; k++) {
				const char *v = df_env_get(&plan->meta_args, in->kv.kvs[k].key);

				kn_buf_addch(out, ' ');
				add_word(out, in->kv.kvs[k].key);
				if (v) {
					kn_buf_addch(out, '=');
					add_json_string(out, v);
				}
			}
		}
		kn_buf_adds(out, "\n\n");
	}
	for (size_t si = 0; si < plan->n_stages; si++) {
		const struct df_stage *s = &plan->stages[si];
		struct df_stage_env se;
		char **base_env = NULL;

		kn_buf_adds(out, "stage ");
		add_stage_label(out, plan, si);
		kn_buf_adds(out, "\n  base: ");
		switch (s->base_kind) {
		case DF_BASE_SCRATCH:
			kn_buf_adds(out, "scratch");
			break;
		case DF_BASE_STAGE:
			kn_buf_adds(out, "stage ");
			add_stage_label(out, plan, s->base_stage);
			break;
		case DF_BASE_IMAGE:
			kn_buf_addf(out, "image %s", s->base_image);
			break;
		}
		kn_buf_addch(out, '\n');
		if (s->platform)
			kn_buf_addf(out, "  platform: %s\n", s->platform);
		kn_buf_adds(out, "  deps:");
		if (s->n_deps == 0)
			kn_buf_adds(out, " none");
		for (size_t i = 0; i < s->n_deps; i++) {
			const struct df_dep *d = &s->deps[i];

			kn_buf_addf(out, "%s ", i ? "," : "");
			if (d->kind == DF_DEP_STAGE) {
				kn_buf_adds(out, "stage ");
				add_stage_label(out, plan, d->stage);
			} else {
				kn_buf_addf(out, "image %s", d->image);
			}
			kn_buf_addf(out, " (%s)", d->via);
		}
		kn_buf_addf(out, "\n  skipped: %s\n", s->skipped ? "yes" : "no");
		kn_buf_addf(out, "  %d: ", s->from->line);
		{
			struct df_instr *fx = NULL;
			kn_error *e = NULL;

			if (df_instr_expand(s->from, &plan->meta_args, &fx, &e) < 0) {
				kn_error_free(e);
				add_instr(out, s->from, plan);
			} else {
				add_instr(out, fx, plan);
				df_instr_free(fx);
			}
		}
		kn_buf_addch(out, '\n');
		if (s->base_kind == DF_BASE_STAGE)
			base_env = df_env_to_strv(&final[s->base_stage]);
		df_stage_env_init(&se, plan, s, base_env, NULL);
		if (s->base_kind == DF_BASE_STAGE)
			df_stage_env_inherit_args(&se, &final_args[s->base_stage]);
		kn_strv_free(base_env);
		for (size_t ii = 0; ii < s->n_instrs; ii++) {
			const struct df_instr *in = s->instrs[ii];
			struct df_instr *x = NULL;
			kn_error *e = NULL;

			kn_buf_addf(out, "  %d: ", in->line);
			if (df_stage_env_expand(&se, in, &x, &e) < 0) {
				if (!s->skipped || plan_spent(plan)) {
					kn_error_propagate(err, e);
					df_stage_env_release(&se);
					goto out;
				}
				kn_error_free(e);
				add_instr(out, in, plan);
				kn_buf_adds(out, "   (not expanded)");
			} else {
				add_instr(out, x, plan);
				df_stage_env_apply(&se, x, NULL);
				df_instr_free(x);
			}
			kn_buf_addch(out, '\n');
		}
		final[si] = se.env;
		memset(&se.env, 0, sizeof(se.env));
		final_args[si] = se.args;
		memset(&se.args, 0, sizeof(se.args));
		df_stage_env_release(&se);
		kn_buf_addch(out, '\n');
	}
	kn_buf_adds(out, "target: ");
	add_stage_label(out, plan, plan->target);
	kn_buf_addch(out, '\n');
	if (plan->unused_build_args.n) {
		kn_buf_adds(out, "unused build args:");
		for (size_t i = 0; i < plan->unused_build_args.n; i++)
			kn_buf_addf(out, " %s", plan->unused_build_args.v[i]);
		kn_buf_addch(out, '\n');
	}
	r = 0;
out:
	for (size_t i = 0; i < plan->n_stages; i++) {
		df_env_release(&final[i]);
		df_env_release(&final_args[i]);
	}
	free(final);
	free(final_args);
	return r;
}
