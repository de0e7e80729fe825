/*
 * kiln parser: one logical Dockerfile line to one instruction node, with the line parser of each
 * instruction as BuildKit's frontend/dockerfile/parser has them (line_parsers.go): the node
 * shapes are documented with struct df_node in parser.h.
 */
#include <stdlib.h>
#include <string.h>

#include "parser/ast-internal.h"

struct df_node *df_node_new(struct df_pctx *p, const char *value, size_t len, kn_error **err)
{
	struct df_node *n;

	if (p->n_nodes >= DF_MAX_NODES) {
		kn_error_set(err, 0, "too many words in the Dockerfile (limit %u)", DF_MAX_NODES);
		return NULL;
	}
	p->n_nodes++;
	n = xcalloc(1, sizeof(*n));
	/* all len bytes: a JSON "\u0000" puts a NUL inside the value */
	n->value = xmalloc(len + 1);
	memcpy(n->value, value, len);
	n->value[len] = '\0';
	n->value_len = len;
	n->start_line = p->start_line;
	n->end_line = p->end_line;
	n->start_col = p->start_col;
	return n;
}

void df_heredoc_release(struct df_heredoc *h)
{
	free(h->name);
	free(h->content);
	h->name = h->content = NULL;
}

void df_node_free(struct df_node *n)
{
	while (n) {
		struct df_node *next = n->next;

		free(n->value);
		for (size_t i = 0; i < n->n_children; i++)
			df_node_free(n->children[i]);
		free(n->children);
		for (size_t i = 0; i < n->n_heredocs; i++)
			df_heredoc_release(&n->heredocs[i]);
		free(n->heredocs);
		free(n->original);
		for (size_t i = 0; i < n->n_flags; i++)
			free(n->flags[i]);
		free(n->flags);
		for (size_t i = 0; i < n->n_prev_comment; i++)
			free(n->prev_comment[i]);
		free(n->prev_comment);
		free(n);
		n = next;
	}
}

/* BuildKit's reWhitespace: [\t\v\f\r ]. */
static bool is_ws(char c)
{
	return c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == ' ';
}

/* Appends a node for s[0..len) to the chain ending at *tail. */
static int chain_add(struct df_pctx *p, struct df_node ***tail, const char *s, size_t len,
		     kn_error **err)
{
	struct df_node *n = df_node_new(p, s, len, err);

	if (!n)
		return -1;
	**tail = n;
	*tail = &n->next;
	return 0;
}

/*
 * Go's regexp.Split(s, -1) with reWhitespace, one node per piece (parseStringsWhitespaceDelimited).
 * Empty input gives no node.
 */
static int parse_whitespace_delimited(struct df_pctx *p, const char *s, size_t len,
				      struct df_node **ret, kn_error **err)
{
	struct df_node *head = NULL, **tail = &head;
	size_t beg = 0, end = 0, i = 0;

	*ret = NULL;
	if (len == 0)
		return 0;
	while (i < len) {
		size_t start, stop;

		if (!is_ws(s[i])) {
			i++;
			continue;
		}
		start = i;
		while (i < len && is_ws(s[i]))
			i++;
		stop = i;
		end = start;
		if (stop != 0 && chain_add(p, &tail, s + beg, end - beg, err) < 0)
			goto fail;
		beg = stop;
	}
	if (end != len && chain_add(p, &tail, s + beg, len - beg, err) < 0)
		goto fail;
	*ret = head;
	return 0;
fail:
	df_node_free(head);
	return -1;
}

/*
 * BuildKit's parseWords: words separated by Go white space; quotes and escapes are kept as
 * written (they are removed later, at expansion), but quoted white space does not split.
 */
static void parse_words(const char *s, size_t len, char esc, struct kn_strv *ret)
{
	enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
	struct kn_buf word = KN_BUF_INIT;
	bool blank_ok = false;
	uint32_t quote = 0, ch = 0;
	size_t w = 0;

	for (size_t pos = 0; pos <= len; pos += w) {
		if (pos != len)
			w = df_utf8_decode(s + pos, len - pos, &ch);
		if (phase == IN_SPACES) {
			if (pos == len)
				break;
			if (df_is_space(ch))
				continue;
			phase = IN_WORD;
		}
		if (pos == len) {
			if (blank_ok || word.len)
				kn_strv_push_owned(ret, kn_buf_detach(&word));
			break;
		}
		if (phase == IN_WORD) {
			if (df_is_space(ch)) {
				phase = IN_SPACES;
				if (blank_ok || word.len)
					kn_strv_push_owned(ret, kn_buf_detach(&word));
				kn_buf_reset(&word);
				blank_ok = false;
				continue;
			}
			if (ch == '\'' || ch == '"') {
				quote = ch;
				blank_ok = true;
				phase = IN_QUOTE;
			}
			if (ch == (unsigned char)esc) {
				if (pos + w == len)
					continue; /* an escape at the very end is dropped */
				df_utf8_add(&word, ch);
				pos += w;
				w = df_utf8_decode(s + pos, len - pos, &ch);
			}
			df_utf8_add(&word, ch);
			continue;
		}
		/* IN_QUOTE */
		if (ch == quote)
			phase = IN_WORD;
		if (ch == (unsigned char)esc && quote != '\'') {
			if (pos + w == len) {
				phase = IN_WORD;
				continue;
			}
			pos += w;
			df_utf8_add(&word, ch);
			w = df_utf8_decode(s + pos, len - pos, &ch);
		}
		df_utf8_add(&word, ch);
	}
	kn_buf_release(&word);
}

