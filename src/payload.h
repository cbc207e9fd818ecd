/* Event payload schemas and validation, in plain C over cJSON trees (no Lua),
 * so the fuzz target can drive it directly. The schemas come from one JSON
 * document (sql/payloads.json), the same one the database rules are
 * generated from. */
#ifndef MM_PAYLOAD_H
#define MM_PAYLOAD_H

#include <cJSON.h>
#include <stddef.h>

typedef struct mm_schemas mm_schemas;

/* Parses and checks the schema document; NULL with a message on error. */
mm_schemas *mm_schemas_parse(const char *json, size_t len, char *err, size_t errlen);
void mm_schemas_free(mm_schemas *s);
/* The event types, in the document's order (n-th child of the root). */
const cJSON *mm_schemas_types(const mm_schemas *s);

/* Sorts object keys bytewise and keeps the last of duplicate keys, at every
 * depth (as jsonb does), so output is canonical. Returns 0 if out of memory. */
int mm_json_normalize(cJSON *item);

/* Whether every key and string of the tree is valid UTF-8. */
int mm_json_text_valid(const cJSON *item);

/* Normalizes the payload, then validates it as an event of `type`.
 * Returns 1, or 0 with "payload.parts[2].unit_cost: expected number >= 0,
 * got \"abc\""-style text in err. */
int mm_payload_check(const mm_schemas *s, const char *type, cJSON *payload,
                     char *err, size_t errlen);
/* The same for a payload whose keys and strings are known to be valid
 * UTF-8 (read from a jsonb of a UTF-8 database): they are not checked again. */
int mm_payload_check_valid_text(const mm_schemas *s, const char *type, cJSON *payload,
                                char *err, size_t errlen);

#endif
