/*
 * kiln parser: Dockerfile text to AST, the way BuildKit's frontend/dockerfile/parser reads it.
 *
 * The file is read line by line (a line ends at '\n'; "\r\n" and any trailing '\r' are
 * trimmed). Parser directives are recognised only before the first line that is not one;
 * comments and blank lines are skipped; a line ending with the escape character (not itself
 * escaped) continues on the next one, and comment and empty lines inside a continued
 * instruction are skipped. Each logical line becomes an instruction node (ast-lines.c); RUN,
 * COPY and ADD lines naming heredocs then take the following lines as the heredoc bodies.
 *
 * Everything is linear in the input: no step rescans what came before it.
 */
#include <string.h>
#include <strings.h>

#include "parser/ast-internal.h"

/* One raw line of input: s[0..len) including its '\n' when there is one. */
struct raw_line {
	const char *s;
	size_t len;
};

struct scanner {
	const char *text;
	size_t len;
	size_t pos;
};

static bool scan_line(struct scanner *sc, struct raw_line *ret)
{
	const char *nl;

	if (sc->pos >= sc->len)
		return false;
	ret->s = sc->text + sc->pos;
	nl = memchr(ret->s, '\n', sc->len - sc->pos);
	ret->len = nl ? (size_t)(nl - ret->s) + 1 : sc->len - sc->pos;
	sc->pos += ret->len;
	return true;
}

static size_t trim_newline(const char *s, size_t len)
{
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	return len;
}

static bool is_comment(const char *s, size_t len)
{
	size_t i = df_span_space(s, len);

	return i < len && s[i] == '#';
}

/* ---- parser directives --------------------------------------------------------------------- */

struct directives {
	bool done;
	char escape;
	struct df_directive *list;
	size_t n;
	size_t alloc;
};

/* Go regexp \s: [\t\n\f\r ]. */
static bool is_re_space(char c)
{
	return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

/*
 * Matches ^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$ (BuildKit's directive pattern) and
 * returns the name and value spans.
 */
static bool match_directive(const char *s, size_t len, struct df_span *name, struct df_span *value)
{
	size_t i = 1, v, e;

	if (len == 0 || s[0] != '#')
		return false;
	while (i < len && is_re_space(s[i]))
		i++;
	if (i >= len || !is_alpha(s[i]))
		return false;
	name->off = i;
	while (i < len && is_alnum(s[i]))
		i++;
	name->len = i - name->off;
	while (i < len && is_re_space(s[i]))
		i++;
	if (i >= len || s[i] != '=')
		return false;
	i++;
	if (i >= len)
		return false;
	v = i;
	while (v < len && is_re_space(s[v]))
		v++;
	/* all blanks: the lazy (.+?) still takes one character, the last one */
	if (v == len)
		v = len - 1;
	e = len;
	while (e > v + 1 && is_re_space(s[e - 1]))
		e--;
	value->off = v;
	value->len = e - v;
	return true;
}

static bool parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
	static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};

	for (size_t i = 0; i < KN_ARRAY_SIZE(yes); i++) {
		if (!strcmp(s, yes[i])) {
			*ret = true;
			return true;
		}
		if (!strcmp(s, no[i])) {
			*ret = false;
			return true;
		}
	}
	return false;
}

static char *dup_trimmed(const char *s, size_t len)
{
	size_t b = df_span_space(s, len);

	return xstrndup(s + b, df_rtrim_space(s + b, len - b));
}

static void split_rules(const char *v, bool *ret_all, char ***ret_list)
{
	_cleanup_free_ char *t = dup_trimmed(v, strlen(v));
	struct kn_strv list = KN_STRV_INIT;
	const char *p = t;

	kn_strv_free(*ret_list);
	*ret_list = NULL;
	if (!strcmp(t, "all")) {
		*ret_all = true;
	} else {
		for (;;) {
			const char *c = strchr(p, ',');
			size_t n = c ? (size_t)(c - p) : strlen(p);

			kn_strv_push_owned(&list, dup_trimmed(p, n));
			if (!c)
				break;
			p = c + 1;
		}
	}
	*ret_list = kn_strv_detach(&list);
}

