/*
 * Progress display shared by the commands that build or move images (printing only).
 *
 * Every event (a build step starting, its output, a blob moving) updates one model: a list of
 * "vertices" (a build step or a blob transfer), each with a status, timings, byte counts and the
 * tail of its output. The modes render that model:
 *   plain    one line per event, step output indented as it arrives (what CI logs get);
 *   tty      a live view redrawn ten times a second by a thread of its own, so timers advance
 *            while a step runs: finished vertices scroll up into the log, running ones show a
 *            live timer and their last output lines;
 *   quiet    nothing but the failing step's output when the build fails;
 *   rawjson  one JSON object per event on its own line, for tools that draw their own UI.
 * In every mode a failing step's output (the last lines; all of it in plain mode) is printed
 * above the error with the Dockerfile line that ran it.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "registry/registry.h"

/* Output kept per vertex: the failure report shows the tail of it. */
#define LOG_KEEP (1u << 20)
/* Output lines shown under a running vertex in the tty view, and in a tty failure report. */
#define TTY_LOG_LINES 6
#define ERROR_LOG_LINES 10
#define TTY_REDRAW_NS 100000000ULL

enum vertex_status { V_RUNNING, V_DONE, V_CACHED, V_ERROR };

struct vertex {
	char *id;    /* "1.3" (stage.step) or a blob digest */
	char *title; /* "[stage 1/1] [3/3] RUN make" or "sha256:abcd… Pulling" */
	enum vertex_status status;
	unsigned long long started_ns, duration_ns;
	/* Dockerfile location of a build step */
	char *file;
	int line;
	char *source;
	/* transfers */
	bool transfer;
	uint64_t current, total;
	/* output: the last LOG_KEEP bytes, and how many were dropped before them */
	struct kn_buf log;
	size_t log_dropped;
	bool committed; /* tty: already printed above the live area for good */
};

struct cli_progress {
	enum cli_progress_mode mode;
	FILE *out;
	const char *action; /* "Building", "Pulling"… in the tty header */
	unsigned long long start_ns;
	pthread_mutex_t mu;
	struct vertex *v;
	size_t n, alloc;
	/* plain: a partial output line waiting for its newline, and the vertex it belongs to */
	struct kn_buf partial;
	size_t partial_vertex;
	long last_shown;
	/* tty */
	bool color;
	int width, height;
	int drawn_lines;      /* lines of the live area on screen, below the cursor's row */
	int *drawn_widths;    /* the width of each of those lines, to redo the count on resize */
	size_t drawn_alloc;
	pthread_t thread;
	pthread_cond_t cond;
	bool thread_running, stop, finished;
	struct sigaction old_winch;
};

static volatile sig_atomic_t winch_pending;

unsigned long long cli_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

/* ---- the model ----------------------------------------------------------------------------- */

static struct vertex *vertex_find(struct cli_progress *p, const char *id)
{
	for (size_t i = p->n; i-- > 0;)
		if (!strcmp(p->v[i].id, id))
			return &p->v[i];
	return NULL;
}

static struct vertex *vertex_add(struct cli_progress *p, const char *id, char *title)
{
	struct vertex *v;

	KN_GROW(p->v, p->alloc, p->n + 1);
	v = &p->v[p->n++];
	memset(v, 0, sizeof(*v));
	v->id = xstrdup(id);
	v->title = title;
	v->status = V_RUNNING;
	v->started_ns = cli_now_ns();
	kn_buf_init(&v->log);
	return v;
}

static void vertex_log(struct vertex *v, const char *data, size_t len)
{
	kn_buf_add(&v->log, data, len);
	if (v->log.len > 2 * LOG_KEEP) {
		size_t drop = v->log.len - LOG_KEEP;

		memmove(v->log.buf, v->log.buf + drop, LOG_KEEP);
		kn_buf_setlen(&v->log, LOG_KEEP);
		v->log_dropped += drop;
	}
}

