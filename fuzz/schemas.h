/* The payload schemas both fuzz targets load: sql/payloads.json, or the
 * file MOTOMIND_PAYLOADS names (exits when it cannot). */
#ifndef FUZZ_SCHEMAS_H
#define FUZZ_SCHEMAS_H

#include "../src/payload.h"
#include <stdio.h>
#include <stdlib.h>

static mm_schemas *fuzz_load_schemas(void) {
    const char *path = getenv("MOTOMIND_PAYLOADS");
    char err[512], *text;
    long len;
    mm_schemas *s;
    FILE *f = fopen(path ? path : "sql/payloads.json", "rb");
    if (!f) { perror("payloads.json (set MOTOMIND_PAYLOADS)"); exit(1); }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = malloc((size_t)len);
    if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) exit(1);
    fclose(f);
    s = mm_schemas_parse(text, (size_t)len, err, sizeof err);
    free(text);
    if (!s) { fprintf(stderr, "%s\n", err); exit(1); }
    return s;
}

#endif
