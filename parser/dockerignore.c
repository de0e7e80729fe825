/*
 * kiln parser: .dockerignore reading and matching, with the semantics of docker's ignorefile
 * reader and moby/patternmatcher (written from their documented behaviour).
 *
 * patternmatcher compiles each pattern to a regular expression unless it is an exact path, a
 * literal prefix followed by a double star, or a double star followed by a literal suffix. We
 * keep those fast paths (their results differ from the regexp in corner cases, a leading double
 * star then "foo" matches "xfoo", and we want the same answers) and run
 * the others as a small NFA over the pattern's tokens: linear in path length times pattern size,
 * no backtracking.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"
#include "parser/sem-internal.h"

enum ig_match_type { IG_EXACT, IG_PREFIX, IG_SUFFIX, IG_REGEX };
enum ig_tok_kind { IG_LIT, IG_ANY, IG_STAR, IG_DSTAR_SLASH, IG_DSTAR_ALL, IG_CLASS };

struct ig_range {
	uint32_t lo;
	uint32_t hi;
};

struct ig_tok {
	enum ig_tok_kind kind;
	uint32_t rune;
	bool negate;	/* IG_CLASS */
	struct ig_range *ranges;
	size_t n_ranges;
};

struct ig_pattern {
	char *cleaned;
	bool exclusion;
	enum ig_match_type type;
	struct ig_tok *toks;
	size_t n_toks;
};

struct df_ignore {
	struct ig_pattern *pats;
	size_t n;
	bool exclusions;
};

static void pattern_release(struct ig_pattern *p)
{
	for (size_t i = 0; i < p->n_toks; i++)
		free(p->toks[i].ranges);
	free(p->toks);
	free(p->cleaned);
}

static struct ig_tok *push_tok(struct ig_pattern *p, size_t *alloc, enum ig_tok_kind kind, uint32_t rune)
{
	struct ig_tok *t;

	KN_GROW(p->toks, *alloc, p->n_toks + 1);
	t = &p->toks[p->n_toks++];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->rune = rune;
	return t;
}

static uint32_t rune_at(const char *s, size_t len, size_t *i)
{
	uint32_t r;

	*i += sem_utf8_decode(s + *i, len - *i, &r);
	return r;
}

/*
 * Parses a class "[...]" starting after '[' at s[*i]: '^' negates, "a-z" ranges, '\' escapes.
 * Go's filepath.Match (which patternmatcher uses to validate) rejects an unclosed class, an
 * empty one, a range with a missing end and a trailing escape.
 */
static int parse_class(const char *s, size_t len, size_t *i, struct ig_tok *t)
{
	size_t alloc = 0;

	if (*i < len && s[*i] == '^') {
		t->negate = true;
		(*i)++;
	}
	for (;;) {
		uint32_t lo, hi;

		if (*i >= len)
			return -1;
		if (s[*i] == ']' && t->n_ranges > 0) {
			(*i)++;
			return 0;
		}
		if (s[*i] == '-' || s[*i] == ']')
			return -1;
		if (s[*i] == '\\') {
			(*i)++;
			if (*i >= len)
				return -1;
		}
		lo = rune_at(s, len, i);
		hi = lo;
		if (*i < len && s[*i] == '-') {
			(*i)++;
			if (*i >= len || s[*i] == ']' || s[*i] == '-')
				return -1;
			if (s[*i] == '\\') {
				(*i)++;
				if (*i >= len)
					return -1;
			}
			hi = rune_at(s, len, i);
		}
		KN_GROW(t->ranges, alloc, t->n_ranges + 1);
		t->ranges[t->n_ranges].lo = lo;
		t->ranges[t->n_ranges].hi = hi;
		t->n_ranges++;
	}
}