/* `# check=skip=A,B;error=true;experimental=all` (BuildKit's linter options). */
static int parse_check(const char *value, struct df_check *ret, kn_error **err)
{
	_cleanup_free_ char *s = dup_trimmed(value, strlen(value));
	char *p = s;

	if (!*s)
		return 0;
	for (int part = 0; p; part++) {
		/* SplitN(s, ";", 3): the third part keeps any further ';' */
		char *semi = part < 2 ? strchr(p, ';') : NULL;
		char *eq, *k, *v;

		if (semi)
			*semi = '\0';
		eq = strchr(p, '=');
		if (!eq)
			return kn_error_set(err, 0, "invalid check option '%s'", p);
		*eq = '\0';
		k = dup_trimmed(p, strlen(p));
		v = eq + 1;
		if (!strcmp(k, "skip")) {
			split_rules(v, &ret->skip_all, &ret->skip);
		} else if (!strcmp(k, "experimental")) {
			split_rules(v, &ret->experimental_all, &ret->experimental);
		} else if (!strcmp(k, "error")) {
			_cleanup_free_ char *t = dup_trimmed(v, strlen(v));

			if (!parse_bool(t, &ret->error)) {
				kn_error_set(
				    err, 0, "failed to parse check option '%s=%s': invalid boolean",
				    k, v);
				free(k);
				return -1;
			}
		} else {
			kn_error_set(err, 0, "invalid check option '%s'", k);
			free(k);
			return -1;
		}
		free(k);
		p = semi ? semi + 1 : NULL;
	}
	return 0;
}

/*
 * The `# check=` value as BuildKit's linter finds it (parser.ParseDirective): a separate scan
 * of the top of the file where a BOM and a first "#!" line are skipped, lines are not
 * left-trimmed, the scan stops at the first line that is no directive (or at a repeated one)
 * and the value ends at its first space ("skip=all // note" is "skip=all").
 */
static bool find_check(const char *text, size_t len, char **ret_value, int *ret_line)
{
	struct scanner sc = {.text = text, .len = len};
	struct raw_line raw;
	bool seen[3] = {false, false, false};
	static const char *const names[3] = {"syntax", "escape", "check"};
	int line = 0;

	if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
		sc.pos = 3;
	while (scan_line(&sc, &raw)) {
		struct df_span name, value;
		size_t l = raw.len;
		size_t k;

		line++;
		if (line == 1 && l >= 2 && raw.s[0] == '#' && raw.s[1] == '!')
			continue;
		if (l > 0 && raw.s[l - 1] == '\n')
			l--;
		if (l > 0 && raw.s[l - 1] == '\r')
			l--;
		if (!match_directive(raw.s, l, &name, &value))
			return false;
		for (k = 0; k < 3; k++)
			if (name.len == strlen(names[k]) &&
			    !strncasecmp(raw.s + name.off, names[k], name.len))
				break;
		if (k == 3 || seen[k])
			return false;
		seen[k] = true;
		if (k == 2) {
			const char *sp = memchr(raw.s + value.off, ' ', value.len);

			*ret_value = xstrndup(raw.s + value.off,
					      sp ? (size_t)(sp - (raw.s + value.off)) : value.len);
			*ret_line = line;
			return true;
		}
	}
	return false;
}

/*
 * Looks at a line (newline and leading blanks trimmed) for a directive. Returns 1 when it is
 * one, 0 when not, -1 on a bad or repeated directive.
 */
static int possible_directive(struct directives *d, const char *s, size_t len, int line,
			      kn_error **err)
{
	struct df_span name, value;
	char key[16];
	struct df_directive *dir;

	if (d->done)
		return 0;
	if (!match_directive(s, len, &name, &value) || name.len >= sizeof(key)) {
		d->done = true;
		return 0;
	}
	for (size_t i = 0; i < name.len; i++) {
		char c = s[name.off + i];

		key[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	key[name.len] = '\0';
	if (strcmp(key, "syntax") && strcmp(key, "escape") && strcmp(key, "check")) {
		d->done = true;
		return 0;
	}
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->list[i].name, key))
			return kn_error_set(err, 0, "only one %s parser directive can be used",
					    key);
	KN_GROW(d->list, d->alloc, d->n + 1);
	dir = &d->list[d->n++];
	dir->name = xstrdup(key);
	dir->value = xstrndup(s + value.off, value.len);
	dir->line = line;
	if (!strcmp(key, "escape")) {
		if (strcmp(dir->value, "`") && strcmp(dir->value, "\\"))
			return kn_error_set(
			    err, 0, "invalid escape token '%s' does not match ` or \\", dir->value);
		d->escape = dir->value[0];
	}
	return 1;
}