static int add_key_value(struct df_pctx *p, struct df_node ***tail, const char *k, size_t klen,
			 const char *v, size_t vlen, const char *sep, kn_error **err)
{
	if (chain_add(p, tail, k, klen, err) < 0 || chain_add(p, tail, v, vlen, err) < 0 ||
	    chain_add(p, tail, sep, strlen(sep), err) < 0)
		return -1;
	return 0;
}

/* ENV and LABEL: `k=v ...` (triples with "=") or the legacy `k v` (one triple with ""). */
static int parse_name_val(struct df_pctx *p, const char *s, size_t len, const char *instr,
			  struct df_node **ret, kn_error **err)
{
	_cleanup_(kn_strv_release) struct kn_strv words = KN_STRV_INIT;
	struct df_node *head = NULL, **tail = &head;

	*ret = NULL;
	parse_words(s, len, p->escape, &words);
	if (words.n == 0)
		return 0;
	if (!strchr(words.v[0], '=')) {
		size_t k = 0, v;

		while (k < len && !is_ws(s[k]))
			k++;
		v = k;
		while (v < len && is_ws(s[v]))
			v++;
		if (k == len)
			return kn_error_set(err, 0, "%s must have two arguments", instr);
		if (add_key_value(p, &tail, s, k, s + v, len - v, "", err) < 0)
			goto fail;
		*ret = head;
		return 0;
	}
	for (size_t i = 0; i < words.n; i++) {
		const char *word = words.v[i];
		const char *eq = strchr(word, '=');

		if (!eq) {
			struct kn_buf q = KN_BUF_INIT;

			df_go_quote(&q, word, strlen(word));
			kn_error_set(
			    err, 0,
			    "syntax error - can't find = in %s. Must be of the form: name=value",
			    q.buf);
			kn_buf_release(&q);
			goto fail;
		}
		if (add_key_value(p, &tail, word, (size_t)(eq - word), eq + 1, strlen(eq + 1), "=",
				  err) < 0)
			goto fail;
	}
	*ret = head;
	return 0;
fail:
	df_node_free(head);
	return -1;
}

/* ARG: one node per word. */
static int parse_name_or_name_val(struct df_pctx *p, const char *s, size_t len,
				  struct df_node **ret, kn_error **err)
{
	_cleanup_(kn_strv_release) struct kn_strv words = KN_STRV_INIT;
	struct df_node *head = NULL, **tail = &head;

	*ret = NULL;
	parse_words(s, len, p->escape, &words);
	for (size_t i = 0; i < words.n; i++) {
		if (chain_add(p, &tail, words.v[i], strlen(words.v[i]), err) < 0) {
			df_node_free(head);
			return -1;
		}
	}
	*ret = head;
	return 0;
}

static int parse_string(struct df_pctx *p, const char *s, size_t len, struct df_node **ret,
			kn_error **err)
{
	*ret = NULL;
	if (len == 0)
		return 0;
	*ret = df_node_new(p, s, len, err);
	return *ret ? 0 : -1;
}

/* RUN, CMD, ENTRYPOINT, SHELL: a JSON array of strings, else the rest of the line as one node. */
static int parse_maybe_json(struct df_pctx *p, const char *s, size_t len, struct df_node **ret,
			    bool *ret_json, kn_error **err)
{
	int r;

	*ret = NULL;
	if (len == 0)
		return 0;
	r = df_json_array(p, s, len, ret, err);
	if (r < 0)
		return -1;
	if (r > 0) {
		*ret_json = true;
		return 0;
	}
	return parse_string(p, s, len, ret, err);
}

