/* Progress display shared by the commands that build or move images (printing only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"

struct cli_progress_step {
	char *title;
	char *status; /* NULL while running, else "CACHED" / "0.12s" */
	unsigned long long started_ns;
};

struct cli_progress {
	enum cli_progress_mode mode;
	FILE *out;
	unsigned long long start_ns;
	/* plain: a partial output line waiting for its newline, and the step last shown */
	struct kn_buf partial;
	int last_stage, last_step;
	/* tty */
	struct cli_progress_step *steps;
	size_t n_steps, alloc_steps;
	struct kn_buf tail; /* last output bytes of the running step */
	int drawn_lines;
	unsigned long long last_draw_ns;
	int width;
};

unsigned long long cli_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
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

static void tty_draw(struct cli_progress *p, bool force)
{
	unsigned long long t = cli_now_ns();
	size_t first = 0;
	int lines = 0;

	if (!force && t - p->last_draw_ns < 50000000ULL)
		return;
	p->last_draw_ns = t;
	if (p->drawn_lines)
		fprintf(p->out, "\033[%dA", p->drawn_lines);
	fputs("\r\033[J", p->out);
	fprintf(p->out, "[+] Building %.1fs\n", (double)(t - p->start_ns) / 1e9);
	lines++;
	/* Compact: only the last 12 steps are shown. */
	if (p->n_steps > 12)
		first = p->n_steps - 12;
	for (size_t i = first; i < p->n_steps; i++) {
		struct cli_progress_step *s = &p->steps[i];
		_cleanup_free_ char *st = NULL;

		if (s->status)
			st = xstrdup(s->status);
		else
			st = xasprintf("%.1fs", (double)(t - s->started_ns) / 1e9);
		fprintf(p->out, " => %-.*s %s\n", p->width > 20 ? p->width - 14 : 60, s->title, st);
		lines++;
	}
	if (p->n_steps && !p->steps[p->n_steps - 1].status && p->tail.len) {
		/* The last 4 lines of the running step's output, dimmed. */
		const char *e = p->tail.buf + p->tail.len;
		const char *s = e;
		int nl = 0;

		while (s > p->tail.buf && nl < 5) {
			s--;
			if (*s == '\n' && ++nl == 5) {
				s++;
				break;
			}
		}
		for (const char *q = s; q < e;) {
			const char *eol = memchr(q, '\n', (size_t)(e - q));
			size_t n = eol ? (size_t)(eol - q) : (size_t)(e - q);

			if (n) {
				fprintf(p->out, "\033[2m => > %.*s\033[0m\n",
					(int)(n > (size_t)(p->width > 20 ? p->width - 8 : 70) ? (size_t)(p->width > 20 ? p->width - 8 : 70) : n), q);
				lines++;
			}
			q += n + (eol ? 1 : 0);
		}
	}
	p->drawn_lines = lines;
	fflush(p->out);
}

