/* Progress reporting: a \r-rewritten status line on terminals, plain periodic lines otherwise. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_support.h"
#include "core/clock.h"

void rly_progress_init(rly_progress *p, FILE *out, double interval_s)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = out && isatty(fileno(out));
    if (!(interval_s > 0))
        interval_s = p->tty ? 0.1 : 5.0;
    p->interval_ns = (int64_t)(interval_s * 1e9);
}

/* fmt_count writes n compactly (1234 -> "1234", 12345 -> "12.3k", 1.5e6 -> "1.50M"). */
static void fmt_count(char *buf, size_t cap, double n)
{
    if (n >= 1e9)
        snprintf(buf, cap, "%.2fG", n / 1e9);
    else if (n >= 1e6)
        snprintf(buf, cap, "%.2fM", n / 1e6);
    else if (n >= 1e4)
        snprintf(buf, cap, "%.1fk", n / 1e3);
    else
        snprintf(buf, cap, "%.0f", n);
}

size_t rly_progress_format(const rly_progress_info *in, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return 0;
    char steps[24], total[24], sps[24], ret[24], el[32];
    fmt_count(steps, sizeof steps, (double)in->steps);
    fmt_count(sps, sizeof sps, in->sps > 0 ? in->sps : 0);
    if (in->total_steps)
        fmt_count(total, sizeof total, (double)in->total_steps);
    if (isnan(in->mean_return))
        snprintf(ret, sizeof ret, "-");
    else
        snprintf(ret, sizeof ret, "%.1f", in->mean_return);
    long s = (long)(in->elapsed_s > 0 ? in->elapsed_s : 0);
    if (s >= 3600)
        snprintf(el, sizeof el, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(el, sizeof el, "%ld:%02ld", s / 60, s % 60);
    int n;
    if (in->total_steps && in->steps > in->total_steps)
        /* a budget smaller than one update: the learner consumes whole updates */
        n = snprintf(buf, cap,
                     "steps %s (budget %s, rounded up to whole updates) (100%%) | %s steps/s | "
                     "return %s (%llu ep) | v%lld | %s",
                     steps, total, sps, ret, (unsigned long long)in->episodes,
                     (long long)in->version, el);
    else if (in->total_steps)
        n = snprintf(buf, cap,
                     "steps %s/%s (%.0f%%) | %s steps/s | return %s (%llu ep) | v%lld | %s", steps,
                     total, 100.0 * (double)in->steps / (double)in->total_steps, sps, ret,
                     (unsigned long long)in->episodes, (long long)in->version, el);
    else
        n = snprintf(buf, cap, "steps %s | %s steps/s | return %s (%llu ep) | v%lld | %s", steps,
                     sps, ret, (unsigned long long)in->episodes, (long long)in->version, el);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

static void emit(rly_progress *p, const rly_progress_info *info, bool final)
{
    char line[256];
    size_t n = rly_progress_format(info, line, sizeof line);
    if (p->tty) {
        /* pad with spaces so a shorter line fully covers the previous one */
        int pad = p->last_len > n ? (int)(p->last_len - n) : 0;
        fprintf(p->out, "\r%s%*s", line, pad, "");
        if (final)
            fputc('\n', p->out);
        p->last_len = final ? 0 : n;
    } else if (!final || !p->printed || info->steps != p->last_steps ||
               info->version != p->last_version || info->episodes != p->last_episodes) {
        /* plain lines: the final line is not repeated for the update already printed */
        fprintf(p->out, "%s\n", line);
    }
    p->printed = true;
    p->last_steps = info->steps;
    p->last_version = info->version;
    p->last_episodes = info->episodes;
    fflush(p->out);
}

bool rly_progress_update(rly_progress *p, const rly_progress_info *info, bool force)
{
    if (!p || !p->out || !info)
        return false;
    int64_t now = rly_now_ns();
    if (!force && p->last_ns && now - p->last_ns < p->interval_ns)
        return false;
    p->last_ns = now;
    emit(p, info, false);
    return true;
}

void rly_progress_finish(rly_progress *p, const rly_progress_info *info)
{
    if (!p || !p->out || !info)
        return;
    p->last_ns = rly_now_ns();
    emit(p, info, true);
}