/*
 * The continuation rule: the line ends with the escape character and blanks, and that escape
 * character is the first of the line or follows a character other than the escape character.
 * Returns the new length (the escape and blanks removed) and sets *ret_end to false then.
 */
static size_t trim_continuation(const char *s, size_t len, char esc, bool *ret_end)
{
	size_t q = len;

	while (q > 0 && (s[q - 1] == ' ' || s[q - 1] == '\t'))
		q--;
	if (q == 0 || s[q - 1] != esc || (q >= 2 && s[q - 2] == esc)) {
		*ret_end = true;
		return len;
	}
	*ret_end = false;
	return q - 1;
}

/* ---- the parse ----------------------------------------------------------------------------- */

struct parse_state {
	const char *file;
	struct scanner sc;
	struct directives dirs;
	struct df_pctx p;
	int line; /* lines consumed so far */
	struct kn_strv comments;
	struct df_node **children;
	size_t n_children;
	size_t alloc_children;
	struct df_warning *warnings;
	size_t n_warnings;
	size_t alloc_warnings;
};

/* Adds file:line:col to an error made without one. Returns -1. */
static int locate(kn_error **err, const char *file, int line, int col)
{
	if (err && *err && !(*err)->file) {
		(*err)->file = xstrdup(file);
		(*err)->line = line;
		(*err)->col = col;
	}
	return -1;
}

static void set_lines(struct df_node *n, int start, int end)
{
	for (; n; n = n->next) {
		n->start_line = start;
		n->end_line = end;
		for (size_t i = 0; i < n->n_children; i++)
			set_lines(n->children[i], start, end);
	}
}

static bool can_contain_heredoc(const struct df_node *n)
{
	if (!strcmp(n->value, "onbuild") && n->next && n->next->n_children > 0)
		n = n->next->children[0];
	if (strcmp(n->value, "run") && strcmp(n->value, "copy") && strcmp(n->value, "add"))
		return false;
	return !n->json;
}

/* Reads the bodies of the heredocs named on the line into node->heredocs. */
static int read_heredocs(struct parse_state *st, struct df_node *node, const char *line, size_t len,
			 int start_line, kn_error **err)
{
	struct df_heredoc *docs;
	size_t n;

	if (df_heredocs_from_line(line, len, &docs, &n, err) < 0)
		return locate(err, st->file, start_line, 0);
	node->heredocs = docs;
	node->n_heredocs = n;
	for (size_t i = 0; i < n; i++) {
		struct df_heredoc *h = &docs[i];
		struct kn_buf body = KN_BUF_INIT;
		size_t name_len = strlen(h->name);
		struct raw_line raw;
		bool terminated = false;

		while (scan_line(&st->sc, &raw)) {
			const char *t = raw.s;
			size_t tlen = trim_newline(raw.s, raw.len);

			st->line++;
			if (h->chomp) {
				while (tlen > 0 && *t == '\t') {
					t++;
					tlen--;
				}
			}
			if (tlen == name_len && !memcmp(t, h->name, name_len)) {
				terminated = true;
				break;
			}
			kn_buf_add(&body, raw.s, raw.len);
		}
		free(h->content);
		h->content = kn_buf_detach(&body);
		if (!terminated) {
			struct kn_buf q = KN_BUF_INIT;

			df_go_quote(&q, h->name, name_len > 64 ? 64 : name_len);
			kn_error_set(err, 0, "unterminated heredoc %s", q.buf);
			kn_buf_release(&q);
			return locate(err, st->file, start_line, 0);
		}
	}
	return 0;
}

static void add_warning(struct parse_state *st, int line, const char *text, size_t len)
{
	struct df_warning *w;
	size_t show = len > 200 ? 200 : len;

	if (st->n_warnings >= DF_MAX_WARNINGS)
		return;
	KN_GROW(st->warnings, st->alloc_warnings, st->n_warnings + 1);
	w = &st->warnings[st->n_warnings++];
	w->line = line;
	w->msg = xasprintf("Empty continuation line found in: %.*s%s", (int)show, text,
			   show < len ? "..." : "");
	w->url = xstrdup("https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/");
}

