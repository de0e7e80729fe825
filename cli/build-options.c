/* kiln build: docker buildx's flags (arguments and printing only; the work is in builder/). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/build-options.h"
#include "registry/registry.h"

static void strv_freep(char ***p)
{
	kn_strv_free(*p);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

void build_flags_init(struct build_flags *f)
{
	memset(f, 0, sizeof(*f));
	f->strings = (struct kn_strv)KN_STRV_INIT;
	f->image_names = (struct kn_strv)KN_STRV_INIT;
	f->add_hosts = (struct kn_strv)KN_STRV_INIT;
	f->no_cache_filter = (struct kn_strv)KN_STRV_INIT;
	f->build_contexts = (struct kn_strv)KN_STRV_INIT;
	f->ssh = (struct kn_strv)KN_STRV_INIT;
}

void build_flags_release(struct build_flags *f)
{
	for (size_t i = 0; i < f->n_exports; i++)
		kn_strv_free(f->export_names[i]);
	free(f->export_names);
	free(f->exports);
	kn_strv_release(&f->strings);
	kn_strv_release(&f->image_names);
	kn_strv_release(&f->add_hosts);
	kn_strv_release(&f->no_cache_filter);
	kn_strv_release(&f->build_contexts);
	kn_strv_release(&f->ssh);
	free(f->ulimits);
	bld_result_release(&f->result);
}

/* ---- flags kiln does not implement ------------------------------------------------------------ */

/*
 * Every flag of `docker buildx build` (buildx 0.1x reference) and the legacy `docker build`
 * flags buildx still accepts. Those kiln implements are in cmd-build.c's option table and never
 * reach this list's check.
 */
static const char *const buildx_flags[] = {
	"add-host", "allow", "annotation", "attest", "build-arg", "build-context", "builder",
	"cache-from", "cache-to", "call", "cgroup-parent", "check", "compress", "cpu-period",
	"cpu-quota", "cpu-shares", "cpuset-cpus", "cpuset-mems", "debug", "detach", "file",
	"force-rm", "iidfile", "isolation", "label", "load", "memory", "memory-swap",
	"metadata-file", "network", "no-cache", "no-cache-filter", "output", "platform", "print",
	"progress", "provenance", "pull", "push", "quiet", "rm", "root", "sbom", "secret",
	"security-opt", "server-config", "shm-size", "squash", "ssh", "tag", "target", "ulimit",
	"disable-content-trust", "policy",
};

static bool is_buildx_flag(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(buildx_flags) / sizeof(buildx_flags[0]); i++)
		if (strlen(buildx_flags[i]) == len && !strncmp(buildx_flags[i], name, len))
			return true;
	return false;
}

int build_flags_check_unsupported(int argc, char **argv, const struct option *longopts)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *eq;
		const struct option *lo = NULL;
		size_t len;

		if (!strcmp(a, "--"))
			break;
		if (a[0] == '-' && a[1] && a[1] != '-') {
			/* -tNAME or -t NAME: skip the value of short options that take one. */
			if (strchr("tfo", a[1]) && !a[2])
				i++;
			continue;
		}
		if (strncmp(a, "--", 2))
			continue;
		name = a + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		for (const struct option *o = longopts; o->name; o++)
			if (strlen(o->name) == len && !strncmp(o->name, name, len))
				lo = o;
		if (lo) {
			if (lo->has_arg == required_argument && !eq)
				i++;
			continue;
		}
		if (is_buildx_flag(name, len))
			return cli_usage_error("build", "'--%.*s' is a docker buildx flag kiln does not support",
					       (int)len, name);
	}
	return 0;
}

/* ---- -o / --output ---------------------------------------------------------------------------- */

/* Splits a buildx CSV value: fields separated by ',', double quotes protect commas. Owned. */
static char **csv_split(const char *s)
{
	struct kn_strv v = KN_STRV_INIT;
	struct kn_buf cur = KN_BUF_INIT;
	bool quoted = false;

	for (const char *p = s;; p++) {
		if (*p == '"') {
			quoted = !quoted;
		} else if ((*p == ',' && !quoted) || !*p) {
			kn_strv_push(&v, cur.buf);
			kn_buf_reset(&cur);
			if (!*p)
				break;
		} else {
			kn_buf_addch(&cur, (unsigned char)*p);
		}
	}
	kn_buf_release(&cur);
	return kn_strv_detach(&v);
}

