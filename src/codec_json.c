/*
 * recfresh - the shared first step of every JSON codec (see codec_json.h).
 */
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/codec_json.h"
#include "recfresh/event.h"

/* ---- parse arenas (see codec_json.h) -------------------------------------*/

#define ARENA_CHUNK ((size_t)64 << 10)
#define ARENA_KEEP  (4 * ARENA_CHUNK) /* largest chunk a thread keeps */

typedef struct achunk {
        struct achunk *next;
        size_t size, used; /* bytes of data[] */
        alignas(max_align_t) char data[];
} achunk_t;

/* The calling thread's open arena: its newest chunk first, and how deep
 * the begin/end pairs nest. */
static _Thread_local achunk_t *arena_head;
static _Thread_local int arena_depth;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void *arena_malloc(size_t size)
{
        achunk_t *c = arena_head;
        size_t need =
            (size + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);

        if (!arena_depth)
                return malloc(size);
        if (!c || c->size - c->used < need) {
                size_t sz =
                    c && c->size * 2 > ARENA_CHUNK ? c->size * 2 : ARENA_CHUNK;
                if (sz < need)
                        sz = need;
                if (!(c = malloc(sizeof(*c) + sz)))
                        return NULL; /* jansson reports it */
                c->next = arena_head;
                c->size = sz;
                c->used = 0;
                arena_head = c;
        }
        void *p = c->data + c->used;
        c->used += need;
        return p;
}

static void arena_free(void *p)
{
        /* A value from the open arena goes with it at the end. Anything
         * else was allocated outside one, by malloc. */
        for (achunk_t *c = arena_depth ? arena_head : NULL; p && c; c = c->next)
                if ((char *)p >= c->data && (char *)p < c->data + c->size)
                        return;
        free(p);
}

static void arena_install(void)
{
        /* Safe at any time, even with values alive: outside an arena both
         * functions are malloc and free. */
        json_set_alloc_funcs(arena_malloc, arena_free);
}

void rf_json_arena_begin(void)
{
        pthread_once(&arena_once, arena_install);
        arena_depth++;
}

void rf_json_arena_end(void)
{
        if (!arena_depth || --arena_depth)
                return;
        /* One chunk is kept for the next parse, emptied. Under
         * AddressSanitizer all go, so a value used after the end is
         * caught as a use after free. */
        achunk_t *keep = NULL;
#ifndef __SANITIZE_ADDRESS__
        for (achunk_t *c = arena_head; c; c = c->next)
                if (c->size <= ARENA_KEEP && (!keep || c->size > keep->size))
                        keep = c;
#endif
        while (arena_head) {
                achunk_t *c = arena_head;
                arena_head = c->next;
                if (c != keep)
                        free(c);
        }
        if (keep) {
                keep->next = NULL;
                keep->used = 0;
                arena_head = keep;
        }
}

size_t rf_json_arena_bytes(void)
{
        size_t n = 0;

        for (achunk_t *c = arena_depth ? arena_head : NULL; c; c = c->next)
                n += c->used;
        return n;
}

/* Copies jansson's error text keeping printable ASCII only: it can quote
 * the record ("near '...'"), which may be anything. */
static void safe_copy(char *dst, size_t size, const char *src)
{
        size_t i = 0;

        for (; src[i] && i + 1 < size; i++)
                dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
        dst[i] = '\0';
}

json_t *rf_json_load_object(const char *buf, size_t len, const rf_limits_t *lim,
                            rf_rejection_t *rej)
{
        json_error_t jerr;
        char text[sizeof(jerr.text)];
        json_t *root;

        if (len > lim->max_record_bytes) {
                rf_reject(rej, RF_REJ_TOO_LARGE,
                          "record of %zu bytes is over the limit of %zu", len,
                          lim->max_record_bytes);
                return NULL;
        }
        if (rf_json_too_deep(buf, len, lim->max_json_depth)) {
                rf_reject(rej, RF_REJ_TOO_DEEP,
                          "JSON nested deeper than %d levels",
                          lim->max_json_depth);
                return NULL;
        }
        /* JSON_ALLOW_NUL: "\u0000" in an id is a bad value we name, not a
         * parse error. Duplicate keys are refused: parsers disagree on
         * which one wins. */
        root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                          &jerr);
        if (!root) {
                safe_copy(text, sizeof(text), jerr.text);
                rf_reject(rej, RF_REJ_INVALID_JSON,
                          "invalid JSON at byte %d: %s", jerr.position, text);
                return NULL;
        }
        if (!json_is_object(root)) {
                json_decref(root);
                rf_reject(rej, RF_REJ_INVALID_JSON, "not a JSON object");
                return NULL;
        }
        return root;
}

void rf_json_num(rf_buf_t *out, double v)
{
        /* Whole numbers below 10^15 print as "%.15g" prints them: their
         * digits, no exponent ("-0" keeps its sign: printf path). */
        if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v &&
            !(v == 0 && signbit(v))) {
                int64_t i = (int64_t)v;
                if (i < 0) {
                        rf_buf_append(out, "-", 1);
                        rf_buf_put_dec(out, (uint64_t)-i);
                } else {
                        rf_buf_put_dec(out, (uint64_t)i);
                }
                return;
        }
        rf_buf_printf(out, "%.15g", v);
}

void rf_json_str(rf_buf_t *out, const char *s)
{
        const char *run = s; /* bytes not yet appended */

        rf_buf_append(out, "\"", 1);
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c != '"' && c != '\\' && c >= 0x20 && c != 0x7f)
                        continue;
                rf_buf_append(out, run, (size_t)(s - run));
                if (c == '"' || c == '\\') {
                        char esc[2] = { '\\', (char)c };
                        rf_buf_append(out, esc, 2);
                } else {
                        rf_buf_printf(out, "\\u%04x", c);
                }
                run = s + 1;
        }
        rf_buf_append(out, run, (size_t)(s - run));
        rf_buf_append(out, "\"", 1);
}
