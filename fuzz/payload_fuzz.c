/* libFuzzer target for the payload codec (src/payload.c): the first byte
 * picks an event type, the rest is JSON text. Whatever the input, the codec
 * must not crash, leak or hit undefined behaviour, and a payload it accepts
 * must print to canonical JSON that it accepts again, printing the same.
 * The input is also read as a time by mm_utc_text (text.c), whose UTC text,
 * read again with a Z, must give itself, and as a COPY row of the event's
 * fields, whose JSON line (mm_event_json_line, event.c) must stay inside
 * its bound and be an object on one line. */
#include "schemas.h"
#include "../src/event.h"
#include "../src/text.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mm_schemas *schemas;
static const char *types[64];
static int ntypes;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const cJSON *t;
    (void)argc;
    (void)argv;
    schemas = fuzz_load_schemas();
    for (t = mm_schemas_types(schemas)->child; t && ntypes < 63; t = t->next) types[ntypes++] = t->string;
    types[ntypes] = "no_such_type";
    return 0;
}

/* A time C normalizes stays what it is when read again in UTC. */
static void check_utc_text(const uint8_t *data, size_t size) {
    char *when = (char *)malloc(size + 1), utc[40], zoned[48], again[40];
    if (!when) abort();
    memcpy(when, data, size);
    when[size] = '\0';
    if (mm_utc_text(when, utc, sizeof utc)) {
        snprintf(zoned, sizeof zoned, "%sZ", utc);
        if (!mm_utc_text(zoned, again, sizeof again) || strcmp(utc, again) != 0) abort();
    }
    free(when);
}

/* The input as a COPY row: its JSON line is written within the bound
 * (ASan guards the buffer's end) and is one object ending the line. */
static void check_event_json_line(const uint8_t *data, size_t size) {
    size_t bound = mm_event_json_bound(size + 1), n;
    char *row = (char *)malloc(size + 1), *out = (char *)malloc(bound);
    if (!row || !out) abort();
    memcpy(row, data, size);
    row[size] = '\n';
    n = mm_event_json_line(row, size + 1, out);
    if (n && (n > bound || out[0] != '{' || out[n - 2] != '}' || out[n - 1] != '\n')) abort();
    free(row);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024], err2[1024];
    const char *type;
    cJSON *tree, *again;
    char *text, *text2;
    check_utc_text(data, size);
    check_event_json_line(data, size);
    if (size < 1) return 0;
    type = types[data[0] % (ntypes + 1)];
    tree = cJSON_ParseWithLength((const char *)data + 1, size - 1);
    if (!tree) return 0;
    if (mm_payload_check(schemas, type, tree, err, sizeof err)) {
        text = cJSON_PrintUnformatted(tree);
        if (!text) abort();
        again = cJSON_Parse(text);
        if (!again || !mm_payload_check(schemas, type, again, err2, sizeof err2)) {
            fprintf(stderr, "accepted %s but refused its canonical form: %s\n", type, err2);
            abort();
        }
        text2 = cJSON_PrintUnformatted(again);
        if (!text2 || strcmp(text, text2) != 0) abort(); /* canonical output is a fixed point */
        cJSON_free(text2);
        cJSON_free(text);
        cJSON_Delete(again);
    } else if (!err[0] || !strchr(err, ':')) {
        abort(); /* every refusal names a path and a reason */
    }
    cJSON_Delete(tree);
    return 0;
}
