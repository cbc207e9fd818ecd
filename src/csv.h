/* The CSV reader's compiled spec and state, shared by the spec compiler
 * (csv_spec.c) and the reader (csv.c). */
#ifndef MOTOMIND_CSV_H
#define MOTOMIND_CSV_H

#include "import.h"
#include "payload.h"

#define CHUNK 65536

/* an arena: the compiled spec is freed in one go */
typedef struct block {
    struct block *next;
    size_t used, cap;
    double data[]; /* aligned for any field */
} block;

enum { AS_TEXT, AS_NUMBER, AS_DATETIME, AS_DATE, AS_MAP, AS_LIST };
enum { V_STRING, V_NUMBER, V_BOOL };

typedef struct assign {
    const char *path, *str;
    int kind, boolean;
    double num;
} assign;

typedef struct assigns {
    assign *a;
    int n;
} assigns;

typedef struct choice {
    const char *key;
    int skip;
    assigns sets;
} choice;

typedef struct column {
    const char **names, **empties; /* lower case */
    int nnames, nempties, as, required, index;
    const char *to, *expected; /* expected: the names, or the map's keys */
    const char *split;          /* a list's separators (default ",") */
    assigns sets;
    choice *map;
    int nmap, any; /* any: the index of the "*" entry, or nmap */
} column;

typedef struct section {
    const char *name, *type, *record; /* type: an event's; record: another kind */
    assigns sets;
    column *cols;
    int ncols;
} section;

typedef struct csv {
    mm_source base;
    block *arena;
    FILE *f;
    int sep, decimal_comma, dmy, nsecs, sectioned, need_header;
    section *secs, *cur;
    const mm_schemas *schemas; /* for the header's payload check (NULL: none) */
    /* the reader */
    unsigned char buf[CHUNK];
    size_t pos, len;
    long bytes, line;
    char *text; /* the record's fields, each NUL-terminated */
    char *record; /* the last row made a record: its JSON text */
    size_t tlen, tcap, *starts;
    int nf, fcap;
    char err[512];
} csv;

/* mm_csv_compile compiles the Lua spec at spec_idx into s (raising on a
 * bad spec, naming its place: "csv spec: columns[3].map: ...");
 * mm_csv_release frees what it compiled. */
void mm_csv_compile(lua_State *L, csv *s, int spec_idx);
void mm_csv_release(csv *s);

#endif
