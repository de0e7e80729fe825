/*
 * kiln parser: word expansion and splitting, with the semantics of BuildKit's shell lexer
 * (frontend/dockerfile/shell/lex.go). Written from its documented behaviour and test cases.
 *
 * The lexer is a recursive descent over the word: process_stop_on() reads until a stop
 * character, dollar() handles $name and ${...}; a ${...} operand is itself read with
 * process_stop_on(), so nesting recurses. The depth is bounded (DF_EXPAND_MAX_DEPTH) so that
 * hostile input is refused with an error instead of a stack overflow.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parser/parser.h"
#include "parser/sem-internal.h"

#define SEM_EOF (-1)

/* ---- small shared helpers ------------------------------------------------------------------ */

size_t sem_utf8_decode(const char *s, size_t len, uint32_t *ret)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t r;
	size_t n, i;

	if (len == 0) {
		*ret = 0;
		return 0;
	}
	if (u[0] < 0x80) {
		*ret = u[0];
		return 1;
	}
	if ((u[0] & 0xe0) == 0xc0) {
		n = 2;
		r = u[0] & 0x1f;
	} else if ((u[0] & 0xf0) == 0xe0) {
		n = 3;
		r = u[0] & 0x0f;
	} else if ((u[0] & 0xf8) == 0xf0) {
		n = 4;
		r = u[0] & 0x07;
	} else {
		*ret = u[0];
		return 1;
	}
	if (n > len) {
		*ret = u[0];
		return 1;
	}
	for (i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80) {
			*ret = u[0];
			return 1;
		}
		r = (r << 6) | (u[i] & 0x3f);
	}
	if ((n == 2 && r < 0x80) || (n == 3 && r < 0x800) || (n == 4 && (r < 0x10000 || r > 0x10ffff)) ||
	    (r >= 0xd800 && r <= 0xdfff)) {
		*ret = u[0];
		return 1;
	}
	*ret = r;
	return n;
}

bool sem_is_space(uint32_t r)
{
	switch (r) {
	case '\t': case '\n': case '\v': case '\f': case '\r': case ' ': case 0x85: case 0xa0:
	case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f: case 0x3000:
		return true;
	default:
		return r >= 0x2000 && r <= 0x200a;
	}
}

bool sem_is_letter(uint32_t r)
{
	if (r < 0x80)
		return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z');
	/* Non-ASCII: the letter blocks that matter in practice (Latin, Greek, Cyrillic, Hebrew,
	 * Arabic, CJK, kana, Hangul); punctuation and symbols stay non-letters. */
	if (r == 0xaa || r == 0xb5 || r == 0xba)
		return true;
	if (r >= 0xc0 && r <= 0x24f)
		return r != 0xd7 && r != 0xf7;
	if ((r >= 0x370 && r <= 0x3ff && r != 0x37e && r != 0x387) || (r >= 0x400 && r <= 0x52f) ||
	    (r >= 0x5d0 && r <= 0x5ea) || (r >= 0x620 && r <= 0x64a) || (r >= 0x1e00 && r <= 0x1fff) ||
	    (r >= 0x3041 && r <= 0x30ff && r != 0x30a0 && r != 0x30fb) || (r >= 0x3400 && r <= 0x4dbf) ||
	    (r >= 0x4e00 && r <= 0x9fff) || (r >= 0xac00 && r <= 0xd7a3) || (r >= 0x1100 && r <= 0x11ff) ||
	    (r >= 0x3131 && r <= 0x318e) || (r >= 0xf900 && r <= 0xfaff) || (r >= 0x20000 && r <= 0x2fa1f))
		return true;
	return false;
}

static bool is_digit(uint32_t r)
{
	return r >= '0' && r <= '9';
}

void sem_add_goquoted(struct kn_buf *b, const char *s)
{
	kn_buf_addch(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"': kn_buf_adds(b, "\\\""); break;
		case '\\': kn_buf_adds(b, "\\\\"); break;
		case '\n': kn_buf_adds(b, "\\n"); break;
		case '\t': kn_buf_adds(b, "\\t"); break;
		case '\r': kn_buf_adds(b, "\\r"); break;
		default:
			if (c < 0x20 || c == 0x7f)
				kn_buf_addf(b, "\\x%02x", c);
			else
				kn_buf_addch(b, c);
		}
	}
	kn_buf_addch(b, '"');
}

char *sem_path_clean(const char *p)
{
	struct kn_buf out = KN_BUF_INIT;
	bool rooted = p[0] == '/';
	size_t i = 0, n = strlen(p), dotdot;

	if (n == 0)
		return xstrdup(".");
	if (rooted) {
		kn_buf_addch(&out, '/');
		i = 1;
	}
	dotdot = out.len;
	while (i < n) {
		if (p[i] == '/') {
			i++;
		} else if (p[i] == '.' && (i + 1 == n || p[i + 1] == '/')) {
			i++;
		} else if (p[i] == '.' && p[i + 1] == '.' && (i + 2 == n || p[i + 2] == '/')) {
			i += 2;
			if (out.len > dotdot) {
				size_t w = out.len - 1;

				while (w > dotdot && out.buf[w] != '/')
					w--;
				kn_buf_setlen(&out, w);
			} else if (!rooted) {
				if (out.len > 0)
					kn_buf_addch(&out, '/');
				kn_buf_adds(&out, "..");
				dotdot = out.len;
			}
		} else {
			if ((rooted && out.len != 1) || (!rooted && out.len != 0))
				kn_buf_addch(&out, '/');
			while (i < n && p[i] != '/')
				kn_buf_addch(&out, p[i++]);
		}
	}
	if (out.len == 0)
		kn_buf_addch(&out, '.');
	return kn_buf_detach(&out);
}

