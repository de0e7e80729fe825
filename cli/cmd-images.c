/* kiln images: list the images in the local store (like docker images). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "layers/layers.h"

/* Parses an RFC 3339 timestamp ("2024-05-01T10:20:30.5+02:00"); -1 when it cannot. */
static time_t parse_rfc3339(const char *s)
{
	struct tm tm = { 0 };
	const char *p;
	time_t t;

	if (!s)
		return -1;
	p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -1;
	t = timegm(&tm);
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (*p == '+' || *p == '-') {
		int sign = *p == '+' ? 1 : -1;
		long hh = strtol(p + 1, NULL, 10), mm = p[3] == ':' ? strtol(p + 4, NULL, 10) : 0;

		t -= sign * (hh * 3600 + mm * 60);
	}
	return t;
}

/* docker's "2 hours ago" (go-units HumanDuration). */
static char *created_since(const char *created)
{
	time_t t = parse_rfc3339(created);
	double secs;
	long m, h;

	if (t < 0)
		return xstrdup("N/A");
	secs = difftime(time(NULL), t);
	if (secs < 1)
		return xstrdup("Less than a second ago");
	if ((long)secs == 1)
		return xstrdup("1 second ago");
	if (secs < 60)
		return xasprintf("%ld seconds ago", (long)secs);
	m = (long)(secs / 60);
	if (m == 1)
		return xstrdup("About a minute ago");
	if (m < 60)
		return xasprintf("%ld minutes ago", m);
	h = m / 60;
	if (h == 1)
		return xstrdup("About an hour ago");
	if (h < 48)
		return xasprintf("%ld hours ago", h);
	if (h < 24 * 7 * 2)
		return xasprintf("%ld days ago", h / 24);
	if (h < 24 * 30 * 2)
		return xasprintf("%ld weeks ago", h / 24 / 7);
	if (h < 24 * 365 * 2)
		return xasprintf("%ld months ago", h / 24 / 30);
	return xasprintf("%ld years ago", h / 24 / 365);
}

/* docker's decimal sizes: "7.8MB", "512B", "1.23GB". */
static char *human_size(int64_t n)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "PB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1000 && u + 1 < KN_ARRAY_SIZE(units)) {
		v /= 1000;
		u++;
	}
	return xasprintf("%.3g%s", v, units[u]);
}

/* The table columns, in docker's order; the cells of a row are its first fields. */
enum { COL_REPO, COL_TAG, COL_DIGEST, COL_ID, COL_SINCE, COL_SIZE, NCOLS };

struct row {
	char *cell[NCOLS]; /* repository, tag, manifest digest, shown image ID, "2 hours ago", "7.8MB" */
	char *id, *created;
	int64_t bytes, compressed;
	time_t t;
};

static const char *const headers[NCOLS] = { "REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED",
					    "SIZE" };

/*
 * Prints one table line. Like docker's tabwriter (min width 10, padding 3), every column is as
 * wide as its widest cell plus 3 spaces (10 at least), so columns line up whatever the content.
 */
static void print_line(const char *const cells[NCOLS], const int width[NCOLS], bool digests)
{
	for (int c = 0; c < NCOLS; c++) {
		if (c == COL_DIGEST && !digests)
			continue;
		if (c == NCOLS - 1)
			printf("%s\n", cells[c]);
		else
			printf("%-*s", width[c], cells[c]);
	}
}

static void print_table(const struct row *rows, size_t nrows, bool digests)
{
	int width[NCOLS];

	for (int c = 0; c < NCOLS; c++) {
		size_t w = strlen(headers[c]);

		for (size_t i = 0; i < nrows; i++)
			w = strlen(rows[i].cell[c]) > w ? strlen(rows[i].cell[c]) : w;
		width[c] = w + 3 > 10 ? (int)w + 3 : 10;
	}
	print_line(headers, width, digests);
	for (size_t i = 0; i < nrows; i++)
		print_line((const char *const *)rows[i].cell, width, digests);
}

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int c;

	if (x->t != y->t)
		return x->t < y->t ? 1 : -1;
	c = strcmp(x->cell[COL_REPO], y->cell[COL_REPO]);
	return c ? c : strcmp(x->cell[COL_TAG], y->cell[COL_TAG]);
}

static void free_rows(struct row *rows, size_t nrows)
{
	for (size_t i = 0; i < nrows; i++) {
		for (int col = 0; col < NCOLS; col++)
			free(rows[i].cell[col]);
		free(rows[i].id);
		free(rows[i].created);
	}
	free(rows);
}

/* docker's table headers for the template fields whose upper-cased name is not the header. */
static const char *field_header(const char *field)
{
	static const char *const map[][2] = {
		{ "ID", "IMAGE ID" },		{ "CreatedSince", "CREATED" },
		{ "CreatedAt", "CREATED AT" },	{ "VirtualSize", "VIRTUAL SIZE" },
		{ "SharedSize", "SHARED SIZE" }, { "UniqueSize", "UNIQUE SIZE" },
	};

	for (size_t i = 0; i < KN_ARRAY_SIZE(map); i++)
		if (!strcmp(field, map[i][0]))
			return map[i][1];
	return NULL;
}

