/*
 * The bench's picture, as one self-contained SVG file: on the left,
 * throughput against client threads, a line per module; on the right, the
 * latency distribution of every round (the fraction of calls answered
 * within a time, the time on a log scale), coloured by module and dashed
 * by thread count.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>

#define PANEL_W 460.0
#define PANEL_H 300.0
#define LEFT 90.0 /* room for the y labels */
#define TOP 50.0  /* room for the title */
#define GAP 110.0 /* between the panels */
#define BOTTOM 70 /* room for the x labels, above the legend */

static const char *colours[RH_BENCH_MAX_MODULES] = {"#1b6ca8", "#d1495b",
						    "#3c9d5d", "#8e6c8a"};
static const char *dashes[] = {"", "8 4", "3 3", "12 4 3 4"};

double rh_bench_quantile(unsigned i)
{
	if (i < 99)
		return (i + 1) / 100.0;
	return i == 99 ? 0.995 : 0.999;
}

typedef struct panel {
	double x0, y0; /* top left corner */
	double xmin, xmax, ymax;
	int xlog;
} panel_t;

static double px(const panel_t *p, double x)
{
	double f = p->xlog ? (log10(x) - log10(p->xmin)) /
				     (log10(p->xmax) - log10(p->xmin))
			   : (x - p->xmin) / (p->xmax - p->xmin);
	return p->x0 + f * PANEL_W;
}

static double py(const panel_t *p, double y)
{
	return p->y0 + PANEL_H - y / p->ymax * PANEL_H;
}

static void axes(FILE *f, const panel_t *p, const char *xlabel,
		 const char *ylabel)
{
	fprintf(f,
		"<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
		"fill=\"none\" stroke=\"#444\"/>\n",
		p->x0, p->y0, PANEL_W, PANEL_H);
	for (int i = 0; i <= 4; i++) {
		double v = p->ymax * i / 4, y = py(p, v);
		fprintf(f,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			"stroke=\"#ddd\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
			"text-anchor=\"end\">%.0f</text>\n",
			p->x0, y, p->x0 + PANEL_W, y, p->x0 - 6, y + 4, v);
	}
	fprintf(f,
		"<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n"
		"<text transform=\"translate(%.1f %.1f) rotate(-90)\" "
		"text-anchor=\"middle\">%s</text>\n",
		p->x0 + PANEL_W / 2, p->y0 + PANEL_H + 38, xlabel, p->x0 - 64,
		p->y0 + PANEL_H / 2, ylabel);
}

static void x_tick(FILE *f, const panel_t *p, double v)
{
	double x = px(p, v);
	fprintf(f,
		"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
		"stroke=\"#444\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
		"text-anchor=\"middle\">%.0f</text>\n",
		x, p->y0 + PANEL_H, x, p->y0 + PANEL_H + 5, x,
		p->y0 + PANEL_H + 20, v);
}

/* A round top for a linear axis of four steps: 1, 2 or 5 times a power
 * of ten per step. */
static double nice_top(double max)
{
	double raw = max / 4, unit = pow(10, floor(log10(raw)));
	double step = raw <= unit	? unit
		      : raw <= 2 * unit ? 2 * unit
		      : raw <= 5 * unit ? 5 * unit
					: 10 * unit;
	return 4 * step;
}

static void throughput_panel(FILE *f, const rh_bench_run_t *r)
{
	panel_t p = {.x0 = LEFT, .y0 = TOP, .xmin = r->rounds[0][0].threads};
	p.xmax = r->rounds[0][r->nrounds - 1].threads;
	for (unsigned m = 0; m < r->nmodules; m++)
		for (unsigned i = 0; i < r->nrounds; i++)
			p.ymax = fmax(p.ymax, r->rounds[m][i].ops);
	p.ymax = p.ymax > 0 ? nice_top(p.ymax) : 4;
	/* Thread counts grow by factors: spaced by their logarithm. */
	p.xlog = p.xmax > p.xmin;
	if (!p.xlog)
		p.xmax = p.xmin + 1;
	axes(f, &p, "client threads", "calls per second");
	for (unsigned i = 0; i < r->nrounds; i++)
		x_tick(f, &p, r->rounds[0][i].threads);
	for (unsigned m = 0; m < r->nmodules; m++) {
		fprintf(f,
			"<polyline class=\"throughput\" fill=\"none\" "
			"stroke=\"%s\" stroke-width=\"2\" points=\"",
			colours[m]);
		for (unsigned i = 0; i < r->nrounds; i++)
			fprintf(f, "%.1f,%.1f ",
				px(&p, r->rounds[m][i].threads),
				py(&p, r->rounds[m][i].ops));
		fprintf(f, "\"/>\n");
		for (unsigned i = 0; i < r->nrounds; i++)
			fprintf(f,
				"<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
				"fill=\"%s\"/>\n",
				px(&p, r->rounds[m][i].threads),
				py(&p, r->rounds[m][i].ops), colours[m]);
	}
}