/* Points *ret_start at the first of the last max lines of buf (max 0: all); returns the count. */
static size_t tail_lines(const char *buf, size_t len, size_t max, const char **ret_start)
{
	const char *e = buf + len, *s = e;
	size_t lines = 0;

	while (len && e[-1] == '\n')
		e--, len--;
	s = e;
	if (e > buf)
		lines = 1;
	while (s > buf) {
		if (s[-1] == '\n') {
			if (max && lines == max)
				break;
			lines++;
		}
		s--;
	}
	*ret_start = s;
	return lines;
}

static char *step_id(const struct bld_event *ev)
{
	return xasprintf("%d.%d", ev->stage_index, ev->step_index);
}

static char *step_title(const struct bld_event *ev)
{
	struct kn_buf b = KN_BUF_INIT;

	kn_buf_addf(&b, "[stage %d/%d", ev->stage_index, ev->stage_count);
	if (ev->stage_name && *ev->stage_name)
		kn_buf_addf(&b, " %s", ev->stage_name);
	kn_buf_addf(&b, "] [%d/%d] %s", ev->step_index, ev->step_count, ev->text ? ev->text : "");
	return kn_buf_detach(&b);
}

/* "12.3MB" as docker prints sizes (decimal units). */
static void add_size(struct kn_buf *b, uint64_t n)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
	double d = (double)n;
	size_t u = 0;

	while (d >= 1000 && u + 1 < KN_ARRAY_SIZE(units))
		d /= 1000, u++;
	if (u == 0)
		kn_buf_addf(b, "%lluB", (unsigned long long)n);
	else
		kn_buf_addf(b, "%.*f%s", d < 10 ? 2 : d < 100 ? 1 : 0, d, units[u]);
}

/* ---- rawjson -------------------------------------------------------------------------------- */

static void json_emit(struct cli_progress *p, json_t *o)
{
	char *s;

	json_object_set_new(o, "time", json_real((double)(cli_now_ns() - p->start_ns) / 1e9));
	s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6));
	json_decref(o);
	if (!s)
		return;
	fprintf(p->out, "%s\n", s);
	free(s);
	fflush(p->out);
}

/* A JSON string of bytes that may not be UTF-8: invalid sequences become U+FFFD. */
static json_t *json_bytes(const char *data, size_t len)
{
	struct kn_buf b = KN_BUF_INIT;
	json_t *j;

	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)data[i];
		size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		bool ok = n && i + n <= len;

		for (size_t k = 1; ok && k < n; k++)
			ok = ((unsigned char)data[i + k] >> 6) == 2;
		if (ok && c) {
			kn_buf_add(&b, data + i, n);
			i += n;
		} else {
			kn_buf_adds(&b, "\xef\xbf\xbd");
			i++;
		}
	}
	j = json_stringn(b.buf, b.len);
	kn_buf_release(&b);
	return j ? j : json_string("");
}

static void json_vertex(struct cli_progress *p, const struct vertex *v, const char *status,
			const char *error)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "type", "vertex", "id", v->id, "name", v->title,
			      "status", status);

	if (!o)
		return;
	if (v->file) {
		json_object_set_new(o, "file", json_string(v->file));
		json_object_set_new(o, "line", json_integer(v->line));
	}
	if (v->status != V_RUNNING)
		json_object_set_new(o, "duration", json_real((double)v->duration_ns / 1e9));
	if (v->transfer && v->total)
		json_object_set_new(o, "total", json_integer((json_int_t)v->total));
	if (error)
		json_object_set_new(o, "error", json_bytes(error, strlen(error)));
	json_emit(p, o);
}

/* ---- plain ---------------------------------------------------------------------------------- */

/* Shows which vertex the next lines belong to when another one printed last. */
static void plain_header(struct cli_progress *p, size_t idx)
{
	if (p->last_shown == (long)idx)
		return;
	if (p->partial.len) {
		fprintf(p->out, "    %s\n", p->partial.buf);
		kn_buf_reset(&p->partial);
	}
	fprintf(p->out, "%s\n", p->v[idx].title);
	p->last_shown = (long)idx;
}

static void plain_flush_partial(struct cli_progress *p)
{
	if (p->partial.len) {
		fprintf(p->out, "    %s\n", p->partial.buf);
		kn_buf_reset(&p->partial);
	}
}