/* patternmatcher's Pattern.compile, to tokens. Returns -1 on a bad pattern. */
static int pattern_compile(struct ig_pattern *p)
{
	const char *s = p->cleaned;
	size_t len = strlen(s), i = 0, alloc = 0;
	enum ig_match_type type = IG_EXACT;

	for (size_t idx = 0; i < len; idx++) {
		uint32_t ch = rune_at(s, len, &i);

		if (ch == '*') {
			if (i < len && s[i] == '*') {
				i++;
				if (i < len && s[i] == '/')
					i++;
				if (i >= len) {
					if (type == IG_EXACT) {
						type = IG_PREFIX;
					} else {
						push_tok(p, &alloc, IG_DSTAR_ALL, 0);
						type = IG_REGEX;
					}
				} else {
					push_tok(p, &alloc, IG_DSTAR_SLASH, 0);
					type = IG_REGEX;
				}
				if (idx == 0)
					type = IG_SUFFIX;
			} else {
				push_tok(p, &alloc, IG_STAR, 0);
				type = IG_REGEX;
			}
		} else if (ch == '?') {
			push_tok(p, &alloc, IG_ANY, 0);
			type = IG_REGEX;
		} else if (ch == '\\') {
			if (i >= len)
				return -1; /* filepath.Match: trailing escape */
			push_tok(p, &alloc, IG_LIT, rune_at(s, len, &i));
			type = IG_REGEX;
		} else if (ch == '[') {
			struct ig_tok *t = push_tok(p, &alloc, IG_CLASS, 0);

			if (parse_class(s, len, &i, t) < 0)
				return -1;
			type = IG_REGEX;
		} else if (ch == ']') {
			push_tok(p, &alloc, IG_LIT, ']');
			type = IG_REGEX;
		} else {
			push_tok(p, &alloc, IG_LIT, ch);
		}
	}
	p->type = type;
	return 0;
}

static bool class_matches(const struct ig_tok *t, uint32_t r)
{
	bool in = false;

	for (size_t i = 0; i < t->n_ranges && !in; i++)
		in = r >= t->ranges[i].lo && r <= t->ranges[i].hi;
	return in != t->negate;
}

/* NFA state sets: live[i] = before token i; inside[i] = inside the any-run of a double-star-slash token at i. */
struct nfa {
	bool *live;
	bool *inside;
	bool *nlive;
	bool *ninside;
};

static void nfa_close(const struct ig_pattern *p, bool *live)
{
	for (size_t i = 0; i < p->n_toks; i++)
		if (live[i] && (p->toks[i].kind == IG_STAR || p->toks[i].kind == IG_DSTAR_ALL ||
				p->toks[i].kind == IG_DSTAR_SLASH))
			live[i + 1] = true;
}

/* Runs the NFA over s; returns whether any state is live at the end (and the accept state). */
static bool nfa_run(const struct ig_pattern *p, const char *s, size_t len, bool *ret_accept)
{
	size_t n = p->n_toks, i = 0;
	bool small[4 * 17];
	bool *mem = (n + 1) * 4 <= KN_ARRAY_SIZE(small) ? small : xcalloc((n + 1) * 4, 1);
	bool *live = mem, *inside = mem + n + 1, *nlive = mem + 2 * (n + 1), *ninside = mem + 3 * (n + 1);
	bool any = true;

	memset(mem, 0, (n + 1) * 4);
	live[0] = true;
	nfa_close(p, live);
	while (i < len && any) {
		uint32_t r = rune_at(s, len, &i);
		bool *tmp;

		memset(nlive, 0, n + 1);
		memset(ninside, 0, n + 1);
		for (size_t k = 0; k < n; k++) {
			const struct ig_tok *t = &p->toks[k];

			if (inside[k]) {
				if (r != '\n')
					ninside[k] = true;
				if (r == '/')
					nlive[k + 1] = true;
			}
			if (!live[k])
				continue;
			switch (t->kind) {
			case IG_LIT:
				if (r == t->rune)
					nlive[k + 1] = true;
				break;
			case IG_ANY:
				if (r != '/')
					nlive[k + 1] = true;
				break;
			case IG_CLASS:
				if (class_matches(t, r))
					nlive[k + 1] = true;
				break;
			case IG_STAR:
				if (r != '/')
					nlive[k] = true;
				break;
			case IG_DSTAR_ALL:
				if (r != '\n')
					nlive[k] = true;
				break;
			case IG_DSTAR_SLASH:
				if (r != '\n')
					ninside[k] = true;
				if (r == '/')
					nlive[k + 1] = true;
				break;
			}
		}
		nfa_close(p, nlive);
		tmp = live;
		live = nlive;
		nlive = tmp;
		tmp = inside;
		inside = ninside;
		ninside = tmp;
		any = false;
		for (size_t k = 0; k <= n && !any; k++)
			any = live[k] || inside[k];
	}
	if (ret_accept)
		*ret_accept = any && live[n];
	if (mem != small)
		free(mem);
	return any;
}

