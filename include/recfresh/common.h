/*
 * recfresh - common definitions shared by every module: error codes,
 * rejection reasons for bad input, time helpers and a growable byte buffer.
 *
 * Conventions (see ../shared/STYLE.md):
 *  - functions return 0 (RF_OK) on success or a negative RF_E* code;
 *  - a human-readable message goes into the caller's errstr buffer;
 *  - constructors return NULL on failure and fill errstr.
 */
#ifndef RECFRESH_COMMON_H
#define RECFRESH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RF_VERSION "0.1.0"

#if defined(__GNUC__)
#define RF_PRINTF(fmt_idx, arg_idx)                                            \
        __attribute__((format(printf, fmt_idx, arg_idx)))
#define RF_UNUSED __attribute__((unused))
#else
#define RF_PRINTF(fmt_idx, arg_idx)
#define RF_UNUSED
#endif

#define RF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/** Error codes: 0 or negative. */
typedef enum rf_err {
        RF_OK = 0,
        RF_EINVAL = -1,    /* bad argument or bad input */
        RF_ENOENT = -2,    /* not found */
        RF_ENOMEM = -3,    /* out of memory */
        RF_ESTORE = -4,    /* RocksDB reported an error */
        RF_EKAFKA = -5,    /* librdkafka reported an error */
        RF_EIO = -6,       /* file or socket I/O failed */
        RF_ESTALE = -7,    /* older than the state we hold: ignored */
        RF_ECONFIG = -8,   /* bad configuration */
        RF_ETOOBIG = -9,   /* over a configured limit */
        RF_EBLOCKED = -10, /* refused by policy (e.g. consent revoked) */
} rf_err_t;

/** @returns a static string naming \p err. */
const char *rf_err2str(int err);

/**
 * Why a record was rejected to the dead-letter topic. Each has a stable
 * snake_case name (rf_reject2str) used in DLQ records and metrics.
 */
typedef enum rf_reject {
        RF_REJ_NONE = 0,
        RF_REJ_INVALID_JSON,   /* not parseable JSON, or not an object */
        RF_REJ_MISSING_FIELD,  /* a required field is absent */
        RF_REJ_BAD_TYPE,       /* a field has the wrong JSON type */
        RF_REJ_BAD_VALUE,      /* right type, unacceptable value */
        RF_REJ_UNKNOWN_TYPE,   /* "type" is not one this topic carries */
        RF_REJ_BAD_TIMESTAMP,  /* not an RFC 3339 timestamp */
        RF_REJ_TOO_LARGE,      /* record over max_record_bytes */
        RF_REJ_TOO_MANY_ITEMS, /* list over max_items_per_list */
        RF_REJ_ID_TOO_LONG,    /* an id or key over max_id_len */
        RF_REJ_TOO_DEEP,       /* JSON nesting over max_json_depth */
        RF_REJ_KEY_MISMATCH,   /* message key differs from the key field */
        RF_REJ_UNKNOWN_TOPIC,  /* record from a topic we do not read */
        RF_REJ__CNT
} rf_reject_t;

/** @returns the stable snake_case name of \p r, e.g. "missing_field". */
const char *rf_reject2str(rf_reject_t r);

/** A rejection: reason code plus a message naming the field. */
typedef struct rf_rejection {
        rf_reject_t reason; /* RF_REJ_NONE when accepted */
        char msg[256];      /* e.g. "field \"item_id\": expected string" */
} rf_rejection_t;

/** Sets \p rej to \p reason with a printf-style message. */
void rf_reject(rf_rejection_t *rej, rf_reject_t reason, const char *fmt, ...)
    RF_PRINTF(3, 4);

/** Limits applied to every input record (from config, see config.h). */
typedef struct rf_limits {
        size_t max_record_bytes;   /* whole value, bytes */
        size_t max_items_per_list; /* entries in one list */
        size_t max_id_len;         /* any id or key, bytes */
        int max_json_depth;        /* nesting of objects and arrays */
} rf_limits_t;

/** Default limits, used when no config is given (tests, fuzzers). */
extern const rf_limits_t rf_limits_default;

/* Time: all timestamps are int64 milliseconds since the Unix epoch, UTC. */

/** @returns the wall clock in ms since the epoch. */
int64_t rf_now_ms(void);

/** @returns a monotonic clock in ms (for deadlines and latencies). */
int64_t rf_mono_ms(void);

/** @returns 1 if no process has \p pid (gone: killed or exited), 0 if one
 *  may (running, or not ours to signal). A process in another pid
 *  namespace looks gone. */
int rf_pid_gone(long pid);

/** @returns a monotonic clock in ns. */
int64_t rf_mono_ns(void);

/** @returns whether the monotonic \p deadline_ns (rf_mono_ns()) has
 *  passed; a deadline of 0 (none) never does. */
int rf_mono_past(int64_t deadline_ns);

/**
 * Parses an RFC 3339 timestamp ("2026-11-22T09:14:00Z",
 * "2026-11-22T09:14:00.123+01:00") into ms since the epoch.
 * Fractions beyond milliseconds are truncated.
 * @returns 0 or RF_EINVAL.
 */
