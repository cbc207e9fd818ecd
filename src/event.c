/* The event row and its shape check (see event.h). Plain C: no Lua. */
#include "event.h"
#include "text.h"
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

const mm_field MM_EVENT_FIELDS[MM_EV_NFIELDS] = {
    {"id", "uuid", MM_F_UUID, 0},
    {"vehicle_id", "uuid", MM_F_UUID, 1},
    {"type", "text", MM_F_TEXT, 1},
    {"occurred_at", "timestamptz", MM_F_TIME, 1},
    {"mileage", "numeric(10,1)", MM_F_NUMBER, 0},
    {"payload", "jsonb", MM_F_JSON, 0},
    {"notes", "text", MM_F_TEXT, 0},
    {"correction", "text", MM_F_TEXT, 0},
    {"corrects_id", "uuid", MM_F_UUID, 0},
    {"corrects_occurred_at", "timestamptz", MM_F_TIME, 0},
    {"location", "jsonb", MM_F_JSON, 0},
    {"tags", "jsonb", MM_F_JSON, 0},
};

int mm_uuid_valid(const char *s) {
    int digits = 0, braced = *s == '{', group = 0;
    if (braced) s++;
    for (; *s && !(braced && *s == '}' && !s[1]); s++) {
        if (isxdigit((unsigned char)*s)) {
            digits++;
            group++;
        } else if (*s == '-' && group > 0 && group % 4 == 0 && digits < 32) {
            group = 0;
        } else {
            return 0;
        }
    }
    return digits == 32 && (!braced || *s == '}');
}

/* The text of a string member, NULL when absent or JSON null; *bad is set
 * when it has another type. */
static const char *text_of(const cJSON *obj, const char *key, int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) return v->valuestring;
    *bad = 1;
    return NULL;
}

static const char *field_error(char *err, size_t errlen, const char *name, const char *why) {
    snprintf(err, errlen, "%s: %s", name, why);
    return err;
}

/* The mileage column's bound, read once from its type (numeric(p,s)):
 * values from limit - half a unit of its scale round beyond p digits. */
static struct { double limit, rounds_over; int digits; } mileage_bound;
static pthread_once_t mileage_once = PTHREAD_ONCE_INIT;

static void read_mileage_type(void) {
    int p, sc;
    if (sscanf(MM_EVENT_FIELDS[MM_EV_MILEAGE].sqltype, "numeric(%d,%d)", &p, &sc) != 2) {
        mileage_bound.limit = mileage_bound.rounds_over = HUGE_VAL; /* (no precision: no bound) */
        return;
    }
    mileage_bound.limit = pow(10, p - sc);
    mileage_bound.rounds_over = mileage_bound.limit - 0.5 * pow(10, -sc);
    mileage_bound.digits = p - sc;
}

const char *mm_event_check(const mm_schemas *schemas, cJSON *ev, const char *vehicle, int zoned,
                           mm_event_texts *out, char *err, size_t errlen) {
    const cJSON *k;
    cJSON *payload;
    char why[96];
    int i, bad = 0;
    if (!cJSON_IsObject(ev)) return "expected a JSON object (one event per line)";
    for (k = ev->child; k; k = k->next) {
        for (i = 0; i < MM_EV_NFIELDS && strcmp(MM_EVENT_FIELDS[i].name, k->string); i++) {}
        if (i == MM_EV_NFIELDS) return field_error(err, errlen, k->string, "unknown field");
    }
    for (i = 0; i < MM_EV_NFIELDS; i++) {
        const mm_field *fd = &MM_EVENT_FIELDS[i];
        const char *t;
        out->f[i] = NULL;
        if (fd->kind == MM_F_JSON && i != MM_EV_PAYLOAD) { /* its rules are the database's; its text must be UTF-8 */
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, fd->name);
            if (v && !mm_json_text_valid(v)) return field_error(err, errlen, fd->name, "text is not valid UTF-8");
        }
        if (fd->kind == MM_F_NUMBER || fd->kind == MM_F_JSON) continue;
        t = text_of(ev, fd->name, &bad);
        if (bad) return field_error(err, errlen, fd->name, "expected a string");
        if (!t) continue;
        if (!mm_utf8_valid((const unsigned char *)t)) return field_error(err, errlen, fd->name, "text is not valid UTF-8");
        if (fd->kind == MM_F_UUID && !mm_uuid_valid(t)) return field_error(err, errlen, fd->name, "expected a UUID");
        if (fd->kind == MM_F_TIME && zoned && !mm_has_zone(t))
            return field_error(err, errlen, fd->name, "needs a time zone (e.g. 2025-01-20T08:30:00Z or +01:00)");
        out->f[i] = t;
    }
    k = cJSON_GetObjectItemCaseSensitive(ev, "mileage");
    if (k && !cJSON_IsNull(k)) {
        if (!cJSON_IsNumber(k) || !(k->valuedouble >= 0)) return "mileage: expected number >= 0";
        pthread_once(&mileage_once, read_mileage_type);
        if (k->valuedouble >= mileage_bound.rounds_over) {
            snprintf(why, sizeof why, "expected a number below %.0f (at most %d digits before the point)",
                     mileage_bound.limit, mileage_bound.digits);
            return field_error(err, errlen, "mileage", why);
        }
        mm_shortest_double(k->valuedouble, out->num, sizeof out->num);
        out->f[MM_EV_MILEAGE] = out->num;
    }
    if (vehicle) out->f[MM_EV_VEHICLE] = vehicle;
    for (i = 0; i < MM_EV_NFIELDS; i++) {
        const mm_field *fd = &MM_EVENT_FIELDS[i];
        if (fd->required && !out->f[i]) return field_error(err, errlen, fd->name, "is required");
    }
    payload = cJSON_GetObjectItemCaseSensitive(ev, "payload");
    if (!payload) {
        payload = cJSON_CreateObject();
        if (!payload) return "out of memory";
        cJSON_AddItemToObject(ev, "payload", payload);
    }
    if (!(out->f[MM_EV_CORRECTION] && !strcmp(out->f[MM_EV_CORRECTION], "void")) &&
        !mm_payload_check(schemas, out->f[MM_EV_TYPE], payload, err, errlen))
        return err;
    return NULL;
}

