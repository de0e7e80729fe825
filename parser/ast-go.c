/*
 * kiln parser: the few pieces of Go semantics the AST depends on (UTF-8 decoding, white space,
 * printable runes, string quoting), written from the Go language and library specifications.
 */
#include <string.h>

#include "parser/ast-internal.h"

static bool is_cont(unsigned char c)
{
	return c >= 0x80 && c <= 0xBF;
}

size_t df_utf8_decode(const char *s, size_t len, uint32_t *ret_rune)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned char c = u[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t need;
	uint32_t r;

	if (c < 0x80) {
		*ret_rune = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		need = 2;
		r = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		r = c & 0x0F;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		r = c & 0x07;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		goto invalid;
	}
	if (len < 2 || u[1] < lo || u[1] > hi)
		goto invalid;
	r = (r << 6) | (u[1] & 0x3F);
	for (size_t i = 2; i < need; i++) {
		if (i >= len || !is_cont(u[i]))
			goto invalid;
		r = (r << 6) | (u[i] & 0x3F);
	}
	*ret_rune = r;
	return need;
invalid:
	*ret_rune = DF_RUNE_ERROR;
	return 1;
}

void df_utf8_add(struct kn_buf *b, uint32_t r)
{
	char out[4];

	if (r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF))
		r = DF_RUNE_ERROR;
	if (r < 0x80) {
		kn_buf_addch(b, (int)r);
		return;
	}
	if (r < 0x800) {
		out[0] = (char)(0xC0 | (r >> 6));
		out[1] = (char)(0x80 | (r & 0x3F));
		kn_buf_add(b, out, 2);
	} else if (r < 0x10000) {
		out[0] = (char)(0xE0 | (r >> 12));
		out[1] = (char)(0x80 | ((r >> 6) & 0x3F));
		out[2] = (char)(0x80 | (r & 0x3F));
		kn_buf_add(b, out, 3);
	} else {
		out[0] = (char)(0xF0 | (r >> 18));
		out[1] = (char)(0x80 | ((r >> 12) & 0x3F));
		out[2] = (char)(0x80 | ((r >> 6) & 0x3F));
		out[3] = (char)(0x80 | (r & 0x3F));
		kn_buf_add(b, out, 4);
	}
}

bool df_is_space(uint32_t r)
{
	switch (r) {
	case '\t':
	case '\n':
	case '\v':
	case '\f':
	case '\r':
	case ' ':
	case 0x85:
	case 0xA0:
	case 0x1680:
	case 0x2028:
	case 0x2029:
	case 0x202F:
	case 0x205F:
	case 0x3000:
		return true;
	default:
		return r >= 0x2000 && r <= 0x200A;
	}
}

bool df_uni_is(uint32_t r, unsigned flag)
{
	size_t lo = 0, hi = df_uni_n_ranges;

	if (r < 0x80) {
		if (flag == DF_UNI_PRINT)
			return r >= 0x20 && r < 0x7F;
		if (flag == DF_UNI_LETTER)
			return (r | 0x20) >= 'a' && (r | 0x20) <= 'z';
		if (flag == DF_UNI_DIGIT)
			return r >= '0' && r <= '9';
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r < df_uni_ranges[mid].lo)
			hi = mid;
		else if (r > df_uni_ranges[mid].hi)
			lo = mid + 1;
		else
			return (df_uni_ranges[mid].flags & flag) != 0;
	}
	return false;
}

size_t df_span_space(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t r;
		size_t w = df_utf8_decode(s + i, len - i, &r);

		if (!df_is_space(r))
			break;
		i += w;
	}
	return i;
}

/* The start of the last rune ending at s[end-1] (Go's utf8.DecodeLastRune boundary). */
static size_t last_rune_start(const char *s, size_t end)
{
	size_t start = end - 1;
	size_t lim = end >= 4 ? end - 4 : 0;

	while (start > lim && is_cont((unsigned char)s[start]))
		start--;
	return start;
}

size_t df_rtrim_space(const char *s, size_t len)
{
	while (len > 0) {
		size_t start = last_rune_start(s, len);
		uint32_t r;
		size_t w = df_utf8_decode(s + start, len - start, &r);

		/* A rune that does not end exactly at len is an invalid byte on its own. */
		if (start + w != len) {
			r = DF_RUNE_ERROR;
			start = len - 1;
		}
		if (!df_is_space(r))
			break;
		len = start;
	}
	return len;
}

static const char hexdig[] = "0123456789abcdef";

static void add_hex(struct kn_buf *b, const char *prefix, uint32_t v, int digits)
{
	kn_buf_adds(b, prefix);
	for (int i = digits - 1; i >= 0; i--)
		kn_buf_addch(b, hexdig[(v >> (4 * i)) & 0xF]);
}

void df_go_quote(struct kn_buf *b, const char *s, size_t len)
{
	size_t i = 0;

	kn_buf_grow(b, len + 2);
	kn_buf_addch(b, '"');
	while (i < len) {
		uint32_t r;
		size_t w = df_utf8_decode(s + i, len - i, &r);

		if (w == 1 && r == DF_RUNE_ERROR) {
			add_hex(b, "\\x", (unsigned char)s[i], 2);
		} else if (r == '"' || r == '\\') {
			kn_buf_addch(b, '\\');
			kn_buf_addch(b, (int)r);
		} else if (df_uni_is(r, DF_UNI_PRINT)) {
			kn_buf_add(b, s + i, w);
		} else {
			switch (r) {
			case '\a':
				kn_buf_adds(b, "\\a");
				break;
			case '\b':
				kn_buf_adds(b, "\\b");
				break;
			case '\f':
				kn_buf_adds(b, "\\f");
				break;
			case '\n':
				kn_buf_adds(b, "\\n");
				break;
			case '\r':
				kn_buf_adds(b, "\\r");
				break;
			case '\t':
				kn_buf_adds(b, "\\t");
				break;
			case '\v':
				kn_buf_adds(b, "\\v");
				break;
			default:
				if (r < ' ' || r == 0x7F)
					add_hex(b, "\\x", r, 2);
				else if (r < 0x10000)
					add_hex(b, "\\u", r, 4);
				else
					add_hex(b, "\\U", r, 8);
				break;
			}
		}
		i += w;
	}
	kn_buf_addch(b, '"');
}