int rf_time_parse(const char *s, int64_t *msp);

/**
 * Formats \p ms as RFC 3339 UTC with milliseconds
 * ("2026-11-22T09:14:00.000Z") into \p buf (at least 32 bytes).
 * @returns \p buf.
 */
char *rf_time_format(int64_t ms, char *buf, size_t size);

/** A growable byte buffer. Zero-initialise before use. */
typedef struct rf_buf {
        char *data;  /* owned, NUL-terminated when len > 0 */
        size_t len;  /* bytes used */
        size_t size; /* bytes allocated */
} rf_buf_t;

/** Appends \p len bytes; aborts on out-of-memory. */
void rf_buf_append(rf_buf_t *b, const void *p, size_t len);
/** The buffer size \p b will have once \p extra more bytes (and the NUL)
 *  are appended: it grows by doubling. */
size_t rf_buf_capacity_for(const rf_buf_t *b, size_t extra);
/** Appends a printf-style string; aborts on out-of-memory. */
void rf_buf_printf(rf_buf_t *b, const char *fmt, ...) RF_PRINTF(2, 3);
/** Appends the NUL-terminated \p s (without its NUL). */
void rf_buf_puts(rf_buf_t *b, const char *s);
/** Appends \p v in decimal, as "%llu" would (without printf's cost). */
void rf_buf_put_dec(rf_buf_t *b, uint64_t v);
/** Appends an unsigned LEB128 varint. */
void rf_buf_put_varint(rf_buf_t *b, uint64_t v);
/** Appends varint length + bytes + NUL (so decoders can point into it). */
void rf_buf_put_str(rf_buf_t *b, const char *s);
/** rf_buf_put_str() of the \p len bytes at \p s (which may be NULL if 0). */
void rf_buf_put_strn(rf_buf_t *b, const char *s, size_t len);
/** Appends a big-endian 64-bit integer (sorts correctly as bytes). */
void rf_buf_put_be64(rf_buf_t *b, uint64_t v);
/** @returns 1 if s[0..len) is valid UTF-8 (RFC 3629: no overlong forms,
 *  no surrogates, nothing past U+10FFFF). */
int rf_utf8_valid(const unsigned char *s, size_t len);
/** Empties the buffer, keeping its allocation. */
void rf_buf_reset(rf_buf_t *b);
/** Frees the buffer's memory. */
void rf_buf_free(rf_buf_t *b);

/** A read cursor over encoded bytes (the inverse of the rf_buf_put_*). */
typedef struct rf_cur {
        const char *p;   /* next byte */
        const char *end; /* one past the last byte */
        int err;         /* set to RF_EINVAL on any overrun; sticky */
} rf_cur_t;

uint64_t rf_cur_varint(rf_cur_t *c);
/** @returns a pointer into the buffer to a NUL-terminated string, or "" on
 *  error (c->err set). Strings encoded from NULL decode as "". */
const char *rf_cur_str(rf_cur_t *c, size_t *lenp);
uint64_t rf_cur_be64(rf_cur_t *c);
/** Raw 8 bytes as a double (host byte order, written by rf_buf_append). */
double rf_cur_double(rf_cur_t *c);
uint8_t rf_cur_u8(rf_cur_t *c);

/** Writes \p n bytes at \p p as 2n lowercase hex digits and a NUL into
 *  \p out (2n + 1 bytes). @returns out. */
char *rf_hex(const void *p, size_t n, char *out);

/** Frees a NULL-terminated array of strings and the strings. */
void rf_strv_free(char **v);

/** strdup that aborts on out-of-memory; NULL in gives NULL out. */
char *rf_strdup(const char *s);
/** The \p n bytes at \p s, NUL-terminated, in a new allocation. */
char *rf_strndup(const char *s, size_t n);

/** Allocation helpers that abort on out-of-memory (like Redis' zmalloc). */
void *rf_malloc(size_t size);
void *rf_calloc(size_t n, size_t size);
void *rf_realloc(void *p, size_t size);

/**
 * A small open-addressing set of strings it does not own (item ids of the
 * lists a read serves), for duplicate filtering. Sized up front for every
 * string it will get, so it never fills.
 */
#define RF_IDSET_INLINE 256 /* slots held in the struct: a 100-item list */

typedef struct rf_idset {
        const char **slot;
        size_t mask, cnt;
        /* A set this small needs no allocation: one per list read was a
         * fiftieth of replay, and more of its page faults. */
        const char *inl[RF_IDSET_INLINE];
} rf_idset_t;

/** Prepares \p set for up to \p n strings. Free with rf_idset_free().
 *  The set must not be copied: its slots may live in it. */
void rf_idset_init(rf_idset_t *set, size_t n);
/** @returns 1 if \p id was already in the set, else adds it and returns 0.
 *  \p id must outlive the set. */
int rf_idset_add(rf_idset_t *set, const char *id);
void rf_idset_free(rf_idset_t *set);

#endif /* RECFRESH_COMMON_H */
