/*
 * --format templates in the Go text/template syntax that docker users script with, evaluated over
 * a JSON object: {{.Field}}, {{.A.B}}, {{.}}, {{json .X}}, {{upper .X}}, {{lower .X}},
 * {{len .X}}, {{join .X "sep"}}, {{index .X "key"}}, and a leading "table" for aligned columns
 * under a header. \t and \n in the format are a tab and a newline, as docker reads them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

enum tpl_func { F_NONE, F_JSON, F_UPPER, F_LOWER, F_LEN, F_JOIN, F_INDEX };

struct tpl_arg {
	bool is_string;
	char *string;    /* a quoted literal */
	char **path;     /* a field path: {} for ".", {"Config", "Env"} for ".Config.Env" */
};

struct tpl_node {
	char *text; /* literal text, or NULL for an action */
	enum tpl_func func;
	struct tpl_arg *args;
	size_t n_args;
};

struct cli_template {
	bool table;
	struct tpl_node *nodes;
	size_t n, alloc;
};

static const struct {
	const char *name;
	enum tpl_func func;
	size_t n_args;
} funcs[] = {
	{ "json", F_JSON, 1 },   { "upper", F_UPPER, 1 }, { "lower", F_LOWER, 1 },
	{ "len", F_LEN, 1 },     { "join", F_JOIN, 2 },   { "index", F_INDEX, 2 },
};

void cli_template_free(struct cli_template *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->nodes[i].text);
		for (size_t k = 0; k < t->nodes[i].n_args; k++) {
			free(t->nodes[i].args[k].string);
			kn_strv_free(t->nodes[i].args[k].path);
		}
		free(t->nodes[i].args);
	}
	free(t->nodes);
	free(t);
}

static void add_text(struct cli_template *t, const char *s, size_t len)
{
	struct kn_buf b = KN_BUF_INIT;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 1 < len && (s[i + 1] == 't' || s[i + 1] == 'n')) {
			kn_buf_addch(&b, s[i + 1] == 't' ? '\t' : '\n');
			i++;
		} else {
			kn_buf_addch(&b, s[i]);
		}
	}
	KN_GROW(t->nodes, t->alloc, t->n + 1);
	memset(&t->nodes[t->n], 0, sizeof(t->nodes[t->n]));
	t->nodes[t->n++].text = kn_buf_detach(&b);
}

/* Parses one argument at *pp: ".", ".A.B" or "quoted". */
static int parse_arg(const char **pp, struct tpl_arg *a, const char *action, kn_error **err)
{
	const char *p = *pp;
	struct kn_strv path = KN_STRV_INIT;

	if (*p == '"') {
		struct kn_buf b = KN_BUF_INIT;

		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			kn_buf_addch(&b, *p);
		}
		if (*p != '"') {
			kn_buf_release(&b);
			return kn_error_set(err, EINVAL, "template: unterminated string in '{{%s}}'", action);
		}
		a->is_string = true;
		a->string = kn_buf_detach(&b);
		*pp = p + 1;
		return 0;
	}
	if (*p != '.')
		return kn_error_set(err, EINVAL, "template: unexpected '%s' in '{{%s}}' (fields start with '.')",
				    p, action);
	p++;
	while (*p && *p != ' ' && *p != '\t') {
		size_t n = strcspn(p, ". \t");

		if (!n)
			return kn_strv_release(&path),
			       kn_error_set(err, EINVAL, "template: bad field in '{{%s}}'", action);
		kn_strv_push_owned(&path, xstrndup(p, n));
		p += n;
		if (*p == '.')
			p++;
	}
	a->path = kn_strv_detach(&path);
	*pp = p;
	return 0;
}