/* One instruction, starting at the raw line just read. 1 = added, 0 = nothing there, -1 error. */
static int parse_instruction(struct parse_state *st, struct raw_line raw, struct kn_buf *buf,
			     kn_error **err)
{
	const char *t = raw.s;
	size_t tlen = raw.len, skip;
	bool is_end, has_empty = false;
	int start_line, r;
	struct df_node *child;

	if (st->line == 0 && tlen >= 3 && !memcmp(t, "\xEF\xBB\xBF", 3)) {
		t += 3;
		tlen -= 3;
	}
	if (is_comment(t, tlen)) {
		/* BuildKit drops the first byte of the line as written, blanks or not */
		_cleanup_free_ char *c = dup_trimmed(t + 1, trim_newline(t, tlen) - 1);

		if (*c) {
			if (st->comments.n < DF_MAX_PREV_COMMENTS)
				kn_strv_push_owned(&st->comments, steal_ptr(&c));
		} else {
			kn_strv_release(&st->comments);
		}
	}
	tlen = trim_newline(t, tlen);
	skip = df_span_space(t, tlen);
	t += skip;
	tlen -= skip;
	r = possible_directive(&st->dirs, t, tlen, st->line + 1, err);
	if (r < 0)
		return locate(err, st->file, st->line + 1, 0);
	if (r > 0 && st->comments.n > 0) {
		free(st->comments.v[--st->comments.n]);
		st->comments.v[st->comments.n] = NULL;
	}
	if (is_comment(t, tlen))
		tlen = 0;
	st->line++;
	start_line = st->line;
	st->p.escape = st->dirs.escape;
	st->p.start_col = (int)(t - raw.s) + 1;
	if (start_line == 1 && raw.len >= 3 && !memcmp(raw.s, "\xEF\xBB\xBF", 3))
		st->p.start_col -= 3;

	tlen = trim_continuation(t, tlen, st->p.escape, &is_end);
	if (is_end && tlen == 0)
		return 0;
	kn_buf_reset(buf);
	kn_buf_add(buf, t, tlen);
	while (!is_end && scan_line(&st->sc, &raw)) {
		size_t l = trim_newline(raw.s, raw.len);

		st->line++;
		if (is_comment(raw.s, raw.len))
			continue;
		if (df_span_space(raw.s, l) == l) {
			has_empty = true;
			continue;
		}
		l = trim_continuation(raw.s, l, st->p.escape, &is_end);
		kn_buf_add(buf, raw.s, l);
	}
	if (has_empty)
		add_warning(st, st->line, buf->buf, buf->len);

	st->p.start_line = start_line;
	st->p.end_line = st->line;
	child = df_node_from_line(&st->p, buf->buf, buf->len, 0, err);
	if (!child)
		return locate(err, st->file, start_line, 0);
	if (can_contain_heredoc(child) && memmem(buf->buf, buf->len, "<<", 2) &&
	    read_heredocs(st, child, buf->buf, buf->len, start_line, err) < 0) {
		df_node_free(child);
		return -1;
	}
	set_lines(child, start_line, st->line);
	child->n_prev_comment = st->comments.n;
	child->prev_comment = st->comments.n ? kn_strv_detach(&st->comments) : NULL;
	kn_strv_release(&st->comments);
	KN_GROW(st->children, st->alloc_children, st->n_children + 1);
	st->children[st->n_children++] = child;
	return 1;
}

