/* COPY's binary format: see copybin.h. */
#include "copybin.h"
#include <string.h>

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int mm_bin_uuid(const char *s, unsigned char out[16]) {
    int n = 0, h;
    for (; *s; s++) {
        if (*s == '-' || *s == '{' || *s == '}') continue;
        if ((h = hexval(*s)) < 0 || n == 32) return 0;
        if (n % 2) out[n / 2] |= (unsigned char)h;
        else out[n / 2] = (unsigned char)(h << 4);
        n++;
    }
    return n == 32;
}

static unsigned char *put16(unsigned char *o, int v) {
    o[0] = (unsigned char)((v >> 8) & 255);
    o[1] = (unsigned char)(v & 255);
    return o + 2;
}

/* The decimal digits are placed in a string padded with zeros to whole
 * groups of four on both sides of the point, then read four at a time;
 * zero groups at either end are dropped (the weight counts the leading
 * ones), as PostgreSQL stores a numeric. */
size_t mm_bin_numeric(const char *s, unsigned char *out) {
    char dig[24], pad[96];
    int nd = 0, point = -1, exp = 0, neg = 0, dscale, intd, lead, len, first, last, g, weight;
    unsigned char *o = out;
    if (*s == '-') neg = 1, s++;
    for (; *s && *s != 'e' && *s != 'E'; s++) {
        if (*s == '.' && point < 0) point = nd;
        else if (*s >= '0' && *s <= '9' && nd < (int)sizeof dig) dig[nd++] = *s;
        else return 0;
    }
    if (!nd) return 0;
    if (*s) { /* the exponent */
        int esign = 1, ed = 0;
        s++;
        if (*s == '+' || *s == '-') esign = *s++ == '-' ? -1 : 1;
        for (; *s >= '0' && *s <= '9' && ed < 3; s++, ed++) exp = exp * 10 + (*s - '0');
        if (*s || !ed) return 0;
        exp *= esign;
    }
    if (point < 0) point = nd;
    point += exp;                              /* the point after this many of the digits */
    dscale = nd - point > 0 ? nd - point : 0;  /* the text's digits after the point */
    if (point > 40 || point < -40) return 0;   /* (no mileage is that large or that small) */
    intd = point > 0 ? point : 0;              /* digits before the point, zeros past the text's added */
    lead = (4 - intd % 4) % 4;                 /* zeros that make them whole groups */
    len = 0;
    memset(pad, '0', sizeof pad);
    len = lead + intd + dscale;
    len += (4 - len % 4) % 4;
    for (g = 0; g < nd; g++) pad[lead + (point > 0 ? g : g - point)] = dig[g];
    weight = (lead + intd) / 4 - 1;            /* of the first group */
    for (first = 0; first < len && !memcmp(pad + first, "0000", 4); first += 4) weight--;
    for (last = len; last > first && !memcmp(pad + last - 4, "0000", 4); last -= 4) {}
    o = put16(o, (last - first) / 4);
    o = put16(o, first == last ? 0 : weight);
    o = put16(o, neg && first < last ? 0x4000 : 0);
    o = put16(o, dscale);
    for (g = first; g < last; g += 4)
        o = put16(o, (pad[g] - '0') * 1000 + (pad[g + 1] - '0') * 100 + (pad[g + 2] - '0') * 10 + (pad[g + 3] - '0'));
    return (size_t)(o - out);
}
