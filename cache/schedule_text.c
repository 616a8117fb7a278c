/* Schedules as text: "tm=2 tn=4 ku=1 vec=512 pf=0 nb=0", the form the
 * tuning database stores and the CLI and API take (qkc_schedule_print,
 * qkc_schedule_parse). */
#include <stdio.h>
#include <string.h>

#include "cache/tune_db.h"
#include "core/context.h"

size_t qkc_schedule_print(const qkc_schedule *s, char *buf, size_t size)
{
    int n;
    if (!s) {
        if (buf && size)
            buf[0] = '\0';
        return 0;
    }
    n = snprintf(buf, size, "tm=%d tn=%d ku=%d vec=%d pf=%d nb=%d", s->tile_m, s->tile_n, s->k_unroll,
                 s->vector_bits, s->prefetch, s->n_block);
    return n < 0 ? 0 : (size_t)n;
}

int qkc_schedule_parse_text(const char *text, size_t len, qkc_schedule *out, unsigned *present, char *why,
                            size_t why_size)
{
    static const char *const keys[] = {"tm", "tn", "ku", "vec", "pf", "nb"};
    static const unsigned char key_len[] = {2, 2, 2, 3, 2, 2};
    qkc_schedule s;
    unsigned seen = 0;
    size_t i = 0;
    memset(&s, 0, sizeof s);
    while (i < len) {
        const char *w, *eq;
        size_t wlen, klen;
        int k, shown;
        long v = 0;
        if (text[i] == ' ' || text[i] == '\t' || text[i] == ',') {
            i++;
            continue;
        }
        w = text + i;
        while (i < len && text[i] != ' ' && text[i] != '\t' && text[i] != ',')
            i++;
        wlen = (size_t)(text + i - w);
        shown = wlen > 64 ? 64 : (int)wlen;
        eq = memchr(w, '=', wlen);
        klen = eq ? (size_t)(eq - w) : 0;
        for (k = 0; eq && k < 6; k++)
            if (klen == key_len[k] && *w == *keys[k] && !memcmp(w, keys[k], klen))
                break;
        if (!eq || k == 6) {
            snprintf(why, why_size, "schedule: '%.*s': expected tm=, tn=, ku=, vec=, pf= or nb=", shown, w);
            return -1;
        }
        if (seen & (1u << k)) {
            snprintf(why, why_size, "schedule: '%s' given twice", keys[k]);
            return -1;
        }
        /* decimal digits only: no sign, no space, no base prefix */
        for (const char *d = eq + 1; d < w + wlen && v >= 0 && v <= (1 << 20); d++)
            v = *d >= '0' && *d <= '9' ? v * 10 + (*d - '0') : -1;
        if (eq + 1 == w + wlen || v < 0 || v > (1 << 20)) {
            snprintf(why, why_size, "schedule: '%.*s': the value must be an integer 0..%d", shown, w, 1 << 20);
            return -1;
        }
        seen |= 1u << k;
        switch (k) {
        case 0: s.tile_m = (int)v; break;
        case 1: s.tile_n = (int)v; break;
        case 2: s.k_unroll = (int)v; break;
        case 3: s.vector_bits = (int)v; break;
        case 4: s.prefetch = (int)v; break;
        default: s.n_block = (int)v; break;
        }
    }
    *out = s;
    if (present)
        *present = seen;
    return 0;
}

qkc_status qkc_schedule_parse(qkc_context *ctx, const char *text, qkc_schedule *out)
{
    char why[256];
    if (!ctx)
        return QKC_ERR_INVALID_ARGUMENT;
    if (!text || !out)
        return qkc_fail(ctx, QKC_ERR_INVALID_ARGUMENT, "qkc_schedule_parse: NULL argument");
    if (qkc_schedule_parse_text(text, strlen(text), out, NULL, why, sizeof why))
        return qkc_fail(ctx, QKC_ERR_PARSE, "%s", why);
    return QKC_OK;
}
