/*
 * recfresh - the HTTP API (libmicrohttpd): a read-only JSON API over the
 * serving policy (serve.h), Prometheus metrics and health checks.
 *
 *   GET  /v1/lists/{subject_id}/{surface}?context=C&limit=N&region=R
 *   POST /v1/lists:batchGet   {"requests":[{subject_id, surface, context?,
 *                              limit?, region?}, ...]}  (at most 100)
 *   GET  /metrics             Prometheus text format 0.0.4
 *   GET  /healthz             200 while the process serves requests
 *   GET  /readyz              200 once ready (see rf_http_conf_t.ready),
 *                             with the owned partitions' rebuild state
 *   GET  /v1/routing/{subject_id}  the instance owning the subject
 *                             (cluster.h): {subject_id, partition,
 *                             partitions, state, owner:{instance_id,
 *                             http}}; 503 while no owner is known
 *
 * Reads (lists, batchGet) of a subject another instance owns answer 307
 * Temporary Redirect with Location: http://<owner>/<same path and query>;
 * of a subject this instance is still rebuilding, or whose owner is not
 * known yet, 503 with Retry-After: 1. A batchGet whose subjects are not all
 * served here answers 307 when they all have one other owner, else 421
 * with each request's owner (split it with /v1/routing).
 *
 * Path segments and parameters are percent-decoded (in the path, '+' is a
 * plus; in the query, a space). Errors are JSON:
 *   {"error":{"code":"bad_request","message":"limit: ..."}}
 * with 400 (bad parameter or body), 404 (no such endpoint), 405 (method;
 * with an Allow header), 413 (body over http.max_body_bytes), 414 (path or
 * parameter too long), 415 (body not JSON), 500 (store error), 503 with
 * Retry-After (the buffered bodies of all connections would pass
 * http.max_body_total_bytes; a body still arriving http.body_timeout
 * after its headers has its connection closed). An unknown
 * surface is not an error: it is served the fallback, or empty.
 *
 * Requests run on a pool of http.threads threads; each read runs against
 * the store beside the writer (RocksDB reads are thread-safe).
 */
#ifndef RECFRESH_HTTP_H
#define RECFRESH_HTTP_H

#include "recfresh/cluster.h"
#include "recfresh/common.h"
#include "recfresh/config.h"
#include "recfresh/serve.h"

/** Most keys in one batchGet. */
#define RF_HTTP_BATCH_MAX 100
/** Longest request path in bytes (longer: 414). */
#define RF_HTTP_MAX_PATH 2048
/** Most query parameters in one request. */
#define RF_HTTP_MAX_PARAMS 16

typedef struct rf_http rf_http_t;

/** What the server answers from. Callbacks run on HTTP threads. */
typedef struct rf_http_conf {
        const char *addr;     /* "host:port", "[v6addr]:port" or ":port" (all
                               * interfaces); port 0 = any free port */
        rf_serve_env_t serve; /* store, config (limits, surfaces), hook */
        /* @returns 1 if ready; else 0 with a reason in \p why. NULL: ready
         * whenever serving. */
        int (*ready)(void *opaque, char *why, size_t why_size);
        /* Appends /readyz's "partitions" JSON array (cluster.h). May be
         * NULL. */
        void (*ready_parts)(void *opaque, rf_buf_t *out);
        /* Who owns a subject (cluster.h): reads of subjects owned
         * elsewhere answer 307 to the owner, of subjects being rebuilt or
         * without a known owner 503. NULL: every subject is local. */
        void (*owner)(void *opaque, const char *subject_id, rf_owner_t *out);
        /* Appends process gauges (lag, store) to /metrics. May be NULL. */
        void (*metrics)(void *opaque, rf_buf_t *out);
        /* Admin endpoints (POST /admin/v1/...): off (404) unless
         * admin_token is set; every call must carry "Authorization: Bearer
         * <token>", compared in constant time. \p admin runs an action
         * ("rollback": a1 = run or NULL, a2 = to or NULL; "refresh": a1 =
         * "full"|"incremental", a2 = run id or NULL; "checkpoint": a1 =
         * a directory that must not exist) and returns 0
         * (accepted, msg says what), RF_EINVAL (400), RF_EBLOCKED (409) or
         * another error (500). */
        const char *admin_token;
        int (*admin)(void *opaque, const char *action, const char *a1,
                     const char *a2, char *msg, size_t msg_size);
        void *opaque;
} rf_http_conf_t;

/**
 * Binds hc->addr and starts serving with hc->serve.conf's http.* limits.
 * \p hc is copied; what it points to must outlive the server.
 * @returns the server, or NULL with errstr set (e.g. "127.0.0.1:8080:
 *          bind: Address already in use").
 */
rf_http_t *rf_http_start(const rf_http_conf_t *hc, char *errstr,
                         size_t errstr_size);

/** @returns the bound address as "host:port" (the real port for 0). */
const char *rf_http_addr(const rf_http_t *h);

/** @returns the bound port. */
int rf_http_port(const rf_http_t *h);

/** Stops accepting, finishes requests in flight and frees the server.
 *  NULL is a no-op. */
void rf_http_stop(rf_http_t *h);

/**
 * Percent-decodes \p in[0..len) into \p out (at least len + 1 bytes), NUL
 * terminated; with \p plus_space, '+' decodes to a space.
 * @returns the decoded length, or -1 on a bad escape, an encoded NUL or
 *          invalid UTF-8.
 */
long rf_http_pct_decode(const char *in, size_t len, char *out, int plus_space);

/**
 * @returns 1 if Content-Type value \p ct is application/json (any case),
 *          alone or followed by white space and ';' parameters
 *          ("application/json; charset=utf-8"), else 0.
 */
int rf_http_json_type(const char *ct);

#endif /* RECFRESH_HTTP_H */
