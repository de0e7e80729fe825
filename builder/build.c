/* kiln builder: `kiln build` — plans the Dockerfile, then runs every needed stage step by step
 * (RUN in sandboxes, COPY/ADD through copy.c, metadata through config.c), each step keyed in the
 * build cache, and writes and tags the final image. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/userns.h"
#include "builder/build-internal.h"
#include "builder/remote-cache.h"
#include "builder/sandbox-internal.h"
#include "registry/registry.h"

void bld_options_init(struct bld_options *o)
{
	memset(o, 0, sizeof(*o));
	o->context_tar_fd = -1;
	o->tls_verify = -1;
}

/* ---- progress --------------------------------------------------------------------------------- */

void bld_emit(struct bld *b, const struct bld_event *ev)
{
	if (!b->o->progress)
		return;
	pthread_mutex_lock(&b->lock);
	b->o->progress(ev, b->o->progress_data);
	pthread_mutex_unlock(&b->lock);
}

static void bld_emit_text(struct bld *b, enum bld_event_kind kind, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void bld_emit_text(struct bld *b, enum bld_event_kind kind, const char *fmt, va_list ap)
{
	_cleanup_free_ char *t = xvasprintf(fmt, ap);
	struct bld_event ev = { .kind = kind, .text = t };

	bld_emit(b, &ev);
}

void bld_warn(struct bld *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bld_emit_text(b, BLD_EV_WARNING, fmt, ap);
	va_end(ap);
}

void bld_info(struct bld *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	bld_emit_text(b, BLD_EV_INFO, fmt, ap);
	va_end(ap);
}

static void st_event_at(struct bld_state *st, enum bld_event_kind kind, const char *text,
			unsigned long long dur, const struct df_instr *in, const kn_error *e)
{
	_cleanup_free_ char *msg = e ? kn_error_format(e) : NULL;
	struct bld_event ev = {
		.kind = kind,
		.stage_index = st->stage_index,
		.stage_count = st->stage_count,
		.stage_name = st->stage_name,
		.step_index = st->step_index,
		.step_count = st->step_count,
		.text = text,
		.duration_ns = dur,
		.file = in ? in->file : NULL,
		.line = in ? in->line : 0,
		.source = in ? in->original : NULL,
		.error = msg,
	};

	bld_emit(st->b, &ev);
}

static void st_event(struct bld_state *st, enum bld_event_kind kind, const char *text,
		     unsigned long long dur)
{
	st_event_at(st, kind, text, dur, NULL, NULL);
}

void bld_step_output(const char *data, size_t len, void *userdata)
{
	struct bld_state *st = userdata;
	struct bld_event ev = {
		.kind = BLD_EV_STEP_OUTPUT,
		.stage_index = st->stage_index,
		.stage_count = st->stage_count,
		.stage_name = st->stage_name,
		.step_index = st->step_index,
		.step_count = st->step_count,
		.text = st->step_text,
		.data = data,
		.len = len,
	};

	bld_emit(st->b, &ev);
}

static unsigned long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

/* ---- helpers ---------------------------------------------------------------------------------- */

char *bld_now(const struct bld *b)
{
	struct timespec ts;
	struct tm tm;
	char buf[64];

	if (b->have_epoch) {
		ts.tv_sec = (time_t)b->epoch;
		ts.tv_nsec = 0;
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
	}
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	if (b->have_epoch)
		return xasprintf("%sZ", buf);
	return xasprintf("%s.%09ldZ", buf, ts.tv_nsec);
}

char *bld_step_tmpdir(struct bld_state *st, kn_error **err)
{
	const char *tmp = store_tmpdir(st->store, err);
	char *d;

	if (!tmp)
		return NULL;
	d = xasprintf("%s/step-%u", tmp, __atomic_add_fetch(&st->b->step_seq, 1, __ATOMIC_SEQ_CST));
	if (kn_rm_rf(d, err) < 0 || kn_mkdir_p(d, 0700, err) < 0) {
		free(d);
		return NULL;
	}
	return d;
}

void bld_state_add_layer(struct bld_state *st, const struct store_desc *desc, const char *diff_id)
{
	char *chain = store_chain_id(st->chain_id, diff_id);

	KN_GROW(st->layers, st->alloc_layers, st->n_layers + 1);
	store_desc_copy(&st->layers[st->n_layers++], desc);
	free(st->chain_id);
	st->chain_id = chain;
}

int bld_state_lowerdirs(struct bld_state *st, char ***ret, kn_error **err)
{
	if (!st->n_layers) {
		*ret = xcalloc(1, sizeof(char *));
		return 0;
	}
	if (!st->config->diff_ids || kn_strv_len(st->config->diff_ids) != st->n_layers)
		return kn_error_set(err, EINVAL, "image config has %zu diff_ids for %zu layers",
				    kn_strv_len(st->config->diff_ids), st->n_layers);
	if (rcache_fetch(st->b, st->store, st->layers, st->n_layers, err) < 0)
		return -1;
	return snapshot_prepare(st->store, st->layers, st->config->diff_ids, st->n_layers, ret, NULL, err);
}

static int64_t clamp_epoch;

static int clamp_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	struct timespec ts[2];

	(void)type;
	(void)ftw;
	if (sb->st_mtim.tv_sec <= clamp_epoch && !sb->st_mtim.tv_nsec)
		return 0;
	/* as the layer stores it: whole seconds, none later than the build's timestamp */
	ts[0] = (struct timespec){ .tv_nsec = UTIME_OMIT };
	ts[1] = (struct timespec){ .tv_sec = sb->st_mtim.tv_sec < clamp_epoch ? sb->st_mtim.tv_sec : clamp_epoch };
	(void)utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
	return 0;
}

/* Clamps the times in a step's upper dir as the layer will hold them, so that the snapshot later
 * steps see and the layer a cached build unpacks are the same tree. */
static void clamp_upper(const char *upper, int64_t epoch)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&mu);
	clamp_epoch = epoch;
	(void)nftw(upper, clamp_one, 64, FTW_PHYS | FTW_DEPTH | FTW_MOUNT);
	pthread_mutex_unlock(&mu);
}

int bld_commit_upper(struct bld_state *st, const char *upper, char *const *lowerdirs, bool overlay,
		     const char *created_by, kn_error **err)
{
	struct layer_result res = { 0 };
	_cleanup_free_ char *chain = NULL;
	int r;

	if (st->b->lopts.clamp_mtime)
		clamp_upper(upper, st->b->lopts.source_date_epoch);
	if (overlay)
		r = layer_diff_overlay(st->store, upper, lowerdirs, &st->b->lopts, &res, err);
	else
		r = layer_from_dir(st->store, upper, &st->b->lopts, &res, err);
	if (r < 0)
		return -1;
	/* A step that changes nothing still has its (empty) layer, as BuildKit writes one. */
	chain = store_chain_id(st->chain_id, res.diff_id);
	if (snapshot_commit(st->store, chain, upper, err) < 0) {
		layer_result_release(&res);
		return -1;
	}
	image_config_add_layer(st->config, res.diff_id);
	cfg_add_history(st, created_by, false);
	bld_state_add_layer(st, &res.desc, res.diff_id);
	layer_result_release(&res);
	return 0;
}

bool bld_no_cache(const struct bld_state *st)
{
	const struct bld_options *o = st->b->o;

	if (o->no_cache)
		return true;
	for (size_t i = 0; st->stage->name && o->no_cache_filter && o->no_cache_filter[i]; i++)
		if (!strcasecmp(o->no_cache_filter[i], st->stage->name))
			return true;
	return false;
}

static void state_release(struct bld_state *st)
{
	image_config_free(st->config);
	for (size_t i = 0; i < st->n_layers; i++)
		store_desc_release(&st->layers[i]);
	free(st->layers);
	free(st->chain_id);
	free(st->key);
	free(st->base_id);
	df_stage_env_release(&st->se);
	memset(st, 0, sizeof(*st));
}

static void set_key(struct bld_state *st, char *key)
{
	free(st->key);
	st->key = key;
}

/* Wraps an error of the step with its location and text. */
static int step_fail(struct bld_state *st, const struct df_instr *x, kn_error **err)
{
	(void)st;
	if (err && *err && !(*err)->file) {
		(*err)->file = xstrdup(x->file ? x->file : "Dockerfile");
		(*err)->line = x->line;
	}
	return -1;
}

/* ---- images (FROM, --from=image) -------------------------------------------------------------- */

static int image_get_locked(struct bld *b, const char *ref, const struct store_image **ret, kn_error **err);

/* Images are resolved (and pulled) once per build, under b->mu, with the main store handle. */
static int image_get(struct bld *b, const char *ref, const struct store_image **ret, kn_error **err)
{
	int r;

	pthread_mutex_lock(&b->mu);
	r = image_get_locked(b, ref, ret, err);
	pthread_mutex_unlock(&b->mu);
	return r;
}

static int image_get_locked(struct bld *b, const char *ref, const struct store_image **ret, kn_error **err)
{
	struct store_image *img = NULL;
	kn_error *e = NULL;
	const char *name = ref;
	int r;

	for (size_t i = 0; i < b->n_ext; i++) {
		if (!strcmp(b->ext[i].ref, name)) {
			*ret = b->ext[i].img;
			return 0;
		}
	}
	/* --build-context: a directory or layout image, or another reference for this name. */
	r = bld_named_context(b, name, &img, &ref, err);
	if (r < 0)
		return -1;
	if (r == 1)
		goto found;
	if (b->o->pull != BLD_PULL_ALWAYS && store_image_resolve(b->store, ref, &img, &e) == 0)
		goto found;
	if (e && e->code != ENOENT) {
		kn_error_propagate(err, e);
		return -1;
	}
	kn_error_free(e);
	e = NULL;
	if (b->o->pull == BLD_PULL_NEVER)
		return kn_error_set(err, 0, "image '%s' is not in the local store (and --pull=never)", ref);
	switch (rcache_image(b, ref, &img, err)) {
	case 1:
		goto found;
	case -1:
		return kn_error_wrap(err, "failed to resolve source metadata for '%s'", ref);
	default:
		break;
	}
	{
		struct reg_pull_opts po;
		struct reg_pull_result pr = { 0 };

		reg_pull_opts_init(&po);
		po.store = b->store;
		po.root = b->o->root;
		po.policy = b->o->pull == BLD_PULL_ALWAYS ? REG_PULL_ALWAYS : REG_PULL_MISSING;
		bld_info(b, "pulling %s", ref);
		if (reg_pull(ref, &po, &pr, err) < 0)
			return kn_error_wrap(err, "failed to resolve source metadata for '%s'", ref);
		if (store_image_resolve(b->store, pr.name ? pr.name : ref, &img, err) < 0) {
			reg_pull_result_release(&pr);
			return -1;
		}
		reg_pull_result_release(&pr);
	}
found:
	KN_GROW(b->ext, b->alloc_ext, b->n_ext + 1);
	b->ext[b->n_ext].ref = xstrdup(name);
	b->ext[b->n_ext].img = img;
	b->n_ext++;
	*ret = img;
	return 0;
}