/* ADD, COPY, VOLUME: a JSON array of strings, else whitespace-separated words. */
static int parse_maybe_json_to_list(struct df_pctx *p, const char *s, size_t len,
				    struct df_node **ret, bool *ret_json, kn_error **err)
{
	int r = df_json_array(p, s, len, ret, err);

	if (r < 0)
		return -1;
	if (r > 0) {
		*ret_json = true;
		return 0;
	}
	return parse_whitespace_delimited(p, s, len, ret, err);
}

/* HEALTHCHECK: the type word (NONE, CMD, ...) then the rest as for CMD. */
static int parse_health(struct df_pctx *p, const char *s, size_t len, struct df_node **ret,
			bool *ret_json, kn_error **err)
{
	size_t sep = 0, next;
	struct df_node *typ, *cmd = NULL;

	*ret = NULL;
	/* Byte-wise on purpose: BuildKit tests unicode.IsSpace(rune(byte)) here. */
	while (sep < len && !df_is_space((unsigned char)s[sep]))
		sep++;
	next = sep;
	while (next < len && df_is_space((unsigned char)s[next]))
		next++;
	if (sep == 0)
		return 0;
	typ = df_node_new(p, s, sep, err);
	if (!typ)
		return -1;
	if (parse_maybe_json(p, s + next, len - next, &cmd, ret_json, err) < 0) {
		df_node_free(typ);
		return -1;
	}
	typ->next = cmd;
	*ret = typ;
	return 0;
}

/* ONBUILD: a holder node whose one child is the wrapped instruction. */
static int parse_sub_command(struct df_pctx *p, const char *s, size_t len, int depth,
			     struct df_node **ret, kn_error **err)
{
	struct df_node *holder, *child;

	*ret = NULL;
	if (len == 0)
		return 0;
	if (depth >= DF_MAX_ONBUILD_DEPTH)
		return kn_error_set(err, 0, "ONBUILD nested too deeply (limit %d)",
				    DF_MAX_ONBUILD_DEPTH);
	child = df_node_from_line(p, s, len, depth + 1, err);
	if (!child)
		return -1;
	holder = df_node_new(p, "", 0, err);
	if (!holder) {
		df_node_free(child);
		return -1;
	}
	holder->children = xmalloc(sizeof(*holder->children));
	holder->children[0] = child;
	holder->n_children = 1;
	*ret = holder;
	return 0;
}

/*
 * BuildKit's extractBuilderFlags: leading `--name[=value]` words, with quotes and '\' escapes,
 * up to the first word not starting with "--" or a lone "--". Byte-wise, as BuildKit is: a byte
 * >= 0x80 stands for the rune of the same value (so 0x85 and 0xA0 separate words).
 * Returns the index in s where the arguments start.
 */
static size_t extract_flags(const char *s, size_t len, struct kn_strv *flags)
{
	enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
	struct kn_buf word = KN_BUF_INIT;
	bool blank_ok = false;
	unsigned char quote = 0, ch = 0;
	size_t pos, rest = len;

	for (pos = 0; pos <= len; pos++) {
		if (pos != len)
			ch = (unsigned char)s[pos];
		if (phase == IN_SPACES) {
			if (pos == len)
				break;
			if (df_is_space(ch))
				continue;
			if (ch != '-' || pos + 1 == len || s[pos + 1] != '-') {
				rest = pos;
				break;
			}
			phase = IN_WORD;
		}
		if (pos == len) {
			if (!(word.len == 2 && !memcmp(word.buf, "--", 2)) &&
			    (blank_ok || word.len))
				kn_strv_push_owned(flags, kn_buf_detach(&word));
			break;
		}
		if (phase == IN_WORD) {
			if (df_is_space(ch)) {
				phase = IN_SPACES;
				if (word.len == 2 && !memcmp(word.buf, "--", 2)) {
					rest = pos;
					break;
				}
				if (blank_ok || word.len)
					kn_strv_push_owned(flags, kn_buf_detach(&word));
				kn_buf_reset(&word);
				blank_ok = false;
				continue;
			}
			if (ch == '\'' || ch == '"') {
				quote = ch;
				blank_ok = true;
				phase = IN_QUOTE;
				continue;
			}
			if (ch == '\\') {
				if (pos + 1 == len)
					continue;
				ch = (unsigned char)s[++pos];
			}
			df_utf8_add(&word, ch);
			continue;
		}
		/* IN_QUOTE */
		if (ch == quote) {
			phase = IN_WORD;
			continue;
		}
		if (ch == '\\') {
			if (pos + 1 == len) {
				phase = IN_WORD;
				continue;
			}
			ch = (unsigned char)s[++pos];
		}
		df_utf8_add(&word, ch);
	}
	kn_buf_release(&word);
	return rest;
}