static char lower(char c)
{
	return (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

/*
 * Edit distance of a (case-insensitive) and b, both short (b at most 31 bytes), counting a
 * swap of two neighbours as one edit (optimal string alignment): "FORM" is one from "FROM".
 */
static size_t edit_distance(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	size_t rows[3][32];
	size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];

	for (size_t j = 0; j <= blen; j++)
		prev[j] = j;
	for (size_t i = 1; i <= alen; i++) {
		size_t *t;

		cur[0] = i;
		for (size_t j = 1; j <= blen; j++) {
			size_t best = prev[j - 1] + (lower(a[i - 1]) == b[j - 1] ? 0 : 1);

			if (prev[j] + 1 < best)
				best = prev[j] + 1;
			if (cur[j - 1] + 1 < best)
				best = cur[j - 1] + 1;
			if (i > 1 && j > 1 && lower(a[i - 1]) == b[j - 2] &&
			    lower(a[i - 2]) == b[j - 1] && prev2[j - 2] + 1 < best)
				best = prev2[j - 2] + 1;
			cur[j] = best;
		}
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return prev[blen];
}

/* The closest instruction name (lower case), or NULL when nothing is close enough. */
static const char *suggest_instruction(const char *name, size_t len)
{
	const char *best = NULL;
	size_t best_d = len;

	if (len == 0 || len > 24)
		return NULL;
	for (size_t i = 0; i < df_n_instruction_names; i++) {
		size_t d = edit_distance(name, len, df_instruction_names[i]);

		if (d < best_d) {
			best_d = d;
			best = df_instruction_names[i];
		}
	}
	/* at most one edit in three letters: RUNN, CPY, FORM, WROKDIR, but not "body" for COPY */
	if (best && best_d * 3 > strlen(best))
		return NULL;
	return best;
}

static int unknown_instruction(const char *file, const struct df_node *n, kn_error **err)
{
	struct df_span cmd, rest;
	struct kn_buf msg = KN_BUF_INIT;
	const char *orig = n->original;
	const char *s;

	df_split_command(orig, strlen(orig), &cmd, &rest);
	kn_buf_adds(&msg, "unknown instruction ");
	df_go_quote(&msg, orig + cmd.off, cmd.len > 64 ? 64 : cmd.len);
	s = suggest_instruction(orig + cmd.off, cmd.len);
	if (s) {
		kn_buf_adds(&msg, " (did you mean \"");
		for (; *s; s++)
			kn_buf_addch(&msg, *s - 'a' + 'A');
		kn_buf_adds(&msg, "\"?)");
	}
	kn_error_set_at(err, file, n->start_line, n->start_col, "%s", msg.buf);
	kn_buf_release(&msg);
	return -1;
}

static void parse_state_release(struct parse_state *st)
{
	for (size_t i = 0; i < st->n_children; i++)
		df_node_free(st->children[i]);
	free(st->children);
	for (size_t i = 0; i < st->dirs.n; i++) {
		free(st->dirs.list[i].name);
		free(st->dirs.list[i].value);
	}
	free(st->dirs.list);
	for (size_t i = 0; i < st->n_warnings; i++) {
		free(st->warnings[i].msg);
		free(st->warnings[i].url);
	}
	free(st->warnings);
	kn_strv_release(&st->comments);
}

static int check_input(const char *text, size_t len, const char *file, kn_error **err)
{
	const char *nul;

	if (len > DF_MAX_INPUT)
		return kn_error_set_at(err, file, 0, 0,
				       "Dockerfile is too large (%zu bytes, the limit is %u)", len,
				       DF_MAX_INPUT);
	nul = memchr(text, '\0', len);
	if (nul) {
		int line = 1;
		const char *bol = text;

		for (const char *c = text; c < nul; c++) {
			if (*c == '\n') {
				line++;
				bol = c + 1;
			}
		}
		return kn_error_set_at(err, file, line, (int)(nul - bol) + 1,
				       "NUL byte in Dockerfile");
	}
	return 0;
}

struct df_ast *df_parse(const char *text, size_t len, const char *file, kn_error **err)
{
	return df_parse_ex(text, len, file, 0, err);
}

struct df_ast *df_parse_ex(const char *text, size_t len, const char *file, unsigned flags,
			   kn_error **err)
{
	struct parse_state st = {0};
	struct kn_buf buf = KN_BUF_INIT;
	struct df_ast *ast;
	struct raw_line raw;
	struct df_check check = {0};
	char *check_value = NULL;
	int check_line = 0;

	if (!file)
		file = "Dockerfile";
	if (!text)
		text = "";
	if (check_input(text, len, file, err) < 0)
		return NULL;
	st.file = file;
	st.sc.text = text;
	st.sc.len = len;
	st.dirs.escape = '\\';

	while (scan_line(&st.sc, &raw)) {
		if (parse_instruction(&st, raw, &buf, err) < 0)
			goto fail;
	}
	if (st.n_children == 0) {
		kn_error_set_at(err, file, st.line, 0, "file with no instructions");
		goto fail;
	}
	for (size_t i = 0; !(flags & DF_PARSE_ALLOW_UNKNOWN) && i < st.n_children; i++) {
		if (!df_is_instruction(st.children[i]->value)) {
			unknown_instruction(file, st.children[i], err);
			goto fail;
		}
	}
	if (find_check(text, len, &check_value, &check_line) &&
	    parse_check(check_value, &check, err) < 0) {
		kn_error_wrap(err, "failed to parse check options");
		locate(err, file, check_line, 0);
		free(check_value);
		kn_strv_free(check.skip);
		kn_strv_free(check.experimental);
		goto fail;
	}
	free(check_value);
	if (!check.skip)
		check.skip = kn_strv_detach(&(struct kn_strv)KN_STRV_INIT);
	if (!check.experimental)
		check.experimental = kn_strv_detach(&(struct kn_strv)KN_STRV_INIT);

	ast = xcalloc(1, sizeof(*ast));
	ast->file = xstrdup(file);
	ast->escape = st.dirs.escape;
	ast->root = xcalloc(1, sizeof(*ast->root));
	ast->root->value = xstrdup("");
	ast->root->children = steal_ptr(&st.children);
	ast->root->n_children = st.n_children;
	ast->root->start_line = ast->root->children[0]->start_line;
	ast->root->end_line = ast->root->children[st.n_children - 1]->end_line;
	st.n_children = 0;
	ast->directives = steal_ptr(&st.dirs.list);
	ast->n_directives = st.dirs.n;
	st.dirs.n = 0;
	ast->warnings = steal_ptr(&st.warnings);
	ast->n_warnings = st.n_warnings;
	st.n_warnings = 0;
	ast->check = check;
	parse_state_release(&st);
	kn_buf_release(&buf);
	return ast;
fail:
	parse_state_release(&st);
	kn_buf_release(&buf);
	return NULL;
}

void df_ast_free(struct df_ast *ast)
{
	if (!ast)
		return;
	df_node_free(ast->root);
	free(ast->file);
	for (size_t i = 0; i < ast->n_directives; i++) {
		free(ast->directives[i].name);
		free(ast->directives[i].value);
	}
	free(ast->directives);
	for (size_t i = 0; i < ast->n_warnings; i++) {
		free(ast->warnings[i].msg);
		free(ast->warnings[i].url);
	}
	free(ast->warnings);
	kn_strv_free(ast->check.skip);
	kn_strv_free(ast->check.experimental);
	free(ast);
}

const char *df_ast_directive(const struct df_ast *ast, const char *name)
{
	for (size_t i = 0; ast && i < ast->n_directives; i++)
		if (!strcmp(ast->directives[i].name, name))
			return ast->directives[i].value;
	return NULL;
}

char *df_heredoc_chomp(const struct df_heredoc *h)
{
	struct kn_buf b = KN_BUF_INIT;
	bool bol = true;

	if (!h->chomp)
		return xstrdup(h->content);
	for (const char *c = h->content; *c; c++) {
		if (bol && *c == '\t')
			continue;
		bol = *c == '\n';
		kn_buf_addch(&b, *c);
	}
	return kn_buf_detach(&b);
}

/* ---- dump ---------------------------------------------------------------------------------- */

static void dump_node(struct kn_buf *out, const struct df_node *n)
{
	struct kn_buf b = KN_BUF_INIT;
	size_t s, e;

	for (const char *c = n->value; *c; c++)
		kn_buf_addch(&b, *c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
	if (n->n_flags > 0) {
		kn_buf_adds(&b, " [");
		for (size_t i = 0; i < n->n_flags; i++) {
			if (i)
				kn_buf_addch(&b, ' ');
			df_go_quote(&b, n->flags[i], strlen(n->flags[i]));
		}
		kn_buf_addch(&b, ']');
	}
	for (size_t i = 0; i < n->n_children; i++) {
		kn_buf_addch(&b, '(');
		dump_node(&b, n->children[i]);
		kn_buf_adds(&b, ")\n");
	}
	for (const struct df_node *a = n->next; a; a = a->next) {
		kn_buf_addch(&b, ' ');
		if (a->n_children > 0)
			dump_node(&b, a);
		else
			df_go_quote(&b, a->value, a->value_len);
	}
	s = df_span_space(b.buf, b.len);
	e = s + df_rtrim_space(b.buf + s, b.len - s);
	kn_buf_add(out, b.buf + s, e - s);
	kn_buf_release(&b);
}

char *df_node_dump(const struct df_node *node)
{
	struct kn_buf b = KN_BUF_INIT;

	dump_node(&b, node);
	return kn_buf_detach(&b);
}

char *df_ast_dump(const struct df_ast *ast)
{
	struct kn_buf b = KN_BUF_INIT;

	dump_node(&b, ast->root);
	kn_buf_addch(&b, '\n');
	return kn_buf_detach(&b);
}