/* The fields docker's images --format offers, one object per row. */
static json_t *row_fields(const struct row *r)
{
	char at[64] = "";
	struct tm tm;

	if (r->t >= 0 && gmtime_r(&r->t, &tm))
		strftime(at, sizeof(at), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "Containers", "N/A",
			 "CreatedAt", at, "CreatedSince", r->cell[COL_SINCE], "Digest", r->cell[COL_DIGEST],
			 "ID", r->cell[COL_ID], "Repository", r->cell[COL_REPO], "SharedSize", "N/A",
			 "Size", r->cell[COL_SIZE], "Tag", r->cell[COL_TAG], "UniqueSize", "N/A",
			 "VirtualSize", r->cell[COL_SIZE]);
}

static int print_template(const struct cli_template *tpl, const struct row *rows, size_t nrows)
{
	struct kn_strv lines = KN_STRV_INIT;
	struct kn_buf b = KN_BUF_INIT;
	kn_error *err = NULL;
	int r = 0;

	if (cli_template_is_table(tpl)) {
		cli_template_header(tpl, field_header, &b);
		kn_strv_push(&lines, b.buf);
	}
	for (size_t i = 0; i < nrows; i++) {
		json_t *o = row_fields(&rows[i]);

		kn_buf_reset(&b);
		r = cli_template_exec(tpl, o, &b, &err);
		json_decref(o);
		if (r < 0)
			break;
		kn_strv_push(&lines, b.buf);
	}
	if (r < 0) {
		cli_fail(err);
	} else if (cli_template_is_table(tpl)) {
		cli_print_columns(lines.v);
	} else {
		for (size_t i = 0; i < lines.n; i++)
			puts(lines.v[i]);
	}
	kn_buf_release(&b);
	kn_strv_release(&lines);
	return r;
}

static void usage(FILE *out)
{
	fputs("Usage: kiln images [OPTIONS] [REPOSITORY[:TAG]]\n"
	      "\n"
	      "List the images in the local store (only those of REPOSITORY when given).\n"
	      "\n"
	      "Options:\n"
	      "      --digests        show manifest digests\n"
	      "      --format FORMAT  'table' (default), 'json', or a Go template such as\n"
	      "                       '{{.Repository}}:{{.Tag}} {{.ID}}' ('table TEMPLATE' aligns columns)\n"
	      "      --compressed-size  SIZE is the compressed size (default: unpacked, as docker)\n"
	      "  -q, --quiet          only show image IDs\n"
	      "      --no-trunc       show full image IDs\n"
	      "      --root DIR       local image store\n"
	      "  -h, --help           show this help\n",
	      out);
}