const char *const df_instruction_names[] = {
    "add",    "arg",   "cmd",	      "copy",  "entrypoint", "env",
    "expose", "from",  "healthcheck", "label", "maintainer", "onbuild",
    "run",    "shell", "stopsignal",  "user",  "volume",     "workdir",
};

const size_t df_n_instruction_names = KN_ARRAY_SIZE(df_instruction_names);

bool df_is_instruction(const char *name)
{
	for (size_t i = 0; i < KN_ARRAY_SIZE(df_instruction_names); i++)
		if (!strcmp(name, df_instruction_names[i]))
			return true;
	return false;
}

void df_split_command(const char *line, size_t len, struct df_span *ret_cmd,
		      struct df_span *ret_rest)
{
	size_t b = df_span_space(line, len);
	size_t e = df_rtrim_space(line, len);
	size_t k, r;

	if (e < b)
		e = b;
	k = b;
	while (k < e && !is_ws(line[k]))
		k++;
	r = k;
	while (r < e && is_ws(line[r]))
		r++;
	ret_cmd->off = b;
	ret_cmd->len = k - b;
	ret_rest->off = r;
	ret_rest->len = e - r;
}

/*
 * The instruction word in lower case as Go's strings.ToLower has it for the names that matter:
 * ASCII, plus the Kelvin sign U+212A, the one non-ASCII rune whose lower case is ASCII ('k'),
 * so that BuildKit reads "HEALTHCHEC\u212A" as HEALTHCHECK. Other bytes are kept.
 */
static char *lower_name(const char *s, size_t len)
{
	struct kn_buf b = KN_BUF_INIT;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (len - i >= 3 && !memcmp(s + i, "\xE2\x84\xAA", 3)) {
			kn_buf_addch(&b, 'k');
			i += 2;
		} else {
			kn_buf_addch(&b, c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
		}
	}
	return kn_buf_detach(&b);
}

struct df_node *df_node_from_line(struct df_pctx *p, const char *line, size_t len, int depth,
				  kn_error **err)
{
	_cleanup_(kn_strv_release) struct kn_strv flags = KN_STRV_INIT;
	_cleanup_free_ char *name = NULL;
	struct df_node *node = NULL, *next = NULL;
	struct df_span cmd, rest;
	const char *a;
	size_t alen, skip;
	bool json = false;
	int r;

	df_split_command(line, len, &cmd, &rest);
	name = lower_name(line + cmd.off, cmd.len);

	/* the --flags, then the arguments trimmed of Go white space */
	skip = extract_flags(line + rest.off, rest.len, &flags);
	a = line + rest.off + skip;
	alen = rest.len - skip;
	skip = df_span_space(a, alen);
	a += skip;
	alen = df_rtrim_space(a, alen - skip);

	if (!strcmp(name, "add") || !strcmp(name, "copy") || !strcmp(name, "volume"))
		r = parse_maybe_json_to_list(p, a, alen, &next, &json, err);
	else if (!strcmp(name, "run") || !strcmp(name, "cmd") || !strcmp(name, "entrypoint") ||
		 !strcmp(name, "shell"))
		r = parse_maybe_json(p, a, alen, &next, &json, err);
	else if (!strcmp(name, "env"))
		r = parse_name_val(p, a, alen, "ENV", &next, err);
	else if (!strcmp(name, "label"))
		r = parse_name_val(p, a, alen, "LABEL", &next, err);
	else if (!strcmp(name, "arg"))
		r = parse_name_or_name_val(p, a, alen, &next, err);
	else if (!strcmp(name, "expose") || !strcmp(name, "from"))
		r = parse_whitespace_delimited(p, a, alen, &next, err);
	else if (!strcmp(name, "healthcheck"))
		r = parse_health(p, a, alen, &next, &json, err);
	else if (!strcmp(name, "maintainer") || !strcmp(name, "stopsignal") ||
		 !strcmp(name, "user") || !strcmp(name, "workdir"))
		r = parse_string(p, a, alen, &next, err);
	else if (!strcmp(name, "onbuild"))
		r = parse_sub_command(p, a, alen, depth, &next, err);
	else /* unknown: BuildKit keeps an empty argument node; df_parse() reports it later */
		r = (next = df_node_new(p, "", 0, err)) ? 0 : -1;
	if (r < 0)
		return NULL;

	node = df_node_new(p, name, strlen(name), err);
	if (!node) {
		df_node_free(next);
		return NULL;
	}
	node->next = next;
	node->json = json;
	node->original = xstrndup(line, len);
	node->n_flags = flags.n;
	node->flags = flags.n ? kn_strv_detach(&flags) : NULL;
	return node;
}
