/* kiln registry: image references, parsed and normalized after Docker's reference grammar. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "registry/registry.h"

#define REF_NAME_MAX 255
#define REF_TAG_MAX 128

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return isascii((unsigned char)c) && isalnum((unsigned char)c);
}

/* domain-component: [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
static bool valid_domain_component(const char *s, size_t n)
{
	if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

static bool valid_port(const char *s, size_t n)
{
	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* host[:port] where host is dotted domain components or a bracketed IPv6 address. */
static bool valid_domain(const char *s, size_t n)
{
	const char *colon;
	size_t hostlen;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		size_t i;

		if (!close || close == s + 1)
			return false;
		for (i = 1; s + i < close; i++)
			if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
				return false;
		hostlen = (size_t)(close - s) + 1;
		if (hostlen == n)
			return true;
		return s[hostlen] == ':' && valid_port(s + hostlen + 1, n - hostlen - 1);
	}
	colon = memchr(s, ':', n);
	hostlen = colon ? (size_t)(colon - s) : n;
	if (colon && !valid_port(colon + 1, n - hostlen - 1))
		return false;
	for (size_t i = 0; i < hostlen;) {
		const char *dot = memchr(s + i, '.', hostlen - i);
		size_t clen = dot ? (size_t)(dot - (s + i)) : hostlen - i;

		if (!valid_domain_component(s + i, clen))
			return false;
		i += clen + (dot ? 1 : 0);
		if (dot && i == hostlen)
			return false;
	}
	return hostlen > 0;
}

/* path-component: [a-z0-9]+ (separator [a-z0-9]+)*, separator: [_.] | __ | [-]+ */
static bool valid_path_component(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return false;
	while (i < n) {
		if (is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
		} else if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i >= n || !is_lower_alnum(s[i]))
			return false;
	}
	return true;
}

static bool valid_tag(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > REF_TAG_MAX)
		return false;
	if (!is_alnum(s[0]) && s[0] != '_')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* algorithm ':' hex; sha256 needs 64 and sha512 128 lowercase hex digits. */
