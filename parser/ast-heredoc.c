/*
 * kiln parser: finding the heredocs named on a RUN/COPY/ADD line, as BuildKit does it.
 *
 * BuildKit splits the whole instruction line into shell words with its shell lexer (quotes and
 * escapes kept raw, no variable set, references to unset variables kept as written), then takes
 * every word matching ^[0-9]*<<-?\s*[^<]*$ as a heredoc; the lexer keeps the blanks right
 * after an unquoted "<<" in its word, so that `<< EOF` names EOF. The delimiter is lexed again
 * twice (quotes removed, quotes kept): when the two differ in their number of quote characters,
 * part of the delimiter was quoted and the body is not to be expanded. A line the lexer rejects
 * (say, an unterminated quote) names no heredoc at all.
 *
 * This file holds a small lexer with exactly the behaviour that this needs; full expansion with
 * an environment lives in shell.c. The escape character is always '\' here, whatever the
 * escape directive says, as in BuildKit.
 */
#include <limits.h>
#include <string.h>

#include "parser/ast-internal.h"

#define LEX_EOF (-1)
/*
 * ${...} inside ${...}: deeper nesting is a lexing error (the line then names no heredoc)
 * rather than a C recursion without bound. BuildKit has no such limit; no real Dockerfile
 * comes near it.
 */
#define LEX_MAX_DEPTH 1000

struct lexer {
	const char *s;
	size_t len;
	size_t pos;
	bool raw_quotes;
	bool raw_escapes;
	int depth;
};

/* BuildKit's wordsStruct: words split on unquoted white space. */
struct words {
	struct kn_buf word;
	bool in_word;
	struct kn_strv list;
};

static int32_t lex_peek(const struct lexer *lx)
{
	uint32_t r;

	if (lx->pos >= lx->len)
		return LEX_EOF;
	df_utf8_decode(lx->s + lx->pos, lx->len - lx->pos, &r);
	return (int32_t)r;
}

static int32_t lex_next(struct lexer *lx)
{
	uint32_t r;

	if (lx->pos >= lx->len)
		return LEX_EOF;
	lx->pos += df_utf8_decode(lx->s + lx->pos, lx->len - lx->pos, &r);
	return (int32_t)r;
}

/* Go's string(rune) for a rune that may be EOF (-1), which Go renders as U+FFFD. */
static void add_rune(struct kn_buf *b, int32_t r)
{
	df_utf8_add(b, r < 0 ? DF_RUNE_ERROR : (uint32_t)r);
}

static void words_add_raw_char(struct words *w, int32_t r)
{
	if (!w)
		return;
	add_rune(&w->word, r);
	w->in_word = true;
}

static void words_add_char(struct words *w, int32_t r)
{
	bool space = r >= 0 && df_is_space((uint32_t)r);

	if (!w)
		return;
	if (space && w->in_word) {
		if (w->word.len) {
			kn_strv_push_owned(&w->list, kn_buf_detach(&w->word));
			w->in_word = false;
		}
	} else if (!space) {
		words_add_raw_char(w, r);
	}
}

static void words_add_string(struct words *w, const char *s, size_t len)
{
	size_t i = 0;

	while (w && i < len) {
		uint32_t r;

		i += df_utf8_decode(s + i, len - i, &r);
		words_add_char(w, (int32_t)r);
	}
}

static void words_add_raw_string(struct words *w, const char *s, size_t len)
{
	if (!w)
		return;
	kn_buf_add(&w->word, s, len);
	w->in_word = true;
}

static void words_finish(struct words *w)
{
	if (w->word.len) {
		kn_strv_push_owned(&w->list, kn_buf_detach(&w->word));
		w->in_word = false;
	}
}

static int process_stop_on_any(struct lexer *lx, const char *stops, bool raw_escapes,
			       struct kn_buf *out, struct words *w, kn_error **err);

static bool is_special_param(int32_t r)
{
	return r == '@' || r == '*' || r == '#' || r == '?' || r == '-' || r == '$' || r == '!' ||
	       r == '0';
}