/* ---- instruction keys -------------------------------------------------------------------------- */

static void add_strv(struct kn_buf *k, const char *tag, char *const *v)
{
	kn_buf_addf(k, "%s[", tag);
	for (size_t i = 0; v && v[i]; i++)
		kn_buf_addf(k, "%zu:%s,", strlen(v[i]), v[i]);
	kn_buf_adds(k, "]\n");
}

/* Every expanded field of a metadata instruction, unambiguously. */
static char *meta_key_text(const struct df_instr *x)
{
	struct kn_buf k = KN_BUF_INIT;

	kn_buf_addf(&k, "%s\n", df_instr_kind_name(x->kind));
	switch (x->kind) {
	case DF_INSTR_ENV:
	case DF_INSTR_ARG:
	case DF_INSTR_LABEL:
		for (size_t i = 0; i < x->kv.n; i++)
			kn_buf_addf(&k, "%zu:%s=%d:%s\n", strlen(x->kv.kvs[i].key), x->kv.kvs[i].key,
				    x->kv.kvs[i].value != NULL, x->kv.kvs[i].value ? x->kv.kvs[i].value : "");
		break;
	case DF_INSTR_EXPOSE:
		add_strv(&k, "ports", x->expose.ports);
		break;
	case DF_INSTR_WORKDIR:
		kn_buf_addf(&k, "%s\n", x->workdir.path);
		break;
	case DF_INSTR_USER:
		kn_buf_addf(&k, "%s\n", x->user.user);
		break;
	case DF_INSTR_VOLUME:
		add_strv(&k, "paths", x->volume.paths);
		break;
	case DF_INSTR_CMD:
	case DF_INSTR_ENTRYPOINT:
		kn_buf_addf(&k, "json=%d\n", x->cmd.json);
		add_strv(&k, "argv", x->cmd.argv);
		break;
	case DF_INSTR_SHELL:
		add_strv(&k, "argv", x->shell.argv);
		break;
	case DF_INSTR_STOPSIGNAL:
		kn_buf_addf(&k, "%s\n", x->stopsignal.signal);
		break;
	case DF_INSTR_HEALTHCHECK:
		kn_buf_addf(&k, "none=%d json=%d %lld %lld %lld %lld %d\n", x->healthcheck.none,
			    x->healthcheck.test.json, x->healthcheck.interval, x->healthcheck.timeout,
			    x->healthcheck.start_period, x->healthcheck.start_interval, x->healthcheck.retries);
		add_strv(&k, "test", x->healthcheck.test.argv);
		break;
	case DF_INSTR_ONBUILD:
		kn_buf_addf(&k, "%s\n", x->onbuild.expression);
		break;
	case DF_INSTR_MAINTAINER:
		kn_buf_addf(&k, "%s\n", x->maintainer.name);
		break;
	case DF_INSTR_FROM:
	case DF_INSTR_RUN:
	case DF_INSTR_COPY:
	case DF_INSTR_ADD:
		break;
	}
	return kn_buf_detach(&k);
}

/* ---- steps ------------------------------------------------------------------------------------ */

static int step_meta(struct bld_state *st, const struct df_instr *x, kn_error **err)
{
	_cleanup_free_ char *text = meta_key_text(x);
	char *key = cache_key(st->key, text, NULL, 0);
	int r = 0;

	if (!bld_no_cache(st))
		r = cache_lookup(st, key, err);
	if (r < 0) {
		free(key);
		return -1;
	}
	if (r == 1) {
		set_key(st, key);
		if (x->kind == DF_INSTR_CMD)
			st->cmd_set = true;
		return 1;
	}
	if (cfg_apply(st, x, err) < 0) {
		free(key);
		return step_fail(st, x, err);
	}
	set_key(st, key);
	return cache_store(st, key, err);
}

static const struct df_stage *stage_by_ref(const struct df_plan *plan, size_t before, const char *ref)
{
	char *end;
	long idx;

	for (size_t i = 0; i < before; i++)
		if (plan->stages[i].name && !strcasecmp(plan->stages[i].name, ref))
			return &plan->stages[i];
	errno = 0;
	idx = strtol(ref, &end, 10);
	if (!errno && *ref && !*end && idx >= 0 && (size_t)idx < before)
		return &plan->stages[idx];
	return NULL;
}

/*
 * Resolves the --from of COPY or RUN --mount: an earlier stage, which must have been built, else
 * an image. On success exactly one of *ret_stage and *ret_img is set.
 */
static int resolve_from(struct bld_state *st, const char *ref, const struct bld_stage_result **ret_stage,
			const struct store_image **ret_img, kn_error **err)
{
	const struct df_stage *fs = stage_by_ref(st->b->plan, st->stage->index, ref);

	*ret_stage = NULL;
	*ret_img = NULL;
	if (!fs) {
		struct kn_buf names = KN_BUF_INIT;

		if (image_get(st->b, ref, ret_img, err) == 0)
			return 0;
		/* Most often a misspelt stage: say so first, and which stages there are. */
		for (size_t i = 0; i < st->stage->index; i++) {
			const char *n = st->b->plan->stages[i].name;

			if (n)
				kn_buf_addf(&names, "%s%s", i ? ", " : "", n);
			else
				kn_buf_addf(&names, "%s%zu", i ? ", " : "", i);
		}
		kn_error_wrap(err, "no stage named '%s' (%s%s), and not an image", ref,
			      names.len ? "the stages before this one: " : "no stage comes before this one",
			      names.buf);
		kn_buf_release(&names);
		return -1;
	}
	if (!st->b->stages[fs->index].built)
		return kn_error_set(err, EINVAL, "stage '%s' was not built", ref);
	*ret_stage = &st->b->stages[fs->index];
	return 0;
}

/* Resolves --chown through the image's passwd/group (lowerdirs); numbers need no lookup. */
static int resolve_chown(const char *chown_spec, char *const *lowerdirs, uid_t *uid, gid_t *gid,
			 kn_error **err)
{
	struct sandbox_user u = { 0 };
	_cleanup_free_ char *spec = xstrdup(chown_spec);
	char *colon = strchr(spec, ':');
	size_t n = kn_strv_len(lowerdirs);

	/* BuildKit: a user number alone is also the group number; a user name alone brings its
	 * primary group from the image's /etc/passwd. */
	if (!colon && spec[0] && strspn(spec, "0123456789") == strlen(spec)) {
		if (sandbox_user_lookup((const char *const *)lowerdirs, n, n ? NULL : "/nonexistent", spec,
					&u, err) < 0)
			return -1;
		*uid = u.uid;
		*gid = (gid_t)u.uid;
		sandbox_user_release(&u);
		return 0;
	}
	if (sandbox_user_lookup((const char *const *)lowerdirs, n, n ? NULL : "/nonexistent", spec, &u, err) < 0)
		return -1;
	*uid = u.uid;
	*gid = u.gid;
	sandbox_user_release(&u);
	return 0;
}

static bool is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

static const struct df_heredoc *find_heredoc(const struct df_instr *x, const char *src)
{
	const char *p = src + 2;
	_cleanup_free_ char *name = NULL;
	size_t n;

	if (*p == '-')
		p++;
	if (*p == '"' || *p == '\'')
		p++;
	n = strcspn(p, "\"'");
	name = xstrndup(p, n);
	for (size_t i = 0; i < x->copy.n_heredocs; i++)
		if (!strcmp(x->copy.heredocs[i].name, name))
			return &x->copy.heredocs[i];
	return NULL;
}

/* The destination made absolute against WORKDIR and cleaned; a trailing '/' (or a final ".")
 * marks a directory and is kept. */