static bool valid_digest(const char *s, const char **why)
{
	const char *colon = strchr(s, ':');
	size_t alen, hlen;

	*why = "invalid digest format";
	if (!colon || colon == s)
		return false;
	alen = (size_t)(colon - s);
	if (!isalpha((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < alen; i++) {
		char c = s[i];

		if (is_alnum(c))
			continue;
		if ((c == '-' || c == '_' || c == '+' || c == '.') && i + 1 < alen &&
		    isalpha((unsigned char)s[i + 1]))
			continue;
		return false;
	}
	hlen = strlen(colon + 1);
	for (size_t i = 0; i < hlen; i++)
		if (!isxdigit((unsigned char)colon[1 + i]))
			return false;
	if (hlen < 32)
		return false;
	if ((alen == 6 && !memcmp(s, "sha256", 6)) || (alen == 6 && !memcmp(s, "sha512", 6))) {
		size_t want = s[3] == '2' ? 64 : 128;

		*why = "invalid checksum digest length";
		if (hlen != want)
			return false;
		*why = "invalid checksum digest format";
		for (size_t i = 0; i < hlen; i++)
			if (isupper((unsigned char)colon[1 + i]))
				return false;
		return true;
	}
	*why = "unsupported digest algorithm";
	return false;
}

static void ref_update_string(struct reg_ref *ref)
{
	struct kn_buf b = KN_BUF_INIT;

	free(ref->name);
	ref->name = xasprintf("%s/%s", ref->domain, ref->path);
	kn_buf_adds(&b, ref->name);
	if (ref->tag)
		kn_buf_addf(&b, ":%s", ref->tag);
	if (ref->digest)
		kn_buf_addf(&b, "@%s", ref->digest);
	free(ref->string);
	ref->string = kn_buf_detach(&b);
}

static bool all_hex64(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

int reg_ref_parse(const char *s, struct reg_ref **ret, kn_error **err)
{
	_cleanup_(reg_ref_freep) struct reg_ref *ref = NULL;
	_cleanup_free_ char *name = NULL;
	_cleanup_free_ char *domain = NULL;
	const char *at, *slash, *rest, *colon, *why;
	size_t first_len;

	if (!s || !*s)
		return kn_error_set(err, EINVAL, "invalid reference '': repository name must have at least one component");
	if (strlen(s) > 4096)
		return kn_error_set(err, EINVAL, "invalid reference: too long");
	if (all_hex64(s))
		return kn_error_set(err, EINVAL, "invalid reference '%s': cannot specify 64-byte hexadecimal strings", s);
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return kn_error_set(err, EINVAL, "invalid reference '%s': invalid character", s);

	ref = xcalloc(1, sizeof(*ref));
	at = strchr(s, '@');
	if (at) {
		if (!valid_digest(at + 1, &why))
			return kn_error_set(err, EINVAL, "invalid reference '%s': %s", s, why);
		ref->digest = xstrdup(at + 1);
		name = xstrndup(s, (size_t)(at - s));
	} else {
		name = xstrdup(s);
	}

	/* Split off the domain: Docker's splitDockerDomain. */
	slash = strchr(name, '/');
	first_len = slash ? (size_t)(slash - name) : 0;
	if (slash) {
		bool has_upper = false;

		for (size_t i = 0; i < first_len; i++)
			if (isupper((unsigned char)name[i]))
				has_upper = true;
		if (!memchr(name, '.', first_len) && !memchr(name, ':', first_len) &&
		    !(first_len == 9 && !memcmp(name, "localhost", 9)) && !has_upper)
			slash = NULL;
	}
	if (slash) {
		domain = xstrndup(name, first_len);
		rest = slash + 1;
		if (!valid_domain(domain, first_len))
			return kn_error_set(err, EINVAL, "invalid reference '%s': invalid domain '%s'", s, domain);
	} else {
		domain = xstrdup("docker.io");
		rest = name;
	}
	if (!strcmp(domain, "index.docker.io")) {
		free(domain);
		domain = xstrdup("docker.io");
	}

	/* The tag is after the last ':' of the path part (the domain's port is already gone). */
	colon = strrchr(rest, ':');
	if (colon) {
		if (!valid_tag(colon + 1))
			return kn_error_set(err, EINVAL, "invalid reference '%s': invalid tag '%s'", s, colon + 1);
		ref->tag = xstrdup(colon + 1);
		ref->path = xstrndup(rest, (size_t)(colon - rest));
	} else {
		ref->path = xstrdup(rest);
	}
	if (!*ref->path)
		return kn_error_set(err, EINVAL, "invalid reference '%s': repository name must have at least one component", s);
	for (const char *p = ref->path; *p; p++)
		if (isupper((unsigned char)*p))
			return kn_error_set(err, EINVAL, "invalid reference '%s': repository name must be lowercase", s);
	for (const char *p = ref->path; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (!valid_path_component(p, n))
			return kn_error_set(err, EINVAL, "invalid reference '%s': invalid reference format", s);
		p += n;
		if (*p == '/' && !*++p)
			return kn_error_set(err, EINVAL, "invalid reference '%s': invalid reference format", s);
	}
	if (!strcmp(domain, "docker.io") && !strchr(ref->path, '/')) {
		char *p = xasprintf("library/%s", ref->path);

		free(ref->path);
		ref->path = p;
	}
	ref->domain = steal_ptr(&domain);
	if (strlen(ref->domain) + 1 + strlen(ref->path) > REF_NAME_MAX)
		return kn_error_set(err, EINVAL, "invalid reference '%s': repository name must not be more than %d characters",
				    s, REF_NAME_MAX);
	if (!ref->tag && !ref->digest)
		ref->tag = xstrdup("latest");
	ref_update_string(ref);
	*ret = steal_ptr(&ref);
	return 0;
}

struct reg_ref *reg_ref_dup(const struct reg_ref *ref)
{
	struct reg_ref *r = xcalloc(1, sizeof(*r));

	r->domain = xstrdup(ref->domain);
	r->path = xstrdup(ref->path);
	r->tag = ref->tag ? xstrdup(ref->tag) : NULL;
	r->digest = ref->digest ? xstrdup(ref->digest) : NULL;
	ref_update_string(r);
	return r;
}

void reg_ref_set_tag(struct reg_ref *ref, const char *tag)
{
	char *t = tag ? xstrdup(tag) : NULL;

	free(ref->tag);
	ref->tag = t;
	ref_update_string(ref);
}

void reg_ref_set_digest(struct reg_ref *ref, const char *digest)
{
	char *d = digest ? xstrdup(digest) : NULL;

	free(ref->digest);
	ref->digest = d;
	ref_update_string(ref);
}

char *reg_ref_familiar(const struct reg_ref *ref)
{
	struct kn_buf b = KN_BUF_INIT;

	if (!strcmp(ref->domain, "docker.io")) {
		const char *p = ref->path;

		if (!strncmp(p, "library/", 8) && !strchr(p + 8, '/'))
			p += 8;
		kn_buf_adds(&b, p);
	} else {
		kn_buf_adds(&b, ref->name);
	}
	if (ref->tag)
		kn_buf_addf(&b, ":%s", ref->tag);
	if (ref->digest)
		kn_buf_addf(&b, "@%s", ref->digest);
	return kn_buf_detach(&b);
}

void reg_ref_free(struct reg_ref *ref)
{
	if (!ref)
		return;
	free(ref->domain);
	free(ref->path);
	free(ref->tag);
	free(ref->digest);
	free(ref->name);
	free(ref->string);
	free(ref);
}

const char *reg_domain_api_host(const char *domain)
{
	if (!strcmp(domain, "docker.io") || !strcmp(domain, "index.docker.io"))
		return "registry-1.docker.io";
	return domain;
}

char *reg_registry_normalize(const char *registry)
{
	const char *s = registry;
	size_t n;
	char *d;

	if (!strncmp(s, "https://", 8))
		s += 8;
	else if (!strncmp(s, "http://", 7))
		s += 7;
	n = strcspn(s, "/");
	d = xstrndup(s, n);
	for (char *p = d; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!strcmp(d, "index.docker.io") || !strcmp(d, "registry-1.docker.io") || !strcmp(d, "docker.io") ||
	    !*d) {
		free(d);
		d = xstrdup("docker.io");
	}
	return d;
}