static void process_name(struct lexer *lx, struct kn_buf *name)
{
	int32_t r;

	while ((r = lex_peek(lx)) != LEX_EOF) {
		if (name->len == 0 && df_uni_is((uint32_t)r, DF_UNI_DIGIT)) {
			while ((r = lex_peek(lx)) != LEX_EOF &&
			       df_uni_is((uint32_t)r, DF_UNI_DIGIT))
				add_rune(name, lex_next(lx));
			return;
		}
		if (name->len == 0 && is_special_param(r)) {
			add_rune(name, lex_next(lx));
			return;
		}
		if (!df_uni_is((uint32_t)r, DF_UNI_LETTER) &&
		    !df_uni_is((uint32_t)r, DF_UNI_DIGIT) && r != '_')
			return;
		add_rune(name, lex_next(lx));
	}
}

/* A word up to one of stops (consumed), for the inside of ${...}. */
static int stop_word(struct lexer *lx, const char *stops, bool raw_escapes, const char *eof_msg,
		     struct kn_buf *out, kn_error **err)
{
	kn_error *e = NULL;

	if (process_stop_on_any(lx, stops, raw_escapes, out, NULL, &e) < 0) {
		if (lex_peek(lx) == LEX_EOF) {
			kn_error_free(e);
			return kn_error_set(err, 0, "%s", eof_msg);
		}
		kn_error_propagate(err, e);
		return -1;
	}
	return 0;
}

/*
 * $name, ${name}, ${name<op>word}: no variable is ever set, and unset ones are kept as written,
 * so the result is (a normalised copy of) the text itself. It is appended to out as it is
 * read, nested substitutions included, so that nesting costs no copies.
 */
static int process_dollar(struct lexer *lx, struct kn_buf *out, kn_error **err)
{
	_cleanup_(kn_buf_release) struct kn_buf name = KN_BUF_INIT;
	_cleanup_(kn_buf_release) struct kn_buf chs = KN_BUF_INIT;
	int32_t c;
	int r;

	lex_next(lx);
	if (lex_peek(lx) != '{') {
		process_name(lx, &name);
		kn_buf_addch(out, '$');
		kn_buf_add(out, name.buf, name.len);
		return 0;
	}
	lex_next(lx);
	c = lex_peek(lx);
	if (c == LEX_EOF)
		return kn_error_set(err, 0, "syntax error: missing '}'");
	if (c == '{' || c == '}' || c == ':')
		return kn_error_set(err, 0, "syntax error: bad substitution");
	process_name(lx, &name);
	c = lex_next(lx);
	add_rune(&chs, c);
	switch (c) {
	case '}':
		kn_buf_addf(out, "${%s}", name.buf);
		return 0;
	case ':':
	case '+':
	case '-':
	case '?':
	case '#':
	case '%': {
		bool null_is_unset = c == ':';

		if (null_is_unset) {
			c = lex_next(lx);
			add_rune(&chs, c);
		}
		if (null_is_unset && (c == '#' || c == '%'))
			return kn_error_set(err, 0, "unsupported modifier (%s) in substitution",
					    chs.buf);
		if (++lx->depth > LEX_MAX_DEPTH)
			return kn_error_set(err, 0, "substitutions nested too deeply");
		kn_buf_addf(out, "${%s%s", name.buf, chs.buf);
		r = stop_word(lx, "}", c == '#' || c == '%', "syntax error: missing '}'", out, err);
		lx->depth--;
		if (r < 0)
			return -1;
		kn_buf_addch(out, '}');
		return 0;
	}
	case '/':
		if (lex_peek(lx) == '/')
			lex_next(lx);
		if (++lx->depth > LEX_MAX_DEPTH)
			return kn_error_set(err, 0, "substitutions nested too deeply");
		kn_buf_addf(out, "${%s/", name.buf);
		r = stop_word(lx, "/", true, "syntax error: missing '/' in ${}", out, err);
		if (r == 0) {
			kn_buf_addch(out, '/');
			r = stop_word(lx, "}", true, "syntax error: missing '}'", out, err);
		}
		lx->depth--;
		if (r < 0)
			return -1;
		kn_buf_addch(out, '}');
		return 0;
	default:
		return kn_error_set(err, 0, "unsupported modifier (%s) in substitution", chs.buf);
	}
}