static int parse_action(struct cli_template *t, const char *s, size_t len, kn_error **err)
{
	_cleanup_free_ char *action = xstrndup(s, len);
	struct tpl_node node = { 0 };
	size_t want = 1, alloc_args = 0;
	const char *p = action;

	/* {{- and -}} trim markers are accepted; the text around is kept as written */
	if (*p == '-' && (p[1] == ' ' || p[1] == '\t'))
		p++;
	{
		size_t l = strlen(p);

		if (l >= 2 && p[l - 1] == '-' && (p[l - 2] == ' ' || p[l - 2] == '\t'))
			action[strlen(action) - 1] = '\0';
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '.' && *p != '"') {
		size_t n = strcspn(p, " \t");
		size_t i;

		for (i = 0; i < KN_ARRAY_SIZE(funcs); i++)
			if (strlen(funcs[i].name) == n && !strncmp(p, funcs[i].name, n))
				break;
		if (i == KN_ARRAY_SIZE(funcs))
			return kn_error_set(err, EINVAL, "template: function '%.*s' is not defined (known: "
					    "json, upper, lower, len, join, index)", (int)n, p);
		node.func = funcs[i].func;
		want = funcs[i].n_args;
		p += n;
	}
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		KN_GROW(node.args, alloc_args, node.n_args + 1);
		memset(&node.args[node.n_args], 0, sizeof(node.args[0]));
		if (parse_arg(&p, &node.args[node.n_args], action, err) < 0)
			goto fail;
		node.n_args++;
	}
	if (node.n_args != (node.func == F_NONE ? 1 : want)) {
		kn_error_set(err, EINVAL, "template: '{{%s}}' takes %zu argument%s", action,
			     node.func == F_NONE ? (size_t)1 : want, want == 1 ? "" : "s");
		goto fail;
	}
	if ((node.func == F_JOIN || node.func == F_INDEX) && !node.args[1].is_string) {
		kn_error_set(err, EINVAL, "template: the second argument of '{{%s}}' is a quoted string",
			     action);
		goto fail;
	}
	KN_GROW(t->nodes, t->alloc, t->n + 1);
	t->nodes[t->n++] = node;
	return 0;
fail:
	for (size_t k = 0; node.args && k <= node.n_args && k < alloc_args; k++) {
		free(node.args[k].string);
		kn_strv_free(node.args[k].path);
	}
	free(node.args);
	return -1;
}

int cli_template_parse(const char *format, struct cli_template **ret, kn_error **err)
{
	struct cli_template *t = xcalloc(1, sizeof(*t));
	const char *p = format;

	if (!strncmp(p, "table", 5) && (!p[5] || p[5] == ' ' || p[5] == '\t')) {
		t->table = true;
		p += 5;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	while (*p) {
		const char *open = strstr(p, "{{"), *close;

		if (!open) {
			add_text(t, p, strlen(p));
			break;
		}
		if (open > p)
			add_text(t, p, (size_t)(open - p));
		close = strstr(open + 2, "}}");
		if (!close) {
			cli_template_free(t);
			return kn_error_set(err, EINVAL, "template: unclosed action '%s'", open);
		}
		if (parse_action(t, open + 2, (size_t)(close - open - 2), err) < 0) {
			cli_template_free(t);
			return -1;
		}
		p = close + 2;
	}
	/* Text with no action at all is a mistyped format name ("yaml"), not a template. */
	if (!t->table) {
		bool action = false;

		for (size_t i = 0; i < t->n; i++)
			action |= !t->nodes[i].text;
		if (!action) {
			cli_template_free(t);
			return kn_error_set(err, EINVAL, "'%s' is not a format: use 'table', 'json' or a "
					    "template such as '{{.ID}}'", format);
		}
	}
	*ret = t;
	return 0;
}

bool cli_template_is_table(const struct cli_template *t)
{
	return t->table;
}

bool cli_template_is_empty(const struct cli_template *t)
{
	return t->n == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Go's default printing of a value: strings bare, arrays [a b], objects map[k:v] by key. */
static void print_value(struct kn_buf *out, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		kn_buf_add(out, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		kn_buf_addf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		kn_buf_addf(out, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		kn_buf_adds(out, "true");
		break;
	case JSON_FALSE:
		kn_buf_adds(out, "false");
		break;
	case JSON_NULL:
		kn_buf_adds(out, "<no value>");
		break;
	case JSON_ARRAY: {
		size_t i;
		json_t *e;

		kn_buf_addch(out, '[');
		json_array_foreach (v, i, e) {
			if (i)
				kn_buf_addch(out, ' ');
			print_value(out, e);
		}
		kn_buf_addch(out, ']');
		break;
	}
	case JSON_OBJECT: {
		const char **keys = xcalloc(json_object_size(v) + 1, sizeof(*keys));
		const char *k;
		size_t n = 0;
		json_t *e;

		json_object_foreach (v, k, e)
			keys[n++] = k;
		qsort(keys, n, sizeof(*keys), cmp_str);
		kn_buf_adds(out, "map[");
		for (size_t i = 0; i < n; i++) {
			kn_buf_addf(out, "%s%s:", i ? " " : "", keys[i]);
			print_value(out, json_object_get(v, keys[i]));
		}
		kn_buf_addch(out, ']');
		free(keys);
		break;
	}
	}
}

static int eval_arg(const struct tpl_arg *a, json_t *data, json_t **ret, kn_error **err)
{
	json_t *v = data;

	for (size_t i = 0; a->path[i]; i++) {
		json_t *next = json_is_object(v) ? json_object_get(v, a->path[i]) : NULL;

		if (!next && json_is_object(v) && i > 0) {
			/* a key missing from a map: Go prints <no value> */
			*ret = json_null();
			return 0;
		}
		if (!next)
			return kn_error_set(err, EINVAL, "template: can't evaluate field %s", a->path[i]);
		v = next;
	}
	*ret = json_incref(v);
	return 0;
}

static int exec_node(const struct tpl_node *n, json_t *data, struct kn_buf *out, kn_error **err)
{
	json_t *v = NULL;
	int r = 0;

	if (eval_arg(&n->args[0], data, &v, err) < 0)
		return -1;
	switch (n->func) {
	case F_NONE:
		print_value(out, v);
		break;
	case F_JSON: {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);

		kn_buf_adds(out, s ? s : "null");
		free(s);
		break;
	}
	case F_UPPER:
	case F_LOWER: {
		struct kn_buf tmp = KN_BUF_INIT;

		print_value(&tmp, v);
		for (size_t i = 0; i < tmp.len; i++)
			kn_buf_addch(out, n->func == F_UPPER ? toupper((unsigned char)tmp.buf[i])
							     : tolower((unsigned char)tmp.buf[i]));
		kn_buf_release(&tmp);
		break;
	}
	case F_LEN:
		if (json_is_array(v))
			kn_buf_addf(out, "%zu", json_array_size(v));
		else if (json_is_object(v))
			kn_buf_addf(out, "%zu", json_object_size(v));
		else if (json_is_string(v))
			kn_buf_addf(out, "%zu", json_string_length(v));
		else
			r = kn_error_set(err, EINVAL, "template: len of a value that has no length");
		break;
	case F_JOIN: {
		size_t i;
		json_t *e;

		if (!json_is_array(v) && !json_is_null(v)) {
			r = kn_error_set(err, EINVAL, "template: join needs a list");
			break;
		}
		json_array_foreach (v, i, e) {
			if (i)
				kn_buf_adds(out, n->args[1].string);
			print_value(out, e);
		}
		break;
	}
	case F_INDEX: {
		json_t *e = json_is_object(v) ? json_object_get(v, n->args[1].string) : NULL;

		if (e)
			print_value(out, e);
		else
			kn_buf_adds(out, "<no value>");
		break;
	}
	}
	json_decref(v);
	return r;
}

int cli_template_exec(const struct cli_template *t, json_t *data, struct kn_buf *out, kn_error **err)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->nodes[i].text)
			kn_buf_adds(out, t->nodes[i].text);
		else if (exec_node(&t->nodes[i], data, out, err) < 0)
			return -1;
	}
	return 0;
}

