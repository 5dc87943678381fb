/*
 * recfresh - what every JSON codec (codec_list.c, codec_event.c,
 * codec_run.c, codec_activity.c) does before it reads a single field: the
 * pre-parse limits, the parse itself with the same flags, and the "must be
 * an object" rule, each with the same rejection reasons and messages.
 */
#ifndef RECFRESH_CODEC_JSON_H
#define RECFRESH_CODEC_JSON_H

#include <jansson.h>

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