static int process_single_quote(struct lexer *lx, struct kn_buf *out, kn_error **err)
{
	int32_t c = lex_next(lx);

	if (lx->raw_quotes)
		add_rune(out, c);
	for (;;) {
		c = lex_next(lx);
		if (c == LEX_EOF)
			return kn_error_set(
			    err, 0,
			    "unexpected end of statement while looking for matching single-quote");
		if (c == '\'') {
			if (lx->raw_quotes)
				add_rune(out, c);
			return 0;
		}
		add_rune(out, c);
	}
}

static int process_double_quote(struct lexer *lx, struct kn_buf *out, kn_error **err)
{
	int32_t c = lex_next(lx);

	if (lx->raw_quotes)
		add_rune(out, c);
	for (;;) {
		c = lex_peek(lx);
		if (c == LEX_EOF)
			return kn_error_set(
			    err, 0,
			    "unexpected end of statement while looking for matching double-quote");
		if (c == '"') {
			lex_next(lx);
			if (lx->raw_quotes)
				add_rune(out, c);
			return 0;
		}
		if (c == '$') {
			if (process_dollar(lx, out, err) < 0)
				return -1;
			continue;
		}
		c = lex_next(lx);
		if (c == '\\') {
			int32_t n = lex_peek(lx);

			if (lx->raw_escapes)
				add_rune(out, c);
			if (n == LEX_EOF)
				continue;
			if (n == '"' || n == '$' || n == '\\')
				c = lex_next(lx);
		}
		add_rune(out, c);
	}
}

/* "<" or "<<" followed by the blanks after it, kept together in the word. */
static void process_possible_heredoc(struct lexer *lx, struct kn_buf *out)
{
	int32_t c;

	lex_next(lx);
	kn_buf_addch(out, '<');
	if (lex_peek(lx) != '<')
		return;
	lex_next(lx);
	kn_buf_addch(out, '<');
	while ((c = lex_peek(lx)) == ' ' || c == '\t' || c == '\r' || c == '\n')
		add_rune(out, lex_next(lx));
}

static int process_stop_on_any(struct lexer *lx, const char *stops, bool raw_escapes,
			       struct kn_buf *out, struct words *w, kn_error **err)
{
	bool saved = lx->raw_escapes;
	int32_t c;

	lx->raw_escapes = raw_escapes;
	while ((c = lex_peek(lx)) != LEX_EOF) {
		if (stops && c < 0x80 && strchr(stops, (int)c)) {
			lex_next(lx);
			lx->raw_escapes = saved;
			return 0;
		}
		if (c == '\'' || c == '"' || c == '$' || c == '<') {
			/* appended to out directly (nesting costs no copies), then split into words
			 */
			size_t start = out->len;
			int r = 0;

			if (c == '<')
				process_possible_heredoc(lx, out);
			else if (c == '\'')
				r = process_single_quote(lx, out, err);
			else if (c == '"')
				r = process_double_quote(lx, out, err);
			else
				r = process_dollar(lx, out, err);
			if (r < 0) {
				lx->raw_escapes = saved;
				return -1;
			}
			if (c == '$')
				words_add_string(w, out->buf + start, out->len - start);
			else
				words_add_raw_string(w, out->buf + start, out->len - start);
			continue;
		}
		c = lex_next(lx);
		if (c == '\\') {
			if (lx->raw_escapes) {
				words_add_raw_char(w, c);
				add_rune(out, c);
			}
			c = lex_next(lx);
			if (c == LEX_EOF)
				break;
			words_add_raw_char(w, c);
		} else {
			words_add_char(w, c);
		}
		add_rune(out, c);
	}
	lx->raw_escapes = saved;
	if (stops)
		return kn_error_set(
		    err, 0, "unexpected end of statement while looking for matching %s", stops);
	return 0;
}

