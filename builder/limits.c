/* kiln builder: resource limits of RUN steps without cgroups (docker's --ulimit, RLIMIT_*). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "builder/build-internal.h"
#include "builder/sandbox-internal.h"

static const struct {
	const char *name;
	int resource;
} ulimit_names[] = {
	{ "as", RLIMIT_AS },	       { "core", RLIMIT_CORE },
	{ "cpu", RLIMIT_CPU },	       { "data", RLIMIT_DATA },
	{ "fsize", RLIMIT_FSIZE },     { "locks", RLIMIT_LOCKS },
	{ "memlock", RLIMIT_MEMLOCK }, { "msgqueue", RLIMIT_MSGQUEUE },
	{ "nice", RLIMIT_NICE },       { "nofile", RLIMIT_NOFILE },
	{ "nproc", RLIMIT_NPROC },     { "rss", RLIMIT_RSS },
	{ "rtprio", RLIMIT_RTPRIO },   { "rttime", RLIMIT_RTTIME },
	{ "sigpending", RLIMIT_SIGPENDING }, { "stack", RLIMIT_STACK },
};

static int ulimit_value(const char *s, unsigned long long *ret)
{
	char *end;

	if (!strcmp(s, "-1") || !strcmp(s, "unlimited")) {
		*ret = (unsigned long long)RLIM_INFINITY;
		return 0;
	}
	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*ret = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

int bld_ulimit_parse(const char *s, struct bld_ulimit *ret, kn_error **err)
{
	const char *eq = strchr(s, '=');
	_cleanup_free_ char *name = NULL, *soft = NULL;
	const char *colon;

	if (!eq || eq == s)
		return kn_error_set(err, EINVAL, "invalid ulimit '%s': expected NAME=SOFT[:HARD]", s);
	name = xstrndup(s, (size_t)(eq - s));
	ret->resource = -1;
	for (size_t i = 0; i < KN_ARRAY_SIZE(ulimit_names); i++)
		if (!strcmp(name, ulimit_names[i].name))
			ret->resource = ulimit_names[i].resource;
	if (ret->resource < 0)
		return kn_error_set(err, EINVAL, "invalid ulimit '%s': unknown resource '%s'", s, name);
	colon = strchr(eq + 1, ':');
	soft = colon ? xstrndup(eq + 1, (size_t)(colon - eq - 1)) : xstrdup(eq + 1);
	if (ulimit_value(soft, &ret->soft) < 0 || ulimit_value(colon ? colon + 1 : soft, &ret->hard) < 0)
		return kn_error_set(err, EINVAL, "invalid ulimit '%s': expected numbers or -1", s);
	if (ret->soft > ret->hard)
		return kn_error_set(err, EINVAL, "invalid ulimit '%s': soft limit above the hard limit", s);
	return 0;
}

size_t bld_run_rlimits(const struct bld_options *o, struct sandbox_rlimit *out, size_t max)
{
	/* BuildKit's RUN default for open files; a process count that stops a fork bomb long
	 * before the host's pid space (RLIMIT_NPROC counts the user's processes host-wide) */
	static const struct sandbox_rlimit defaults[] = {
		{ RLIMIT_NOFILE, BLD_DEFAULT_NOFILE, BLD_DEFAULT_NOFILE },
		{ RLIMIT_NPROC, BLD_DEFAULT_NPROC, BLD_DEFAULT_NPROC },
	};
	size_t n = 0;

	for (size_t i = 0; i < KN_ARRAY_SIZE(defaults) && n < max; i++) {
		struct rlimit cur;

		out[n] = defaults[i];
		/* a default never raises what kiln itself was given (that needs CAP_SYS_RESOURCE) */
		if (getrlimit(defaults[i].resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
		    cur.rlim_max < out[n].hard)
			out[n].soft = out[n].hard = cur.rlim_max;
		n++;
	}
	for (size_t i = 0; i < o->n_ulimits; i++) {
		size_t k = 0;

		while (k < n && out[k].resource != o->ulimits[i].resource)
			k++;
		if (k == n) {
			if (n == max)
				continue;
			n++;
		}
		out[k].resource = o->ulimits[i].resource;
		out[k].soft = o->ulimits[i].soft;
		out[k].hard = o->ulimits[i].hard;
	}
	return n;
}