void cli_progress_build_event(const struct bld_event *ev, void *userdata)
{
	struct cli_progress *p = userdata;
	_cleanup_free_ char *title = NULL;

	if (p->mode == CLI_PROGRESS_QUIET)
		return;
	if (p->mode == CLI_PROGRESS_PLAIN) {
		/* Concurrent stages interleave: an event of another step than the one shown last
		 * repeats that step's header first. */
		if (ev->kind != BLD_EV_STEP_START && ev->kind != BLD_EV_WARNING && ev->kind != BLD_EV_INFO &&
		    (ev->stage_index != p->last_stage || ev->step_index != p->last_step)) {
			plain_flush_partial(p);
			fprintf(p->out, "[stage %d/%d%s%s] [%d/%d]\n", ev->stage_index, ev->stage_count,
				ev->stage_name ? " " : "", ev->stage_name ? ev->stage_name : "", ev->step_index,
				ev->step_count);
			p->last_stage = ev->stage_index;
			p->last_step = ev->step_index;
		}
		switch (ev->kind) {
		case BLD_EV_STEP_START:
			plain_flush_partial(p);
			title = step_title(ev);
			fprintf(p->out, "%s\n", title);
			p->last_stage = ev->stage_index;
			p->last_step = ev->step_index;
			break;
		case BLD_EV_STEP_OUTPUT:
			plain_output(p, ev->data, ev->len);
			break;
		case BLD_EV_STEP_CACHED:
			plain_flush_partial(p);
			fprintf(p->out, "    CACHED\n");
			break;
		case BLD_EV_STEP_DONE:
			plain_flush_partial(p);
			fprintf(p->out, "    DONE %.3fs\n", (double)ev->duration_ns / 1e9);
			break;
		case BLD_EV_WARNING:
			plain_flush_partial(p);
			fprintf(p->out, "WARNING: %s\n", ev->text);
			break;
		case BLD_EV_INFO:
			plain_flush_partial(p);
			fprintf(p->out, "%s\n", ev->text);
			break;
		}
		fflush(p->out);
		return;
	}
	/* tty */
	switch (ev->kind) {
	case BLD_EV_STEP_START:
		KN_GROW(p->steps, p->alloc_steps, p->n_steps + 1);
		p->steps[p->n_steps].title = step_title(ev);
		p->steps[p->n_steps].status = NULL;
		p->steps[p->n_steps].started_ns = cli_now_ns();
		p->n_steps++;
		kn_buf_reset(&p->tail);
		tty_draw(p, true);
		break;
	case BLD_EV_STEP_OUTPUT:
		kn_buf_add(&p->tail, ev->data, ev->len);
		if (p->tail.len > 8192) {
			memmove(p->tail.buf, p->tail.buf + p->tail.len - 4096, 4096);
			kn_buf_setlen(&p->tail, 4096);
		}
		tty_draw(p, false);
		break;
	case BLD_EV_STEP_CACHED:
	case BLD_EV_STEP_DONE:
		if (p->n_steps) {
			struct cli_progress_step *s = &p->steps[p->n_steps - 1];

			free(s->status);
			s->status = ev->kind == BLD_EV_STEP_CACHED
					    ? xstrdup("CACHED")
					    : xasprintf("%.2fs", (double)ev->duration_ns / 1e9);
		}
		kn_buf_reset(&p->tail);
		tty_draw(p, true);
		break;
	case BLD_EV_WARNING:
	case BLD_EV_INFO:
		/* Printed above the live view: it scrolls away with the log. */
		if (p->drawn_lines)
			fprintf(p->out, "\033[%dA\r\033[J", p->drawn_lines);
		p->drawn_lines = 0;
		fprintf(p->out, "%s%s\n", ev->kind == BLD_EV_WARNING ? "WARNING: " : "", ev->text);
		tty_draw(p, true);
		break;
	}
}

int cli_progress_mode_parse(const char *s, enum cli_progress_mode *ret_mode)
{
	static const char *const names[] = {
		[CLI_PROGRESS_AUTO] = "auto",
		[CLI_PROGRESS_PLAIN] = "plain",
		[CLI_PROGRESS_TTY] = "tty",
		[CLI_PROGRESS_QUIET] = "quiet",
	};

	for (size_t i = 0; i < KN_ARRAY_SIZE(names); i++) {
		if (!strcmp(s, names[i])) {
			*ret_mode = (enum cli_progress_mode)i;
			return 0;
		}
	}
	return -1;
}

struct cli_progress *cli_progress_new(enum cli_progress_mode mode, FILE *out)
{
	struct cli_progress *p = xcalloc(1, sizeof(*p));

	if (mode == CLI_PROGRESS_AUTO)
		mode = isatty(fileno(out)) ? CLI_PROGRESS_TTY : CLI_PROGRESS_PLAIN;
	p->mode = mode;
	p->out = out;
	p->start_ns = cli_now_ns();
	p->width = 100;
	kn_buf_init(&p->partial);
	kn_buf_init(&p->tail);
	if (p->mode == CLI_PROGRESS_TTY) {
		struct winsize ws;

		if (!ioctl(fileno(out), TIOCGWINSZ, &ws) && ws.ws_col > 20)
			p->width = ws.ws_col;
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

void cli_progress_finish(struct cli_progress *p, bool ok)
{
	if (p->mode == CLI_PROGRESS_PLAIN && !ok)
		plain_flush_partial(p);
	if (p->mode == CLI_PROGRESS_TTY && ok)
		tty_draw(p, true);
}

void cli_progress_free(struct cli_progress *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_steps; i++) {
		free(p->steps[i].title);
		free(p->steps[i].status);
	}
	free(p->steps);
	kn_buf_release(&p->tail);
	kn_buf_release(&p->partial);
	free(p);
}