/* BuildKit's Lex.ProcessWords with SkipUnsetEnv and no variables; words owned by ret. */
static int lex_words(const char *s, size_t len, bool raw_quotes, bool raw_escapes,
		     struct kn_strv *ret, kn_error **err)
{
	struct lexer lx = {
	    .s = s, .len = len, .raw_quotes = raw_quotes, .raw_escapes = raw_escapes};
	struct words w = {.word = KN_BUF_INIT};
	struct kn_buf out = KN_BUF_INIT;
	int r;

	r = process_stop_on_any(&lx, NULL, raw_escapes, &out, &w, err);
	kn_buf_release(&out);
	words_finish(&w);
	kn_buf_release(&w.word);
	if (r < 0) {
		kn_strv_release(&w.list);
		return kn_error_wrap(err, "failed to process \"%.*s\"", (int)(len > 64 ? 64 : len),
				     s);
	}
	*ret = w.list;
	return 0;
}

static size_t count_quotes(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\'' || *s == '"';
	return n;
}

/*
 * BuildKit's ParseHeredoc on one word, ^(\d*)<<(-?)\s*([^<]*)$: 1 and *ret filled when it
 * names a heredoc, 0 if not.
 */
static int parse_heredoc_word(const char *word, struct df_heredoc *ret, kn_error **err)
{
	_cleanup_(kn_strv_release) struct kn_strv words = KN_STRV_INIT;
	_cleanup_(kn_strv_release) struct kn_strv raw = KN_STRV_INIT;
	const char *p = word, *rest;
	unsigned long long fd = 0;
	bool chomp = false;

	while (*p >= '0' && *p <= '9') {
		fd = fd * 10 + (unsigned)(*p - '0');
		if (fd > UINT_MAX)
			fd = UINT_MAX;
		p++;
	}
	if (p[0] != '<' || p[1] != '<')
		return 0;
	p += 2;
	if (*p == '-') {
		chomp = true;
		p++;
	}
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\f' || *p == '\r')
		p++;
	rest = p;
	if (strchr(rest, '<') || !*rest)
		return 0;

	if (lex_words(rest, strlen(rest), false, false, &words, err) < 0)
		return -1;
	if (words.n != 1)
		return 0;
	if (lex_words(rest, strlen(rest), true, false, &raw, err) < 0)
		return -1;
	if (raw.n != words.n)
		return kn_error_set(
		    err, 0, "internal lexing of heredoc produced inconsistent results: %s", rest);
	ret->name = xstrdup(words.v[0]);
	ret->content = xstrdup("");
	ret->expand = count_quotes(words.v[0]) == count_quotes(raw.v[0]);
	ret->chomp = chomp;
	ret->fd = (unsigned)fd;
	return 1;
}

int df_heredocs_from_line(const char *line, size_t len, struct df_heredoc **ret, size_t *ret_n,
			  kn_error **err)
{
	_cleanup_(kn_strv_release) struct kn_strv words = KN_STRV_INIT;
	struct df_heredoc *docs = NULL;
	size_t n = 0, alloc = 0;
	kn_error *ignored = NULL;

	*ret = NULL;
	*ret_n = 0;
	/* Lexing errors on the whole line are ignored by BuildKit: the line names no heredoc. */
	if (lex_words(line, len, true, true, &words, &ignored) < 0) {
		kn_error_free(ignored);
		return 0;
	}
	for (size_t i = 0; i < words.n; i++) {
		struct df_heredoc h = {0};
		int r = parse_heredoc_word(words.v[i], &h, err);

		if (r < 0) {
			for (size_t k = 0; k < n; k++)
				df_heredoc_release(&docs[k]);
			free(docs);
			return -1;
		}
		if (r == 0)
			continue;
		KN_GROW(docs, alloc, n + 1);
		docs[n++] = h;
	}
	*ret = docs;
	*ret_n = n;
	return 0;
}