static void add_export(struct build_flags *f, enum bld_export_type type, const char *dest, char **names)
{
	KN_GROW(f->exports, f->alloc_exports, f->n_exports + 1);
	f->export_names = realloc(f->export_names, f->alloc_exports * sizeof(*f->export_names));
	if (!f->export_names)
		abort();
	/* The strings of f->strings never move (only its vector does). */
	kn_strv_push(&f->strings, dest);
	f->exports[f->n_exports] = (struct bld_export){ .type = type, .dest = f->strings.v[f->strings.n - 1] };
	f->export_names[f->n_exports] = names;
	f->n_exports++;
}

static int parse_output(struct build_flags *f, const char *spec)
{
	_cleanup_strv_free_ char **fields = NULL;
	const char *type = NULL, *dest = NULL;
	struct kn_strv names = KN_STRV_INIT;
	int push = -1;

	f->have_outputs = true;
	if (!strchr(spec, '=')) {
		/* buildx: a path is the local exporter, "-" the tar exporter to stdout. */
		if (!*spec)
			return cli_usage_error("build", "invalid --output ''");
		add_export(f, strcmp(spec, "-") ? BLD_EXPORT_LOCAL : BLD_EXPORT_TAR, spec, NULL);
		return 0;
	}
	fields = csv_split(spec);
	for (size_t i = 0; fields[i]; i++) {
		char *k = fields[i], *v = strchr(k, '=');

		if (!v) {
			kn_strv_release(&names);
			return cli_usage_error("build", "invalid --output field '%s': expected KEY=VALUE", k);
		}
		*v++ = 0;
		if (!strcmp(k, "type")) {
			type = v;
		} else if (!strcmp(k, "dest")) {
			dest = v;
		} else if (!strcmp(k, "name")) {
			_cleanup_strv_free_ char **nv = csv_split(v);

			for (size_t j = 0; nv[j]; j++)
				if (*nv[j])
					kn_strv_push(&names, nv[j]);
		} else if (!strcmp(k, "push")) {
			push = cli_parse_bool(v);
			if (push < 0) {
				kn_strv_release(&names);
				return cli_usage_error("build", "invalid --output push value '%s'", v);
			}
		} else {
			kn_strv_release(&names);
			return cli_usage_error("build", "--output attribute '%s' is not supported by kiln", k);
		}
	}
	if (!type) {
		kn_strv_release(&names);
		return cli_usage_error("build", "invalid --output '%s': missing type=", spec);
	}
	if (!strcmp(type, "local") || !strcmp(type, "tar") || !strcmp(type, "oci") ||
	    (!strcmp(type, "docker") && dest)) {
		enum bld_export_type t = !strcmp(type, "local") ? BLD_EXPORT_LOCAL
					 : !strcmp(type, "tar") ? BLD_EXPORT_TAR
					 : !strcmp(type, "oci") ? BLD_EXPORT_OCI
								: BLD_EXPORT_DOCKER;

		if (!dest || !*dest) {
			kn_strv_release(&names);
			return cli_usage_error("build", "--output type=%s needs dest=", type);
		}
		if (t == BLD_EXPORT_LOCAL && !strcmp(dest, "-")) {
			kn_strv_release(&names);
			return cli_usage_error("build", "--output type=local needs a directory, not '-'");
		}
		if (push == 1 || (names.n && t <= BLD_EXPORT_TAR)) {
			kn_strv_release(&names);
			return cli_usage_error("build", "--output type=%s takes only dest=", type);
		}
		add_export(f, t, dest, names.n ? kn_strv_detach(&names) : NULL);
	} else if (!strcmp(type, "docker") || !strcmp(type, "image") || !strcmp(type, "registry")) {
		/* The local store (docker's image store is kiln's), pushed for registry / push=true. */
		if (dest) {
			kn_strv_release(&names);
			return cli_usage_error("build", "--output type=%s takes no dest=", type);
		}
		f->store = true;
		if (!strcmp(type, "registry") ? push != 0 : push == 1)
			f->push = true;
		for (size_t i = 0; i < names.n; i++)
			kn_strv_push(&f->image_names, names.v[i]);
	} else if (!strcmp(type, "cacheonly")) {
		/* Only the build cache is kept. */
	} else {
		kn_strv_release(&names);
		return cli_usage_error("build", "unknown --output type '%s' (local, tar, oci, docker, image, registry or cacheonly)",
				       type);
	}
	kn_strv_release(&names);
	return 0;
}

/* ---- the other flags -------------------------------------------------------------------------- */

/* docker's RAMInBytes: a number with an optional b, k, m, g, t suffix (binary units). */
static int parse_size(const char *s, unsigned long long *ret)
{
	char *end = NULL;
	unsigned long long v, mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	if ((*end == 'b' || *end == 'B') && !end[1])
		end++;
	if (*end) {
		switch (*end) {
		case 'k': case 'K': mul = 1ULL << 10; break;
		case 'm': case 'M': mul = 1ULL << 20; break;
		case 'g': case 'G': mul = 1ULL << 30; break;
		case 't': case 'T': mul = 1ULL << 40; break;
		default: return -1;
		}
		end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end)
			return -1;
	}
	if (v > ~0ULL / mul)
		return -1;
	*ret = v * mul;
	return 0;
}

