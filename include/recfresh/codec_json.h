/*
 * recfresh - what every JSON codec (codec_list.c, codec_event.c,
 * codec_run.c, codec_activity.c) does before it reads a single field: the
 * pre-parse limits, the parse itself with the same flags, and the "must be
 * an object" rule, each with the same rejection reasons and messages.
 */
#ifndef RECFRESH_CODEC_JSON_H
#define RECFRESH_CODEC_JSON_H

#include <jansson.h>
#include <yajl/yajl_parse.h>

#include "recfresh/common.h"

/**
 * Checks \p len against lim->max_record_bytes (RF_REJ_TOO_LARGE) and the
 * nesting against lim->max_json_depth (RF_REJ_TOO_DEEP), parses with
 * duplicate keys refused and NUL allowed in strings (so "\u0000" in an id is
 * a bad value the codec names), and requires an object (RF_REJ_INVALID_JSON).
 * @returns the root object (caller owns a reference) or NULL with \p rej set.
 */
json_t *rf_json_load_object(const char *buf, size_t len, const rf_limits_t *lim,
                            rf_rejection_t *rej);

/*
 * Streaming parses (yajl) that take only what the tree parser takes, with
 * the same values, and decline the rest; the tree parser then parses the
 * value again and words any rejection. See codec_json_flat.c.
 */

/** A yajl run over one text: its callbacks' context embeds it. */
typedef struct rf_json_yajl {
        yajl_handle h; /* while the run lasts */
        size_t end;    /* bytes up to the end of the top value */
} rf_json_yajl_t;

/** For the callback that closes the top value: where it ends. */
void rf_json_yajl_end(rf_json_yajl_t *y);

/**
 * Runs yajl with \p cb and \p ctx over \p buf. @returns 1 if yajl read it
 * as jansson would tokenise it: no backslash (no escapes to decode, every
 * string a slice of \p buf), no \v or \f (white space to yajl, not to
 * jansson), no callback refused, and white space only after the top value
 * (yajl takes an unfinished token there, `{}"`, for the end of the text;
 * jansson refuses it; rf_json_yajl_end() must have marked it). Else 0, also
 * for a NULL \p buf.
 */
int rf_json_yajl_run(rf_json_yajl_t *y, const yajl_callbacks *cb, void *ctx,
                     const char *buf, size_t len);

/** Reads the JSON number text \p s[0..n) as jansson does: an integer
 *  through long long (so "-0" is +0), anything else through strtod.
 *  @returns 0 and *out, or -1 where jansson fails (out of range). */
int rf_json_number(const char *s, size_t n, double *out);

/** A top-level value of a flat object. */
typedef enum {
        RF_JV_ABSENT, /* no such field */
        RF_JV_NULL,
        RF_JV_STRING, /* s[0..len), a slice of the parsed text */
        RF_JV_TRUE,
        RF_JV_FALSE,
        RF_JV_OTHER, /* a number (objects and arrays are declined) */
} rf_jv_kind_t;

typedef struct rf_jv {
        rf_jv_kind_t kind;
        const char *s;
        size_t len;
} rf_jv_t;

#define RF_JSON_FLAT_MAX 16

/** The fields of a flat object, in text order. */
typedef struct rf_json_flat {
        struct {
                const char *name;
                size_t name_len;
                rf_jv_t v;
        } f[RF_JSON_FLAT_MAX];
        int cnt;
} rf_json_flat_t;

/**
 * Parses \p buf as an object whose values are all scalars, within \p lim.
 * Declines (1) anything rf_json_load_object() would refuse and anything it
 * might read differently: escapes, a nested value, a repeated key, invalid
 * UTF-8, a number out of range, more than RF_JSON_FLAT_MAX fields.
 * @returns 0 with \p out filled (strings point into \p buf), or 1.
 */
int rf_json_flat_parse(const char *buf, size_t len, const rf_limits_t *lim,
                       rf_json_flat_t *out);

/** The value of field \p name (kind RF_JV_ABSENT when there is none). */
rf_jv_t rf_json_flat_get(const rf_json_flat_t *fl, const char *name);

/** rf_json_flat_get()'s classes for jansson's value \p v (may be NULL):
 *  strings point into the tree. */
rf_jv_t rf_json_jv(json_t *v);

/** Appends \p s as a quoted, escaped JSON string (control characters as
 *  \u00XX; \p s is UTF-8, as every id parsed from JSON is). */
void rf_json_str(rf_buf_t *out, const char *s);

/** Appends \p v as "%.15g" prints it (integers without printf). */
void rf_json_num(rf_buf_t *out, double v);

/**
 * Parse arenas. jansson allocates every object, hashtable, key and string
 * on its own: about a thousand mallocs and frees for a 100-item list, an
 * eighth of a bulk load. Between rf_json_arena_begin() and
 * rf_json_arena_end() the calling thread's jansson allocations come from a
 * bump arena instead and its frees cost nothing; the end drops them all at
 * once. Every value made in between must be released (json_decref) before
 * the end, and none may outlive it. Other threads, and jansson outside a
 * begin/end pair, allocate as before. Pairs nest: only the outermost one
 * opens and drops the arena.
 */
void rf_json_arena_begin(void);
void rf_json_arena_end(void);

/** Bytes the calling thread's open arena holds (0 when none): for tests. */
size_t rf_json_arena_bytes(void);

#endif /* RECFRESH_CODEC_JSON_H */
