/* COPY's binary format, for the import's typed rows: the stream's header
 * and trailer and the values whose binary form is not their text (uuid,
 * numeric, timestamptz: text.h's mm_utc_micros). PostgreSQL then reads no
 * text for them (docs/design.md: the server's share of the staging). */
#ifndef MM_COPYBIN_H
#define MM_COPYBIN_H

#include <stddef.h>

/* The signature, flags and header extension length; and the trailer. */
#define MM_BIN_HEADER "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0"
#define MM_BIN_HEADER_LEN 19
#define MM_BIN_TRAILER "\377\377"
#define MM_BIN_TRAILER_LEN 2

/* The 16 bytes of a UUID's text (mm_uuid_valid's forms); 0 when it is not one. */
int mm_bin_uuid(const char *s, unsigned char out[16]);

/* A decimal text ([-]digits[.digits][e[+-]digits], as mm_shortest_double
 * prints a number) as numeric_recv reads it: digit count, weight, sign and
 * display scale, then base-10000 digits, each a big-endian int16. Returns
 * the bytes written (at most MM_BIN_NUMERIC_MAX), or 0 when the text is not
 * such a number. */
#define MM_BIN_NUMERIC_MAX (8 + 2 * 24)
size_t mm_bin_numeric(const char *s, unsigned char *out);

#endif
