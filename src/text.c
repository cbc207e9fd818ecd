/* Text checks (see text.h). */
#include "text.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mm_utf8_valid(const unsigned char *s) {
    while (*s) {
        unsigned int c = *s, n, cp, i;
        if (c < 0x80) { s++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
        else return 0;
        for (i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        s += n + 1;
    }
    return 1;
}

int mm_json_has_nul(const char *text, size_t len) {
    const char *p = text, *end = text + len;
    /* from one backslash to the next (memchr: most texts have none) */
    while ((p = memchr(p, '\\', (size_t)(end - p))) && end - p > 1) {
        if (p[1] == 'u' && end - p > 5 && !memcmp(p + 2, "0000", 4)) return 1;
        p += 2; /* the escaped character */
    }
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int mm_has_zone(const char *when) {
    size_t n = strlen(when), i;
    const char *t = strchr(when, 'T');
    if (!t) t = strchr(when, ' ');
    if (!t) return 0;
    if (n && (when[n - 1] == 'Z' || when[n - 1] == 'z')) return 1;
    /* the last + or - after the time starts the offset: hh, hh:mm or hhmm */
    for (i = n; i > (size_t)(t - when); i--) {
        char c = when[i - 1];
        if (c == '+' || c == '-') {
            const char *z = when + i;
            size_t zl = strlen(z);
            return (zl == 2 && is_digit(z[0]) && is_digit(z[1])) ||
                   (zl == 4 && is_digit(z[0]) && is_digit(z[1]) && is_digit(z[2]) && is_digit(z[3])) ||
                   (zl == 5 && is_digit(z[0]) && is_digit(z[1]) && z[2] == ':' && is_digit(z[3]) && is_digit(z[4]));
        }
        if (!is_digit(c) && c != ':' && c != '.') return 0;
    }
    return 0;
}

void mm_shortest_double(double d, char *out, size_t n) {
    int p;
    for (p = 15; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, d);
        if (strtod(out, NULL) == d) return;
    }
}