static void plain_output(struct cli_progress *p, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			fprintf(p->out, "    %s\n", p->partial.buf);
			kn_buf_reset(&p->partial);
		} else if (data[i] != '\r') {
			kn_buf_addch(&p->partial, (unsigned char)data[i]);
		}
	}
}

/* ---- tty ------------------------------------------------------------------------------------ */

static void on_winch(int sig)
{
	(void)sig;
	winch_pending = 1;
}

static void tty_size(struct cli_progress *p)
{
	struct winsize ws;

	if (!ioctl(fileno(p->out), TIOCGWINSZ, &ws) && ws.ws_col > 0) {
		p->width = ws.ws_col;
		p->height = ws.ws_row;
	}
	if (p->width < 20)
		p->width = 20;
	if (p->height < 5)
		p->height = 5;
}

/*
 * Appends s (len bytes) to line, keeping the line's display width within max columns. Control
 * characters become spaces; a carriage return starts the text over (a progress bar's last state
 * is what shows). UTF-8 continuation bytes take no column. Returns the columns used.
 */
static int line_add(struct kn_buf *line, int used, int max, const char *s, size_t len)
{
	for (size_t i = 0; i < len && used <= max; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c & 0xc0) == 0x80) {
			if (used > 0)
				kn_buf_addch(line, c);
			continue;
		}
		if (used == max)
			break;
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		kn_buf_addch(line, c);
		used++;
	}
	/* do not leave a truncated UTF-8 sequence behind */
	while (line->len && ((unsigned char)line->buf[line->len - 1] & 0xc0) == 0xc0)
		kn_buf_setlen(line, line->len - 1);
	return used;
}

static const char *color(const struct cli_progress *p, const char *code)
{
	return p->color ? code : "";
}

/* One frame line: text on the left, the status right-aligned, all within the width. */
static void frame_line(struct cli_progress *p, struct kn_buf *frame, struct kn_buf *widths,
		       const char *col, const char *left, const char *right)
{
	struct kn_buf line = KN_BUF_INIT;
	int max = p->width - 1, rlen = right ? (int)strlen(right) : 0, used;

	used = line_add(&line, 0, right && max - rlen - 1 > 10 ? max - rlen - 1 : max, left,
			strlen(left));
	if (right && max - rlen - 1 > 10) {
		while (used < max - rlen)
			kn_buf_addch(&line, ' '), used++;
		used = line_add(&line, used, max, right, (size_t)rlen);
	}
	kn_buf_addf(frame, "%s%s%s\033[K\n", color(p, col), line.buf, *col ? color(p, "\033[0m") : "");
	kn_buf_add(widths, &used, sizeof(used));
	kn_buf_release(&line);
}

static void vertex_status_text(const struct cli_progress *p, const struct vertex *v,
			       unsigned long long t, struct kn_buf *b)
{
	double secs = (double)(v->status == V_RUNNING ? t - v->started_ns : v->duration_ns) / 1e9;

	if (v->transfer && (v->total || v->current)) {
		if (v->status == V_RUNNING) {
			add_size(b, v->current);
			if (v->total) {
				kn_buf_adds(b, " / ");
				add_size(b, v->total);
			}
			if (secs > 0.2) {
				kn_buf_adds(b, " ");
				add_size(b, (uint64_t)((double)v->current / secs));
				kn_buf_adds(b, "/s");
			}
			kn_buf_adds(b, " ");
		} else if (v->status == V_DONE && v->total) {
			add_size(b, v->total);
			kn_buf_adds(b, " ");
		}
	}
	(void)p;
	kn_buf_addf(b, "%.1fs", secs);
}

/*
 * Redraws the live area in one write: the cursor goes back to the area's first line, every line
 * is overwritten and cleared to its end, and anything left below is cleared, so nothing flickers.
 * Vertices that finished and would not fit under the terminal's height leave the live area for
 * good: they are drawn once more, then stay above it as log.
 */