static int parse_platform(const char *list)
{
	_cleanup_strv_free_ char **v = csv_split(list);
	struct reg_platform host = { 0 };
	_cleanup_free_ char *hs = NULL;
	int r = 0;

	reg_platform_host(&host);
	hs = reg_platform_format(&host);
	for (size_t i = 0; v[i] && !r; i++) {
		struct reg_platform p = { 0 };
		kn_error *err = NULL;
		_cleanup_free_ char *ps = NULL;
		bool same;

		if (!strcmp(v[i], "local"))
			continue;
		if (reg_platform_parse(v[i], &p, &err) < 0) {
			_cleanup_free_ char *msg = kn_error_format(err);

			kn_error_free(err);
			r = cli_usage_error("build", "invalid --platform '%s': %s", v[i], msg);
			break;
		}
		ps = reg_platform_format(&p);
		same = !strcmp(p.os, host.os) && !strcmp(p.arch, host.arch) &&
		       (!p.variant || (host.variant && !strcmp(p.variant, host.variant)));
		reg_platform_release(&p);
		if (!same)
			r = cli_usage_error("build", "platform '%s' is not supported: kiln builds for the host platform %s only",
					    ps, hs);
	}
	reg_platform_release(&host);
	return r;
}

static int parse_add_host(struct build_flags *f, const char *arg)
{
	_cleanup_free_ char *s = xstrdup(arg);
	char *sep = strchr(s, '='), *ip;
	unsigned char buf[16];
	size_t n;

	/* host:ip, or host=ip (docker 25+); an IPv6 address may be in brackets. */
	if (!sep)
		sep = strchr(s, ':');
	if (!sep || sep == s || !sep[1])
		return cli_usage_error("build", "invalid --add-host '%s': expected HOST:IP", arg);
	*sep = 0;
	ip = sep + 1;
	n = strlen(ip);
	if (ip[0] == '[' && n > 2 && ip[n - 1] == ']') {
		ip[n - 1] = 0;
		ip++;
	}
	if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1)
		return cli_usage_error("build", "invalid --add-host '%s': '%s' is not an IP address", arg, ip);
	kn_strv_pushf(&f->add_hosts, "%s\t%s", ip, s);
	return 0;
}

static int parse_ssh(struct build_flags *f, const char *arg)
{
	const char *eq = strchr(arg, '=');
	_cleanup_free_ char *id = eq ? xstrndup(arg, (size_t)(eq - arg)) : xstrdup(arg);

	if (!*id || strchr(id, ','))
		return cli_usage_error("build", "invalid --ssh '%s': expected default|ID[=SOCKET|KEY[,KEY]]", arg);
	if (!eq || !eq[1]) {
		const char *sock = getenv("SSH_AUTH_SOCK");

		if (!sock || !*sock)
			return cli_usage_error("build", "invalid --ssh '%s': SSH_AUTH_SOCK is not set (no ssh-agent to forward)",
					       arg);
		kn_strv_pushf(&f->ssh, "%s=%s", id, sock);
		return 0;
	}
	kn_strv_push(&f->ssh, arg);
	return 0;
}

