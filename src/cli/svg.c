/* learning_curve.svg: a self-contained SVG line chart of mean return against env steps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_support.h"
#include "core/log.h"

#define MOD "cli"

#define SVG_W 800
#define SVG_H 480
#define M_LEFT 84
#define M_RIGHT 30
#define M_TOP 52
#define M_BOTTOM 64
#define MAX_TICKS 8

size_t rly_nice_ticks(double lo, double hi, size_t max_ticks, double *ticks)
{
    if (!ticks || max_ticks < 2 || !isfinite(lo) || !isfinite(hi))
        return 0;
    if (hi < lo) {
        double t = lo;
        lo = hi;
        hi = t;
    }
    if (hi - lo < 1e-12 * (fabs(lo) + fabs(hi)) || hi == lo) {
        double pad = lo == 0 ? 1.0 : fabs(lo) * 0.1;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / (double)(max_ticks - 1);
    double mag = pow(10.0, floor(log10(raw)));
    static const double mult[] = {1, 2, 2.5, 5, 10, 20};
    for (size_t k = 0; k < sizeof mult / sizeof mult[0]; k++) {
        double step = mult[k] * mag;
        double first = floor(lo / step + 1e-9) * step, last = ceil(hi / step - 1e-9) * step;
        size_t n = (size_t)llround((last - first) / step) + 1;
        if (n <= max_ticks) {
            for (size_t i = 0; i < n; i++) {
                double v = first + (double)i * step;
                ticks[i] = fabs(v) < step * 1e-9 ? 0.0 : v;
            }
            return n;
        }
    }
    return 0;
}

/* fmt_steps writes a compact step count (12k, 1.5M). */
static void fmt_steps(char *buf, size_t cap, double v)
{
    double a = fabs(v);
    if (a >= 1e6)
        snprintf(buf, cap, "%gM", v / 1e6);
    else if (a >= 1e3)
        snprintf(buf, cap, "%gk", v / 1e3);
    else
        snprintf(buf, cap, "%g", v);
}

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            /* control characters are not allowed in XML 1.0 */
            fputc((unsigned char)*s < 0x20 && *s != '\t' ? ' ' : *s, f);
        }
    }
}

relay_err rly_svg_learning_curve(const char *path, const char *title, const double *steps,
                                 const double *returns, size_t n)
{
    return rly_svg_learning_curve_ex(path, title, steps, returns, n, NULL);
}

relay_err rly_svg_learning_curve_ex(const char *path, const char *title, const double *steps,
                                    const double *returns, size_t n, const rly_svg_extra *x)
{
    if (!path || (n && (!steps || !returns))) {
        rly_error(MOD, "svg_learning_curve: NULL argument");
        return RELAY_EINVAL;
    }
    double x0 = 0, x1 = 0, y0 = INFINITY, y1 = -INFINITY;
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(steps[i]) || !isfinite(returns[i]))
            continue;
        good++;
        if (steps[i] > x1)
            x1 = steps[i];
        if (steps[i] < x0)
            x0 = steps[i];
        if (returns[i] < y0)
            y0 = returns[i];
        if (returns[i] > y1)
            y1 = returns[i];
    }
    size_t n_eval = x && x->eval_steps && x->eval_returns ? x->n_eval : 0;
    for (size_t i = 0; i < n_eval; i++) {
        double sx = x->eval_steps[i], ry = x->eval_returns[i];
        if (!isfinite(sx) || !isfinite(ry))
            continue;
        if (!good) {
            y0 = y1 = ry;
        }
        good++;
        x1 = sx > x1 ? sx : x1;
        y0 = ry < y0 ? ry : y0;
        y1 = ry > y1 ? ry : y1;
    }
    bool has_target = x && isfinite(x->target);
    if (has_target && good) {
        y0 = x->target < y0 ? x->target : y0;
        y1 = x->target > y1 ? x->target : y1;
    }
    if (!good) {
        y0 = 0;
        y1 = 1;
    }
    if (x1 <= x0)
        x1 = x0 + 1;
    if (y0 > 0)
        y0 = 0; /* returns are read against zero */
    double xt[MAX_TICKS + 2], yt[MAX_TICKS + 2];
    size_t nx = rly_nice_ticks(x0, x1, MAX_TICKS, xt), ny = rly_nice_ticks(y0, y1, MAX_TICKS, yt);
    if (nx < 2 || ny < 2) {
        rly_error(MOD, "svg_learning_curve: cannot place axis ticks");
        return RELAY_EINVAL;
    }
    x0 = xt[0];
    x1 = xt[nx - 1];
    y0 = yt[0];
    y1 = yt[ny - 1];
    FILE *f = fopen(path, "w");
    if (!f) {
        rly_error(MOD, "cannot create %s", path);
        return RELAY_EIO;
    }
    const double pw = SVG_W - M_LEFT - M_RIGHT, ph = SVG_H - M_TOP - M_BOTTOM;
