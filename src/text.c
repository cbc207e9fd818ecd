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

/* n digits at s as a number, or -1. */
static int number(const char *s, int n) {
    int v = 0;
    for (; n > 0; n--, s++) {
        if (!is_digit(*s)) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* Days from 1970-01-01 to a proleptic Gregorian date, and back (H. Hinnant's
 * civil calendar algorithms; years here are 0-10000, never negative). */
static long long days_from_civil(long long y, int m, int d) {
    long long era, yoe, doy;
    y -= m <= 2;
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

static void civil_from_days(long long z, long long *y, int *m, int *d) {
    long long era, doe, yoe, doy, mp;
    z += 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* A time C reads (see mm_utc_text) as seconds since 1970 in UTC and its
 * fraction's digits (trailing zeros dropped; fd of them); 0 when it is not
 * one. */
static int utc_parse(const char *s, long long *secs, char frac[8], int *fdigits) {
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec = 0, oh = 0, om = 0, sign, fd = 0;
    memset(frac, 0, 8);
    /* in order: a character is read only when those before it were digits */
    if ((y = number(s, 4)) < 1 || s[4] != '-' || (mo = number(s + 5, 2)) < 1 || mo > 12 || s[7] != '-') return 0;
    if ((d = number(s + 8, 2)) < 1) return 0;
    if (d > month_days[mo - 1] + (mo == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))) return 0;
    if (s[10] != 'T' && s[10] != ' ') return 0;
    s += 11;
    if ((h = number(s, 2)) < 0 || h > 23 || s[2] != ':' || (mi = number(s + 3, 2)) < 0 || mi > 59) return 0;
    s += 5;
    if (*s == ':') {
        if ((sec = number(s + 1, 2)) < 0 || sec > 59) return 0;
        s += 3;
        if (*s == '.') {
            for (s++; is_digit(*s); s++) {
                if (fd == 6) return 0; /* PostgreSQL rounds to microseconds */
                frac[fd++] = *s;
            }
            if (!fd) return 0;
            while (fd > 0 && frac[fd - 1] == '0') frac[--fd] = '\0';
        }
    }
    if (*s == 'Z') {
        if (s[1]) return 0;
        sign = 0;
    } else if (*s == '+' || *s == '-') {
        sign = *s == '-' ? -1 : 1;
        if ((oh = number(s + 1, 2)) < 0 || oh > 15) return 0;
        s += 3;
        if (*s == ':') s++;
        if (*s && ((om = number(s, 2)) < 0 || om > 59 || s[2])) return 0;
    } else return 0;
    *secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - sign * (oh * 3600 + om * 60);
    *fdigits = fd;
    return 1;
}

int mm_utc_text(const char *s, char *out, size_t n) {
    long long t, days, yy;
    int mo, d, fd;
    char frac[8];
    if (!utc_parse(s, &t, frac, &fd)) return 0;
    days = t / 86400 - (t % 86400 < 0); /* floored: before 1970 too */
    t -= days * 86400;
    civil_from_days(days, &yy, &mo, &d);
    if (yy < 1 || yy > 9999) return 0;
    return snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d%s%s", (int)yy, mo, d, (int)(t / 3600), (int)(t / 60 % 60),
                    (int)(t % 60), fd ? "." : "", frac) < (int)n;
}

int mm_utc_micros(const char *s, long long *us) {
    long long t, days, yy, f = 0;
    int mo, d, fd, i;
    char frac[8];
    if (!utc_parse(s, &t, frac, &fd)) return 0;
    days = t / 86400 - (t % 86400 < 0);
    civil_from_days(days, &yy, &mo, &d);
    if (yy < 1 || yy > 9999) return 0; /* (as mm_utc_text: the same times) */
    for (i = 0; i < 6; i++) f = f * 10 + (i < fd ? frac[i] - '0' : 0);
    *us = (t - 946684800LL) * 1000000LL + f; /* PostgreSQL's epoch: 2000-01-01 UTC */
    return 1;
}

void mm_shortest_double(double d, char *out, size_t n) {
    int p;
    for (p = 15; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, d);
        if (strtod(out, NULL) == d) return;
    }
}

char *mm_json_string(char *out, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    size_t i = 0, run;
    *o++ = '"';
    for (;;) {
        unsigned char c = 0;
        for (run = i; run < len; run++) { /* a run of bytes written as they are */
            c = (unsigned char)s[run];
            if (c < 32 || c == '"' || c == '\\') break;
        }
        memcpy(o, s + i, run - i);
        o += run - i;
        if (run == len) break;
        if (!c) return NULL;
        *o++ = '\\';
        switch (c) {
        case '"': case '\\': *o++ = (char)c; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default: *o++ = 'u'; *o++ = '0'; *o++ = '0'; *o++ = hex[c >> 4]; *o++ = hex[c & 15];
        }
        i = run + 1;
    }
    *o++ = '"';
    return o;
}