static void tty_draw(struct cli_progress *p)
{
	struct kn_buf frame = KN_BUF_INIT, widths = KN_BUF_INIT, b = KN_BUF_INIT;
	unsigned long long t = cli_now_ns();
	size_t done = 0, live = 0, first = 0;
	int up = 0, budget;
	bool resized = false;

	if (winch_pending) {
		winch_pending = 0;
		tty_size(p);
		resized = true;
	}
	/* Lines already on screen take more rows when the terminal got narrower and re-wrapped. */
	for (int i = 0; i < p->drawn_lines; i++) {
		int w = p->drawn_widths[i];

		up += w > p->width ? (w + p->width - 1) / p->width : 1;
	}
	if (up)
		kn_buf_addf(&frame, "\033[%dA", up);
	/* after a resize the old frame may have re-wrapped: clear it all once */
	kn_buf_adds(&frame, resized ? "\r\033[J" : "\r");

	for (size_t i = 0; i < p->n; i++) {
		if (p->v[i].status != V_RUNNING)
			done++;
		if (!p->v[i].committed)
			live++;
	}
	/* What the live area needs: a header, each live vertex and the log lines of running ones. */
	budget = p->height - 2;
	for (size_t i = 0; i < p->n; i++) {
		struct vertex *v = &p->v[i];
		int need = 1;

		if (v->committed)
			continue;
		for (size_t k = i; k < p->n; k++)
			if (!p->v[k].committed)
				need += 1 + (p->v[k].status == V_RUNNING && p->v[k].log.len ? TTY_LOG_LINES : 0);
		if (need <= budget || v->status == V_RUNNING || p->finished)
			break;
		/* Commit: drawn now, never again. */
		kn_buf_reset(&b);
		vertex_status_text(p, v, t, &b);
		frame_line(p, &frame, &widths, v->status == V_CACHED ? "\033[34m" : "\033[34m", v->title,
			   b.buf);
		v->committed = true;
	}
	kn_buf_reset(&widths);
	kn_buf_reset(&b);
	kn_buf_addf(&b, "%.1fs (%zu/%zu)%s", (double)(t - p->start_ns) / 1e9, done, p->n,
		    p->finished ? " FINISHED" : "");
	{
		_cleanup_free_ char *head = xasprintf("[+] %s %s", p->action, b.buf);

		frame_line(p, &frame, &widths, p->finished ? "\033[34m" : "", head, NULL);
	}
	for (size_t i = first; i < p->n; i++) {
		struct vertex *v = &p->v[i];
		_cleanup_free_ char *left = NULL;
		const char *col = "";

		if (v->committed)
			continue;
		kn_buf_reset(&b);
		vertex_status_text(p, v, t, &b);
		if (v->status == V_CACHED)
			left = xasprintf(" => CACHED %s", v->title);
		else if (v->status == V_ERROR)
			left = xasprintf(" => ERROR %s", v->title);
		else
			left = xasprintf(" => %s", v->title);
		if (v->status == V_ERROR)
			col = "\033[31m";
		else if (v->status != V_RUNNING)
			col = "\033[34m";
		frame_line(p, &frame, &widths, col, left, b.buf);
		if (v->status == V_RUNNING && v->log.len && !p->finished) {
			const char *s;
			size_t nl = tail_lines(v->log.buf, v->log.len, TTY_LOG_LINES, &s);
			const char *e = v->log.buf + v->log.len;

			for (size_t k = 0; k < nl && s < e; k++) {
				const char *eol = memchr(s, '\n', (size_t)(e - s));
				size_t len = eol ? (size_t)(eol - s) : (size_t)(e - s);
				const char *cr = len ? memrchr(s, '\r', len) : NULL;
				struct kn_buf lb = KN_BUF_INIT;

				/* a line rewritten with \r shows its last state */
				if (cr && cr + 1 < s + len) {
					len -= (size_t)(cr + 1 - s);
					s = cr + 1;
				}
				kn_buf_adds(&lb, " => => # ");
				kn_buf_add(&lb, s, len);
				frame_line(p, &frame, &widths, "\033[2m", lb.buf, NULL);
				kn_buf_release(&lb);
				s += len + (eol ? 1 : 0);
			}
		}
	}
	(void)live;
	kn_buf_adds(&frame, "\033[J");
	fwrite(frame.buf, 1, frame.len, p->out);
	fflush(p->out);
	p->drawn_lines = (int)(widths.len / sizeof(int));
	KN_GROW(p->drawn_widths, p->drawn_alloc, (size_t)p->drawn_lines + 1);
	memcpy(p->drawn_widths, widths.buf, widths.len);
	kn_buf_release(&frame);
	kn_buf_release(&widths);
	kn_buf_release(&b);
}