#define PX(x) (M_LEFT + ((x)-x0) / (x1 - x0) * pw)
#define PY(y) (M_TOP + ph - ((y)-y0) / (y1 - y0) * ph)
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            SVG_W, SVG_H, SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(f, "<text class=\"title\" x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">",
            SVG_W / 2);
    put_escaped(f, title ? title : "Learning curve");
    fputs("</text>\n<g class=\"grid\" stroke=\"#e0e0e0\" stroke-width=\"1\">\n", f);
    for (size_t i = 0; i < nx; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(xt[i]), M_TOP,
                PX(xt[i]), M_TOP + ph);
    for (size_t i = 0; i < ny; i++)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", M_LEFT, PY(yt[i]),
                M_LEFT + pw, PY(yt[i]));
    fputs("</g>\n<g class=\"axes\" stroke=\"black\" stroke-width=\"1\">\n", f);
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", M_LEFT, M_TOP + ph,
            M_LEFT + pw, M_TOP + ph);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%.1f\"/>\n", M_LEFT, M_TOP, M_LEFT,
            M_TOP + ph);
    for (size_t i = 0; i < nx; i++)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(xt[i]),
                M_TOP + ph, PX(xt[i]), M_TOP + ph + 5);
    for (size_t i = 0; i < ny; i++)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", M_LEFT - 5, PY(yt[i]),
                M_LEFT, PY(yt[i]));
    fputs("</g>\n<g class=\"xticks\" text-anchor=\"middle\">\n", f);
    char lab[32];
    for (size_t i = 0; i < nx; i++) {
        fmt_steps(lab, sizeof lab, xt[i]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", PX(xt[i]), M_TOP + ph + 20, lab);
    }
    fputs("</g>\n<g class=\"yticks\" text-anchor=\"end\">\n", f);
    for (size_t i = 0; i < ny; i++)
        fprintf(f, "<text x=\"%d\" y=\"%.1f\">%g</text>\n", M_LEFT - 8, PY(yt[i]) + 4, yt[i]);
    fputs("</g>\n", f);
    fprintf(f,
            "<text class=\"xlabel\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">environment "
            "steps</text>\n",
            M_LEFT + pw / 2, SVG_H - 16);
    fprintf(f,
            "<text class=\"ylabel\" x=\"20\" y=\"%.1f\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 20 %.1f)\">mean return (last 100 episodes)</text>\n",
            M_TOP + ph / 2, M_TOP + ph / 2);
    if (good) {
        fputs("<polyline class=\"curve\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" "
              "points=\"",
              f);
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(steps[i]) || !isfinite(returns[i]))
                continue;
            fprintf(f, "%s%.1f,%.1f", first ? "" : " ", PX(steps[i]), PY(returns[i]));
            first = false;
        }
        fputs("\"/>\n", f);
        if (n_eval) {
            fputs("<polyline class=\"eval\" fill=\"none\" stroke=\"#ff7f0e\" stroke-width=\"2\" "
                  "points=\"",
                  f);
            bool first_e = true;
            for (size_t i = 0; i < n_eval; i++) {
                if (!isfinite(x->eval_steps[i]) || !isfinite(x->eval_returns[i]))
                    continue;
                fprintf(f, "%s%.1f,%.1f", first_e ? "" : " ", PX(x->eval_steps[i]),
                        PY(x->eval_returns[i]));
                first_e = false;
            }
            fputs("\"/>\n", f);
        }
        if (has_target)
            fprintf(f,
                    "<line class=\"target\" x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                    "stroke=\"#d62728\" stroke-dasharray=\"6,4\"/>\n",
                    M_LEFT, PY(x->target), M_LEFT + pw, PY(x->target));
        /* legend */
        fprintf(f,
                "<g class=\"legend\" font-size=\"11\"><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
                "y2=\"%d\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"%.1f\" y=\"%d\">"
                "training (last 100)</text>",
                M_LEFT + 10.0, M_TOP + 10, M_LEFT + 30.0, M_TOP + 10, M_LEFT + 35.0, M_TOP + 14);
        if (n_eval)
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ff7f0e\" "
                    "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%d\">evaluation "
                    "(deterministic)</text>",
                    M_LEFT + 10.0, M_TOP + 26, M_LEFT + 30.0, M_TOP + 26, M_LEFT + 35.0,
                    M_TOP + 30);
        if (has_target)
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d62728\" "
                    "stroke-dasharray=\"6,4\"/><text x=\"%.1f\" y=\"%d\">target %g</text>",
                    M_LEFT + 10.0, M_TOP + 42, M_LEFT + 30.0, M_TOP + 42, M_LEFT + 35.0, M_TOP + 46,
                    x->target);
        fputs("</g>\n", f);
    } else {
        fprintf(f,
                "<text class=\"nodata\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
                "fill=\"#888888\">no data</text>\n",
                M_LEFT + pw / 2, M_TOP + ph / 2);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0)
        bad = true;
    if (bad) {
        rly_error(MOD, "writing %s failed", path);
        return RELAY_EIO;
    }
    return RELAY_OK;
}
