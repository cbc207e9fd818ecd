/* Checks on text shared by the codec, the importer and the JSON module, in
 * plain C (no Lua), so the fuzz targets link them directly. */
#ifndef MM_TEXT_H
#define MM_TEXT_H

#include <stddef.h>

/* Well-formed UTF-8 as PostgreSQL accepts it: no overlong forms, no
 * surrogates, nothing above U+10FFFF. */
int mm_utf8_valid(const unsigned char *s);

/* Writes s (len bytes) at out as a JSON string: quoted, the quote,
 * backslash and control characters escaped as cJSON's printer and
 * PostgreSQL's to_json escape them (\n, ..., \u001f), other bytes as they
 * are. out holds at least 6 * len + 2 bytes. Returns the end of what it
 * wrote, or NULL when s holds a NUL byte. */
char *mm_json_string(char *out, const char *s, size_t len);

/* Whether a JSON text holds the escape \u0000 (a NUL inside a string, which
 * cJSON would silently cut the string at, and PostgreSQL text refuses). */
int mm_json_has_nul(const char *text, size_t len);

/* Whether an ISO 8601 time ends in a zone (Z, +hh, +hh:mm, +hhmm, -...). */
int mm_has_zone(const char *when);

/* The UTC text PostgreSQL prints for (when::timestamptz AT TIME ZONE 'UTC')
 * under DateStyle ISO ("YYYY-MM-DD HH:MM:SS[.ffffff]", trailing zeros of
 * the fraction dropped), into out (at least 32 bytes). Reads only the strict
 * form YYYY-MM-DD{T| }HH:MM[:SS[.f{1,6}]]{Z|+hh|+hhmm|+hh:mm|-...} of a
 * real date and time in years 1-9999; returns 0 for anything else (which
 * PostgreSQL may still read: the caller then leaves it to PostgreSQL). */
int mm_utc_text(const char *when, char *out, size_t n);
/* The same time as microseconds since 2000-01-01 UTC (PostgreSQL's
 * timestamptz, as COPY's binary format sends it); 0 when C does not read it. */
int mm_utc_micros(const char *when, long long *us);

/* The shortest decimal text (at most 17 significant digits, out holding at
 * least 32 bytes) that reads back as the same finite double. The one
 * formatter of the core: COPY rows, query parameters and payload texts. */
void mm_shortest_double(double d, char *out, size_t n);

#endif