bool sem_strcaseeq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;

		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (y >= 'A' && y <= 'Z')
			y += 32;
		if (x != y)
			return false;
	}
	return *a == *b;
}

char *sem_strdup_lower(const char *s)
{
	char *r = xstrdup(s);

	for (char *p = r; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 32;
	return r;
}

/* ---- df_env --------------------------------------------------------------------------------- */

static uint64_t env_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

void df_env_init(struct df_env *env)
{
	memset(env, 0, sizeof(*env));
}

void df_env_release(struct df_env *env)
{
	for (size_t i = 0; i < env->n; i++) {
		free(env->keys[i]);
		free(env->values[i]);
	}
	free(env->keys);
	free(env->values);
	free(env->slots);
	memset(env, 0, sizeof(*env));
}

static size_t env_find_slot(const struct df_env *env, const char *key)
{
	size_t mask = env->n_slots - 1, i = env_hash(key) & mask;

	while (env->slots[i]) {
		if (strcmp(env->keys[env->slots[i] - 1], key) == 0)
			return i;
		i = (i + 1) & mask;
	}
	return i;
}

static void env_reindex(struct df_env *env, size_t n_slots)
{
	free(env->slots);
	env->n_slots = n_slots;
	env->slots = xcalloc(n_slots, sizeof(*env->slots));
	for (size_t i = 0; i < env->n; i++)
		env->slots[env_find_slot(env, env->keys[i])] = i + 1;
}

const char *df_env_get(const struct df_env *env, const char *key)
{
	size_t s;

	if (!env || env->n == 0)
		return NULL;
	s = env_find_slot(env, key);
	return env->slots[s] ? env->values[env->slots[s] - 1] : NULL;
}

void df_env_set(struct df_env *env, const char *key, const char *value)
{
	size_t s;

	if (!value)
		value = "";
	if (env->n_slots == 0)
		env_reindex(env, 16);
	s = env_find_slot(env, key);
	if (env->slots[s]) {
		size_t i = env->slots[s] - 1;

		free(env->values[i]);
		env->values[i] = xstrdup(value);
		return;
	}
	if (env->n + 1 > env->alloc) {
		KN_GROW(env->keys, env->alloc, env->n + 1);
		env->values = xreallocarray(env->values, env->alloc, sizeof(*env->values));
	}
	env->keys[env->n] = xstrdup(key);
	env->values[env->n] = xstrdup(value);
	env->n++;
	if (env->n * 2 > env->n_slots)
		env_reindex(env, env->n_slots * 2);
	else
		env->slots[s] = env->n;
}

void df_env_set_kv(struct df_env *env, const char *kv)
{
	const char *eq = strchr(kv, '=');
	_cleanup_free_ char *key = NULL;

	if (!eq) {
		df_env_set(env, kv, "");
		return;
	}
	key = xstrndup(kv, (size_t)(eq - kv));
	df_env_set(env, key, eq + 1);
}

bool df_env_unset(struct df_env *env, const char *key)
{
	size_t s, i;

	if (env->n == 0)
		return false;
	s = env_find_slot(env, key);
	if (!env->slots[s])
		return false;
	i = env->slots[s] - 1;
	free(env->keys[i]);
	free(env->values[i]);
	memmove(env->keys + i, env->keys + i + 1, (env->n - i - 1) * sizeof(*env->keys));
	memmove(env->values + i, env->values + i + 1, (env->n - i - 1) * sizeof(*env->values));
	env->n--;
	env_reindex(env, env->n_slots);
	return true;
}

void df_env_merge(struct df_env *dst, const struct df_env *src)
{
	for (size_t i = 0; i < src->n; i++)
		df_env_set(dst, src->keys[i], src->values[i]);
}

char **df_env_to_strv(const struct df_env *env)
{
	struct kn_strv sv = KN_STRV_INIT;

	for (size_t i = 0; i < env->n; i++)
		kn_strv_pushf(&sv, "%s=%s", env->keys[i], env->values[i]);
	return kn_strv_detach(&sv);
}

/* ---- shell-pattern matching (${a#p} ${a%p} ${a/p/r}) ----------------------------------------- */

/*
 * BuildKit turns the pattern into a Go regular expression: '*' is ".*" (greedy) or ".*?"
 * (shortest), '?' is ".", everything else literal, and runs it leftmost-first. We match the
 * tokens directly with a memoized backtracking search in the same preference order, so the
 * chosen match is the one the regexp would choose, in O(pattern * value) time.
 */
enum pat_tok_kind { PAT_LIT, PAT_ANY, PAT_STAR };

struct pat_tok {
	enum pat_tok_kind kind;
	uint32_t rune;
};

struct pattern {
	struct pat_tok *toks;
	size_t n;
	size_t alloc;
	bool greedy;
};

static void pattern_release(struct pattern *p)
{
	free(p->toks);
}

static void pattern_push(struct pattern *p, enum pat_tok_kind kind, uint32_t rune)
{
	KN_GROW(p->toks, p->alloc, p->n + 1);
	p->toks[p->n].kind = kind;
	p->toks[p->n].rune = rune;
	p->n++;
}

/* convertShellPatternToRegex: returns -1 and sets *msg on a bad escape. */
static int pattern_compile(const char *s, bool greedy, struct pattern *ret, char **msg)
{
	size_t len = strlen(s), i = 0;

	memset(ret, 0, sizeof(*ret));
	ret->greedy = greedy;
	while (i < len) {
		uint32_t r;

		i += sem_utf8_decode(s + i, len - i, &r);
		if (r == '*') {
			pattern_push(ret, PAT_STAR, 0);
		} else if (r == '?') {
			pattern_push(ret, PAT_ANY, 0);
		} else if (r == '\\') {
			/* "\}" and "\/" only escape the ${} syntax: the escape is not part of the pattern */
			if (i < len && (s[i] == '}' || s[i] == '/'))
				continue;
			if (i >= len) {
				*msg = xstrdup("invalid escape '\\'");
				pattern_release(ret);
				return -1;
			}
			i += sem_utf8_decode(s + i, len - i, &r);
			if (r != '*' && r != '?' && r != '\\') {
				*msg = xasprintf("invalid escape '\\%.*s'", (int)(r < 0x80 ? 1 : 0), s + i - 1);
				if (r >= 0x80) {
					free(*msg);
					*msg = xstrdup("invalid escape '\\'");
				}
				pattern_release(ret);
				return -1;
			}
			pattern_push(ret, PAT_LIT, r);
		} else {
			pattern_push(ret, PAT_LIT, r);
		}
	}
	return 0;
}

struct pmatch {
	const char *v;
	size_t vlen;
	long *row0;	/* row0[i]: end of the preferred match starting at byte i (rune starts), or -1 */
};

/* Upper bound of pattern tokens times value bytes: beyond it the substitution is refused. */
#define PMATCH_MAX_WORK (1UL << 28)

/*
 * Fills row0 with a dynamic program over (token, offset), offsets descending so that every state
 * only depends on states already computed: at(t, i) for a literal/any token is at(t+1, i+w) when
 * the rune at i fits; for '*' it is, greedy, at(t, i+w) else at(t+1, i) (lazy: the other order).
 * Two columns of n+1 entries, O(tokens * value) time, no recursion.
 */
static int pmatch_init(struct pmatch *m, const struct pattern *p, const char *v, char **msg)
{
	size_t vlen = strlen(v), n = p->n, n_starts = 0, alloc = 0;
	size_t *starts = NULL;
	uint32_t *runes = NULL;
	long *cur, *nxt;

	memset(m, 0, sizeof(*m));
	if ((n + 1) > PMATCH_MAX_WORK / (vlen + 1)) {
		*msg = xstrdup("pattern or value too long");
		return -1;
	}
	m->v = v;
	m->vlen = vlen;
	m->row0 = xmalloc((vlen + 1) * sizeof(*m->row0));
	for (size_t i = 0; i < vlen;) {
		uint32_t r;
		size_t w = sem_utf8_decode(v + i, vlen - i, &r);

		if (n_starts + 1 > alloc) {
			KN_GROW(starts, alloc, n_starts + 1);
			runes = xreallocarray(runes, alloc, sizeof(*runes));
		}
		starts[n_starts] = i;
		runes[n_starts] = r;
		n_starts++;
		m->row0[i] = -1;
		i += w;
	}
	cur = xmalloc((n + 1) * sizeof(*cur));
	nxt = xmalloc((n + 1) * sizeof(*nxt));
	for (size_t k = n_starts + 1; k-- > 0;) {
		size_t vi = k < n_starts ? starts[k] : vlen;
		bool have = k < n_starts;
		uint32_t r = have ? runes[k] : 0;
		long *tmp;

		for (size_t t = n + 1; t-- > 0;) {
			long res = -1;

			if (t == n) {
				res = (long)vi;
			} else if (p->toks[t].kind == PAT_STAR) {
				bool consume = have && r != '\n';

				if (p->greedy) {
					res = consume ? nxt[t] : -1;
					if (res < 0)
						res = cur[t + 1];
				} else {
					res = cur[t + 1];
					if (res < 0 && consume)
						res = nxt[t];
				}
			} else if (have && ((p->toks[t].kind == PAT_ANY && r != '\n') ||
					    (p->toks[t].kind == PAT_LIT && r == p->toks[t].rune))) {
				res = nxt[t + 1];
			}
			cur[t] = res;
		}
		m->row0[vi] = cur[0];
		tmp = cur;
		cur = nxt;
		nxt = tmp;
	}
	free(cur);
	free(nxt);
	free(starts);
	free(runes);
	return 0;
}

static void pmatch_release(struct pmatch *m)
{
	free(m->row0);
}

static size_t rune_width(const char *s, size_t len, size_t i)
{
	uint32_t r;

	return i < len ? sem_utf8_decode(s + i, len - i, &r) : 1;
}

/* Leftmost match starting at or after from (rune starts only): sets *s,*e, returns false if none. */
static bool pmatch_find(struct pmatch *m, size_t from, size_t *s, size_t *e)
{
	for (size_t i = from; i <= m->vlen; i += rune_width(m->v, m->vlen, i)) {
		if (m->row0[i] >= 0) {
			*s = i;
			*e = (size_t)m->row0[i];
			return true;
		}
	}
	return false;
}

static void reverse_runes(const char *s, struct kn_buf *out)
{
	size_t len = strlen(s), i = len;
	size_t *starts = NULL, n = 0, alloc = 0;

	for (size_t j = 0; j < len;) {
		uint32_t r;

		KN_GROW(starts, alloc, n + 1);
		starts[n++] = j;
		j += sem_utf8_decode(s + j, len - j, &r);
	}
	while (n-- > 0) {
		kn_buf_add(out, s + starts[n], i - starts[n]);
		i = starts[n];
	}
	free(starts);
}

/* reversePattern: reverses runes but keeps "\x" escape pairs in order. */
static char *reverse_pattern(const char *s)
{
	size_t len = strlen(s), n = 0, alloc = 0;
	struct { size_t off, len; } *units = NULL;
	struct kn_buf out = KN_BUF_INIT;

	for (size_t j = 0; j < len;) {
		uint32_t r;
		size_t w = sem_utf8_decode(s + j, len - j, &r);

		KN_GROW(units, alloc, n + 1);
		units[n].off = j;
		if (r == '\\' && j + w < len) {
			uint32_t r2;

			w += sem_utf8_decode(s + j + w, len - j - w, &r2);
		}
		units[n].len = w;
		n++;
		j += w;
	}
	while (n-- > 0)
		kn_buf_add(&out, s + units[n].off, units[n].len);
	free(units);
	return kn_buf_detach(&out);
}

/* ${value#pattern} (greedy: ##): the value without the matched prefix. */
static int trim_prefix(const char *pattern, const char *value, bool greedy, char **ret, char **msg)
{
	struct pattern p;
	struct pmatch m;
	long end;

	if (pattern_compile(pattern, greedy, &p, msg) < 0)
		return -1;
	if (pmatch_init(&m, &p, value, msg) < 0) {
		pattern_release(&p);
		return -1;
	}
	end = m.row0[0];
	*ret = xstrdup(value + (end > 0 ? end : 0));
	pmatch_release(&m);
	pattern_release(&p);
	return 0;
}

static int trim_suffix(const char *pattern, const char *value, bool greedy, char **ret, char **msg)
{
	_cleanup_free_ char *rp = reverse_pattern(pattern);
	struct kn_buf rv = KN_BUF_INIT, out = KN_BUF_INIT;
	char *trimmed = NULL;
	int r;

	reverse_runes(value, &rv);
	r = trim_prefix(rp, rv.buf, greedy, &trimmed, msg);
	kn_buf_release(&rv);
	if (r < 0)
		return -1;
	reverse_runes(trimmed, &out);
	free(trimmed);
	*ret = kn_buf_detach(&out);
	return 0;
}

/* Go's regexp template expansion for ReplaceAllString: $0/${0} is the match, $$ a dollar,
 * other $name references (no such groups here) expand to nothing. */
static void add_template(struct kn_buf *out, const char *tpl, const char *match, size_t mlen,
			 size_t cap)
{
	while (*tpl) {
		const char *d = strchr(tpl, '$');
		const char *name, *end;
		bool braced = false;

		if (!d) {
			kn_buf_adds(out, tpl);
			return;
		}
		kn_buf_add(out, tpl, (size_t)(d - tpl));
		tpl = d + 1;
		if (*tpl == '$') {
			kn_buf_addch(out, '$');
			tpl++;
			continue;
		}
		name = tpl;
		if (*name == '{') {
			braced = true;
			name++;
		}
		end = name;
		while ((*end >= 'a' && *end <= 'z') || (*end >= 'A' && *end <= 'Z') ||
		       (*end >= '0' && *end <= '9') || *end == '_')
			end++;
		if (end == name || (braced && *end != '}')) {
			kn_buf_addch(out, '$');
			continue;
		}
		{
			long num = 0;

			for (const char *c = name; c < end; c++) {
				if (*c < '0' || *c > '9' || num >= 100000000) {
					num = -1;
					break;
				}
				num = num * 10 + (*c - '0');
			}
			if (num == 0) {
				if (out->len > cap)
					return; /* the caller sees the length */
				kn_buf_add(out, match, mlen);
			}
		}
		tpl = braced ? end + 1 : end;
	}
}

/* ${value/pattern/repl}: fails with *msg set on a bad pattern, or *msg NULL when the result
 * would be longer than cap. */
static int replace(const char *value, const char *pattern, const char *repl, bool all, size_t cap,
		   char **ret, char **msg)
{
	struct pattern p;
	struct pmatch m;
	struct kn_buf out = KN_BUF_INIT;
	size_t s, e;

	if (pattern_compile(pattern, true, &p, msg) < 0)
		return -1;
	if (pmatch_init(&m, &p, value, msg) < 0) {
		pattern_release(&p);
		return -1;
	}
	if (!all) {
		if (pmatch_find(&m, 0, &s, &e)) {
			kn_buf_add(&out, value, s);
			kn_buf_adds(&out, repl);
			kn_buf_adds(&out, value + e);
		} else {
			kn_buf_adds(&out, value);
		}
	} else {
		size_t search = 0, last_end = 0;

		while (search <= m.vlen && pmatch_find(&m, search, &s, &e)) {
			size_t w;

			kn_buf_add(&out, value + last_end, s - last_end);
			/* no replacement for an empty match right after the previous match */
			if (e > last_end || s == 0)
				add_template(&out, repl, value + s, e - s, cap);
			last_end = e;
			if (out.len > cap) {
				kn_buf_release(&out);
				pmatch_release(&m);
				pattern_release(&p);
				*msg = NULL;
				return -1;
			}
			w = rune_width(value, m.vlen, search);
			if (search + w > e)
				search += w;
			else
				search = e;
		}
		kn_buf_adds(&out, value + last_end);
	}
	pmatch_release(&m);
	pattern_release(&p);
	*ret = kn_buf_detach(&out);
	return 0;
}

/* ---- the lexer ------------------------------------------------------------------------------ */

struct words {
	struct kn_buf word;
	struct kn_strv words;
	bool in_word;
	bool off;	/* nobody wants the split words: skip the work */
};

static void words_add_raw(struct words *w, const char *s, size_t n)
{
	if (w->off)
		return;
	kn_buf_add(&w->word, s, n);
	w->in_word = true;
}

static void words_add_char(struct words *w, const char *s, size_t n, uint32_t r)
{
	if (w->off)
		return;
	if (sem_is_space(r)) {
		if (w->in_word && w->word.len != 0) {
			kn_strv_push_owned(&w->words, kn_buf_detach(&w->word));
			w->in_word = false;
		}
	} else {
		words_add_raw(w, s, n);
	}
}

static void words_add_string(struct words *w, const char *s)
{
	size_t len;

	if (w->off)
		return;
	len = strlen(s);

	for (size_t i = 0; i < len;) {
		uint32_t r;
		size_t n = sem_utf8_decode(s + i, len - i, &r);

		words_add_char(w, s + i, n, r);
		i += n;
	}
}

static char **words_get(struct words *w)
{
	if (w->off)
		return xcalloc(1, sizeof(char *));
	if (w->word.len > 0)
		kn_strv_push_owned(&w->words, kn_buf_detach(&w->word));
	kn_buf_release(&w->word);
	return kn_strv_detach(&w->words);
}

static void words_release(struct words *w)
{
	kn_buf_release(&w->word);
	kn_strv_release(&w->words);
}

struct lexer {
	const char *s;
	size_t len;
	size_t pos;
	const struct df_env *env;
	int escape;
	unsigned flags;
	bool raw_escapes;
	int depth;
	size_t produced;	/* bytes substitution put in so far, at most DF_EXPAND_MAX_LEN */
	struct df_env matched;	/* used as ordered sets */
	struct df_env unmatched;
	char *errmsg;	/* set once on failure */
};

static int peek(const struct lexer *lx)
{
	return lx->pos < lx->len ? (unsigned char)lx->s[lx->pos] : SEM_EOF;
}

/* Consumes one rune; appends its bytes to out (if non-NULL); returns its first byte or EOF. */
static int next_rune(struct lexer *lx, struct kn_buf *out, uint32_t *ret_rune, size_t *ret_off,
		     size_t *ret_len)
{
	uint32_t r;
	size_t w;

	if (lx->pos >= lx->len)
		return SEM_EOF;
	w = sem_utf8_decode(lx->s + lx->pos, lx->len - lx->pos, &r);
	if (out)
		kn_buf_add(out, lx->s + lx->pos, w);
	if (ret_rune)
		*ret_rune = r;
	if (ret_off)
		*ret_off = lx->pos;
	if (ret_len)
		*ret_len = w;
	lx->pos += w;
	return (unsigned char)lx->s[lx->pos - w];
}

static int lex_fail(struct lexer *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lex_fail(struct lexer *lx, const char *fmt, ...)
{
	va_list ap;

	if (!lx->errmsg) {
		va_start(ap, fmt);
		lx->errmsg = xvasprintf(fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Appends substituted text, held to DF_EXPAND_MAX_LEN over the whole word. */
static int emit(struct lexer *lx, struct kn_buf *res, const char *s)
{
	size_t n = strlen(s);

	if (n > DF_EXPAND_MAX_LEN - lx->produced)
		return lex_fail(lx, "expansion longer than %u bytes", DF_EXPAND_MAX_LEN);
	lx->produced += n;
	kn_buf_add(res, s, n);
	return 0;
}

static const char *get_env(struct lexer *lx, const char *name)
{
	const char *v = df_env_get(lx->env, name);

	if (v)
		df_env_set(&lx->matched, name, "");
	else
		df_env_set(&lx->unmatched, name, "");
	return v;
}

static int process_stop_on(struct lexer *lx, int stop, bool raw_escapes, char **ret_result,
			   char ***ret_words);

static int single_quote(struct lexer *lx, struct kn_buf *res)
{
	int ch = next_rune(lx, NULL, NULL, NULL, NULL);

	if (lx->flags & DF_LEX_RAW_QUOTES)
		kn_buf_addch(res, ch);
	for (;;) {
		if (peek(lx) == SEM_EOF)
			return lex_fail(lx, "unexpected end of statement while looking for matching single-quote");
		if (peek(lx) == '\'') {
			lx->pos++;
			if (lx->flags & DF_LEX_RAW_QUOTES)
				kn_buf_addch(res, '\'');
			return 0;
		}
		next_rune(lx, res, NULL, NULL, NULL);
	}
}

static int dollar(struct lexer *lx, struct kn_buf *res);

static int double_quote(struct lexer *lx, struct kn_buf *res)
{
	int ch = next_rune(lx, NULL, NULL, NULL, NULL);

	if (lx->flags & DF_LEX_RAW_QUOTES)
		kn_buf_addch(res, ch);
	for (;;) {
		int p = peek(lx);

		if (p == SEM_EOF)
			return lex_fail(lx, "unexpected end of statement while looking for matching double-quote");
		if (p == '"') {
			lx->pos++;
			if (lx->flags & DF_LEX_RAW_QUOTES)
				kn_buf_addch(res, '"');
			return 0;
		}
		if (p == '$') {
			if (dollar(lx, res) < 0)
				return -1;
			continue;
		}
		if (p == lx->escape) {
			lx->pos++;
			if (lx->raw_escapes)
				kn_buf_addch(res, lx->escape);
			p = peek(lx);
			if (p == SEM_EOF)
				continue;
			if (p == '"' || p == '$' || p == lx->escape) {
				next_rune(lx, res, NULL, NULL, NULL);
				continue;
			}
			kn_buf_addch(res, lx->escape);
			continue;
		}
		next_rune(lx, res, NULL, NULL, NULL);
	}
}

static bool is_special_param(int c)
{
	return c == '@' || c == '*' || c == '#' || c == '?' || c == '-' || c == '$' || c == '!' || c == '0';
}

static char *process_name(struct lexer *lx)
{
	struct kn_buf name = KN_BUF_INIT;

	while (lx->pos < lx->len) {
		uint32_t r;
		size_t w = sem_utf8_decode(lx->s + lx->pos, lx->len - lx->pos, &r);

		if (name.len == 0 && is_digit(r)) {
			while (lx->pos < lx->len && is_digit((unsigned char)lx->s[lx->pos]))
				kn_buf_addch(&name, lx->s[lx->pos++]);
			return kn_buf_detach(&name);
		}
		if (name.len == 0 && is_special_param((int)r)) {
			kn_buf_addch(&name, lx->s[lx->pos++]);
			return kn_buf_detach(&name);
		}
		if (!sem_is_letter(r) && !is_digit(r) && r != '_')
			break;
		kn_buf_add(&name, lx->s + lx->pos, w);
		lx->pos += w;
	}
	return kn_buf_detach(&name);
}

static int dollar(struct lexer *lx, struct kn_buf *res)
{
	_cleanup_free_ char *name = NULL, *word = NULL, *pattern = NULL, *repl = NULL;
	struct kn_buf chs = KN_BUF_INIT;
	const char *value;
	bool null_is_unset = false;
	int ch, r = -1;
	char **ignored = NULL;

	lx->pos++; /* '$' */
	if (peek(lx) != '{') {
		name = process_name(lx);
		if (!*name) {
			kn_buf_addch(res, '$');
			return 0;
		}
		value = get_env(lx, name);
		if (!value && (lx->flags & DF_LEX_SKIP_UNSET)) {
			kn_buf_addf(res, "$%s", name);
			return 0;
		}
		return emit(lx, res, value ? value : "");
	}
	lx->pos++; /* '{' */
	switch (peek(lx)) {
	case SEM_EOF:
		return lex_fail(lx, "syntax error: missing '}'");
	case '{': case '}': case ':':
		return lex_fail(lx, "syntax error: bad substitution");
	default:
		break;
	}
	name = process_name(lx);
	{
		size_t off = lx->pos, w = 0;

		ch = next_rune(lx, NULL, NULL, &off, &w);
		if (ch != SEM_EOF)
			kn_buf_add(&chs, lx->s + off, w);
	}
	if (ch == '}') {
		value = get_env(lx, name);
		r = 0;
		if (!value && (lx->flags & DF_LEX_SKIP_UNSET))
			kn_buf_addf(res, "${%s}", name);
		else
			r = emit(lx, res, value ? value : "");
		goto out;
	}
	if (ch == SEM_EOF) {
		r = lex_fail(lx, "syntax error: missing '}'");
		goto out;
	}
	if (ch == ':' || ch == '+' || ch == '-' || ch == '?' || ch == '#' || ch == '%') {
		bool raw;

		if (ch == ':') {
			size_t off = lx->pos, w = 0;

			null_is_unset = true;
			ch = next_rune(lx, NULL, NULL, &off, &w);
			if (ch != SEM_EOF)
				kn_buf_add(&chs, lx->s + off, w);
		}
		raw = ch == '#' || ch == '%';
		if (lx->depth >= DF_EXPAND_MAX_DEPTH) {
			r = lex_fail(lx, "syntax error: ${...} nested more than %d deep", DF_EXPAND_MAX_DEPTH);
			goto out;
		}
		lx->depth++;
		r = process_stop_on(lx, '}', raw, &word, &ignored);
		lx->depth--;
		kn_strv_free(ignored);
		if (r < 0) {
			if (peek(lx) == SEM_EOF && !strstr(lx->errmsg, "nested more than")) {
				free(lx->errmsg);
				lx->errmsg = NULL;
				lex_fail(lx, "syntax error: missing '}'");
			}
			goto out;
		}
		value = get_env(lx, name);
		r = 0;
		if (!value && (lx->flags & DF_LEX_SKIP_UNSET)) {
			kn_buf_addf(res, "${%s%s%s}", name, chs.buf, word);
			goto out;
		}
		switch (ch) {
		case '-':
			/* the operand's own substitutions are already counted */
			if (!value || (null_is_unset && !*value))
				kn_buf_adds(res, word);
			else
				r = emit(lx, res, value);
			break;
		case '+':
			if (!(!value || (null_is_unset && !*value)))
				kn_buf_adds(res, word);
			break;
		case '?':
			if (!value)
				r = lex_fail(lx, "%s: %s", name, *word ? word : "is not allowed to be unset");
			else if (null_is_unset && !*value)
				r = lex_fail(lx, "%s: %s", name, *word ? word : "is not allowed to be empty");
			else
				r = emit(lx, res, value);
			break;
		case '%':
		case '#': {
			bool greedy = false;
			const char *pat = word;
			char *trimmed = NULL, *msg = NULL;
			int tr;

			if (*pat == ch) {
				greedy = true;
				pat++;
			}
			if (ch == '%')
				tr = trim_suffix(pat, value ? value : "", greedy, &trimmed, &msg);
			else
				tr = trim_prefix(pat, value ? value : "", greedy, &trimmed, &msg);
			if (tr < 0) {
				r = lex_fail(lx, "invalid pattern (%s) in substitution: %s", pat, msg);
				free(msg);
				break;
			}
			r = emit(lx, res, trimmed);
			free(trimmed);
			break;
		}
		default:
			r = lex_fail(lx, "unsupported modifier (%s) in substitution", chs.buf);
			break;
		}
		goto out;
	}
	if (ch == '/') {
		bool all = peek(lx) == '/';
		char *replaced = NULL, *msg = NULL;

		if (all)
			lx->pos++;
		if (lx->depth >= DF_EXPAND_MAX_DEPTH) {
			r = lex_fail(lx, "syntax error: ${...} nested more than %d deep", DF_EXPAND_MAX_DEPTH);
			goto out;
		}
		lx->depth++;
		r = process_stop_on(lx, '/', true, &pattern, &ignored);
		kn_strv_free(ignored);
		ignored = NULL;
		if (r < 0) {
			lx->depth--;
			if (peek(lx) == SEM_EOF && !strstr(lx->errmsg, "nested more than")) {
				free(lx->errmsg);
				lx->errmsg = NULL;
				lex_fail(lx, "syntax error: missing '/' in ${}");
			}
			goto out;
		}
		r = process_stop_on(lx, '}', true, &repl, &ignored);
		lx->depth--;
		kn_strv_free(ignored);
		if (r < 0) {
			if (peek(lx) == SEM_EOF && !strstr(lx->errmsg, "nested more than")) {
				free(lx->errmsg);
				lx->errmsg = NULL;
				lex_fail(lx, "syntax error: missing '}'");
			}
			goto out;
		}
		value = get_env(lx, name);
		if (!value && (lx->flags & DF_LEX_SKIP_UNSET)) {
			kn_buf_addf(res, "${%s/%s/%s}", name, pattern, repl);
			goto out;
		}
		if (replace(value ? value : "", pattern, repl, all, DF_EXPAND_MAX_LEN - lx->produced,
			    &replaced, &msg) < 0) {
			if (msg)
				r = lex_fail(lx, "invalid pattern (%s) in substitution: %s", pattern, msg);
			else
				r = lex_fail(lx, "expansion longer than %u bytes", DF_EXPAND_MAX_LEN);
			free(msg);
			goto out;
		}
		r = emit(lx, res, replaced);
		free(replaced);
		goto out;
	}
	r = lex_fail(lx, "unsupported modifier (%s) in substitution", chs.buf);
out:
	kn_buf_release(&chs);
	return r;
}

static int process_stop_on(struct lexer *lx, int stop, bool raw_escapes, char **ret_result,
			   char ***ret_words)
{
	struct kn_buf result = KN_BUF_INIT;
	struct words w = { KN_BUF_INIT, KN_STRV_INIT, false, false };
	bool saved = lx->raw_escapes;
	int r = 0;

	/* the words of a ${...} operand are never used; only the top level may want them */
	w.off = stop != SEM_EOF || (lx->flags & DF_LEX_PRIVATE_NO_WORDS);

	lx->raw_escapes = raw_escapes;
	while (lx->pos < lx->len) {
		int ch = peek(lx);

		if (stop != SEM_EOF && ch == stop) {
			lx->pos++;
			goto done;
		}
		if (ch == '$' || (!(lx->flags & DF_LEX_SKIP_QUOTES) && (ch == '\'' || ch == '"'))) {
			struct kn_buf tmp = KN_BUF_INIT;

			if (ch == '$')
				r = dollar(lx, &tmp);
			else if (ch == '\'')
				r = single_quote(lx, &tmp);
			else
				r = double_quote(lx, &tmp);
			if (r < 0) {
				kn_buf_release(&tmp);
				goto fail;
			}
			kn_buf_add(&result, tmp.buf, tmp.len);
			if (ch == '$')
				words_add_string(&w, tmp.buf);
			else
				words_add_raw(&w, tmp.buf, tmp.len);
			kn_buf_release(&tmp);
			continue;
		}
		{
			uint32_t rn;
			size_t off, n;

			next_rune(lx, NULL, &rn, &off, &n);
			if (ch == lx->escape) {
				if (lx->raw_escapes) {
					words_add_raw(&w, lx->s + off, n);
					kn_buf_add(&result, lx->s + off, n);
				}
				if (next_rune(lx, NULL, &rn, &off, &n) == SEM_EOF)
					break;
				words_add_raw(&w, lx->s + off, n);
			} else {
				words_add_char(&w, lx->s + off, n, rn);
			}
			kn_buf_add(&result, lx->s + off, n);
		}
	}
	if (stop != SEM_EOF) {
		r = lex_fail(lx, "unexpected end of statement while looking for matching %c", stop);
		goto fail;
	}
done:
	lx->raw_escapes = saved;
	*ret_result = kn_buf_detach(&result);
	*ret_words = words_get(&w);
	return 0;
fail:
	lx->raw_escapes = saved;
	kn_buf_release(&result);
	words_release(&w);
	return -1;
}

/* Words without '$', quotes, escapes or non-ASCII bytes expand to themselves: no lexer needed. */
static bool expand_fast(const char *word, int escape, unsigned flags, struct df_expansion *ret)
{
	struct kn_strv words = KN_STRV_INIT;
	const char *p;

	for (p = word; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '$' || c == '\'' || c == '"' || c == escape || c >= 0x80)
			return false;
	}
	ret->result = xstrdup(word);
	if (flags & DF_LEX_PRIVATE_NO_WORDS) {
		ret->words = xcalloc(1, sizeof(char *));
		return true;
	}
	for (p = word; *p;) {
		size_t n;

		while (*p && sem_is_space((unsigned char)*p))
			p++;
		for (n = 0; p[n] && !sem_is_space((unsigned char)p[n]); n++)
			;
		if (n)
			kn_strv_push_owned(&words, xstrndup(p, n));
		p += n;
	}
	ret->words = words.v ? kn_strv_detach(&words) : xcalloc(1, sizeof(char *));
	return true;
}

int df_expand(const char *word, const struct df_env *env, int escape, unsigned flags,
	      struct df_expansion *ret, kn_error **err)
{
	struct lexer lx = { 0 };
	char *result = NULL, **words = NULL;

	memset(ret, 0, sizeof(*ret));
	if (expand_fast(word, escape ? escape : '\\', flags, ret))
		return 0;
	lx.s = word;
	lx.len = strlen(word);
	lx.env = env;
	lx.escape = escape ? escape : '\\';
	lx.flags = flags;
	lx.raw_escapes = flags & DF_LEX_RAW_ESCAPES;
	if (process_stop_on(&lx, SEM_EOF, lx.raw_escapes, &result, &words) < 0) {
		struct kn_buf q = KN_BUF_INIT;

		sem_add_goquoted(&q, word);
		kn_error_set(err, 0, "failed to process %s: %s", q.buf, lx.errmsg);
		kn_buf_release(&q);
		ret->produced = lx.produced;
		free(lx.errmsg);
		df_env_release(&lx.matched);
		df_env_release(&lx.unmatched);
		return -1;
	}
	ret->result = result;
	ret->words = words;
	ret->produced = lx.produced;
	for (size_t i = 0; i < lx.matched.n; i++)
		kn_strv_push(&ret->matched, lx.matched.keys[i]);
	for (size_t i = 0; i < lx.unmatched.n; i++)
		kn_strv_push(&ret->unmatched, lx.unmatched.keys[i]);
	df_env_release(&lx.matched);
	df_env_release(&lx.unmatched);
	return 0;
}

void df_expansion_release(struct df_expansion *x)
{
	if (!x)
		return;
	free(x->result);
	kn_strv_free(x->words);
	kn_strv_release(&x->matched);
	kn_strv_release(&x->unmatched);
	memset(x, 0, sizeof(*x));
}

char *df_expand_word(const char *word, const struct df_env *env, int escape, kn_error **err)
{
	struct df_expansion x;
	char *r;

	if (df_expand(word, env, escape, DF_LEX_PRIVATE_NO_WORDS, &x, err) < 0)
		return NULL;
	r = steal_ptr(&x.result);
	df_expansion_release(&x);
	return r;
}

char **df_expand_words(const char *word, const struct df_env *env, int escape, kn_error **err)
{
	struct df_expansion x;
	char **r;

	if (df_expand(word, env, escape, 0, &x, err) < 0)
		return NULL;
	r = steal_ptr(&x.words);
	df_expansion_release(&x);
	return r;
}