static bool pattern_match(const struct ig_pattern *p, const char *path, size_t len)
{
	size_t cl = strlen(p->cleaned);
	bool accept = false;

	switch (p->type) {
	case IG_EXACT:
		return len == cl && memcmp(path, p->cleaned, len) == 0;
	case IG_PREFIX:
		return len >= cl - 2 && memcmp(path, p->cleaned, cl - 2) == 0;
	case IG_SUFFIX: {
		const char *suffix = p->cleaned + 2;
		size_t sl = cl - 2;

		if (len >= sl && memcmp(path + len - sl, suffix, sl) == 0)
			return true;
		return sl > 0 && suffix[0] == '/' && len == sl - 1 && memcmp(path, suffix + 1, len) == 0;
	}
	case IG_REGEX:
		nfa_run(p, path, len, &accept);
		return accept;
	}
	return false;
}

void df_ignore_read(const char *text, size_t len, struct kn_strv *ret_patterns)
{
	size_t pos = 0;
	bool first = true;

	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		_cleanup_free_ char *pat = NULL;
		char *b, *e;
		bool invert;

		pos += n + (nl ? 1 : 0);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (first && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
			line += 3;
			n -= 3;
		}
		first = false;
		if (n > 0 && line[0] == '#')
			continue;
		pat = xstrndup(line, n);
		b = pat;
		while (*b == ' ' || *b == '\t' || *b == '\v' || *b == '\f' || *b == '\r')
			b++;
		e = b + strlen(b);
		while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\v' || e[-1] == '\f' || e[-1] == '\r'))
			*--e = 0;
		if (!*b)
			continue;
		invert = b[0] == '!';
		if (invert) {
			b++;
			while (*b == ' ' || *b == '\t')
				b++;
		}
		if (*b) {
			_cleanup_free_ char *c = sem_path_clean(b);
			const char *q = c;

			if (strlen(q) > 1 && q[0] == '/')
				q++;
			kn_strv_pushf(ret_patterns, "%s%s", invert ? "!" : "", q);
		} else {
			kn_strv_push(ret_patterns, invert ? "!" : "");
		}
	}
}

int df_ignore_new(char *const *patterns, size_t n, struct df_ignore **ret, kn_error **err)
{
	struct df_ignore *m = xcalloc(1, sizeof(*m));

	m->pats = xcalloc(n ? n : 1, sizeof(*m->pats));
	for (size_t i = 0; i < n; i++) {
		const char *s = patterns[i];
		_cleanup_free_ char *trimmed = NULL, *c = NULL;
		struct ig_pattern *p;
		char *e;

		while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
			s++;
		trimmed = xstrdup(s);
		e = trimmed + strlen(trimmed);
		while (e > trimmed && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r' ||
				       e[-1] == '\v' || e[-1] == '\f'))
			*--e = 0;
		if (!*trimmed)
			continue;
		c = sem_path_clean(trimmed);
		p = &m->pats[m->n];
		if (c[0] == '!') {
			if (!c[1]) {
				df_ignore_free(m);
				return kn_error_set(err, 0, "illegal exclusion pattern: \"!\"");
			}
			p->exclusion = true;
			m->exclusions = true;
			p->cleaned = xstrdup(c + 1);
		} else {
			p->cleaned = xstrdup(c);
		}
		m->n++;
		if (pattern_compile(p) < 0) {
			kn_error_set(err, 0, "syntax error in pattern '%s'", patterns[i]);
			df_ignore_free(m);
			return -1;
		}
	}
	*ret = m;
	return 0;
}

