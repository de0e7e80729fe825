/*
 * kiln parser: the exec (JSON array) form, with the rules Docker applies (RFC 8259 JSON as Go's
 * encoding/json reads it into []interface{}): a document that is not valid JSON falls back to
 * the shell form; a valid array with a non-string element is an error.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parser/ast-internal.h"

/* Go's encoding/json nesting limit; deeper documents are syntax errors (shell form). */
#define JSON_MAX_DEPTH 10000

static size_t skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Scans the string starting at s[i] == '"'; returns the index after it, or 0 when invalid. */
static size_t scan_string(const char *s, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"')
			return i + 1;
		if (c < 0x20)
			return 0;
		if (c != '\\')
			continue;
		if (++i >= len)
			return 0;
		switch (s[i]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			break;
		case 'u':
			if (len - i < 5)
				return 0;
			for (int k = 1; k <= 4; k++)
				if (!is_hex(s[i + k]))
					return 0;
			i += 4;
			break;
		default:
			return 0;
		}
	}
	return 0;
}

/* Scans a number at s[i]; returns the index after it or 0. Sets *overflow past float64. */
static size_t scan_number(const char *s, size_t len, size_t i, bool *overflow)
{
	size_t start = i;

	if (i < len && s[i] == '-')
		i++;
	if (i >= len)
		return 0;
	if (s[i] == '0') {
		i++;
	} else if (s[i] >= '1' && s[i] <= '9') {
		while (i < len && is_digit(s[i]))
			i++;
	} else {
		return 0;
	}
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !is_digit(s[i]))
			return 0;
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || !is_digit(s[i]))
			return 0;
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (!*overflow) {
		_cleanup_free_ char *num = xstrndup(s + start, i - start);
		double d;

		errno = 0;
		d = strtod(num, NULL);
		if (isinf(d))
			*overflow = true;
	}
	return i;
}

static size_t scan_literal(const char *s, size_t len, size_t i)
{
	static const char *const lits[] = {"true", "false", "null"};

	for (size_t k = 0; k < KN_ARRAY_SIZE(lits); k++) {
		size_t n = strlen(lits[k]);

		if (len - i >= n && !memcmp(s + i, lits[k], n))
			return i + n;
	}
	return 0;
}

/*
 * Whether s[0..len) is exactly one JSON value with optional white space around it. Iterative
 * (an explicit stack of open containers), so nesting costs no C stack.
 */
static bool json_valid(const char *s, size_t len, bool *overflow)
{
	_cleanup_free_ char *stack = NULL;
	size_t depth = 0, alloc = 0;
	size_t i = skip_ws(s, len, 0);

	for (;;) {
		/* expect a value at s[i] */
		if (i >= len)
			return false;
		if (s[i] == '[' || s[i] == '{') {
			if (depth >= JSON_MAX_DEPTH)
				return false;
			KN_GROW(stack, alloc, depth + 1);
			stack[depth++] = s[i];
			i = skip_ws(s, len, i + 1);
			if (i < len && s[i] == (stack[depth - 1] == '[' ? ']' : '}')) {
				depth--;
				i++;
				goto after_value;
			}
			if (stack[depth - 1] == '{')
				goto object_key;
			continue;
		} else if (s[i] == '"') {
			i = scan_string(s, len, i);
		} else if (s[i] == '-' || is_digit(s[i])) {
			i = scan_number(s, len, i, overflow);
		} else {
			i = scan_literal(s, len, i);
		}
		if (i == 0)
			return false;
	after_value:
		i = skip_ws(s, len, i);
		if (depth == 0)
			return i == len;
		if (i >= len)
			return false;
		if (s[i] == (stack[depth - 1] == '[' ? ']' : '}')) {
			depth--;
			i++;
			goto after_value;
		}
		if (s[i] != ',')
			return false;
		i = skip_ws(s, len, i + 1);
		if (stack[depth - 1] == '[')
			continue;
	object_key:
		if (i >= len || s[i] != '"')
			return false;
		i = scan_string(s, len, i);
		if (i == 0)
			return false;
		i = skip_ws(s, len, i);
		if (i >= len || s[i] != ':')
			return false;
		i = skip_ws(s, len, i + 1);
	}
}

static int hex4(const char *s, size_t len, size_t i)
{
	int v = 0;

	if (len < i + 6 || s[i] != '\\' || s[i + 1] != 'u')
		return -1;
	for (size_t k = i + 2; k < i + 6; k++) {
		char c = s[k];

		if (!is_hex(c))
			return -1;
		v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return v;
}

/* Decodes the (already validated) string at s[i] == '"' into b; returns the index after it. */
static size_t decode_string(const char *s, size_t len, size_t i, struct kn_buf *b)
{
	i++;
	while (s[i] != '"') {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			char e = s[i + 1];

			switch (e) {
			case 'b':
				kn_buf_addch(b, '\b');
				break;
			case 'f':
				kn_buf_addch(b, '\f');
				break;
			case 'n':
				kn_buf_addch(b, '\n');
				break;
			case 'r':
				kn_buf_addch(b, '\r');
				break;
			case 't':
				kn_buf_addch(b, '\t');
				break;
			case 'u': {
				int r = hex4(s, len, i);

				i += 6;
				if (r >= 0xD800 && r < 0xE000) {
					int r2 = hex4(s, len, i);

					if (r < 0xDC00 && r2 >= 0xDC00 && r2 < 0xE000) {
						i += 6;
						df_utf8_add(b, 0x10000 +
								   (((uint32_t)r - 0xD800) << 10) +
								   ((uint32_t)r2 - 0xDC00));
						continue;
					}
					r = DF_RUNE_ERROR;
				}
				df_utf8_add(b, (uint32_t)r);
				continue;
			}
			default: /* " \ / */
				kn_buf_addch(b, e);
				break;
			}
			i += 2;
		} else if (c < 0x80) {
			kn_buf_addch(b, c);
			i++;
		} else {
			uint32_t r;
			size_t w = df_utf8_decode(s + i, len - i, &r);

			if (w == 1)
				df_utf8_add(b, DF_RUNE_ERROR);
			else
				kn_buf_add(b, s + i, w);
			i += w;
		}
	}
	return i + 1;
}

int df_json_array(struct df_pctx *p, const char *s, size_t len, struct df_node **ret,
		  kn_error **err)
{
	struct df_node *head = NULL, **tail = &head;
	bool overflow = false;
	size_t i = df_span_space(s, len);

	*ret = NULL;
	if (i >= len || s[i] != '[')
		return 0;
	s += i;
	len -= i;
	/* Go decodes the whole document first: syntax errors and out-of-range numbers both make
	 * json.Unmarshal fail, which Docker treats as "not JSON". */
	if (!json_valid(s, len, &overflow) || overflow)
		return 0;

	i = skip_ws(s, len, 1);
	while (s[i] != ']') {
		struct kn_buf b = KN_BUF_INIT;
		struct df_node *n;

		if (s[i] != '"') {
			df_node_free(head);
			return kn_error_set(err, 0,
					    "when using JSON array syntax, arrays must be "
					    "comprised of strings only");
		}
		i = decode_string(s, len, i, &b);
		n = df_node_new(p, b.buf, b.len, err);
		kn_buf_release(&b);
		if (!n) {
			df_node_free(head);
			return -1;
		}
		*tail = n;
		tail = &n->next;
		i = skip_ws(s, len, i);
		if (s[i] == ',')
			i = skip_ws(s, len, i + 1);
	}
	*ret = head;
	return 1;
}