int build_flags_parse(struct build_flags *f, int c, const char *arg)
{
	switch (c) {
	case 'o':
		return parse_output(f, arg);
	case OPT_BX_METADATA_FILE:
		f->metadata_file = arg;
		return 0;
	case OPT_BX_LOAD:
		/* buildx's --load is --output=type=docker: the local store. */
		f->store = true;
		return 0;
	case OPT_BX_PROVENANCE:
	case OPT_BX_SBOM:
		if (cli_parse_bool(arg) == 0)
			return 0;
		return cli_usage_error("build", "--%s=%s: kiln does not make attestations yet (only --%s=false is accepted)",
				       c == OPT_BX_SBOM ? "sbom" : "provenance", arg,
				       c == OPT_BX_SBOM ? "sbom" : "provenance");
	case OPT_BX_PLATFORM:
		return parse_platform(arg);
	case OPT_BX_ADD_HOST:
		return parse_add_host(f, arg);
	case OPT_BX_SHM_SIZE:
		if (parse_size(arg, &f->shm_size) < 0 || !f->shm_size)
			return cli_usage_error("build", "invalid --shm-size '%s'", arg);
		return 0;
	case OPT_BX_NO_CACHE_FILTER: {
		_cleanup_strv_free_ char **v = csv_split(arg);

		for (size_t i = 0; v[i]; i++)
			if (*v[i])
				kn_strv_push(&f->no_cache_filter, v[i]);
		return 0;
	}
	case OPT_BX_BUILD_CONTEXT: {
		const char *eq = strchr(arg, '=');

		if (!eq || eq == arg || !eq[1])
			return cli_usage_error("build", "invalid --build-context '%s': expected NAME=SOURCE", arg);
		kn_strv_push(&f->build_contexts, arg);
		return 0;
	}
	case OPT_BX_SSH:
		return parse_ssh(f, arg);
	case OPT_BX_ULIMIT: {
		struct bld_ulimit u;
		kn_error *e = NULL;

		if (bld_ulimit_parse(arg, &u, &e) < 0) {
			int r = cli_usage_error("build", "%s", e->msg);

			kn_error_free(e);
			return r;
		}
		KN_GROW(f->ulimits, f->alloc_ulimits, f->n_ulimits + 1);
		f->ulimits[f->n_ulimits++] = u;
		return 0;
	}
	case OPT_BX_RUN_TIMEOUT: {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(arg, &end, 10);
		if (*end == 'm' && !end[1])
			v *= 60;
		else if (*end == 'h' && !end[1])
			v *= 3600;
		else if (*end && strcmp(end, "s"))
			v = 0;
		if (errno || end == arg || *arg == '-' || v == 0 || v > 7 * 24 * 3600)
			return cli_usage_error("build", "invalid --run-timeout '%s': expected a duration "
					       "such as 30, 90s, 10m or 2h (at most 168h)", arg);
		f->run_timeout = (unsigned)v;
		return 0;
	}
	default:
		return cli_usage_error("build", "internal: unknown option %d", c);
	}
}

int build_flags_apply(struct build_flags *f, struct bld_options *o, struct kn_strv *tags, bool *push)
{
	for (size_t i = 0; i < f->image_names.n; i++)
		if (!kn_strv_contains(tags, f->image_names.v[i]))
			kn_strv_push(tags, f->image_names.v[i]);
	/* oci/docker archives are named by -t unless they have name= (tags no longer grows). */
	for (size_t i = 0; i < f->n_exports; i++)
		f->exports[i].names = f->export_names[i] ? f->export_names[i] : tags->v;
	if (f->push) {
		if (!tags->n)
			return cli_usage_error("build", "--output type=registry needs a name (name=REF or -t)");
		*push = true;
	}
	o->exports = f->exports;
	o->n_exports = f->n_exports;
	/* --push pushes from the store: the image goes there whatever -o says. */
	o->no_store = f->have_outputs && !f->store && !*push;
	o->result = &f->result;
	o->add_hosts = f->add_hosts.v;
	o->shm_size = f->shm_size;
	o->no_cache_filter = f->no_cache_filter.v;
	o->build_contexts = f->build_contexts.v;
	o->ssh = f->ssh.v;
	o->ulimits = f->ulimits;
	o->n_ulimits = f->n_ulimits;
	o->run_timeout = f->run_timeout;
	return 0;
}

bool build_flags_stdout_used(const struct build_flags *f)
{
	for (size_t i = 0; i < f->n_exports; i++)
		if (f->exports[i].dest && !strcmp(f->exports[i].dest, "-"))
			return true;
	return false;
}

int build_flags_finish(struct build_flags *f, char *const *tags, kn_error **err)
{
	json_t *j;
	char *text;
	int r;

	if (!f->metadata_file)
		return 0;
	j = json_object();
	if (f->result.manifest.digest) {
		struct kn_buf names = KN_BUF_INIT;

		json_object_set_new(j, "containerimage.config.digest", json_string(f->result.config_digest));
		json_object_set_new(j, "containerimage.digest", json_string(f->result.manifest.digest));
		json_object_set_new(j, "containerimage.descriptor",
				    json_pack("{s:s,s:s,s:I}", "mediaType", f->result.manifest.media_type,
					      "digest", f->result.manifest.digest, "size",
					      (json_int_t)f->result.manifest.size));
		for (size_t i = 0; tags && tags[i]; i++) {
			_cleanup_free_ char *norm = NULL;

			if (store_ref_normalize(tags[i], &norm, NULL) == 0)
				kn_buf_addf(&names, "%s%s", names.len ? "," : "", norm);
		}
		if (names.len)
			json_object_set_new(j, "image.name", json_string(names.buf));
		kn_buf_release(&names);
	}
	text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(j);
	r = kn_write_file_atomic(f->metadata_file, text, strlen(text), 0644, err);
	free(text);
	if (r < 0)
		return kn_error_wrap(err, "--metadata-file");
	return 0;
}
