/*
 * `qkc bench --plot FILE.svg`: a roofline picture of the measured cases,
 * written as SVG by hand. Axes are log-log: arithmetic intensity (FLOP per
 * byte of weights) against GFLOP/s. For each thread count measured, the
 * memory roof (measured read bandwidth × intensity) meets the compute roofs
 * (measured peak f32 FMA rate, and the int8 dot-product rate for int8
 * kernels); every case is a filled circle (#d62728) labelled with its M and
 * threads.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tools/tool.h"

#define W 800.0
#define H 560.0
#define LEFT 80.0
#define RIGHT 30.0
#define TOP 50.0
#define BOTTOM 60.0

typedef struct axes {
    double x0, x1, y0, y1; /* log10 ranges */
} axes;

static double px(const axes *a, double x)
{
    return LEFT + (log10(x) - a->x0) / (a->x1 - a->x0) * (W - LEFT - RIGHT);
}

static double py(const axes *a, double y)
{
    return H - BOTTOM - (log10(y) - a->y0) / (a->y1 - a->y0) * (H - TOP - BOTTOM);
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A roof: the memory line up to the ridge, then flat at `peak`. */
static void roof(FILE *f, const axes *a, double gbps, double peak, const char *color, const char *dash,
                 const char *label, int row)
{
    double xl = pow(10, a->x0), xr = pow(10, a->x1), ridge = peak / gbps;
    double xs = xl, ys = gbps * xl;
    if (ys < pow(10, a->y0)) { /* start where the line enters the plot */
        ys = pow(10, a->y0);
        xs = ys / gbps;
    }
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s%s%s points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\"/>\n",
            color, dash ? " stroke-dasharray=\"" : "", dash ? dash : "", dash ? "\"" : "", px(a, xs), py(a, ys),
            px(a, ridge), py(a, peak), px(a, xr), py(a, peak));
    /* labels of nearby roofs stack upwards, one row per thread count */
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"%s\" text-anchor=\"end\">", px(a, xr) - 4,
            py(a, peak) - 6 - 14 * row, color);
    xml_text(f, label);
    fputs("</text>\n", f);
}

int qkc_plot_roofline(const char *path, const char *title, const qkc_plot_point *pts, int npts,
                      const qkc_plot_limits *lim, int nlim)
{
    FILE *f;
    axes a;
    double xmin = INFINITY, xmax = 0, ymin = INFINITY, ymax = 0;
    static const char *const roof_colors[] = {"#1f77b4", "#2ca02c", "#9467bd", "#8c564b"};
    if (npts < 1 || nlim < 1)
        return -1;
    for (int i = 0; i < npts; i++) {
        if (!(pts[i].intensity > 0) || !(pts[i].gflops > 0))
            continue;
        xmin = fmin(xmin, pts[i].intensity);
        xmax = fmax(xmax, pts[i].intensity);
        ymin = fmin(ymin, pts[i].gflops);
        ymax = fmax(ymax, pts[i].gflops);
    }
    if (!(xmax > 0))
        return -1;
    for (int l = 0; l < nlim; l++) {
        double peak = fmax(lim[l].peak_gflops, lim[l].int8 ? lim[l].peak_gops : 0);
        ymax = fmax(ymax, peak);
        xmax = fmax(xmax, peak / lim[l].mem_gbps); /* the ridge */
        ymin = fmin(ymin, lim[l].mem_gbps * xmin);
    }
    a.x0 = floor(log10(xmin) - 0.3);
    a.x1 = ceil(log10(xmax) + 0.3);
    a.y0 = floor(log10(ymin) - 0.3);
    a.y1 = ceil(log10(ymax) + 0.2);
    if (!(f = fopen(path, "w")))
        return -1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\">\n",
            W, H, W, H);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
    fprintf(f, "<text x=\"%.0f\" y=\"28\" font-size=\"15\" text-anchor=\"middle\">", W / 2);
    xml_text(f, title);
    fputs("</text>\n", f);
    /* grid and decade labels */
    for (double e = a.x0; e <= a.x1 + 1e-9; e += 1) {
        double x = px(&a, pow(10, e));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", x, TOP, x,
                H - BOTTOM);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">%g</text>\n", x,
                H - BOTTOM + 18, pow(10, e));
    }
    for (double e = a.y0; e <= a.y1 + 1e-9; e += 1) {
        double y = py(&a, pow(10, e));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", LEFT, y,
                W - RIGHT, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">%g</text>\n", LEFT - 6, y + 4,
                pow(10, e));
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#000000\"/>\n", LEFT,
            TOP, W - LEFT - RIGHT, H - TOP - BOTTOM);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\">arithmetic intensity "
               "(FLOP per byte of weights)</text>\n",
            LEFT + (W - LEFT - RIGHT) / 2, H - 16);
    fprintf(f, "<text x=\"18\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.1f)\">"
               "GFLOP/s</text>\n",
            TOP + (H - TOP - BOTTOM) / 2, TOP + (H - TOP - BOTTOM) / 2);
    /* roofs, one colour per thread count */
    for (int l = 0; l < nlim; l++) {
        char label[96];
        const char *c = roof_colors[l % 4];
        snprintf(label, sizeof label, "%d thread%s: %.1f GB/s, f32 FMA %.0f GFLOP/s", lim[l].threads,
                 lim[l].threads == 1 ? "" : "s", lim[l].mem_gbps, lim[l].peak_gflops);
        roof(f, &a, lim[l].mem_gbps, lim[l].peak_gflops, c, NULL, label, l);
        if (lim[l].int8) {
            snprintf(label, sizeof label, "%d thread%s: int8 dot %.0f GOP/s", lim[l].threads,
                     lim[l].threads == 1 ? "" : "s", lim[l].peak_gops);
            roof(f, &a, lim[l].mem_gbps, lim[l].peak_gops, c, "6,4", label, l);
        }
    }
    /* measured cases */
    for (int i = 0; i < npts; i++) {
        double x, y;
        if (!(pts[i].intensity > 0) || !(pts[i].gflops > 0))
            continue;
        x = px(&a, pts[i].intensity);
        y = py(&a, pts[i].gflops);
        fprintf(f, "<circle class=\"measured\" cx=\"%.1f\" cy=\"%.1f\" r=\"7\" fill=\"#d62728\"/>\n", x, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">M=%lld t=%d: %.1f GFLOP/s</text>\n", x + 10, y + 4,
                (long long)pts[i].m, pts[i].threads, pts[i].gflops);
    }
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}