/* Clears the live area so that a line can be printed above it; the next frame redraws it. */
static void tty_clear(struct cli_progress *p)
{
	int up = 0;

	for (int i = 0; i < p->drawn_lines; i++) {
		int w = p->drawn_widths[i];

		up += w > p->width ? (w + p->width - 1) / p->width : 1;
	}
	if (up)
		fprintf(p->out, "\033[%dA", up);
	fputs("\r\033[J", p->out);
	p->drawn_lines = 0;
}

static void *tty_thread(void *data)
{
	struct cli_progress *p = data;

	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct timespec ts;
		unsigned long long wake;

		tty_draw(p);
		clock_gettime(CLOCK_REALTIME, &ts);
		wake = (unsigned long long)ts.tv_nsec + TTY_REDRAW_NS;
		ts.tv_sec += (time_t)(wake / 1000000000ULL);
		ts.tv_nsec = (long)(wake % 1000000000ULL);
		pthread_cond_timedwait(&p->cond, &p->mu, &ts);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- the failure report --------------------------------------------------------------------- */

/*
 * BuildKit's shape: the step, its output between rules, then the Dockerfile line that ran it.
 * plain mode prints all the output kept; the other modes the last lines.
 */
static void report_failure(struct cli_progress *p, const struct vertex *v)
{
	const char *s;
	size_t nl = tail_lines(v->log.buf, v->log.len, p->mode == CLI_PROGRESS_PLAIN ? 0 : ERROR_LOG_LINES,
			       &s);
	const char *e = v->log.buf + v->log.len;

	fprintf(p->out, "------\n > %s:\n", v->title);
	if (p->mode == CLI_PROGRESS_PLAIN && v->log_dropped)
		fprintf(p->out, "[%zu bytes of earlier output not kept]\n", v->log_dropped);
	while (e > s && e[-1] == '\n')
		e--;
	if (nl)
		fprintf(p->out, "%.*s\n", (int)(e - s), s);
	fputs("------\n", p->out);
	if (v->file) {
		fprintf(p->out, "%s:%d\n--------------------\n", v->file, v->line);
		if (v->source) {
			const char *q = v->source;
			int ln = v->line;

			while (*q) {
				const char *eol = strchr(q, '\n');
				int len = eol ? (int)(eol - q) : (int)strlen(q);

				fprintf(p->out, " %4d | %s%.*s\n", ln, ln == v->line ? ">>> " : "    ", len, q);
				ln++;
				q += len + (eol ? 1 : 0);
			}
		}
		fputs("--------------------\n", p->out);
	}
	fflush(p->out);
}

/* ---- events --------------------------------------------------------------------------------- */

static void finish_vertex(struct vertex *v, enum vertex_status st,
			  unsigned long long dur)
{
	v->status = st;
	v->duration_ns = st == V_CACHED ? 0 : dur ? dur : cli_now_ns() - v->started_ns;
}

void cli_progress_build_event(const struct bld_event *ev, void *userdata)
{
	struct cli_progress *p = userdata;
	_cleanup_free_ char *id = NULL;
	struct vertex *v = NULL;
	size_t idx;

	if (ev->kind == BLD_EV_WARNING || ev->kind == BLD_EV_INFO) {
		cli_progress_message(p, ev->kind == BLD_EV_WARNING, ev->text);
		return;
	}
	id = step_id(ev);
	pthread_mutex_lock(&p->mu);
	if (ev->kind == BLD_EV_STEP_START) {
		v = vertex_add(p, id, step_title(ev));
		if (ev->file) {
			v->file = xstrdup(ev->file);
			v->line = ev->line;
		}
		v->source = ev->source ? xstrdup(ev->source) : NULL;
	} else {
		v = vertex_find(p, id);
		if (!v)
			v = vertex_add(p, id, step_title(ev));
	}
	idx = (size_t)(v - p->v);
	switch (ev->kind) {
	case BLD_EV_STEP_START:
		break;
	case BLD_EV_STEP_OUTPUT:
		vertex_log(v, ev->data, ev->len);
		break;
	case BLD_EV_STEP_CACHED:
		finish_vertex(v, V_CACHED, 0);
		break;
	case BLD_EV_STEP_DONE:
		finish_vertex(v, V_DONE, ev->duration_ns);
		break;
	case BLD_EV_STEP_ERROR:
		finish_vertex(v, V_ERROR, ev->duration_ns);
		break;
	case BLD_EV_WARNING:
	case BLD_EV_INFO:
		break;
	}
	switch (p->mode) {
	case CLI_PROGRESS_PLAIN:
		if (ev->kind == BLD_EV_STEP_START) {
			plain_flush_partial(p);
			fprintf(p->out, "%s\n", v->title);
			p->last_shown = (long)idx;
		} else if (ev->kind != BLD_EV_STEP_ERROR) {
			plain_header(p, idx);
		}
		if (ev->kind == BLD_EV_STEP_OUTPUT)
			plain_output(p, ev->data, ev->len);
		else if (ev->kind == BLD_EV_STEP_CACHED)
			plain_flush_partial(p), fputs("    CACHED\n", p->out);
		else if (ev->kind == BLD_EV_STEP_DONE)
			plain_flush_partial(p),
				fprintf(p->out, "    DONE %.3fs\n", (double)ev->duration_ns / 1e9);
		else if (ev->kind == BLD_EV_STEP_ERROR)
			plain_flush_partial(p), report_failure(p, v);
		fflush(p->out);
		break;
	case CLI_PROGRESS_TTY:
		if (ev->kind == BLD_EV_STEP_ERROR) {
			tty_draw(p);
			p->drawn_lines = 0; /* the failed view stays; the report goes below it */
			report_failure(p, v);
		} else if (ev->kind != BLD_EV_STEP_OUTPUT) {
			pthread_cond_signal(&p->cond);
		}
		break;
	case CLI_PROGRESS_QUIET:
		if (ev->kind == BLD_EV_STEP_ERROR)
			report_failure(p, v);
		break;
	case CLI_PROGRESS_RAWJSON:
		if (ev->kind == BLD_EV_STEP_OUTPUT) {
			json_t *o = json_pack("{s:s, s:s}", "type", "log", "id", v->id);

			if (o) {
				json_object_set_new(o, "data", json_bytes(ev->data, ev->len));
				json_emit(p, o);
			}
		} else {
			static const char *const names[] = {
				[V_RUNNING] = "started",
				[V_DONE] = "completed",
				[V_CACHED] = "cached",
				[V_ERROR] = "error",
			};

			json_vertex(p, v, names[v->status], ev->error);
		}
		break;
	case CLI_PROGRESS_AUTO:
		break;
	}
	pthread_mutex_unlock(&p->mu);
}

/* What a transfer is called in each state: docker pull's and docker push's words. */
struct transfer_words {
	const char *running, *done, *exists;
};

static void transfer_event(struct cli_progress *p, const struct reg_transfer_event *ev,
			   const struct transfer_words *w)
{
	struct vertex *v;
	const char *word = NULL;

	if (ev->kind == REG_XFER_RETRY) {
		_cleanup_free_ char *msg = xasprintf("%s: retrying: %s",
						     ev->digest ? cli_short_digest(ev->digest) : "registry",
						     ev->text ? ev->text : "transient failure");

		if (p->mode == CLI_PROGRESS_TTY || p->mode == CLI_PROGRESS_RAWJSON)
			cli_progress_message(p, true, msg);
		else
			cli_warn("%s", msg);
		return;
	}
	/* The config blob is an implementation detail: docker does not show it either. */
	if (ev->kind == REG_XFER_RESOLVED || ev->is_config || !ev->digest)
		return;
	pthread_mutex_lock(&p->mu);
	v = vertex_find(p, ev->digest);
	if (!v) {
		v = vertex_add(p, ev->digest, xasprintf("%s %s", cli_short_digest(ev->digest), w->running));
		v->transfer = true;
		if (p->mode == CLI_PROGRESS_RAWJSON)
			json_vertex(p, v, "started", NULL);
	}
	if (ev->size)
		v->total = ev->size;
	switch (ev->kind) {
	case REG_XFER_BLOB_START:
		break;
	case REG_XFER_BLOB_PROGRESS:
		v->current = ev->current;
		if (p->mode == CLI_PROGRESS_RAWJSON) {
			json_t *o = json_pack("{s:s, s:s, s:I, s:I}", "type", "progress", "id", v->id,
					      "current", (json_int_t)v->current, "total",
					      (json_int_t)v->total);

			if (o)
				json_emit(p, o);
		}
		break;
	case REG_XFER_BLOB_EXISTS:
	case REG_XFER_BLOB_MOUNTED:
		finish_vertex(v, V_CACHED, 0);
		free(v->title);
		if (ev->kind == REG_XFER_BLOB_MOUNTED)
			v->title = xasprintf("%s Mounted from %s", cli_short_digest(ev->digest),
					     ev->text ? ev->text : "");
		else
			v->title = xasprintf("%s %s", cli_short_digest(ev->digest), w->exists);
		word = v->title + strlen(cli_short_digest(ev->digest)) + 1;
		if (p->mode == CLI_PROGRESS_RAWJSON)
			json_vertex(p, v, "cached", NULL);
		break;
	case REG_XFER_BLOB_DONE:
		v->current = v->total;
		finish_vertex(v, V_DONE, 0);
		free(v->title);
		v->title = xasprintf("%s %s", cli_short_digest(ev->digest), w->done);
		word = w->done;
		if (p->mode == CLI_PROGRESS_RAWJSON)
			json_vertex(p, v, "completed", NULL);
		break;
	case REG_XFER_RESOLVED:
	case REG_XFER_RETRY:
		break;
	}
	if (p->mode == CLI_PROGRESS_PLAIN && word) {
		fprintf(p->out, "%s: %s\n", cli_short_digest(ev->digest), word);
		fflush(p->out);
	}
	if (p->mode == CLI_PROGRESS_TTY && ev->kind != REG_XFER_BLOB_PROGRESS)
		pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

void cli_progress_pull_event(const struct reg_transfer_event *ev, void *userdata)
{
	static const struct transfer_words w = { "Downloading", "Pull complete", "Already exists" };

	transfer_event(userdata, ev, &w);
}

void cli_progress_push_event(const struct reg_transfer_event *ev, void *userdata)
{
	static const struct transfer_words w = { "Pushing", "Pushed", "Layer already exists" };
	struct cli_progress *p = userdata;

	if (ev->kind == REG_XFER_RESOLVED && p->mode != CLI_PROGRESS_QUIET) {
		_cleanup_free_ char *msg = xasprintf("The push refers to repository [%s]", ev->text);

		cli_progress_message(p, false, msg);
		return;
	}
	transfer_event(p, ev, &w);
}

void cli_progress_message(struct cli_progress *p, bool warning, const char *text)
{
	pthread_mutex_lock(&p->mu);
	switch (p->mode) {
	case CLI_PROGRESS_PLAIN:
		plain_flush_partial(p);
		p->last_shown = -1;
		fprintf(p->out, "%s%s\n", warning ? "WARNING: " : "", text);
		fflush(p->out);
		break;
	case CLI_PROGRESS_TTY:
		/* Printed above the live view: it scrolls away with the log. */
		tty_clear(p);
		fprintf(p->out, "%s%s%s%s\n", warning ? color(p, "\033[33m") : "", warning ? "WARNING: " : "",
			text, warning ? color(p, "\033[0m") : "");
		tty_draw(p);
		break;
	case CLI_PROGRESS_RAWJSON: {
		json_t *o = json_pack("{s:s, s:s}", "type", warning ? "warning" : "info", "message", text);

		if (o)
			json_emit(p, o);
		break;
	}
	case CLI_PROGRESS_QUIET:
		if (warning)
			cli_warn("%s", text);
		break;
	case CLI_PROGRESS_AUTO:
		break;
	}
	pthread_mutex_unlock(&p->mu);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int cli_progress_mode_parse(const char *s, enum cli_progress_mode *ret_mode)
{
	static const char *const names[] = {
		[CLI_PROGRESS_AUTO] = "auto",
		[CLI_PROGRESS_PLAIN] = "plain",
		[CLI_PROGRESS_TTY] = "tty",
		[CLI_PROGRESS_QUIET] = "quiet",
		[CLI_PROGRESS_RAWJSON] = "rawjson",
	};

	for (size_t i = 0; i < KN_ARRAY_SIZE(names); i++) {
		if (!strcmp(s, names[i])) {
			*ret_mode = (enum cli_progress_mode)i;
			return 0;
		}
	}
	return -1;
}

struct cli_progress *cli_progress_new(enum cli_progress_mode mode, FILE *out, const char *action)
{
	struct cli_progress *p = xcalloc(1, sizeof(*p));
	const char *term = getenv("TERM");
	const char *no_color = getenv("NO_COLOR");

	/* A dumb terminal cannot move the cursor: auto falls back to plain there. */
	if (mode == CLI_PROGRESS_AUTO)
		mode = isatty(fileno(out)) && !(term && !strcmp(term, "dumb")) ? CLI_PROGRESS_TTY
									: CLI_PROGRESS_PLAIN;
	p->mode = mode;
	p->out = out;
	p->action = action;
	p->start_ns = cli_now_ns();
	p->last_shown = -1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	kn_buf_init(&p->partial);
	if (p->mode == CLI_PROGRESS_TTY) {
		struct sigaction sa = { .sa_handler = on_winch, .sa_flags = SA_RESTART };

		p->color = !(no_color && *no_color) && !(term && !strcmp(term, "dumb"));
		p->width = 80;
		p->height = 24;
		tty_size(p);
		sigemptyset(&sa.sa_mask);
		sigaction(SIGWINCH, &sa, &p->old_winch);
		p->thread_running = !pthread_create(&p->thread, NULL, tty_thread, p);
	}
	return p;
}

enum cli_progress_mode cli_progress_mode(const struct cli_progress *p)
{
	return p->mode;
}

double cli_progress_elapsed(const struct cli_progress *p)
{
	return (double)(cli_now_ns() - p->start_ns) / 1e9;
}

static void stop_thread(struct cli_progress *p)
{
	if (!p->thread_running)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	p->thread_running = false;
	sigaction(SIGWINCH, &p->old_winch, NULL);
}

void cli_progress_finish(struct cli_progress *p, bool ok)
{
	bool failed_reported = false;

	stop_thread(p);
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].status == V_ERROR)
			failed_reported = true;
	if (p->mode == CLI_PROGRESS_PLAIN)
		plain_flush_partial(p);
	if (p->mode == CLI_PROGRESS_TTY && !failed_reported) {
		/* The final screen: every vertex still in the live area, with its final time. */
		p->finished = true;
		tty_draw(p);
		p->drawn_lines = 0;
	}
	if (p->mode == CLI_PROGRESS_RAWJSON) {
		json_t *o = json_pack("{s:s, s:b}", "type", "end", "ok", ok);

		if (o)
			json_emit(p, o);
	}
	fflush(p->out);
	pthread_mutex_unlock(&p->mu);
}

void cli_progress_free(struct cli_progress *p)
{
	if (!p)
		return;
	stop_thread(p);
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].id);
		free(p->v[i].title);
		free(p->v[i].file);
		free(p->v[i].source);
		kn_buf_release(&p->v[i].log);
	}
	free(p->v);
	free(p->drawn_widths);
	kn_buf_release(&p->partial);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	free(p);
}