void cli_template_header(const struct cli_template *t, const char *(*name)(const char *field),
			 struct kn_buf *out)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct tpl_node *n = &t->nodes[i];

		if (n->text) {
			kn_buf_adds(out, n->text);
		} else {
			const char *last = NULL;

			for (size_t k = 0; n->args[0].path[k]; k++)
				last = n->args[0].path[k];
			if (!last) {
				kn_buf_adds(out, ".");
			} else if (name && name(last)) {
				kn_buf_adds(out, name(last));
			} else {
				for (const char *c = last; *c; c++)
					kn_buf_addch(out, toupper((unsigned char)*c));
			}
		}
	}
}

void cli_print_columns(char *const *lines)
{
	size_t n = kn_strv_len(lines), ncols = 0;
	size_t *width = NULL;

	/* like docker's tabwriter (min width 10, padding 3) over tab-separated cells */
	for (size_t pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			const char *p = lines[i];

			for (size_t c = 0;; c++) {
				size_t len = strcspn(p, "\t");
				bool last = !p[len];

				if (pass == 0) {
					if (c + 1 > ncols) {
						width = xreallocarray(width, c + 1, sizeof(*width));
						for (size_t k = ncols; k <= c; k++)
							width[k] = 0;
						ncols = c + 1;
					}
					if (!last && len + 3 > width[c])
						width[c] = len + 3 > 10 ? len + 3 : 10;
				} else if (last) {
					printf("%.*s\n", (int)len, p);
				} else {
					printf("%-*.*s", (int)width[c], (int)len, p);
				}
				if (last)
					break;
				p += len + 1;
			}
		}
	}
	free(width);
}