/* The latency axis: whole decades around every round's distribution. */
static void latency_range(const rh_bench_run_t *r, double *lo, double *hi)
{
	*lo = INFINITY;
	*hi = 0;
	for (unsigned m = 0; m < r->nmodules; m++)
		for (unsigned i = 0; i < r->nrounds; i++) {
			const double *q = r->rounds[m][i].q_us;
			*lo = fmin(*lo, q[0] > 0 ? q[0] : 1);
			*hi = fmax(*hi, q[RH_BENCH_QUANTILES - 1]);
		}
	*lo = pow(10, floor(log10(*lo)));
	*hi = pow(10, ceil(log10(fmax(*hi, *lo * 10))));
}

static void latency_panel(FILE *f, const rh_bench_run_t *r)
{
	panel_t p = {
		.x0 = LEFT + PANEL_W + GAP, .y0 = TOP, .ymax = 100, .xlog = 1};
	latency_range(r, &p.xmin, &p.xmax);
	axes(f, &p, "latency (microseconds, log scale)",
	     "% of calls answered within");
	for (double v = p.xmin; v <= p.xmax * 1.001; v *= 10)
		x_tick(f, &p, v);
	for (unsigned m = 0; m < r->nmodules; m++)
		for (unsigned i = 0; i < r->nrounds; i++) {
			const double *q = r->rounds[m][i].q_us;
			fprintf(f,
				"<polyline class=\"latency\" fill=\"none\" "
				"stroke=\"%s\" stroke-width=\"1.5\" "
				"stroke-dasharray=\"%s\" points=\"",
				colours[m], dashes[i % 4]);
			for (unsigned k = 0; k < RH_BENCH_QUANTILES; k++)
				fprintf(f, "%.1f,%.1f ",
					px(&p, fmax(q[k], p.xmin)),
					py(&p, rh_bench_quantile(k) * 100));
			fprintf(f, "\"/>\n");
		}
}

static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++)
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '"')
			fputs("&quot;", f);
		else
			fputc(*s, f);
}

static void legend(FILE *f, const rh_bench_run_t *r)
{
	double y = TOP + PANEL_H + BOTTOM;
	for (unsigned m = 0; m < r->nmodules; m++, y += 18) {
		fprintf(f,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			"stroke=\"%s\" stroke-width=\"3\"/>\n<text x=\"%.1f\" "
			"y=\"%.1f\">%u: ",
			LEFT, y, LEFT + 30, y, colours[m], LEFT + 38, y + 4,
			m + 1);
		xml_text(f, r->modules[m]);
		fprintf(f, "</text>\n");
	}
	double x = LEFT + PANEL_W + GAP;
	y = TOP + PANEL_H + BOTTOM;
	for (unsigned i = 0; i < r->nrounds && i < 4; i++, y += 18)
		fprintf(f,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
			"stroke=\"#444\" stroke-width=\"1.5\" "
			"stroke-dasharray=\"%s\"/>\n<text x=\"%.1f\" "
			"y=\"%.1f\">%u thread%s</text>\n",
			x, y, x + 30, y, dashes[i], x + 38, y + 4,
			r->rounds[0][i].threads,
			r->rounds[0][i].threads == 1 ? "" : "s");
}

int rh_bench_plot_svg(const char *path, const rh_bench_run_t *run)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	double width = LEFT + 2 * PANEL_W + GAP + 30;
	double height = TOP + PANEL_H + BOTTOM + 18.0 * RH_BENCH_MAX_MODULES;
	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
		"height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
		"<text x=\"%.1f\" y=\"28\" font-size=\"16\">remhsm bench: ",
		width, height, LEFT);
	xml_text(f, run->what);
	fprintf(f, "</text>\n");
	throughput_panel(f, run);
	latency_panel(f, run);
	legend(f, run);
	fprintf(f, "</svg>\n");
	int failed = ferror(f);
	return fclose(f) == 0 && !failed ? 0 : -1;
}