/* Decodes a COPY text field's backslash escapes in place (a field never
 * grows); returns its decoded end. */
static char *copy_unescape(char *f, char *e) {
    char *o = f;
    while (f < e) {
        char c = *f++;
        if (c == '\\' && f < e) {
            switch (c = *f++) {
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'v': c = '\v'; break;
            default: break; /* \\ and any other escaped byte: itself */
            }
        }
        *o++ = c;
    }
    return o;
}

/* A timestamptz as DateStyle ISO prints it ("2025-01-20 08:30:00.5+01",
 * "... BC", "infinity") in to_json's form: a T between date and time, the
 * zone's minutes always written ("+01:00"). */
static char *put_time(char *o, const char *s, const char *e) {
    const char *space = memchr(s, ' ', (size_t)(e - s));
    *o++ = '"';
    if (space) {
        memcpy(o, s, (size_t)(space - s));
        o += space - s;
        *o++ = 'T';
        for (s = space + 1; s < e && *s != '+' && *s != '-'; ) *o++ = *s++;
        if (s < e) { /* the zone: +hh[:mm[:ss]] */
            *o++ = *s++;
            while (s < e && isdigit((unsigned char)*s)) *o++ = *s++;
            if (s == e || *s != ':') {
                memcpy(o, ":00", 3);
                o += 3;
            }
        }
    }
    memcpy(o, s, (size_t)(e - s)); /* the rest: ":mm[:ss]", " BC", or all of "infinity" */
    o += e - s;
    *o++ = '"';
    return o;
}

size_t mm_event_json_bound(size_t len) { return 6 * len + 512; }

size_t mm_event_json_line(char *row, size_t len, char *out) {
    char *s = row, *end;
    char *o = out;
    int i, first = 1;
    if (len == 0 || row[len - 1] != '\n') return 0;
    end = row + len - 1; /* (without the newline) */
    for (i = 0; i < MM_EV_NFIELDS; i++) {
        const mm_field *fd = &MM_EVENT_FIELDS[i];
        char *f = s, *fe;
        size_t name = strlen(fd->name);
        while (s < end && *s != '\t') s += *s == '\\' && s + 1 < end ? 2 : 1;
        fe = s;
        if (i < MM_EV_NFIELDS - 1) {
            if (s == end) return 0; /* too few fields */
            s++;
        }
        if (fe - f == 2 && f[0] == '\\' && f[1] == 'N') continue; /* NULL: left out */
        memcpy(o, first ? "{\"" : ", \"", first ? 2 : 3);
        o += first ? 2 : 3;
        first = 0;
        memcpy(o, fd->name, name);
        o += name;
        memcpy(o, "\": ", 3);
        o += 3;
        fe = copy_unescape(f, fe);
        switch (fd->kind) {
        case MM_F_TEXT:
            if (!(o = mm_json_string(o, f, (size_t)(fe - f)))) return 0; /* (COPY never sends a NUL) */
            break;
        case MM_F_TIME: o = put_time(o, f, fe); break;
        case MM_F_UUID:
            *o++ = '"';
            memcpy(o, f, (size_t)(fe - f));
            o += fe - f;
            *o++ = '"';
            break;
        case MM_F_NUMBER: /* (numerics and jsonb as PostgreSQL printed them) */
        case MM_F_JSON: memcpy(o, f, (size_t)(fe - f)); o += fe - f; break;
        }
    }
    if (s != end) return 0; /* too many fields */
    if (first) *o++ = '{';
    *o++ = '}';
    *o++ = '\n';
    return (size_t)(o - out);
}