int cmd_images(int argc, char **argv)
{
	enum { OPT_DIGESTS = 0x100, OPT_FORMAT, OPT_NOTRUNC, OPT_COMPRESSED };
	static const struct option opts[] = {
		{ "digests", no_argument, NULL, OPT_DIGESTS },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "no-trunc", no_argument, NULL, OPT_NOTRUNC },
		{ "compressed-size", no_argument, NULL, OPT_COMPRESSED },
		{ "help", no_argument, NULL, 'h' },
		CLI_OPT_ROOT_ENTRY,
		{ NULL, 0, NULL, 0 },
	};
	bool digests = false, quiet = false, json = false, notrunc = false, compressed = false;
	_cleanup_(cli_template_freep) struct cli_template *tpl = NULL;
	_cleanup_free_ char *filter_repo = NULL, *filter_tag = NULL;
	_cleanup_(store_freep) struct store *s = NULL;
	struct store_ref *refs = NULL;
	struct row *rows = NULL;
	size_t n = 0, nrows = 0;
	kn_error *err = NULL;
	int c;

	while ((c = cli_getopt("images", argc, argv, ":hq", opts)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'q':
			quiet = true;
			break;
		case OPT_DIGESTS:
			digests = true;
			break;
		case OPT_NOTRUNC:
			notrunc = true;
			break;
		case OPT_FORMAT:
			cli_template_free(steal_ptr(&tpl));
			json = false;
			if (!strcmp(optarg, "json")) {
				json = true;
			} else if (strcmp(optarg, "table") && cli_template_parse(optarg, &tpl, &err) < 0) {
				_cleanup_free_ char *m = kn_error_format(err);

				kn_error_free(err);
				return cli_usage_error("images", "invalid --format: %s", m);
			}
			break;
		case OPT_COMPRESSED:
			compressed = true;
			break;
		case CLI_OPT_ROOT:
			cli_set_root(optarg);
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind > 1)
		return cli_usage_error("images", "unexpected argument '%s'", argv[optind + 1]);
	if (optind < argc) {
		/* "alpine" matches every tag of docker.io/library/alpine; "alpine:3" only that one. */
		_cleanup_free_ char *norm = NULL;
		const char *last = strrchr(argv[optind], '/');

		if (store_ref_normalize(argv[optind], &norm, &err) < 0)
			return cli_fail(err);
		store_ref_split(norm, &filter_repo, &filter_tag);
		if (strchr(last ? last : argv[optind], ':') == NULL) {
			free(filter_tag);
			filter_tag = NULL;
		}
	}
	if (cli_store_open_read(&s, &err) < 0 || store_ref_list(s, &refs, &n, &err) < 0)
		return cli_fail(err);
	rows = xcalloc(n + 1, sizeof(*rows));
	for (size_t i = 0; i < n; i++) {
		struct store_image *img = NULL;
		struct row *r = &rows[nrows];
		const char *key = refs[i].name ? refs[i].name : refs[i].desc.digest;

		if (filter_repo) {
			_cleanup_free_ char *repo = NULL, *tag = NULL;

			if (!refs[i].name)
				continue;
			store_ref_split(refs[i].name, &repo, &tag);
			if (strcmp(repo, filter_repo) || (filter_tag && (!tag || strcmp(tag, filter_tag))))
				continue;
		}
		if (store_image_resolve(s, key, &img, &err) < 0) {
			_cleanup_free_ char *m = kn_error_format(err);

			cli_warn("skipping '%s': %s", key, m);
			kn_error_free(err);
			err = NULL;
			continue;
		}
		if (refs[i].name) {
			_cleanup_free_ char *fam = store_ref_familiar(refs[i].name);

			store_ref_split(fam, &r->cell[COL_REPO], &r->cell[COL_TAG]);
			if (!r->cell[COL_TAG])
				r->cell[COL_TAG] = xstrdup("<none>");
		} else {
			r->cell[COL_REPO] = xstrdup("<none>");
			r->cell[COL_TAG] = xstrdup("<none>");
		}
		r->cell[COL_DIGEST] = xstrdup(refs[i].desc.digest);
		r->cell[COL_ID] = notrunc ? xstrdup(img->id) : xstrndup(store_digest_hex(img->id), 12);
		r->cell[COL_SINCE] = created_since(img->config->created);
		r->id = xstrdup(img->id);
		r->created = xstrdup(img->config->created ? img->config->created : "");
		r->compressed = store_image_size(img);
		if (compressed) {
			r->bytes = r->compressed;
		} else if (store_image_unpacked_size(s, img, &r->bytes, &err) < 0) {
			_cleanup_free_ char *m = kn_error_format(err);

			cli_warn("'%s': unpacked size unknown: %s", key, m);
			kn_error_free(err);
			err = NULL;
			r->bytes = -1;
		}
		r->cell[COL_SIZE] = r->bytes < 0 ? xstrdup("N/A") : human_size(r->bytes);
		r->t = parse_rfc3339(img->config->created);
		nrows++;
		store_image_free(img);
	}
	qsort(rows, nrows, sizeof(*rows), cmp_row);
	if (quiet) {
		struct kn_strv seen = KN_STRV_INIT;

		for (size_t i = 0; i < nrows; i++) {
			if (kn_strv_contains(&seen, rows[i].id))
				continue;
			kn_strv_push(&seen, rows[i].id);
			puts(rows[i].cell[COL_ID]);
		}
		kn_strv_release(&seen);
	} else if (json) {
		json_t *a = json_array();
		char *text;

		for (size_t i = 0; i < nrows; i++)
			json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:I,s:s,s:I}",
				"Repository", rows[i].cell[COL_REPO], "Tag", rows[i].cell[COL_TAG],
				"Digest", rows[i].cell[COL_DIGEST], "ID", rows[i].id,
				"ShortID", json_sprintf("%.12s", store_digest_hex(rows[i].id)),
				"Created", rows[i].created, "CreatedSince", rows[i].cell[COL_SINCE],
				"Size", (json_int_t)rows[i].bytes, "HumanSize", rows[i].cell[COL_SIZE],
				"CompressedSize", (json_int_t)rows[i].compressed));
		text = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(text);
		free(text);
		json_decref(a);
	} else if (tpl && !cli_template_is_empty(tpl)) {
		if (print_template(tpl, rows, nrows) < 0) {
			free_rows(rows, nrows);
			store_refs_free(refs, n);
			return CLI_EXIT_FAIL;
		}
	} else {
		print_table(rows, nrows, digests);
	}
	if (!nrows && !quiet && !filter_repo && !json && fflush(stdout) == 0)
		fprintf(stderr, "kiln: the store at '%s' holds no images\n", cli_root());
	free_rows(rows, nrows);
	store_refs_free(refs, n);
	return CLI_EXIT_OK;
}