int df_ignore_parse(const char *text, size_t len, struct df_ignore **ret, kn_error **err)
{
	struct kn_strv pats = KN_STRV_INIT;
	int r;

	df_ignore_read(text, len, &pats);
	r = df_ignore_new(pats.v, pats.n, ret, err);
	kn_strv_release(&pats);
	return r;
}

void df_ignore_free(struct df_ignore *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		pattern_release(&m->pats[i]);
	free(m->pats);
	free(m);
}

size_t df_ignore_count(const struct df_ignore *m)
{
	return m ? m->n : 0;
}

bool df_ignore_has_exceptions(const struct df_ignore *m)
{
	return m && m->exclusions;
}

static char *normalize(const char *path)
{
	char *c = sem_path_clean(path && *path ? path : ".");

	while (c[0] == '/') {
		char *n = sem_path_clean(c + 1);

		free(c);
		c = n;
		if (strcmp(c, "/") == 0)
			break;
	}
	return c;
}

/* MatchesOrParentMatches on a cleaned relative path. */
static bool matches_clean(const struct df_ignore *m, const char *file)
{
	size_t len = strlen(file);
	const char *slash = strrchr(file, '/');
	size_t parent_len = slash ? (size_t)(slash - file) : 0;
	bool matched = false;

	for (size_t i = 0; i < m->n; i++) {
		const struct ig_pattern *p = &m->pats[i];
		bool match;

		if (p->exclusion != matched)
			continue;
		match = pattern_match(p, file, len);
		if (!match && parent_len > 0) {
			for (size_t k = 0; k <= parent_len && !match; k++)
				if (k == parent_len || file[k] == '/')
					match = pattern_match(p, file, k);
		}
		if (match)
			matched = !p->exclusion;
	}
	return matched;
}

bool df_ignore_matches(const struct df_ignore *m, const char *path)
{
	_cleanup_free_ char *c = NULL;

	if (!m || m->n == 0)
		return false;
	c = normalize(path);
	if (strcmp(c, ".") == 0 || strcmp(c, "/") == 0)
		return false;
	return matches_clean(m, c);
}

/* Whether exception pattern p can match some path below dir (a path starting with "dir/"). */
static bool may_match_below(const struct ig_pattern *p, const char *dir)
{
	_cleanup_free_ char *prefix = xasprintf("%s/", dir);
	size_t pl = strlen(prefix), cl = strlen(p->cleaned);

	switch (p->type) {
	case IG_EXACT:
		return cl > pl && memcmp(p->cleaned, prefix, pl) == 0;
	case IG_PREFIX:
		/* every path starting with cleaned minus "**" */
		return memcmp(p->cleaned, prefix, cl - 2 < pl ? cl - 2 : pl) == 0;
	case IG_SUFFIX:
		return true;
	case IG_REGEX:
		return nfa_run(p, prefix, pl, NULL);
	}
	return true;
}

bool df_ignore_dir_skippable(const struct df_ignore *m, const char *dir)
{
	_cleanup_free_ char *c = NULL;

	if (!m || m->n == 0)
		return false;
	c = normalize(dir);
	if (strcmp(c, ".") == 0 || strcmp(c, "/") == 0)
		return false;
	if (!matches_clean(m, c))
		return false;
	for (size_t i = 0; i < m->n; i++)
		if (m->pats[i].exclusion && may_match_below(&m->pats[i], c))
			return false;
	return true;
}

char **df_ignore_candidates(const char *context_dir, const char *dockerfile_path)
{
	struct kn_strv sv = KN_STRV_INIT;

	if (dockerfile_path && *dockerfile_path)
		kn_strv_pushf(&sv, "%s.dockerignore", dockerfile_path);
	kn_strv_push_owned(&sv, kn_path_join(context_dir && *context_dir ? context_dir : ".", ".dockerignore"));
	return kn_strv_detach(&sv);
}
