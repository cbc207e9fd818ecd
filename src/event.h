/* The event row, defined once: its fields in order, their SQL types and how
 * each is checked. The importer (COPY rows), the codec's Lua face
 * (codec:check_event, used by the timeline API) and, through
 * core.event_fields(), the Lua layer's SQL (staging table, column lists,
 * recordset types) all derive from this table. */
#ifndef MM_EVENT_H
#define MM_EVENT_H

#include <cJSON.h>
#include <stddef.h>
#include "payload.h"

typedef enum { MM_F_UUID, MM_F_TEXT, MM_F_TIME, MM_F_NUMBER, MM_F_JSON } mm_field_kind;

typedef struct mm_field {
    const char *name;
    const char *sqltype;
    mm_field_kind kind;
    int required;
} mm_field;

/* Indexes into MM_EVENT_FIELDS. */
enum { MM_EV_ID, MM_EV_VEHICLE, MM_EV_TYPE, MM_EV_OCCURRED_AT, MM_EV_MILEAGE, MM_EV_PAYLOAD, MM_EV_NOTES,
       MM_EV_CORRECTION, MM_EV_CORRECTS_ID, MM_EV_CORRECTS_AT, MM_EV_LOCATION, MM_EV_TAGS, MM_EV_NFIELDS };

extern const mm_field MM_EVENT_FIELDS[MM_EV_NFIELDS];

/* The texts of one checked event, field by field (NULL: absent). mileage
 * points into num; the JSON fields (payload, location, tags) are left NULL:
 * the caller prints them from ev (the check normalized the payload in
 * place; the database checks location and tags). */
typedef struct mm_event_texts {
    const char *f[MM_EV_NFIELDS];
    char num[40];
} mm_event_texts;

/* Checks one event object: known fields only, each of its kind (UUIDs,
 * UTF-8 text, times with a zone when zoned, mileage a number >= 0), the
 * required ones present (vehicle, when given, is every event's vehicle),
 * the payload valid for the type (normalized in place; a void carries
 * none). Returns NULL, or why the event is refused (often in err). */
const char *mm_event_check(const mm_schemas *schemas, cJSON *ev, const char *vehicle, int zoned,
                           mm_event_texts *out, char *err, size_t errlen);

/* The JSON line of one event from its COPY row (text format, the fields
 * of MM_EVENT_FIELDS in order, ending in a newline): an object of its
 * fields in order, NULLs left out (a JSON null inside a jsonb field is data
 * and stays), each value as PostgreSQL's to_json prints it (uuids and
 * numerics as their text, jsonb as is), spaced as jsonb prints: the export
 * format, built by the client so the server only prints the columns.
 * Writes into out (at least mm_event_json_bound(len) bytes) and returns the
 * bytes written, or 0 for a row of another shape. Decodes the row's COPY
 * escapes in place. */
size_t mm_event_json_bound(size_t len);
size_t mm_event_json_line(char *row, size_t len, char *out);

/* Whether s is a UUID as PostgreSQL reads it: 32 hex digits, optionally in
 * braces, with a hyphen allowed after any group of four. */
int mm_uuid_valid(const char *s);

#endif
