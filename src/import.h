/* Event sources for the importer: each reads one kind of file (JSON lines,
 * a CSV export of another app) and yields its records as cJSON events, in C,
 * for the driver in import.c to validate and stream through COPY. */
#ifndef MM_IMPORT_H
#define MM_IMPORT_H

#include "motomind.h"
#include <cJSON.h>
#include <stdio.h>

/* One record of the file. All NULL: nothing to import (a blank line, a
 * header, a skipped row). */
typedef struct mm_item {
    long line;          /* the record's first line in the file */
    cJSON *event;       /* an event to stage (the driver deletes it) */
    const char *reason; /* or: why the record is refused ... */
    const char *column; /* ... and the file's column, when known */
    const char *record; /* or: a non-event record's JSON text (backups) */
} mm_item;

typedef struct mm_source mm_source;
struct mm_source {
    /* 1: *item filled; 0: end of the file; -1: the file cannot be read on
     * (item->reason says why; nothing of it is imported). */
    int (*next)(mm_source *s, mm_item *item);
    long (*offset)(mm_source *s); /* bytes read so far */
    int zoned; /* times must carry their zone (JSON lines); else they are
                  read in the session's zone (CSV: the vehicle's) */
};

/* Each pushes a box that owns the source (not the FILE) and returns it. The
 * CSV source compiles the Lua spec at spec_idx (raising on a bad spec);
 * with no FILE it is compiled only. With schemas, a header that cannot give
 * what the section's event type needs is refused at the header. */
mm_source *mm_jsonl_source(lua_State *L, FILE *f);
mm_source *mm_csv_source(lua_State *L, int spec_idx, FILE *f, const struct mm_schemas *schemas);

#endif