static char *copy_dest(const struct image_config *c, const char *dest)
{
	const char *wd = c->working_dir && *c->working_dir ? c->working_dir : "/";
	size_t n = strlen(dest);
	bool dir = (n && dest[n - 1] == '/') || !strcmp(dest, ".") ||
		   (n >= 2 && !strcmp(dest + n - 2, "/."));
	_cleanup_free_ char *joined = dest[0] == '/' ? xstrdup(dest) : xasprintf("%s/%s", wd, dest);
	struct kn_buf b = KN_BUF_INIT;
	struct kn_strv parts = KN_STRV_INIT;
	char *save = NULL;

	for (char *p = strtok_r(joined, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (!strcmp(p, "."))
			continue;
		if (!strcmp(p, "..")) {
			if (parts.n) {
				free(parts.v[--parts.n]);
				parts.v[parts.n] = NULL;
			}
			continue;
		}
		kn_strv_push(&parts, p);
	}
	for (size_t i = 0; i < parts.n; i++)
		kn_buf_addf(&b, "/%s", parts.v[i]);
	if (!parts.n || dir)
		kn_buf_addch(&b, '/');
	kn_strv_release(&parts);
	return kn_buf_detach(&b);
}

static int step_copy(struct bld_state *st, const struct df_instr *x, kn_error **err)
{
	struct bld *b = st->b;
	struct cp_opts co = { 0 };
	struct cp_list list = { 0 };
	struct kn_strv srcs = KN_STRV_INIT, urls = KN_STRV_INIT;
	_cleanup_free_ char *dest = copy_dest(st->config, x->copy.dest);
	_cleanup_free_ char *text = NULL, *digest = NULL, *tmp = NULL, *created_by = NULL;
	_cleanup_strv_ char **lowerdirs = NULL;
	_cleanup_strv_ char **src_lowerdirs = NULL;
	struct store_hash *h = store_hash_new("sha256", NULL);
	const struct bld_stage_result *from_stage = NULL;
	const struct store_image *from_img = NULL;
	char *key = NULL;
	int ret = -1, r;
	bool from_ctx = !x->copy.from;

	co.add = x->kind == DF_INSTR_ADD;
	co.what = co.add ? "ADD" : "COPY";
	co.excludes = x->copy.excludes;
	co.parents = x->copy.parents;
	co.link = x->copy.link;
	co.ctx_strict = from_ctx;
	co.ignore = b->ignore;
	if (x->copy.chmod) {
		if (df_chmod_parse(x->copy.chmod, &co.chmod, err) < 0)
			goto out_fail;
		co.have_chmod = true;
	}
	for (size_t i = 0; x->copy.sources && x->copy.sources[i]; i++) {
		const char *s = x->copy.sources[i];

		if (!strncmp(s, "<<", 2) && find_heredoc(x, s))
			continue;
		if (is_url(s)) {
			if (!co.add) {
				kn_error_set(err, EINVAL, "source can't be a URL for COPY");
				goto out_fail;
			}
			kn_strv_push(&urls, s);
			continue;
		}
		kn_strv_push(&srcs, s);
	}
	if (srcs.n + urls.n + x->copy.n_heredocs > 1 && dest[strlen(dest) - 1] != '/') {
		kn_error_set(err, EINVAL,
			     "When using %s with more than one source file, the destination must be a directory and end with a /",
			     co.what);
		goto out_fail;
	}
	store_hash_update(h, dest, strlen(dest) + 1);
	if (from_ctx) {
		if (srcs.n && cp_resolve(b->ctx_fd, srcs.v, srcs.n, dest, &co, &list, err) < 0)
			goto out_fail;
	} else {
		if (resolve_from(st, x->copy.from, &from_stage, &from_img, err) < 0)
			goto out_fail;
		if (from_stage) {
			store_hash_update(h, "stage:", 6);
			store_hash_update(h, from_stage->key, strlen(from_stage->key));
		} else {
			store_hash_update(h, "image:", 6);
			store_hash_update(h, from_img->id, strlen(from_img->id));
		}
		for (size_t i = 0; i < srcs.n; i++)
			store_hash_update(h, srcs.v[i], strlen(srcs.v[i]) + 1);
		store_hash_update(h, &co.have_chmod, 1);
		for (size_t i = 0; co.excludes && co.excludes[i]; i++)
			store_hash_update(h, co.excludes[i], strlen(co.excludes[i]) + 1);
	}
	/* heredoc sources */
	for (size_t i = 0; i < x->copy.n_heredocs; i++) {
		const struct df_heredoc *hd = &x->copy.heredocs[i];
		struct cp_entry *e;
		char *content = df_heredoc_chomp(hd);

		if (hd->expand) {
			struct df_env env = DF_ENV_INIT;
			struct df_expansion xp = { 0 };

			df_stage_env_lookup_env(&st->se, &env);
			r = df_expand(content, &env, x->escape, DF_LEX_SKIP_QUOTES, &xp, err);
			df_env_release(&env);
			free(content);
			if (r < 0)
				goto out_fail;
			content = steal_ptr(&xp.result);
			df_expansion_release(&xp);
		}
		KN_GROW(list.v, list.alloc, list.n + 1);
		e = &list.v[list.n++];
		memset(e, 0, sizeof(*e));
		e->kind = CP_DATA;
		e->fd = -1;
		e->src = xstrdup(hd->name);
		e->data = content;
		e->len = strlen(content);
		e->dst = dest[strlen(dest) - 1] == '/' ? xasprintf("%s%s", dest, hd->name) : xstrdup(dest);
	}
	/* URL sources: downloaded now, their content hashed */
	for (size_t i = 0; i < urls.n; i++) {
		struct cp_entry *e;
		int fd = -1;
		char *name = NULL, *dg = NULL;
		int64_t mtime = 0;

		if (cp_download(st->store, urls.v[i], x->copy.checksum, &fd, &name, &mtime, &dg, err) < 0)
			goto out_fail;
		KN_GROW(list.v, list.alloc, list.n + 1);
		e = &list.v[list.n++];
		memset(e, 0, sizeof(*e));
		e->kind = CP_FD;
		e->fd = fd;
		e->src = name;
		e->data = dg;
		e->mtime = mtime;
		e->dst = dest[strlen(dest) - 1] == '/' ? xasprintf("%s%s", dest, name) : xstrdup(dest);
	}
	pthread_mutex_lock(&b->mu);
	r = cp_digest(b->ctx_fd, &list, b->statcache, h, err);
	pthread_mutex_unlock(&b->mu);
	if (r < 0)
		goto out_fail;
	digest = store_hash_final(h);
	store_hash_free(h);
	h = NULL;
	text = cfg_created_by(st, x, NULL);
	key = cache_key(st->key, text, digest, strlen(digest));
	r = bld_no_cache(st) ? 0 : cache_lookup(st, key, err);
	if (r < 0)
		goto out_fail;
	if (r == 1) {
		set_key(st, steal_ptr(&key));
		ret = 1;
		goto out;
	}

	/* Run it. */
	if (bld_state_lowerdirs(st, &lowerdirs, err) < 0)
		goto out_fail;
	if (x->copy.chown) {
		if (resolve_chown(x->copy.chown, lowerdirs, &co.uid, &co.gid, err) < 0)
			goto out_fail;
		co.have_chown = true;
	}
	tmp = bld_step_tmpdir(st, err);
	if (!tmp)
		goto out_fail;
	{
		_cleanup_free_ char *upper = kn_path_join(tmp, "upper"), *work = kn_path_join(tmp, "work");
		_cleanup_free_ char *mnt = kn_path_join(tmp, "mnt"), *src_mnt = kn_path_join(tmp, "src");
		struct cp_job job = { 0 };
		bool overlay = !co.link && lowerdirs[0];

		if (mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0 || mkdir(mnt, 0755) < 0 ||
		    mkdir(src_mnt, 0755) < 0) {
			kn_error_errno(err, "cannot create step directories in '%s'", tmp);
			goto out_fail;
		}
		job.co = &co;
		job.dest = dest;
		job.lowerdirs = lowerdirs;
		job.upper = upper;
		job.work = work;
		job.mnt = mnt;
		job.src_mnt = src_mnt;
		job.src_fd = -1;
		if (from_ctx) {
			job.list = &list;
			job.src_fd = b->ctx_fd;
		} else {
			job.list = &list; /* heredocs and URLs */
			job.sources = srcs.v;
			job.n_sources = srcs.n;
			if (from_stage) {
				if (from_stage->n_layers &&
				    (rcache_fetch(b, st->store, from_stage->layers, from_stage->n_layers, err) < 0 ||
				     snapshot_prepare(st->store, from_stage->layers, from_stage->config->diff_ids,
						     from_stage->n_layers, &src_lowerdirs, NULL, err) < 0))
					goto out_fail;
			} else if (from_img->manifest.n_layers &&
				   (rcache_fetch(b, st->store, from_img->manifest.layers, from_img->manifest.n_layers, err) < 0 ||
				    snapshot_prepare(st->store, from_img->manifest.layers, from_img->config->diff_ids,
						    from_img->manifest.n_layers, &src_lowerdirs, NULL, err) < 0)) {
				goto out_fail;
			}
			job.src_lowerdirs = src_lowerdirs;
		}
		if (cp_run(&job, err) < 0)
			goto out_fail;
		created_by = cfg_created_by(st, x, NULL);
		if (bld_commit_upper(st, upper, lowerdirs, overlay, created_by, err) < 0)
			goto out_fail;
	}
	set_key(st, steal_ptr(&key));
	if (cache_store(st, st->key, err) < 0)
		goto out_fail;
	ret = 0;
	goto out;
out_fail:
	step_fail(st, x, err);
	ret = -1;
out:
	if (tmp)
		(void)kn_rm_rf(tmp, NULL);
	for (size_t i = 0; i < list.n; i++)
		if (list.v[i].kind == CP_FD && list.v[i].fd >= 0)
			close(list.v[i].fd);
	cp_list_release(&list);
	if (co.have_chmod)
		df_chmod_release(&co.chmod);
	kn_strv_release(&srcs);
	kn_strv_release(&urls);
	store_hash_free(h);
	free(key);
	return ret;
}

static int step_workdir(struct bld_state *st, const struct df_instr *x, kn_error **err)
{
	struct bld *b = st->b;
	_cleanup_free_ char *text = NULL, *tmp = NULL, *created_by = NULL;
	_cleanup_strv_ char **lowerdirs = NULL;
	char *key;
	int r;

	if (cfg_apply(st, x, err) < 0)
		return step_fail(st, x, err);
	text = xasprintf("WORKDIR\n%s\n%s\n", st->config->working_dir, st->config->user ? st->config->user : "");
	key = cache_key(st->key, text, NULL, 0);
	r = bld_no_cache(st) ? 0 : cache_lookup(st, key, err);
	if (r != 0) {
		if (r == 1)
			set_key(st, key);
		else
			free(key);
		return r;
	}
	created_by = cfg_created_by(st, x, NULL);
	if (!strcmp(st->config->working_dir, "/")) { /* nothing to create: no layer, as in BuildKit */
		cfg_add_history(st, created_by, true);
		set_key(st, key);
		return cache_store(st, key, err);
	}
	if (bld_state_lowerdirs(st, &lowerdirs, err) < 0)
		goto fail;
	tmp = bld_step_tmpdir(st, err);
	if (!tmp)
		goto fail;
	{
		_cleanup_free_ char *upper = kn_path_join(tmp, "upper"), *work = kn_path_join(tmp, "work");
		_cleanup_free_ char *mnt = kn_path_join(tmp, "mnt");
		struct cp_opts co = { 0 };
		struct cp_list list = { 0 };
		struct cp_entry *e;
		struct cp_job job = { 0 };
		int rr;

		/* The directory belongs to USER; BuildKit makes it root's when the image does not
		 * know that user. */
		if (st->config->user && *st->config->user) {
			kn_error *uerr = NULL;

			co.have_chown = resolve_chown(st->config->user, lowerdirs, &co.uid, &co.gid, &uerr) == 0;
			kn_error_free(uerr);
		}
		if (mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0 || mkdir(mnt, 0755) < 0) {
			kn_error_errno(err, "cannot create step directories in '%s'", tmp);
			goto fail;
		}
		KN_GROW(list.v, list.alloc, 1);
		e = &list.v[list.n++];
		memset(e, 0, sizeof(*e));
		e->kind = CP_MKDIR;
		e->fd = -1;
		e->dst = xstrdup(st->config->working_dir);
		job.co = &co;
		job.list = &list;
		job.src_fd = b->ctx_fd;
		job.lowerdirs = lowerdirs;
		job.upper = upper;
		job.work = work;
		job.mnt = mnt;
		job.src_mnt = mnt;
		job.dest = "/";
		rr = cp_run(&job, err);
		cp_list_release(&list);
		if (rr < 0)
			goto fail;
		if (bld_commit_upper(st, upper, lowerdirs, lowerdirs[0] != NULL, created_by, err) < 0)
			goto fail;
	}
	(void)kn_rm_rf(tmp, NULL);
	set_key(st, key);
	return cache_store(st, key, err);
fail:
	if (tmp)
		(void)kn_rm_rf(tmp, NULL);
	free(key);
	return step_fail(st, x, err);
}

/* The RUN argv: exec form as is; shell form through SHELL, heredocs inlined for the shell. */
static char **run_argv(const struct bld_state *st, const struct df_instr *x)
{
	const struct df_cmdline *cl = &x->run.cmd;
	struct df_cmdline tmp = *cl;
	struct kn_buf script = KN_BUF_INIT;
	char *one[2] = { NULL, NULL };
	char **argv;

	if (cl->json || !cl->n_heredocs)
		return cfg_command_argv(st->config, cl);
	{
		const char *c = cl->argv && cl->argv[0] ? cl->argv[0] : "";
		const char *p = c;

		while (*p == ' ' || *p == '\t')
			p++;
		/* A lone "<<EOF": the heredoc is the script. */
		if (cl->n_heredocs == 1 && !strncmp(p, "<<", 2) && !strpbrk(p, " \t")) {
			char *body = df_heredoc_chomp(&cl->heredocs[0]);

			kn_buf_adds(&script, body);
			free(body);
		} else {
			kn_buf_adds(&script, c);
			kn_buf_addch(&script, '\n');
			for (size_t i = 0; i < cl->n_heredocs; i++) {
				kn_buf_adds(&script, cl->heredocs[i].content);
				if (script.len && script.buf[script.len - 1] != '\n')
					kn_buf_addch(&script, '\n');
				kn_buf_addf(&script, "%s\n", cl->heredocs[i].name);
			}
		}
	}
	one[0] = script.buf;
	tmp.argv = one;
	tmp.json = false;
	argv = cfg_command_argv(st->config, &tmp);
	kn_buf_release(&script);
	return argv;
}

/* The digest of what a context bind mount shows (after .dockerignore). */
static int bind_digest(struct bld *b, const char *source, char **ret, kn_error **err)
{
	struct cp_opts co = { 0 };
	struct cp_list l = { 0 };
	char *srcs[2] = { (char *)source, NULL };
	struct store_hash *h = store_hash_new("sha256", NULL);
	int r;

	co.ctx_strict = true;
	co.ignore = b->ignore;
	co.what = "RUN --mount";
	r = cp_resolve(b->ctx_fd, srcs, 1, "/", &co, &l, err);
	if (r == 0) {
		pthread_mutex_lock(&b->mu);
		r = cp_digest(b->ctx_fd, &l, b->statcache, h, err);
		pthread_mutex_unlock(&b->mu);
	}
	cp_list_release(&l);
	if (r == 0)
		*ret = store_hash_final(h);
	store_hash_free(h);
	return r;
}

/*
 * RUN --mount=type=bind,from=STAGE|IMAGE: the source ("/" by default) is shown straight from the
 * stage's or image's snapshots, nothing copied: a directory as the overlay of that subtree in
 * every layer holding it (sm->lowerdirs, kept alive in *ret_layers), a file as a bind of the
 * layer file that is visible (sm->source, kept alive in owned). An empty image (FROM scratch)
 * shows an empty directory made under tmp.
 */
static int bind_from(struct bld_state *st, const char *tmp, size_t i, const struct bld_stage_result *sr,
		     const struct store_image *img, const char *from, const char *source,
		     struct sandbox_mount *sm, char ***ret_layers, struct kn_strv *owned, kn_error **err)
{
	_cleanup_strv_ char **lowerdirs = NULL, **paths = NULL;
	_cleanup_free_ int *fds = NULL;
	struct sandbox_walk w = { 0 };
	const char *src = source ? source : "/";
	size_t n = 0;
	struct stat stt;
	int r = -1;

	if (sr && sr->n_layers &&
	    (rcache_fetch(st->b, st->store, sr->layers, sr->n_layers, err) < 0 ||
	     snapshot_prepare(st->store, sr->layers, sr->config->diff_ids, sr->n_layers, &lowerdirs, NULL, err) < 0))
		return -1;
	if (img && img->manifest.n_layers &&
	    (rcache_fetch(st->b, st->store, img->manifest.layers, img->manifest.n_layers, err) < 0 ||
	     snapshot_prepare(st->store, img->manifest.layers, img->config->diff_ids, img->manifest.n_layers,
			      &lowerdirs, NULL, err) < 0))
		return -1;
	n = kn_strv_len(lowerdirs);
	fds = xcalloc(n + 1, sizeof(*fds));
	for (size_t k = 0; k < n; k++)
		fds[k] = -1;
	for (size_t k = 0; k < n; k++) {
		fds[k] = open(lowerdirs[k], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fds[k] < 0) {
			kn_error_errno(err, "open snapshot '%s'", lowerdirs[k]);
			goto out;
		}
	}
	if (sandbox_layers_walk(fds, n, src, &w) < 0) {
		kn_error_errno(err, "bind mount source '%s' in '%s'", src, from);
		goto out;
	}
	if (!w.exists) {
		kn_error_set(err, ENOENT, "bind mount source '%s' not found in '%s'", src, from);
		goto out;
	}
	if (!*w.resolved) {
		/* The whole root. */
		if (n == 0) {
			char *dir = xasprintf("%s/bind-%zu", tmp, i);

			if (mkdir(dir, 0755) < 0) {
				kn_error_errno(err, "cannot create '%s'", dir);
				free(dir);
				goto out;
			}
			kn_strv_push_owned(owned, dir);
			sm->source = owned->v[owned->n - 1];
		} else {
			sm->lowerdirs = (const char *const *)lowerdirs;
			sm->n_lowerdirs = n;
			*ret_layers = steal_ptr(&lowerdirs);
		}
		r = 0;
		goto out;
	}
	if (sandbox_layers_paths((const char *const *)lowerdirs, n, w.resolved, &paths, err) < 0)
		goto out;
	if (!paths[0] || lstat(paths[0], &stt) < 0) {
		kn_error_set(err, ENOENT, "bind mount source '%s' not found in '%s'", src, from);
		goto out;
	}
	if (S_ISDIR(stt.st_mode)) {
		sm->lowerdirs = (const char *const *)paths;
		sm->n_lowerdirs = kn_strv_len(paths);
		*ret_layers = steal_ptr(&paths);
	} else {
		kn_strv_push(owned, paths[0]);
		sm->source = owned->v[owned->n - 1];
	}
	r = 0;
out:
	for (size_t k = 0; k < n; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	sandbox_walk_release(&w);
	return r;
}

/* A context bind mount when .dockerignore applies: the included files copied to tmp/bind-N. */
static int bind_ctx(struct bld_state *st, const char *tmp, size_t i, const char *source, struct kn_strv *owned,
		    kn_error **err)
{
	struct bld *b = st->b;
	_cleanup_free_ char *dir = xasprintf("%s/bind-%zu", tmp, i), *mnt = xasprintf("%s/bind-%zu-src", tmp, i);
	char *srcs[2] = { (char *)(source ? source : "."), NULL };
	char *none[1] = { NULL };
	struct cp_opts co = { 0 };
	struct cp_list l = { 0 };
	struct cp_job job = { 0 };
	int r;

	if (mkdir(dir, 0755) < 0 || mkdir(mnt, 0755) < 0)
		return kn_error_errno(err, "cannot create '%s'", dir);
	co.link = true;
	co.ctx_strict = true;
	co.ignore = b->ignore;
	co.what = "RUN --mount";
	if (cp_resolve(b->ctx_fd, srcs, 1, "/", &co, &l, err) < 0) {
		cp_list_release(&l);
		return -1;
	}
	job.co = &co;
	job.list = &l;
	job.dest = "/";
	job.src_fd = b->ctx_fd;
	job.lowerdirs = none;
	job.upper = dir;
	job.work = mnt;
	job.mnt = mnt;
	job.src_mnt = mnt;
	r = cp_run(&job, err);
	if (r == 0 && l.n == 1 && l.v[0].kind == CP_FILE)
		kn_strv_push_owned(owned, xasprintf("%s%s", dir, l.v[0].dst)); /* a single file */
	else if (r == 0)
		kn_strv_push(owned, dir);
	cp_list_release(&l);
	if (r < 0)
		return kn_error_wrap(err, "bind mount of '%s'", srcs[0]);
	return 0;
}

/*
 * A bind,rw of a single regular file: the command may write to it, so it is given a copy under tmp
 * (thrown away with the step) instead of the read-only mount the sandbox gives a file whose
 * writes are to be discarded. Directories keep their throwaway overlay.
 */
static int bind_rw_file(const char *tmp, size_t i, struct sandbox_mount *sm, struct kn_strv *owned,
			kn_error **err)
{
	_cleanup_close_ int in = -1, out = -1;
	char *copy;
	struct stat stt;

	in = open(sm->source, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (in < 0 && (errno == ELOOP || errno == ENXIO || errno == EISDIR))
		return 0;
	if (in < 0)
		return kn_error_errno(err, "bind mount source '%s'", sm->source);
	if (fstat(in, &stt) < 0)
		return kn_error_errno(err, "bind mount source '%s'", sm->source);
	if (!S_ISREG(stt.st_mode))
		return 0;
	copy = xasprintf("%s/bind-%zu-rw", tmp, i);
	kn_strv_push_owned(owned, copy);
	out = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, stt.st_mode & 07777);
	if (out < 0)
		return kn_error_errno(err, "cannot create '%s'", copy);
	if (copy_fd_data(in, out, sm->source, err) < 0)
		return -1;
	if (fchown(out, stt.st_uid, stt.st_gid) < 0 || fchmod(out, stt.st_mode & 07777) < 0)
		return kn_error_errno(err, "cannot set the owner of '%s'", copy);
	sm->source = copy;
	sm->discard_writes = false;
	return 0;
}

static const struct bld_secret *find_secret(const struct bld *b, const char *id)
{
	for (size_t i = 0; i < b->n_secrets; i++)
		if (!strcmp(b->secrets[i].id, id))
			return &b->secrets[i];
	return NULL;
}

static int step_run(struct bld_state *st, const struct df_instr *x, kn_error **err)
{
	struct bld *b = st->b;
	_cleanup_strv_ char **argv = run_argv(st, x);
	_cleanup_strv_ char **env = NULL;
	_cleanup_strv_ char **lowerdirs = NULL;
	_cleanup_free_ char *tmp = NULL, *created_by = NULL;
	struct kn_strv envv = KN_STRV_INIT;
	struct df_env lookup;
	struct kn_strv owned = KN_STRV_INIT; /* paths kept alive for the mounts */
	struct kn_buf k = KN_BUF_INIT;
	struct sandbox_mount *mounts = NULL;
	_cleanup_free_ size_t *owned_idx = NULL;
	_cleanup_free_ const struct bld_stage_result **from_stage = NULL;
	_cleanup_free_ const struct store_image **from_img = NULL;
	_cleanup_free_ bool *ctx_filtered = NULL;
	char ***mount_layers = NULL; /* bind from=: the layers each mount shows */
	_cleanup_free_ const struct df_mount **dfm = NULL; /* the --mount of each mounts[i] */
	size_t n_mounts = 0;
	int memfds[16], n_memfds = 0;
	char *key = NULL;
	int status = 0, r, ret = -1;

	/* ENV and declared ARGs, the later declaration winning; then undeclared proxy args */
	df_stage_env_lookup_env(&st->se, &lookup);
	for (size_t i = 0; i < st->se.env.n; i++) {
		const char *v = df_env_get(&lookup, st->se.env.keys[i]);

		kn_strv_pushf(&envv, "%s=%s", st->se.env.keys[i], v ? v : st->se.env.values[i]);
	}
	for (size_t i = 0; i < st->se.args.n; i++) {
		const char *v = df_env_get(&lookup, st->se.args.keys[i]);

		if (!df_env_get(&st->se.env, st->se.args.keys[i]))
			kn_strv_pushf(&envv, "%s=%s", st->se.args.keys[i], v ? v : st->se.args.values[i]);
	}
	df_env_release(&lookup);
	/* As BuildKit: SSH_AUTH_SOCK names the first ssh mount unless the stage sets it. */
	for (size_t i = 0; i < x->run.n_mounts; i++) {
		if (x->run.mounts[i].type != DF_MOUNT_SSH)
			continue;
		if (!df_env_get(&st->se.env, "SSH_AUTH_SOCK"))
			kn_strv_pushf(&envv, "SSH_AUTH_SOCK=%s", x->run.mounts[i].target);
		break;
	}
	env = kn_strv_detach(&envv);

	if (x->run.security == DF_SECURITY_INSECURE) {
		kn_error_set(err, 0, "RUN --security=insecure is not allowed (kiln build grants no security.insecure entitlement)");
		goto fail;
	}
	kn_buf_adds(&k, "RUN\n");
	add_strv(&k, "argv", argv);
	add_strv(&k, "env", env);
	kn_buf_addf(&k, "net=%d/%d security=%d\n", (int)x->run.network, (int)b->o->network, (int)x->run.security);
	/* As BuildKit's ExecOp meta: extra hosts and the shm size are part of the step. */
	if (b->extra_hosts)
		kn_buf_addf(&k, "hosts\n%s", b->extra_hosts);
	if (b->o->shm_size)
		kn_buf_addf(&k, "shm=%llu\n", b->o->shm_size);
	mounts = xcalloc(x->run.n_mounts + 1, sizeof(*mounts));
	owned_idx = xcalloc(x->run.n_mounts + 1, sizeof(*owned_idx));
	from_stage = xcalloc(x->run.n_mounts + 1, sizeof(*from_stage));
	from_img = xcalloc(x->run.n_mounts + 1, sizeof(*from_img));
	ctx_filtered = xcalloc(x->run.n_mounts + 1, sizeof(*ctx_filtered));
	mount_layers = xcalloc(x->run.n_mounts + 1, sizeof(*mount_layers));
	dfm = xcalloc(x->run.n_mounts + 1, sizeof(*dfm));
	for (size_t i = 0; i < x->run.n_mounts; i++) {
		const struct df_mount *m = &x->run.mounts[i];
		struct sandbox_mount *sm = &mounts[n_mounts];

		dfm[n_mounts] = m; /* (a skipped optional secret is overwritten by the next) */

		kn_buf_addf(&k, "mount %d %s %s %s %s %d %ld %ld %ld %llu\n", (int)m->type, m->target,
			    m->source ? m->source : "", m->from ? m->from : "", m->id ? m->id : "",
			    m->readonly, m->mode, m->uid, m->gid, m->size);
		switch (m->type) {
		case DF_MOUNT_BIND: {
			_cleanup_free_ char *real = NULL, *digest = NULL;
			char *p;

			if (m->from) {
				if (resolve_from(st, m->from, &from_stage[n_mounts], &from_img[n_mounts], err) < 0)
					goto fail;
				if (from_stage[n_mounts])
					kn_buf_addf(&k, "from-stage %s\n", from_stage[n_mounts]->key);
				else
					kn_buf_addf(&k, "from-image %s\n", from_img[n_mounts]->id);
				sm->type = SANDBOX_MOUNT_BIND;
				sm->target = m->target;
				sm->readonly = m->readonly;
				/* bind,rw: the command may write, nothing reaches the layers */
				sm->discard_writes = !m->readonly;
				n_mounts++;
				break;
			}
			p = kn_path_join(b->ctx_dir, m->source ? m->source : ".");
			real = realpath(p, NULL);
			free(p);
			if (!real || (strncmp(real, b->ctx_dir, strlen(b->ctx_dir)) ||
				      (real[strlen(b->ctx_dir)] && real[strlen(b->ctx_dir)] != '/'))) {
				kn_error_set(err, EPERM, "bind mount source '%s' is not inside the build context",
					     m->source ? m->source : ".");
				goto fail;
			}
			/* What the step sees is part of its key. */
			if (bind_digest(b, m->source ? m->source : ".", &digest, err) < 0)
				goto fail;
			kn_buf_addf(&k, "content %s\n", digest);
			if (b->ignore && df_ignore_count(b->ignore)) {
				/* Only what .dockerignore lets through: a filtered copy, made on a miss. */
				ctx_filtered[n_mounts] = true;
			} else {
				kn_strv_push(&owned, real);
				owned_idx[n_mounts] = owned.n;
			}
			sm->type = SANDBOX_MOUNT_BIND;
			sm->target = m->target;
			sm->readonly = m->readonly;
			/* bind,rw: writes land in a throwaway overlay, never in the context */
			sm->discard_writes = !m->readonly;
			n_mounts++;
			break;
		}
		case DF_MOUNT_CACHE: {
			_cleanup_free_ char *idh = store_digest_buf(m->id ? m->id : m->target,
								    strlen(m->id ? m->id : m->target));
			char *dir = xasprintf("%s/cache-mounts/%s", b->o->root, store_digest_hex(idh));

			if (kn_mkdir_p(dir, m->mode > 0 ? (mode_t)m->mode : 0755, err) < 0) {
				free(dir);
				goto fail;
			}
			if (m->uid >= 0 || m->gid >= 0)
				(void)chown(dir, m->uid >= 0 ? (uid_t)m->uid : 0, m->gid >= 0 ? (gid_t)m->gid : 0);
			kn_strv_push_owned(&owned, dir);
			owned_idx[n_mounts] = owned.n;
			sm->type = SANDBOX_MOUNT_BIND;
			sm->target = m->target;
			sm->readonly = false;
			n_mounts++;
			break;
		}
		case DF_MOUNT_TMPFS:
			sm->type = SANDBOX_MOUNT_TMPFS;
			sm->target = m->target;
			sm->size = m->size;
			n_mounts++;
			break;
		case DF_MOUNT_SECRET: {
			const char *id = m->id ? m->id : "";
			const struct bld_secret *s = find_secret(b, id);

			/* whether the secret is there changes what the step sees (not its content) */
			kn_buf_addf(&k, "secret %s %s\n", id, s ? "given" : "absent");
			if (!s) {
				if (m->required) {
					kn_error_set(err, ENOENT, "secret %s: not provided (use --secret id=%s,src=PATH)", id, id);
					goto fail;
				}
				break;
			}
			sm->type = SANDBOX_MOUNT_SECRET;
			sm->id = id;
			sm->target = m->target;
			sm->mode = m->mode >= 0 ? (mode_t)m->mode : 0400;
			sm->uid = m->uid >= 0 ? (uid_t)m->uid : 0;
			sm->gid = m->gid >= 0 ? (gid_t)m->gid : 0;
			if (s->src) {
				sm->source = s->src;
			} else {
				const char *val = getenv(s->env);
				int fd;

				if (!val || n_memfds >= 16) {
					kn_error_set(err, ENOENT, "secret %s: environment variable '%s' is not set", id, s->env);
					goto fail;
				}
				fd = memfd_create("kiln-secret", MFD_CLOEXEC);
				if (fd < 0 || kn_write_all(fd, val, strlen(val), err) < 0) {
					if (fd >= 0)
						close(fd);
					else
						kn_error_errno(err, "memfd_create");
					goto fail;
				}
				memfds[n_memfds++] = fd;
				kn_strv_push_owned(&owned, xasprintf("/proc/self/fd/%d", fd));
				owned_idx[n_mounts] = owned.n;
			}
			n_mounts++;
			break;
		}
		case DF_MOUNT_SSH: {
			const char *id = m->id ? m->id : "default";
			const char *sock = bld_ssh_socket(b, id);

			if (!sock) {
				if (m->required) {
					kn_error_set(err, 0, "no SSH key \"%s\" forwarded from the client (use --ssh %s)",
						     id, id);
					goto fail;
				}
				break;
			}
			if (m->uid > 0 || m->gid > 0) {
				kn_error_set(err, ENOTSUP,
					     "RUN --mount=type=ssh: uid and gid are not supported (the agent socket is "
					     "forwarded as it is, owned by root)");
				goto fail;
			}
			/* The agent's socket itself, bound at the target: the step talks to the agent. */
			sm->type = SANDBOX_MOUNT_BIND;
			sm->source = sock;
			sm->target = m->target;
			sm->readonly = false;
			n_mounts++;
			break;
		}
		}
	}
	/* Now that the owned vector no longer moves, point the mounts at its strings. */
	for (size_t i = 0; i < n_mounts; i++)
		if (owned_idx[i])
			mounts[i].source = owned.v[owned_idx[i] - 1];
	key = cache_key(st->key, k.buf, NULL, 0);
	r = bld_no_cache(st) ? 0 : cache_lookup(st, key, err);
	if (r < 0)
		goto fail;
	if (r == 1) {
		set_key(st, steal_ptr(&key));
		ret = 1;
		goto out;
	}
	if (bld_state_lowerdirs(st, &lowerdirs, err) < 0)
		goto fail;
	tmp = bld_step_tmpdir(st, err);
	if (!tmp)
		goto fail;
	/* Filtered context binds (copied), binds from another stage or an image (their layers). */
	for (size_t i = 0; i < n_mounts; i++) {
		if (ctx_filtered[i] && bind_ctx(st, tmp, i, dfm[i]->source, &owned, err) < 0)
			goto fail;
		if (ctx_filtered[i])
			mounts[i].source = owned.v[owned.n - 1];
		if ((from_stage[i] || from_img[i]) &&
		    bind_from(st, tmp, i, from_stage[i], from_img[i], dfm[i]->from, dfm[i]->source, &mounts[i],
			      &mount_layers[i], &owned, err) < 0)
			goto fail;
		if (mounts[i].discard_writes && !mounts[i].n_lowerdirs &&
		    bind_rw_file(tmp, i, &mounts[i], &owned, err) < 0)
			goto fail;
	}
	{
		_cleanup_free_ char *upper = kn_path_join(tmp, "upper"), *work = kn_path_join(tmp, "work");
		struct sandbox_spec spec;
		struct sandbox_rlimit rlimits[24];
		enum df_network net = x->run.network;

		if (mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0) {
			kn_error_errno(err, "cannot create step directories in '%s'", tmp);
			goto fail;
		}
		sandbox_spec_init(&spec);
		spec.lowerdirs = (const char *const *)lowerdirs;
		spec.n_lowerdirs = kn_strv_len(lowerdirs);
		spec.upperdir = upper;
		spec.workdir = work;
		spec.argv = (const char *const *)argv;
		spec.env = (const char *const *)env;
		spec.cwd = st->config->working_dir && *st->config->working_dir ? st->config->working_dir : "/";
		spec.user = st->config->user;
		spec.network = SANDBOX_NET_HOST;
		if (net == DF_NETWORK_NONE || (net == DF_NETWORK_DEFAULT && b->o->network == BLD_NETWORK_NONE))
			spec.network = SANDBOX_NET_NONE;
		spec.extra_hosts = b->extra_hosts;
		spec.shm_size = b->o->shm_size;
		spec.mounts = mounts;
		spec.n_mounts = n_mounts;
		spec.output_cb = bld_step_output;
		spec.output_data = st;
		spec.tmpdir = tmp;
		spec.rlimits = rlimits;
		spec.n_rlimits = bld_run_rlimits(b->o, rlimits, KN_ARRAY_SIZE(rlimits));
		spec.timeout_sec = b->o->run_timeout;
		if (sandbox_run(&spec, &status, err) < 0)
			goto fail;
		if (status != 0) {
			struct kn_buf cmd = KN_BUF_INIT;
			/* Rootless without subordinate IDs: a chown or USER may be why. */
			_cleanup_free_ char *hint = kn_userns_mapped_ids() == 1
							? kn_userns_unmapped_hint(KN_USERNS_SOME_ID)
							: NULL;

			for (size_t i = 0; argv[i]; i++)
				kn_buf_addf(&cmd, "%s%s", i ? " " : "", argv[i]);
			kn_error_set(err, 0, "%s: process \"%s\" did not complete successfully: exit code: %d%s",
				     st->step_text, cmd.buf, status, hint ? hint : "");
			kn_buf_release(&cmd);
			goto fail;
		}
		created_by = cfg_created_by(st, x, argv);
		if (bld_commit_upper(st, upper, lowerdirs, spec.n_lowerdirs > 0, created_by, err) < 0)
			goto fail;
	}
	set_key(st, steal_ptr(&key));
	if (cache_store(st, st->key, err) < 0)
		goto fail;
	ret = 0;
	goto out;
fail:
	step_fail(st, x, err);
	ret = -1;
out:
	if (tmp)
		(void)kn_rm_rf(tmp, NULL);
	for (int i = 0; i < n_memfds; i++)
		close(memfds[i]);
	free(mounts);
	for (size_t i = 0; mount_layers && i < n_mounts; i++)
		kn_strv_free(mount_layers[i]);
	free(mount_layers);
	kn_strv_release(&owned);
	kn_buf_release(&k);
	free(key);
	return ret;
}

/* ---- stages ----------------------------------------------------------------------------------- */

static int run_instr(struct bld_state *st, const struct df_instr *in, kn_error **err)
{
	_cleanup_(df_instr_freep) struct df_instr *x = NULL;
	_cleanup_free_ char *text = NULL;
	unsigned long long t0 = mono_ns();
	int r;

	st->step_index++;
	if (df_stage_env_expand(&st->se, in, &x, err) < 0)
		return -1;
	text = cfg_step_text(x);
	st->step_text = text;
	st_event_at(st, BLD_EV_STEP_START, text, 0, in, NULL);
	switch (x->kind) {
	case DF_INSTR_RUN:
		r = step_run(st, x, err);
		break;
	case DF_INSTR_COPY:
	case DF_INSTR_ADD:
		r = step_copy(st, x, err);
		break;
	case DF_INSTR_WORKDIR:
		r = step_workdir(st, x, err);
		break;
	case DF_INSTR_FROM:
		r = kn_error_set_at(err, x->file, x->line, 0, "unexpected FROM inside a stage");
		break;
	case DF_INSTR_CMD:
	case DF_INSTR_ENTRYPOINT:
	case DF_INSTR_SHELL:
	case DF_INSTR_ENV:
	case DF_INSTR_ARG:
	case DF_INSTR_LABEL:
	case DF_INSTR_EXPOSE:
	case DF_INSTR_USER:
	case DF_INSTR_VOLUME:
	case DF_INSTR_STOPSIGNAL:
	case DF_INSTR_HEALTHCHECK:
	case DF_INSTR_ONBUILD:
	case DF_INSTR_MAINTAINER:
	default:
		r = step_meta(st, x, err);
		break;
	}
	if (r < 0) {
		st_event_at(st, BLD_EV_STEP_ERROR, text, mono_ns() - t0, in, err ? *err : NULL);
		st->step_text = NULL;
		return -1;
	}
	st->step_text = NULL;
	if (x->kind == DF_INSTR_CMD)
		st->cmd_set = true;
	if (df_stage_env_apply(&st->se, x, err) < 0)
		return -1;
	if (r == 1) {
		st->step_text = text;
		st_event(st, BLD_EV_STEP_CACHED, text, 0);
	} else {
		st_event(st, BLD_EV_STEP_DONE, text, mono_ns() - t0);
	}
	st->step_text = NULL;
	return 0;
}

/* Parses the ONBUILD triggers of a base image into instructions. */
static int parse_triggers(struct bld *b, char *const *triggers, struct df_instr ***ret, size_t *ret_n,
			  kn_error **err)
{
	struct df_instr **v = NULL;
	size_t n = 0, alloc = 0;

	for (size_t i = 0; triggers && triggers[i]; i++) {
		_cleanup_(df_ast_freep) struct df_ast *ast = df_parse(triggers[i], strlen(triggers[i]), "ONBUILD", err);
		struct df_instr *in = NULL;

		if (!ast)
			goto fail;
		for (size_t j = 0; j < ast->root->n_children; j++) {
			if (df_instr_parse(ast->root->children[j], "ONBUILD", ast->escape, &in, err) < 0)
				goto fail;
			KN_GROW(v, alloc, n + 1);
			v[n++] = in;
		}
	}
	*ret = v;
	*ret_n = n;
	(void)b;
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		df_instr_free(v[i]);
	free(v);
	return -1;
}

static int build_stage(struct bld *b, size_t idx, int k, int total, struct store *store, kn_error **err)
{
	const struct df_stage *stage = &b->plan->stages[idx];
	struct bld_state st = { 0 };
	struct df_instr **triggers = NULL;
	size_t n_triggers = 0;
	_cleanup_free_ char *from_text = NULL;
	unsigned long long t0 = mono_ns();
	int ret = -1;

	st.b = b;
	st.store = store;
	st.stage = stage;
	st.stage_index = k;
	st.stage_count = total;
	st.stage_name = stage->name;
	st.file = b->plan->file;
	switch (stage->base_kind) {
	case DF_BASE_SCRATCH: {
		const char *os, *arch, *variant;

		/* an image base is keyed by its ID, which holds its platform; scratch needs it said */
		kn_platform_host(&os, &arch, &variant);
		st.config = image_config_new();
		st.config->working_dir = xstrdup("/"); /* as BuildKit gives FROM scratch */
		st.key = xasprintf("scratch|%s/%s%s%s|%s|%s", os, arch, variant ? "/" : "", variant ? variant : "",
				   layer_compression_name(b->lopts.compression), b->time_key);
		from_text = xstrdup("FROM scratch");
		break;
	}
	case DF_BASE_STAGE: {
		const struct bld_stage_result *sr = &b->stages[stage->base_stage];

		if (!sr->built) {
			kn_error_set(err, EINVAL, "stage %zu was not built", stage->base_stage);
			goto out;
		}
		st.config = image_config_dup(sr->config);
		for (size_t i = 0; i < sr->n_layers; i++)
			bld_state_add_layer(&st, &sr->layers[i], sr->config->diff_ids[i]);
		st.key = xstrdup(sr->key);
		st.base_id = sr->base_id ? xstrdup(sr->base_id) : NULL;
		from_text = xasprintf("FROM %s", b->plan->stages[stage->base_stage].name
							 ? b->plan->stages[stage->base_stage].name
							 : stage->from->from.base);
		break;
	}
	case DF_BASE_IMAGE: {
		const struct store_image *img = NULL;

		from_text = xasprintf("FROM %s", stage->base_image);
		if (image_get(b, stage->base_image, &img, err) < 0) {
			step_fail(&st, stage->from, err);
			goto out;
		}
		st.config = image_config_dup(img->config);
		rcache_strip(st.config);
		if (kn_strv_len(img->config->diff_ids) != img->manifest.n_layers) {
			kn_error_set(err, EINVAL, "image '%s': %zu diff_ids for %zu layers", stage->base_image,
				     kn_strv_len(img->config->diff_ids), img->manifest.n_layers);
			goto out;
		}
		for (size_t i = 0; i < img->manifest.n_layers; i++)
			bld_state_add_layer(&st, &img->manifest.layers[i], img->config->diff_ids[i]);
		st.key = xasprintf("image:%s|%s|%s", img->id, layer_compression_name(b->lopts.compression),
				   b->time_key);
		st.base_id = xstrdup(img->id);
		break;
	}
	}
	/* ONBUILD triggers of the base run first; the new image does not inherit them. */
	if (stage->base_kind != DF_BASE_SCRATCH && st.config->on_build && st.config->on_build[0]) {
		if (parse_triggers(b, st.config->on_build, &triggers, &n_triggers, err) < 0)
			goto out;
	}
	kn_strv_free(st.config->on_build);
	st.config->on_build = NULL;
	/* BuildKit makes sure every image has a PATH. */
	{
		bool has_path = false;

		for (size_t i = 0; st.config->env && st.config->env[i]; i++)
			if (!strncmp(st.config->env[i], "PATH=", 5))
				has_path = true;
		if (!has_path)
			image_config_set_env(st.config, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	}
	st.step_count = (int)(1 + n_triggers + stage->n_instrs);
	st.step_index = 1;
	st_event(&st, BLD_EV_STEP_START, from_text, 0);
	st_event(&st, BLD_EV_STEP_DONE, from_text, mono_ns() - t0);
	if (df_stage_env_init(&st.se, b->plan, stage, st.config->env, err) < 0)
		goto out;
	if (stage->base_kind == DF_BASE_STAGE)
		df_stage_env_inherit_args(&st.se, &b->stages[stage->base_stage].args);
	for (size_t i = 0; i < n_triggers; i++)
		if (run_instr(&st, triggers[i], err) < 0)
			goto out;
	for (size_t i = 0; i < stage->n_instrs; i++)
		if (run_instr(&st, stage->instrs[i], err) < 0)
			goto out;
	{
		struct bld_stage_result *sr = &b->stages[idx];

		sr->built = true;
		sr->config = steal_ptr(&st.config);
		sr->layers = steal_ptr(&st.layers);
		sr->n_layers = st.n_layers;
		st.n_layers = 0;
		sr->key = steal_ptr(&st.key);
		sr->base_id = steal_ptr(&st.base_id);
		df_env_init(&sr->args);
		df_env_merge(&sr->args, &st.se.args);
	}
	ret = 0;
out:
	for (size_t i = 0; i < n_triggers; i++)
		df_instr_free(triggers[i]);
	free(triggers);
	state_release(&st);
	return ret;
}

/* ---- stage scheduling: independent stages build concurrently on two threads -------------- */

enum { ST_SKIP, ST_PENDING, ST_RUNNING, ST_DONE };

struct sched {
	struct bld *b;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int *state;
	int *number; /* "stage k/K" */
	int total;
	int running;
	kn_error *error;
};

static bool stage_ready(const struct sched *s, size_t i)
{
	const struct df_stage *stage = &s->b->plan->stages[i];

	if (stage->base_kind == DF_BASE_STAGE && s->state[stage->base_stage] != ST_DONE)
		return false;
	for (size_t j = 0; j < stage->n_deps; j++)
		if (stage->deps[j].kind == DF_DEP_STAGE && s->state[stage->deps[j].stage] != ST_DONE)
			return false;
	return true;
}

static void *sched_worker(void *arg)
{
	struct sched *s = arg;
	struct store *store = NULL;
	kn_error *e = NULL;

	if (store_open(s->b->o->root, STORE_WRITE, &store, &e) < 0) {
		pthread_mutex_lock(&s->mu);
		if (!s->error)
			s->error = steal_ptr(&e);
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		kn_error_free(e);
		return NULL;
	}
	pthread_mutex_lock(&s->mu);
	for (;;) {
		size_t pick = SIZE_MAX, n = s->b->plan->n_stages;
		bool pending = false;
		int r;

		if (s->error)
			break;
		for (size_t i = 0; i < n; i++) {
			if (s->state[i] != ST_PENDING)
				continue;
			pending = true;
			if (stage_ready(s, i)) {
				pick = i;
				break;
			}
		}
		if (pick == SIZE_MAX) {
			if (!pending)
				break;
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		s->state[pick] = ST_RUNNING;
		s->running++;
		pthread_mutex_unlock(&s->mu);
		r = build_stage(s->b, pick, s->number[pick], s->total, store, &e);
		pthread_mutex_lock(&s->mu);
		s->running--;
		if (r < 0) {
			if (!s->error)
				s->error = steal_ptr(&e);
			kn_error_free(e);
			e = NULL;
		} else {
			s->state[pick] = ST_DONE;
		}
		pthread_cond_broadcast(&s->cv);
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	store_free(store);
	return NULL;
}

/*
 * Builds every stage the target needs, each once its base and COPY/mount sources are built. A
 * second thread joins when at least two stages are to be built, so independent stages (a build
 * stage and an assets stage, say) run at the same time; each thread has its own store handle.
 */
static int run_stages(struct bld *b, kn_error **err)
{
	struct sched s = { 0 };
	size_t n = b->plan->n_stages;
	pthread_t th;
	bool two = false;
	int k = 0;

	s.b = b;
	s.state = xcalloc(n ? n : 1, sizeof(int));
	s.number = xcalloc(n ? n : 1, sizeof(int));
	for (size_t i = 0; i < n; i++) {
		s.state[i] = b->plan->stages[i].skipped || i > b->plan->target ? ST_SKIP : ST_PENDING;
		if (s.state[i] == ST_PENDING)
			s.number[i] = ++k;
	}
	s.total = k;
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	if (k >= 2 && pthread_create(&th, NULL, sched_worker, &s) == 0)
		two = true;
	sched_worker(&s);
	if (two)
		pthread_join(th, NULL);
	pthread_mutex_destroy(&s.mu);
	pthread_cond_destroy(&s.cv);
	free(s.state);
	free(s.number);
	if (s.error) {
		kn_error_propagate(err, s.error);
		return -1;
	}
	return 0;
}

/* ---- the build --------------------------------------------------------------------------------- */

static int parse_secrets(struct bld *b, kn_error **err)
{
	for (size_t i = 0; b->o->secrets && b->o->secrets[i]; i++) {
		_cleanup_free_ char *spec = xstrdup(b->o->secrets[i]);
		struct bld_secret s = { 0 };
		char *save = NULL;

		for (char *f = strtok_r(spec, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
			if (!strncmp(f, "id=", 3)) {
				free(s.id);
				s.id = xstrdup(f + 3);
			} else if (!strncmp(f, "src=", 4) || !strncmp(f, "source=", 7)) {
				free(s.src);
				s.src = xstrdup(strchr(f, '=') + 1);
			} else if (!strncmp(f, "env=", 4)) {
				free(s.env);
				s.env = xstrdup(f + 4);
			} else if (!strncmp(f, "type=", 5)) {
				/* type=file|env: implied by src/env */
			} else {
				free(s.id);
				free(s.src);
				free(s.env);
				return kn_error_set(err, EINVAL, "invalid --secret field '%s'", f);
			}
		}
		if (!s.id || !*s.id || (!s.src && !s.env)) {
			free(s.id);
			free(s.src);
			free(s.env);
			return kn_error_set(err, EINVAL, "invalid --secret '%s': expected id=ID,src=PATH or id=ID,env=VAR",
					    b->o->secrets[i]);
		}
		if (s.src && access(s.src, R_OK) < 0) {
			int r = kn_error_errno(err, "secret '%s': cannot read '%s'", s.id, s.src);

			free(s.id);
			free(s.src);
			free(s.env);
			return r;
		}
		KN_GROW(b->secrets, b->alloc_secrets, b->n_secrets + 1);
		b->secrets[b->n_secrets++] = s;
	}
	return 0;
}

static void bld_release(struct bld *b)
{
	if (b->stages) {
		for (size_t i = 0; i < b->plan->n_stages; i++) {
			struct bld_stage_result *sr = &b->stages[i];

			image_config_free(sr->config);
			for (size_t j = 0; j < sr->n_layers; j++)
				store_desc_release(&sr->layers[j]);
			free(sr->layers);
			free(sr->key);
			free(sr->base_id);
			df_env_release(&sr->args);
		}
		free(b->stages);
	}
	for (size_t i = 0; i < b->n_secrets; i++) {
		free(b->secrets[i].id);
		free(b->secrets[i].src);
		free(b->secrets[i].env);
	}
	free(b->secrets);
	free(b->extra_hosts);
	bld_ssh_release(b);
	for (size_t i = 0; i < b->n_ext; i++) {
		free(b->ext[i].ref);
		store_image_free(b->ext[i].img);
	}
	free(b->ext);
	(void)cache_writer_finish(b, NULL);
	rcache_free(b->rcache);
	(void)statcache_save(b->statcache, NULL);
	statcache_free(b->statcache);
	df_plan_free(b->plan);
	df_ast_free(b->ast);
	df_ignore_free(b->ignore);
	if (b->ctx_fd >= 0)
		close(b->ctx_fd);
	free(b->ctx_dir);
	store_free(b->store);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->mu);
}

/*
 * A rebuild that changed nothing: every tag already names an image with this very config (same
 * ID) in the requested format. Then nothing is written (no blob, no index.json rewrite, no fsync),
 * which is most of a fully cached rebuild's time otherwise.
 */
static bool image_unchanged(struct bld *b, const struct image_config *config, enum image_format fmt,
			    char **ret_id, struct store_desc *ret_manifest)
{
	struct store_desc md = { 0 };
	_cleanup_free_ char *json = NULL, *digest = NULL;
	size_t len = 0;

	if (!b->o->tags || !b->o->tags[0])
		return false;
	json = image_config_dump(config, &len);
	digest = store_digest_buf(json, len);
	if (!store_blob_exists(b->store, digest))
		return false;
	for (size_t i = 0; b->o->tags[i]; i++) {
		struct store_image *img = NULL;
		bool same;

		if (store_image_resolve(b->store, b->o->tags[i], &img, NULL) < 0)
			return false;
		same = !strcmp(img->id, digest) && img->manifest.media_type &&
		       !strcmp(img->manifest.media_type,
			       fmt == IMAGE_FORMAT_DOCKER ? STORE_MT_DOCKER_MANIFEST : STORE_MT_OCI_MANIFEST) &&
		       !strcmp(img->top.digest, img->manifest_desc.digest);
		if (same && !md.digest)
			store_desc_copy(&md, &img->manifest_desc);
		store_image_free(img);
		if (!same) {
			store_desc_release(&md);
			return false;
		}
	}
	*ret_id = steal_ptr(&digest);
	*ret_manifest = md;
	return true;
}

static const char *path_base(const char *p)
{
	const char *s = strrchr(p, '/');

	return s && s[1] ? s + 1 : p;
}

/* Seconds since the epoch of an RFC 3339 time (fractions and zone Z), or -1. */
static int64_t rfc3339_seconds(const char *s)
{
	struct tm tm = { 0 };
	const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	time_t t;

	if (!p)
		return -1;
	t = timegm(&tm);
	return t < 0 ? -1 : (int64_t)t;
}

/*
 * The build's timestamp (configs' and history's created, the clamp of file times in layers):
 * --timestamp, else SOURCE_DATE_EPOCH, else the commit time of the context's git HEAD, else the
 * created time of the image the target stage is built on (0 for scratch). --timestamp now: the
 * clock, nothing clamped (docker's old behaviour).
 */
static int build_epoch(struct bld *b, kn_error **err)
{
	const char *t = b->o->timestamp;
	int64_t epoch = 0;

	if (t && !strcmp(t, "now")) {
		snprintf(b->time_key, sizeof(b->time_key), "t=now");
		b->lopts.clamp_mtime = false;
		b->have_epoch = false;
		return 0;
	}
	if (t) {
		char *end = NULL;
		long long v;

		errno = 0;
		v = strtoll(t, &end, 10);
		if (errno || !*t || *end || v < 0)
			return kn_error_set(err, EINVAL, "invalid --timestamp '%s': expected now or seconds since 1970", t);
		epoch = v;
	} else if (b->lopts.clamp_mtime) {
		epoch = b->lopts.source_date_epoch;
	} else if (ctx_git_time(b, &epoch) < 0) {
		const struct df_stage *s = &b->plan->stages[b->plan->target];

		while (s->base_kind == DF_BASE_STAGE)
			s = &b->plan->stages[s->base_stage];
		epoch = 0;
		if (s->base_kind == DF_BASE_IMAGE) {
			const struct store_image *img = NULL;

			if (image_get(b, s->base_image, &img, err) < 0)
				return -1;
			epoch = rfc3339_seconds(img->config->created);
			if (epoch < 0)
				epoch = 0;
		}
	}
	b->have_epoch = true;
	b->epoch = epoch;
	snprintf(b->time_key, sizeof(b->time_key), "t=%lld", (long long)epoch);
	b->lopts.clamp_mtime = true;
	b->lopts.source_date_epoch = epoch;
	return 0;
}

int bld_build(const struct bld_options *o, char **ret_image_id, kn_error **err)
{
	struct bld b = { 0 };
	struct kn_buf df = KN_BUF_INIT;
	_cleanup_free_ char *df_path = NULL, *id = NULL;
	struct df_plan_opts po = { 0 };
	struct store_desc mdesc = { 0 };
	struct image_config *final = NULL;
	const char *df_name;
	int ret = -1;
	enum image_format fmt = o->format == BLD_FORMAT_DOCKER ? IMAGE_FORMAT_DOCKER : IMAGE_FORMAT_OCI;

	b.o = o;
	b.ctx_fd = -1;
	pthread_mutex_init(&b.lock, NULL);
	pthread_mutex_init(&b.mu, NULL);
	if (!o->root)
		return kn_error_set(err, EINVAL, "no store root given");
	/* Bad names fail before any work, as docker checks -t first. */
	for (size_t i = 0; o->tags && o->tags[i]; i++) {
		_cleanup_free_ char *norm = NULL;

		if (store_ref_normalize(o->tags[i], &norm, err) < 0) {
			kn_error_wrap(err, "invalid tag '%s'", o->tags[i]);
			goto out;
		}
	}
	if (parse_secrets(&b, err) < 0 || bld_ssh_setup(&b, err) < 0)
		goto out;
	if (o->add_hosts) {
		struct kn_buf h = KN_BUF_INIT;

		for (size_t i = 0; o->add_hosts[i]; i++)
			kn_buf_addf(&h, "%s\n", o->add_hosts[i]);
		b.extra_hosts = kn_buf_detach(&h);
	}
	if (store_open(o->root, STORE_WRITE, &b.store, err) < 0)
		goto out;
	b.lopts.compression = o->compression == BLD_COMPRESS_ZSTD   ? LAYER_COMPRESSION_ZSTD
			      : o->compression == BLD_COMPRESS_NONE ? LAYER_COMPRESSION_NONE
								    : LAYER_COMPRESSION_GZIP;
	if (layer_write_opts_from_env(&b.lopts, err) < 0)
		goto out;
	if (ctx_open(&b, err) < 0)
		goto out;
	if (o->context_dir)
		b.statcache = statcache_load(b.store, b.ctx_dir);

	/* The Dockerfile. */
	if (o->dockerfile_data) {
		kn_buf_add(&df, o->dockerfile_data, o->dockerfile_len);
	} else {
		if (o->dockerfile_path && o->context_dir)
			df_path = xstrdup(o->dockerfile_path);
		else if (o->dockerfile_path)
			df_path = kn_path_join(b.ctx_dir, o->dockerfile_path);
		else
			df_path = kn_path_join(b.ctx_dir, "Dockerfile");
		/* a Dockerfile in the context is opened inside it: a symlink cannot lead out */
		if (kn_read_file_in_root(b.ctx_dir, df_path, 16 << 20, &df, err) < 0) {
			kn_error_wrap(err, "failed to read dockerfile");
			goto out;
		}
	}
	df_name = o->dockerfile_name ? path_base(o->dockerfile_name) : df_path ? path_base(df_path) : "Dockerfile";
	b.ast = df_parse(df.buf, df.len, df_name, err);
	if (!b.ast)
		goto out;
	for (size_t i = 0; i < b.ast->n_warnings; i++)
		bld_warn(&b, "%s:%d: %s", df_name, b.ast->warnings[i].line, b.ast->warnings[i].msg);
	po.file = df_name;
	po.target = o->target;
	po.build_args = o->build_args;
	if (df_plan_build(b.ast->root, b.ast->escape, &po, &b.plan, err) < 0)
		goto out;
	if (b.plan->unused_build_args.n) {
		struct kn_buf w = KN_BUF_INIT;

		for (size_t i = 0; i < b.plan->unused_build_args.n; i++)
			kn_buf_addf(&w, "%s%s", i ? " " : "", b.plan->unused_build_args.v[i]);
		bld_warn(&b, "One or more build-args [%s] were not consumed", w.buf);
		kn_buf_release(&w);
	}
	if (ctx_load_ignore(&b, df_path, err) < 0)
		goto out;
	if (build_epoch(&b, err) < 0)
		goto out;
	b.stages = xcalloc(b.plan->n_stages ? b.plan->n_stages : 1, sizeof(*b.stages));
	if (rcache_open(&b, err) < 0 || run_stages(&b, err) < 0)
		goto out;

	/* The image. */
	{
		const struct bld_stage_result *sr = &b.stages[b.plan->target];

		if (!sr->built) {
			kn_error_set(err, EINVAL, "target stage was not built");
			goto out;
		}
		final = image_config_dup(sr->config);
		for (size_t i = 0; o->labels && o->labels[i]; i++) {
			_cleanup_free_ char *kv = xstrdup(o->labels[i]);
			char *eq = strchr(kv, '=');

			if (eq)
				*eq++ = 0;
			image_config_set_label(final, kv, eq ? eq : "");
		}
		if (b.have_epoch) {
			free(final->created);
			final->created = bld_now(&b);
		}
		rcache_inline(&b, final);
		if (o->no_store) {
			if (rcache_fetch(&b, b.store, sr->layers, sr->n_layers, err) < 0)
				goto out;
			if (bld_export_needs_image(o) &&
			    store_image_put(b.store, final, sr->layers, sr->n_layers, fmt, &mdesc, &id, err) < 0)
				goto out;
			if (!id) {
				size_t len = 0;
				_cleanup_free_ char *json = image_config_dump(final, &len);

				id = store_digest_buf(json, len);
			}
		} else if (image_unchanged(&b, final, fmt, &id, &mdesc)) {
			/* nothing to write */
		} else {
			if (rcache_fetch(&b, b.store, sr->layers, sr->n_layers, err) < 0 ||
			    store_image_write(b.store, final, sr->layers, sr->n_layers, fmt, NULL, &mdesc, &id, err) < 0)
				goto out;
			for (size_t i = 0; o->tags && o->tags[i]; i++) {
				_cleanup_free_ char *norm = NULL;

				if (store_ref_normalize(o->tags[i], &norm, err) < 0)
					goto out;
				if (store_ref_set(b.store, norm, &mdesc, err) < 0)
					goto out;
			}
		}
		if (bld_export_run(&b, final, sr->layers, sr->n_layers, &mdesc, err) < 0)
			goto out;
	}
	if (cache_writer_finish(&b, err) < 0 || rcache_export(&b, err) < 0)
		goto out;
	if (o->result) {
		bld_result_release(o->result);
		o->result->manifest = mdesc;
		memset(&mdesc, 0, sizeof(mdesc));
		o->result->config_digest = xstrdup(id);
	}
	*ret_image_id = steal_ptr(&id);
	ret = 0;
out:
	store_desc_release(&mdesc);
	image_config_free(final);
	kn_buf_release(&df);
	bld_release(&b);
	return ret;
}
