/*
 * recfresh - the HTTP API (see http.h): socket setup, routing, request
 * limits, JSON errors and the handlers of each endpoint, on libmicrohttpd.
 *
 * MHD's own percent-decoding is turned off (an identity unescape callback)
 * so that a path is split on '/' before its segments are decoded: a
 * subject id holding "%2F" stays one segment. Query values are decoded
 * here too, with the same checks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "recfresh/codec_json.h"
#include "recfresh/http.h"
#include "recfresh/log.h"
#include "recfresh/metrics.h"

#define LISTS_PREFIX   "/v1/lists/"
#define BATCH_PATH     "/v1/lists:batchGet"
#define ROUTING_PREFIX "/v1/routing/"
#define ADMIN_PREFIX   "/admin/v1/"
#define CONN_MEMORY    (64 * 1024) /* per connection: request line, headers */
#define CONN_TIMEOUT   30          /* seconds a connection may idle */
#define LISTEN_BACKLOG 1024

/* Routes, for dispatch and for recfresh_http_requests_total{route}. */
enum route {
        R_LIST = 0,
        R_BATCH,
        R_METRICS,
        R_HEALTHZ,
        R_READYZ,
        R_ROUTING,
        R_ADMIN,
        R_OTHER,
        R__CNT
};

static const char *const route_names[R__CNT] = {
        [R_LIST] = "list",       [R_BATCH] = "batch_get",
        [R_METRICS] = "metrics", [R_HEALTHZ] = "healthz",
        [R_READYZ] = "readyz",   [R_ROUTING] = "routing",
        [R_ADMIN] = "admin",     [R_OTHER] = "other",
};

/* Status codes counted per route; anything else counts as the last. */
static const unsigned codes[] = { 200, 202, 307, 400, 401, 404, 405, 409,
                                  413, 414, 415, 421, 500, 503, 0 };
#define CODE_CNT RF_ARRAY_SIZE(codes)

struct rf_http {
        rf_http_conf_t hc;
        struct MHD_Daemon *mhd;
        char addr[128]; /* bound host:port */
        int port;
        size_t max_body;
        /* Request bodies of all connections together: the memory their
         * buffers hold, reserved as the bytes come. */
        size_t max_body_total;
        atomic_size_t body_bytes;
        int64_t body_timeout_ms; /* a body's time to arrive, from headers */
        atomic_uint_fast64_t body_timeouts;
        atomic_uint_fast64_t requests[R__CNT][CODE_CNT];
};

/* One request's state, kept across MHD's calls for it. */
typedef struct req {
        enum route route;
        rf_buf_t body;
        int replied;     /* a response was queued early */
        int dropped;     /* the body passed max_body */
        size_t drained;  /* bytes of a body no route takes, dropped */
        size_t reserved; /* of h->body_bytes, for this body */
        int busy;        /* the bodies in flight had no room for this one */
        int64_t body_by; /* monotonic ms by which the body must be in */
        char **strs;     /* decoded strings, freed at the end */
        size_t str_cnt;
} req_t;

/* ---- decoding -----------------------------------------------------------*/

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

long rf_http_pct_decode(const char *in, size_t len, char *out, int plus_space)
{
        size_t o = 0;

        for (size_t i = 0; i < len; i++) {
                char c = in[i];
                if (c == '%') {
                        int hi, lo;
                        if (i + 2 >= len)
                                return -1;
                        hi = hexval(in[i + 1]);
                        lo = hexval(in[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -1;
                        c = (char)(hi * 16 + lo);
                        if (c == '\0')
                                return -1;
                        i += 2;
                } else if (c == '+' && plus_space) {
                        c = ' ';
                } else if (c == '\0') {
                        return -1;
                }
                out[o++] = c;
        }
        out[o] = '\0';
        if (!rf_utf8_valid((const unsigned char *)out, o))
                return -1;
        return (long)o;
}

/* ---- responses ----------------------------------------------------------*/

static size_t code_index(unsigned status)
{
        for (size_t i = 0; i < CODE_CNT - 1; i++)
                if (codes[i] == status)
                        return i;
        return CODE_CNT - 1;
}

/* Queues \p body (taken) as the response, with header \p hname: \p hval
 * when both are set. */
static enum MHD_Result reply_hdr(rf_http_t *h, struct MHD_Connection *conn,
                                 req_t *rq, unsigned status, const char *ctype,
                                 rf_buf_t *body, const char *hname,
                                 const char *hval)
{
        struct MHD_Response *resp;
        enum MHD_Result r;

        if (!body->data) {
                body->data = rf_strdup("");
                body->len = 0;
        }
        resp = MHD_create_response_from_buffer(body->len, body->data,
                                               MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                rf_buf_free(body);
                return MHD_NO;
        }
        body->data = NULL;
        body->len = body->size = 0;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                                "no-store");
        if (hname && hval)
                MHD_add_response_header(resp, hname, hval);
        r = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        atomic_fetch_add_explicit(&h->requests[rq->route][code_index(status)],
                                  1, memory_order_relaxed);
        rq->replied = 1;
        return r;
}

static enum MHD_Result reply(rf_http_t *h, struct MHD_Connection *conn,
                             req_t *rq, unsigned status, const char *ctype,
                             rf_buf_t *body, const char *allow)
{
        return reply_hdr(h, conn, rq, status, ctype, body,
                         MHD_HTTP_HEADER_ALLOW, allow);
}

static enum MHD_Result reply_json(rf_http_t *h, struct MHD_Connection *conn,
                                  req_t *rq, unsigned status, rf_buf_t *body)
{
        return reply(h, conn, rq, status, "application/json", body, NULL);
}

static enum MHD_Result reply_error(rf_http_t *h, struct MHD_Connection *conn,
                                   req_t *rq, unsigned status,
                                   const char *allow, const char *fmt, ...)
    RF_PRINTF(6, 7);

static enum MHD_Result reply_error(rf_http_t *h, struct MHD_Connection *conn,
                                   req_t *rq, unsigned status,
                                   const char *allow, const char *fmt, ...)
{
        const char *code;
        rf_buf_t body = { 0 };
        char msg[512];
        va_list ap;

        switch (status) {
        case MHD_HTTP_NOT_FOUND:
                code = "not_found";
                break;
        case MHD_HTTP_METHOD_NOT_ALLOWED:
                code = "method_not_allowed";
                break;
        case MHD_HTTP_CONTENT_TOO_LARGE:
                code = "payload_too_large";
                break;
        case MHD_HTTP_URI_TOO_LONG:
                code = "uri_too_long";
                break;
        case MHD_HTTP_UNSUPPORTED_MEDIA_TYPE:
                code = "unsupported_media_type";
                break;
        case MHD_HTTP_INTERNAL_SERVER_ERROR:
                code = "internal";
                break;
        case MHD_HTTP_SERVICE_UNAVAILABLE:
                code = "unavailable";
                break;
        case MHD_HTTP_UNAUTHORIZED:
                code = "unauthorized";
                break;
        case MHD_HTTP_CONFLICT:
                code = "conflict";
                break;
        default:
                code = "bad_request";
        }
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        rf_buf_printf(&body, "{\"error\":{\"code\":\"%s\",\"message\":", code);
        rf_json_str(&body, msg);
        rf_buf_printf(&body, "}}\n");
        if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
                return reply_hdr(h, conn, rq, status, "application/json", &body,
                                 MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return reply(h, conn, rq, status, "application/json", &body, allow);
}

/* ---- request bodies in flight ---------------------------------------------*/

/* Reserves \p n more bytes of the budget of all request bodies for \p rq.
 * @returns 0, or -1 (nothing reserved) if they would pass it. A body is
 * charged what its buffer holds (rf_buf_t doubles), as its bytes arrive:
 * a client that declares a megabyte and sends a byte a second holds a
 * byte's worth, and for http.body_timeout at most. */
static int body_reserve(rf_http_t *h, req_t *rq, size_t n)
{
        size_t cur = atomic_load(&h->body_bytes);

        do {
                if (n > h->max_body_total - cur)
                        return -1;
        } while (!atomic_compare_exchange_weak(&h->body_bytes, &cur, cur + n));
        rq->reserved += n;
        return 0;
}

static void body_release(rf_http_t *h, req_t *rq)
{
        atomic_fetch_sub(&h->body_bytes, rq->reserved);
        rq->reserved = 0;
}

static enum MHD_Result reply_busy(rf_http_t *h, struct MHD_Connection *conn,
                                  req_t *rq)
{
        return reply_error(h, conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
                           "request bodies in flight use all %zu bytes of "
                           "http.max_body_total_bytes; retry",
                           h->max_body_total);
}

/* ---- parameters ---------------------------------------------------------*/

int rf_http_json_type(const char *ct)
{
        static const char json[] = "application/json";

        if (strncasecmp(ct, json, sizeof(json) - 1) != 0)
                return 0;
        ct += sizeof(json) - 1;
        while (*ct == ' ' || *ct == '\t')
                ct++;
        return *ct == '\0' || *ct == ';'; /* "application/jsonx" is not */
}

/* A request's parsed read: what rf_serve_list needs. */
typedef struct read_args {
        rf_serve_req_t req;
} read_args_t;

static char *keep(req_t *rq, char *s)
{
        rq->strs = rf_realloc(rq->strs, (rq->str_cnt + 1) * sizeof(char *));
        rq->strs[rq->str_cnt++] = s;
        return s;
}

/* Decodes one id-like value. @returns 0, or the HTTP status to answer with
 * a message in \p err. */
static unsigned decode_id(req_t *rq, const char *what, const char *raw,
                          size_t len, size_t max, int plus_space,
                          int allow_empty, const char **outp, char *err,
                          size_t err_size)
{
        char *out;
        long n;

        if (len > 3 * max) { /* cannot decode to max bytes or fewer */
                snprintf(err, err_size, "%s: longer than %zu bytes", what, max);
                return MHD_HTTP_URI_TOO_LONG;
        }
        out = keep(rq, rf_malloc(len + 1));
        n = rf_http_pct_decode(raw, len, out, plus_space);
        if (n < 0) {
                snprintf(err, err_size,
                         "%s: bad percent-encoding, encoded NUL or invalid "
                         "UTF-8",
                         what);
                return MHD_HTTP_BAD_REQUEST;
        }
        if ((size_t)n > max) {
                snprintf(err, err_size, "%s: longer than %zu bytes", what, max);
                return MHD_HTTP_URI_TOO_LONG;
        }
        if (n == 0 && !allow_empty) {
                snprintf(err, err_size, "%s: must not be empty", what);
                return MHD_HTTP_BAD_REQUEST;
        }
        *outp = out;
        return 0;
}

/* Parses a limit: decimal digits, 1..max. @returns 0 or -1. */
static int parse_limit(const char *s, int64_t max, size_t *out)
{
        int64_t v = 0;

        if (!*s)
                return -1;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -1;
                v = v * 10 + (*s - '0');
                if (v > max)
                        return -1;
        }
        if (v < 1)
                return -1;
        *out = (size_t)v;
        return 0;
}

typedef struct qparams {
        const char *key[RF_HTTP_MAX_PARAMS];
        const char *val[RF_HTTP_MAX_PARAMS];
        size_t cnt;
        int overflow;
} qparams_t;

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind,
                                     const char *key, const char *value)
{
        qparams_t *q = cls;

        (void)kind;
        if (q->cnt == RF_HTTP_MAX_PARAMS) {
                q->overflow = 1;
                return MHD_NO;
        }
        q->key[q->cnt] = key;
        q->val[q->cnt] = value ? value : "";
        q->cnt++;
        return MHD_YES;
}

/* ---- handlers -----------------------------------------------------------*/

/* Serves one read into \p out. @returns 0 or a store error. */
static int serve_one(rf_http_t *h, const rf_serve_req_t *sreq, rf_buf_t *out)
{
        rf_serve_result_t res;
        int r = rf_serve_list(&h->hc.serve, sreq, &res);

        if (r == 0)
                rf_serve_result_to_json(sreq, &res, out);
        rf_serve_result_clear(&res);
        return r;
}

/* ---- ownership (cluster.h) ----------------------------------------------*/

static void owner_of(rf_http_t *h, const char *subject, rf_owner_t *o)
{
        if (h->hc.owner) {
                h->hc.owner(h->hc.opaque, subject, o);
        } else {
                memset(o, 0, sizeof(*o));
                o->state = RF_OWNER_LOCAL;
                o->partition = -1;
        }
}

static void owner_json(rf_buf_t *out, const char *subject, const rf_owner_t *o)
{
        rf_buf_printf(out, "{\"subject_id\":");
        rf_json_str(out, subject);
        rf_buf_printf(out, ",\"partition\":");
        if (o->partition >= 0)
                rf_buf_printf(out, "%d", (int)o->partition);
        else
                rf_buf_printf(out, "null");
        rf_buf_printf(out, ",\"partitions\":%d,\"state\":\"%s\",\"owner\":",
                      (int)o->partitions, rf_owner_state2str(o->state));
        if (o->state == RF_OWNER_UNKNOWN) {
                rf_buf_printf(out, "null}");
                return;
        }
        rf_buf_printf(out, "{\"instance_id\":");
        rf_json_str(out, o->instance_id);
        rf_buf_printf(out, ",\"http\":");
        rf_json_str(out, o->addr);
        rf_buf_printf(out, "}}");
}

/* Answers a read this instance does not serve: 307 to the owner, or 503
 * (rebuilding, owner unknown or without an address). \p target is the raw
 * path and query to redirect to. */
static enum MHD_Result reply_not_here(rf_http_t *h, struct MHD_Connection *conn,
                                      req_t *rq, const char *subject,
                                      const rf_owner_t *o, const char *target)
{
        rf_buf_t body = { 0 };
        char *loc;

        if (o->state == RF_OWNER_REMOTE && *o->addr) {
                size_t n = strlen(o->addr) + strlen(target) + 8;
                loc = keep(rq, rf_malloc(n));
                snprintf(loc, n, "http://%s%s", o->addr, target);
                rf_buf_printf(&body, "{\"redirect\":");
                rf_json_str(&body, loc);
                rf_buf_printf(&body, ",\"routing\":");
                owner_json(&body, subject, o);
                rf_buf_printf(&body, "}\n");
                return reply_hdr(h, conn, rq, MHD_HTTP_TEMPORARY_REDIRECT,
                                 "application/json", &body,
                                 MHD_HTTP_HEADER_LOCATION, loc);
        }
        rf_buf_printf(&body, "{\"error\":{\"code\":\"unavailable\","
                             "\"message\":");
        rf_json_str(&body, o->state == RF_OWNER_REBUILDING
                               ? "partition being rebuilt on this instance; "
                                 "retry"
                           : o->state == RF_OWNER_REMOTE
                               ? "owner has no advertised HTTP address "
                                 "(http.advertise)"
                               : "no owner known for this subject yet "
                                 "(rebalance in progress); retry");
        rf_buf_printf(&body, ",\"routing\":");
        owner_json(&body, subject, o);
        rf_buf_printf(&body, "}}\n");
        return reply_hdr(h, conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE,
                         "application/json", &body, MHD_HTTP_HEADER_RETRY_AFTER,
                         "1");
}

static enum MHD_Result handle_routing(rf_http_t *h, struct MHD_Connection *conn,
                                      req_t *rq, const char *path)
{
        const char *rest = path + strlen(ROUTING_PREFIX), *subject;
        rf_buf_t body = { 0 };
        rf_owner_t o;
        char err[256];
        unsigned st;

        if (strchr(rest, '/'))
                return reply_error(h, conn, rq, MHD_HTTP_NOT_FOUND, NULL,
                                   "expected /v1/routing/{subject_id}");
        if ((st = decode_id(rq, "subject_id", rest, strlen(rest),
                            (size_t)h->hc.serve.conf->max_id_len, 0, 0,
                            &subject, err, sizeof(err))))
                return reply_error(h, conn, rq, st, NULL, "%s", err);
        owner_of(h, subject, &o);
        owner_json(&body, subject, &o);
        rf_buf_append(&body, "\n", 1);
        if (o.state == RF_OWNER_UNKNOWN)
                return reply_hdr(h, conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE,
                                 "application/json", &body,
                                 MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return reply_json(h, conn, rq, MHD_HTTP_OK, &body);
}

static enum MHD_Result handle_list(rf_http_t *h, struct MHD_Connection *conn,
                                   req_t *rq, const char *path)
{
        const rf_config_t *conf = h->hc.serve.conf;
        size_t max_id = (size_t)conf->max_id_len;
        const char *rest = path + strlen(LISTS_PREFIX), *slash;
        rf_serve_req_t sreq = { 0 };
        rf_buf_t body = { 0 };
        qparams_t q = { 0 };
        char err[256];
        unsigned st;

        slash = strchr(rest, '/');
        if (!slash || slash == rest || !slash[1] || strchr(slash + 1, '/'))
                return reply_error(h, conn, rq, MHD_HTTP_NOT_FOUND, NULL,
                                   "expected /v1/lists/{subject_id}/"
                                   "{surface}");
        if ((st =
                 decode_id(rq, "subject_id", rest, (size_t)(slash - rest),
                           max_id, 0, 0, &sreq.subject_id, err, sizeof(err))) ||
            (st = decode_id(rq, "surface", slash + 1, strlen(slash + 1), max_id,
                            0, 0, &sreq.surface, err, sizeof(err))))
                return reply_error(h, conn, rq, st, NULL, "%s", err);

        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_param,
                                  &q);
        if (q.overflow)
                return reply_error(h, conn, rq, MHD_HTTP_BAD_REQUEST, NULL,
                                   "more than %d query parameters",
                                   RF_HTTP_MAX_PARAMS);
        sreq.limit = (size_t)conf->http_default_limit;
        int seen[3] = { 0 };
        for (size_t i = 0; i < q.cnt; i++) {
                static const char *const names[3] = { "context", "limit",
                                                      "region" };
                const char *v = NULL;
                int k = -1;
                for (int j = 0; j < 3; j++)
                        if (!strcmp(q.key[i], names[j]))
                                k = j;
                if (k < 0)
                        return reply_error(
                            h, conn, rq, MHD_HTTP_BAD_REQUEST, NULL,
                            "unknown query parameter (expected context, "
                            "limit, region)");
                if (seen[k]++)
                        return reply_error(h, conn, rq, MHD_HTTP_BAD_REQUEST,
                                           NULL, "%s: given more than once",
                                           names[k]);
                if ((st = decode_id(rq, names[k], q.val[i], strlen(q.val[i]),
                                    max_id, 1, 1, &v, err, sizeof(err))))
                        return reply_error(h, conn, rq, st, NULL, "%s", err);
                if (k == 0)
                        sreq.context_key = v;
                else if (k == 2)
                        sreq.region = v;
                else if (parse_limit(v, conf->http_max_limit, &sreq.limit))
                        return reply_error(h, conn, rq, MHD_HTTP_BAD_REQUEST,
                                           NULL,
                                           "limit: expected an integer from "
                                           "1 to %lld",
                                           (long long)conf->http_max_limit);
        }

        rf_owner_t o;
        owner_of(h, sreq.subject_id, &o);
        if (o.state != RF_OWNER_LOCAL) {
                /* The same path and (raw) query on the owner. The query
                 * is still percent-encoded, but MHD made each '+' a space
                 * first: made '+' again (a space is no URL's). */
                rf_buf_t target = { 0 };
                rf_buf_printf(&target, "%s", path);
                for (size_t i = 0; i < q.cnt; i++) {
                        size_t at = target.len;
                        rf_buf_printf(&target, "%c%s=%s", i ? '&' : '?',
                                      q.key[i], q.val[i]);
                        for (size_t j = at; j < target.len; j++)
                                if (target.data[j] == ' ')
                                        target.data[j] = '+';
                }
                char *t = keep(rq, rf_malloc(target.len + 1));
                memcpy(t, target.data, target.len);
                t[target.len] = '\0';
                rf_buf_free(&target);
                return reply_not_here(h, conn, rq, sreq.subject_id, &o, t);
        }
        if (serve_one(h, &sreq, &body) != 0) {
                rf_buf_free(&body);
                return reply_error(h, conn, rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                   NULL, "store error while reading");
        }
        rf_buf_append(&body, "\n", 1);
        return reply_json(h, conn, rq, MHD_HTTP_OK, &body);
}

/* Reads a string member of a batch entry. @returns 0, or 400 / 414 (an
 * over-long id, as in a path) with a message in err. */
static unsigned batch_str(json_t *o, size_t idx, const char *name, int required,
                          size_t max, const char **out, char *err,
                          size_t err_size)
{
        json_t *v = json_object_get(o, name);

        *out = NULL;
        if (!v) {
                if (!required)
                        return 0;
                snprintf(err, err_size, "requests[%zu].%s: required", idx,
                         name);
                return MHD_HTTP_BAD_REQUEST;
        }
        if (!json_is_string(v) ||
            strlen(json_string_value(v)) != json_string_length(v)) {
                snprintf(err, err_size,
                         "requests[%zu].%s: expected a string without NUL", idx,
                         name);
                return MHD_HTTP_BAD_REQUEST;
        }
        if (json_string_length(v) > max) {
                snprintf(err, err_size,
                         "requests[%zu].%s: longer than %zu bytes", idx, name,
                         max);
                return MHD_HTTP_URI_TOO_LONG;
        }
        if (required && json_string_length(v) == 0) {
                snprintf(err, err_size, "requests[%zu].%s: must not be empty",
                         idx, name);
                return MHD_HTTP_BAD_REQUEST;
        }
        *out = json_string_value(v);
        return 0;
}

/* Parses the batch body into \p reqs (at most RF_HTTP_BATCH_MAX).
 * @returns 0, or 400 / 414 with a message in err. */
static unsigned batch_parse(rf_http_t *h, json_t *root, rf_serve_req_t *reqs,
                            size_t *cnt, char *err, size_t err_size)
{
        const rf_config_t *conf = h->hc.serve.conf;
        size_t max_id = (size_t)conf->max_id_len, i;
        json_t *arr, *o;
        const char *key;
        json_t *val;
        unsigned st;

        if (!json_is_object(root)) {
                snprintf(err, err_size, "body: expected a JSON object");
                return MHD_HTTP_BAD_REQUEST;
        }
        json_object_foreach(root, key, val)
        {
                if (strcmp(key, "requests")) {
                        snprintf(err, err_size,
                                 "body: unknown field (expected "
                                 "\"requests\")");
                        return MHD_HTTP_BAD_REQUEST;
                }
        }
        arr = json_object_get(root, "requests");
        if (!json_is_array(arr)) {
                snprintf(err, err_size, "requests: expected an array");
                return MHD_HTTP_BAD_REQUEST;
        }
        if (json_array_size(arr) > RF_HTTP_BATCH_MAX) {
                snprintf(err, err_size, "requests: at most %d keys, got %zu",
                         RF_HTTP_BATCH_MAX, json_array_size(arr));
                return MHD_HTTP_BAD_REQUEST;
        }
        json_array_foreach(arr, i, o)
        {
                rf_serve_req_t *r = &reqs[i];
                json_t *lim;

                if (!json_is_object(o)) {
                        snprintf(err, err_size,
                                 "requests[%zu]: expected an object", i);
                        return MHD_HTTP_BAD_REQUEST;
                }
                json_object_foreach(o, key, val)
                {
                        if (strcmp(key, "subject_id") &&
                            strcmp(key, "surface") && strcmp(key, "context") &&
                            strcmp(key, "limit") && strcmp(key, "region")) {
                                snprintf(err, err_size,
                                         "requests[%zu]: unknown field "
                                         "(expected subject_id, surface, "
                                         "context, limit, region)",
                                         i);
                                return MHD_HTTP_BAD_REQUEST;
                        }
                }
                if ((st = batch_str(o, i, "subject_id", 1, max_id,
                                    &r->subject_id, err, err_size)) ||
                    (st = batch_str(o, i, "surface", 1, max_id, &r->surface,
                                    err, err_size)) ||
                    (st = batch_str(o, i, "context", 0, max_id, &r->context_key,
                                    err, err_size)) ||
                    (st = batch_str(o, i, "region", 0, max_id, &r->region, err,
                                    err_size)))
                        return st;
                r->limit = (size_t)conf->http_default_limit;
                lim = json_object_get(o, "limit");
                if (lim) {
                        json_int_t v =
                            json_is_integer(lim) ? json_integer_value(lim) : -1;
                        if (v < 1 || v > conf->http_max_limit) {
                                snprintf(err, err_size,
                                         "requests[%zu].limit: expected an "
                                         "integer from 1 to %lld",
                                         i, (long long)conf->http_max_limit);
                                return MHD_HTTP_BAD_REQUEST;
                        }
                        r->limit = (size_t)v;
                }
        }
        *cnt = json_array_size(arr);
        return 0;
}

/* Checks that this instance serves every subject of a batch; if not, sets
 * *here to 0 and answers in *res: 307 when one other instance owns them
 * all, 503 when some are being rebuilt or have no known owner, else 421
 * with each request's owner. */
static void batch_owners(rf_http_t *h, struct MHD_Connection *conn, req_t *rq,
                         const rf_serve_req_t *reqs, size_t cnt, int *here,
                         enum MHD_Result *res)
{
        rf_owner_t o, first = { 0 };
        int remote = 0, local = 0, wait = -1;
        rf_buf_t body = { 0 };

        for (size_t i = 0; i < cnt; i++) {
                owner_of(h, reqs[i].subject_id, &o);
                if (o.state == RF_OWNER_LOCAL) {
                        local = 1;
                } else if (o.state == RF_OWNER_REMOTE && *o.addr) {
                        if (!remote++)
                                first = o;
                        else if (strcmp(first.addr, o.addr))
                                remote = -1000; /* several owners */
                } else if (wait < 0) {
                        wait = (int)i;
                }
        }
        if (wait < 0 && !remote)
                return;
        *here = 0;
        if (wait >= 0) {
                owner_of(h, reqs[wait].subject_id, &o);
                *res = reply_not_here(h, conn, rq, reqs[wait].subject_id, &o,
                                      BATCH_PATH);
                return;
        }
        if (!local && remote > 0) {
                *res = reply_not_here(h, conn, rq, reqs[0].subject_id, &first,
                                      BATCH_PATH);
                return;
        }
        rf_buf_printf(&body, "{\"error\":{\"code\":\"misdirected\","
                             "\"message\":\"the subjects of this batch are "
                             "owned by several instances: split it by "
                             "owner\",\"routing\":[");
        for (size_t i = 0; i < cnt; i++) {
                owner_of(h, reqs[i].subject_id, &o);
                if (i)
                        rf_buf_append(&body, ",", 1);
                owner_json(&body, reqs[i].subject_id, &o);
        }
        rf_buf_printf(&body, "]}}\n");
        *res = reply_json(h, conn, rq, MHD_HTTP_MISDIRECTED_REQUEST, &body);
}

static enum MHD_Result handle_batch(rf_http_t *h, struct MHD_Connection *conn,
                                    req_t *rq)
{
        rf_serve_req_t reqs[RF_HTTP_BATCH_MAX];
        rf_buf_t body = { 0 };
        json_error_t jerr;
        size_t cnt = 0;
        char err[300];
        unsigned st;
        json_t *root;
        const char *nul;

        /* No raw NUL is valid JSON: refused here whatever the jansson
         * version does with one (json_loadb() reads the whole length). */
        nul = rq->body.len ? memchr(rq->body.data, '\0', rq->body.len) : NULL;
        if (nul)
                return reply_error(h, conn, rq, MHD_HTTP_BAD_REQUEST, NULL,
                                   "body: invalid JSON: a NUL byte at offset "
                                   "%zu",
                                   (size_t)(nul - rq->body.data));
        root = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len,
                          JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return reply_error(h, conn, rq, MHD_HTTP_BAD_REQUEST, NULL,
                                   "body: invalid JSON at line %d column %d: "
                                   "%s",
                                   jerr.line, jerr.column, jerr.text);
        if ((st = batch_parse(h, root, reqs, &cnt, err, sizeof(err)))) {
                json_decref(root);
                return reply_error(h, conn, rq, st, NULL, "%s", err);
        }
        if (h->hc.owner) {
                enum MHD_Result r;
                int here = 1;
                if (batch_owners(h, conn, rq, reqs, cnt, &here, &r), !here) {
                        json_decref(root);
                        return r;
                }
        }
        rf_buf_printf(&body, "{\"responses\":[");
        for (size_t i = 0; i < cnt; i++) {
                if (i)
                        rf_buf_append(&body, ",", 1);
                if (serve_one(h, &reqs[i], &body) != 0) {
                        json_decref(root);
                        rf_buf_free(&body);
                        return reply_error(
                            h, conn, rq, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL,
                            "store error while reading requests[%zu]", i);
                }
        }
        rf_buf_printf(&body, "]}\n");
        json_decref(root);
        return reply_json(h, conn, rq, MHD_HTTP_OK, &body);
}

static void render_http_metrics(rf_http_t *h, rf_buf_t *out)
{
        rf_buf_printf(out, "# HELP recfresh_http_requests_total HTTP requests "
                           "answered, by route and status code.\n"
                           "# TYPE recfresh_http_requests_total counter\n");
        for (int r = 0; r < R__CNT; r++)
                for (size_t c = 0; c < CODE_CNT; c++) {
                        uint64_t n = atomic_load_explicit(&h->requests[r][c],
                                                          memory_order_relaxed);
                        if (!n && c != 0)
                                continue;
                        if (codes[c])
                                rf_buf_printf(out,
                                              "recfresh_http_requests_total{"
                                              "route=\"%s\",code=\"%u\"} "
                                              "%llu\n",
                                              route_names[r], codes[c],
                                              (unsigned long long)n);
                        else
                                rf_buf_printf(out,
                                              "recfresh_http_requests_total{"
                                              "route=\"%s\",code=\"other\"} "
                                              "%llu\n",
                                              route_names[r],
                                              (unsigned long long)n);
                }
        rf_buf_printf(out,
                      "# HELP recfresh_http_body_bytes Bytes of request "
                      "bodies held or reserved now (bound: "
                      "http.max_body_total_bytes).\n"
                      "# TYPE recfresh_http_body_bytes gauge\n"
                      "recfresh_http_body_bytes %zu\n"
                      "# HELP recfresh_http_body_timeouts_total Connections "
                      "closed for a request body slower than "
                      "http.body_timeout.\n"
                      "# TYPE recfresh_http_body_timeouts_total counter\n"
                      "recfresh_http_body_timeouts_total %llu\n",
                      atomic_load(&h->body_bytes),
                      (unsigned long long)atomic_load(&h->body_timeouts));
}

/* Appends ,"partitions":[...] to /readyz when the daemon reports them. */
static void ready_parts(rf_http_t *h, rf_buf_t *body)
{
        if (!h->hc.ready_parts)
                return;
        rf_buf_printf(body, ",\"partitions\":");
        h->hc.ready_parts(h->hc.opaque, body);
}

static enum MHD_Result handle_fixed(rf_http_t *h, struct MHD_Connection *conn,
                                    req_t *rq)
{
        rf_buf_t body = { 0 };
        char why[256] = "";

        switch (rq->route) {
        case R_HEALTHZ:
                rf_buf_printf(&body, "{\"status\":\"ok\"}\n");
                return reply_json(h, conn, rq, MHD_HTTP_OK, &body);
        case R_READYZ:
                if (h->hc.ready &&
                    !h->hc.ready(h->hc.opaque, why, sizeof(why))) {
                        rf_buf_printf(&body,
                                      "{\"status\":\"not_ready\",\"reason\":");
                        rf_json_str(&body, why);
                        ready_parts(h, &body);
                        rf_buf_printf(&body, "}\n");
                        return reply_json(h, conn, rq,
                                          MHD_HTTP_SERVICE_UNAVAILABLE, &body);
                }
                rf_buf_printf(&body, "{\"status\":\"ready\"");
                ready_parts(h, &body);
                rf_buf_printf(&body, "}\n");
                return reply_json(h, conn, rq, MHD_HTTP_OK, &body);
        default: /* R_METRICS */
                rf_metrics_render(&body);
                render_http_metrics(h, &body);
                if (h->hc.metrics)
                        h->hc.metrics(h->hc.opaque, &body);
                return reply(h, conn, rq, MHD_HTTP_OK,
                             "text/plain; version=0.0.4; charset=utf-8", &body,
                             NULL);
        }
}

/* ---- admin ----------------------------------------------------------------*/

/* Compares SHA-256 digests in constant time, so the time taken tells
 * neither the token's bytes nor its length. */
static int token_equal(const char *given, size_t glen, const char *want)
{
        unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];

        SHA256((const unsigned char *)given, glen, a);
        SHA256((const unsigned char *)want, strlen(want), b);
        return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

/* Admin requests are answered here unless off or unauthorised (then
 * rq->replied is set). */
static enum MHD_Result admin_gate(rf_http_t *h, struct MHD_Connection *conn,
                                  req_t *rq, const char *method)
{
        const char *auth;

        if (!h->hc.admin_token || !*h->hc.admin_token || !h->hc.admin)
                return reply_error(h, conn, rq, MHD_HTTP_NOT_FOUND, NULL,
                                   "admin endpoints are off (set "
                                   "http.admin_token_file)");
        auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                           MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth || strncmp(auth, "Bearer ", 7) != 0 ||
            !token_equal(auth + 7, strlen(auth + 7), h->hc.admin_token)) {
                rf_buf_t body = { 0 };
                rf_buf_printf(&body, "{\"error\":{\"code\":\"unauthorized\","
                                     "\"message\":\"missing or wrong bearer "
                                     "token\"}}\n");
                return reply_hdr(h, conn, rq, MHD_HTTP_UNAUTHORIZED,
                                 "application/json", &body,
                                 MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                 "Bearer realm=\"recfresh-admin\"");
        }
        if (strcmp(method, "POST") != 0)
                return reply_error(h, conn, rq, MHD_HTTP_METHOD_NOT_ALLOWED,
                                   "POST", "admin endpoints take POST");
        return MHD_YES;
}

static enum MHD_Result handle_admin(rf_http_t *h, struct MHD_Connection *conn,
                                    req_t *rq, const char *path)
{
        static const struct {
                const char *path, *action, *p1, *p2;
        } acts[] = {
                { ADMIN_PREFIX "runs:rollback", "rollback", "run", "to" },
                { ADMIN_PREFIX "refresh", "refresh", "mode", "run_id" },
                { ADMIN_PREFIX "checkpoint", "checkpoint", "dir", "-" },
        };
        const rf_config_t *conf = h->hc.serve.conf;
        const char *vals[2] = { NULL, NULL };
        qparams_t q = { 0 };
        rf_buf_t body = { 0 };
        char err[256], msg[512] = "";
        unsigned st;
        int a = -1, r;

        for (size_t i = 0; i < RF_ARRAY_SIZE(acts); i++)
                if (!strcmp(path, acts[i].path))
                        a = (int)i;
        if (a < 0)
                return reply_error(h, conn, rq, MHD_HTTP_NOT_FOUND, NULL,
                                   "no such admin endpoint (see "
                                   "/admin/v1/runs:rollback, "
                                   "/admin/v1/refresh, "
                                   "/admin/v1/checkpoint)");
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_param,
                                  &q);
        if (q.overflow)
                return reply_error(h, conn, rq, MHD_HTTP_BAD_REQUEST, NULL,
                                   "more than %d query parameters",
                                   RF_HTTP_MAX_PARAMS);
        for (size_t i = 0; i < q.cnt; i++) {
                int k = !strcmp(q.key[i], acts[a].p1)   ? 0
                        : !strcmp(q.key[i], acts[a].p2) ? 1
                                                        : -1;
                if (k < 0 || vals[k])
                        return reply_error(
                            h, conn, rq, MHD_HTTP_BAD_REQUEST, NULL,
                            "expected the parameter%s %s%s%s, once each",
                            strcmp(acts[a].p2, "-") ? "s" : "", acts[a].p1,
                            strcmp(acts[a].p2, "-") ? " and " : "",
                            strcmp(acts[a].p2, "-") ? acts[a].p2 : "");
                if ((st = decode_id(rq, k ? acts[a].p2 : acts[a].p1, q.val[i],
                                    strlen(q.val[i]), (size_t)conf->max_id_len,
                                    1, 1, &vals[k], err, sizeof(err))))
                        return reply_error(h, conn, rq, st, NULL, "%s", err);
        }
        r = h->hc.admin(h->hc.opaque, acts[a].action, vals[0], vals[1], msg,
                        sizeof(msg));
        if (r == RF_EINVAL)
                return reply_error(h, conn, rq, MHD_HTTP_BAD_REQUEST, NULL,
                                   "%s", msg);
        if (r == RF_EBLOCKED)
                return reply_error(h, conn, rq, MHD_HTTP_CONFLICT, NULL, "%s",
                                   msg);
        if (r != 0)
                return reply_error(h, conn, rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                   NULL, "%s", msg);
        rf_buf_printf(&body,
                      "{\"accepted\":true,\"action\":\"%s\","
                      "\"message\":",
                      acts[a].action);
        rf_json_str(&body, msg);
        rf_buf_printf(&body, "}\n");
        return reply_json(h, conn, rq, MHD_HTTP_ACCEPTED, &body);
}

/* ---- MHD glue -----------------------------------------------------------*/

/* Sets rq->route from the raw path. @returns the methods the route allows
 * ("GET, HEAD" or "POST"), or NULL for an unknown path. */
static const char *route_of(const char *path, req_t *rq)
{
        static const struct {
                const char *path;
                enum route route;
        } fixed[] = {
                { "/metrics", R_METRICS },
                { "/healthz", R_HEALTHZ },
                { "/readyz", R_READYZ },
                { BATCH_PATH, R_BATCH },
                { "/v1/lists%3AbatchGet", R_BATCH },
                { "/v1/lists%3abatchGet", R_BATCH },
        };

        for (size_t i = 0; i < RF_ARRAY_SIZE(fixed); i++) {
                if (!strcmp(path, fixed[i].path)) {
                        rq->route = fixed[i].route;
                        return rq->route == R_BATCH ? "POST" : "GET, HEAD";
                }
        }
        if (!strncmp(path, LISTS_PREFIX, strlen(LISTS_PREFIX))) {
                rq->route = R_LIST;
                return "GET, HEAD";
        }
        if (!strncmp(path, ROUTING_PREFIX, strlen(ROUTING_PREFIX))) {
                rq->route = R_ROUTING;
                return "GET, HEAD";
        }
        if (!strncmp(path, ADMIN_PREFIX, strlen(ADMIN_PREFIX))) {
                rq->route = R_ADMIN;
                return "POST";
        }
        rq->route = R_OTHER;
        return NULL;
}

/* \p method for an error message: as sent if a token of at most 15
 * letters (any other bytes could make the JSON invalid UTF-8), else "?". */
static const char *method_name(const char *method)
{
        size_t n = 0;

        for (; method[n]; n++)
                if (n >= 15 || !((method[n] >= 'A' && method[n] <= 'Z') ||
                                 (method[n] >= 'a' && method[n] <= 'z')))
                        return "?";
        return n ? method : "?";
}

/* First call of a request: headers are in. @returns MHD_YES to go on
 * (rq->replied says whether it was answered already) or MHD_NO. */
static enum MHD_Result on_headers(rf_http_t *h, struct MHD_Connection *conn,
                                  const char *path, const char *method,
                                  req_t *rq)
{
        const char *allow, *cl, *ct;
        int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");

        rq->route = R_OTHER; /* until route_of() knows */
        if (strlen(path) > RF_HTTP_MAX_PATH)
                return reply_error(h, conn, rq, MHD_HTTP_URI_TOO_LONG, NULL,
                                   "path longer than %d bytes",
                                   RF_HTTP_MAX_PATH);
        allow = route_of(path, rq);
        if (!allow)
                return reply_error(h, conn, rq, MHD_HTTP_NOT_FOUND, NULL,
                                   "no such endpoint (see /v1/lists/"
                                   "{subject_id}/{surface}, "
                                   "/v1/lists:batchGet, "
                                   "/v1/routing/{subject_id}, /metrics, "
                                   "/healthz, /readyz)");
        if (rq->route == R_ADMIN) {
                enum MHD_Result ar = admin_gate(h, conn, rq, method);
                if (rq->replied || ar != MHD_YES)
                        return ar;
                return MHD_YES;
        }
        if (rq->route == R_BATCH ? strcmp(method, "POST") != 0 : !is_get)
                return reply_error(h, conn, rq, MHD_HTTP_METHOD_NOT_ALLOWED,
                                   allow,
                                   "method %s not allowed; the API is "
                                   "read-only (allowed: %s)",
                                   method_name(method), allow);
        if (rq->route != R_BATCH)
                return MHD_YES;

        ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_TYPE);
        if (ct && !rf_http_json_type(ct))
                return reply_error(h, conn, rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                   NULL,
                                   "Content-Type must be application/json");
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
        if (len > h->max_body)
                return reply_error(h, conn, rq, MHD_HTTP_CONTENT_TOO_LARGE,
                                   NULL, "body larger than %zu bytes",
                                   h->max_body);
        /* A declared length that does not fit in the room left now is
         * refused before the body is sent. */
        if (cl && rf_buf_capacity_for(&(rf_buf_t){ 0 }, (size_t)len) >
                      h->max_body_total - atomic_load(&h->body_bytes))
                return reply_busy(h, conn, rq);
        rq->body_by = rf_mono_ms() + h->body_timeout_ms;
        return MHD_YES;
}

/* A piece of a request body. Bodies of GETs and of answered requests are
 * dropped. A batch body found too big while it arrives (no
 * Content-Length), or without room among the bodies in flight, is read to
 * its end and answered 413 or 503 (MHD cannot answer mid-upload), up to a
 * bound past which the connection is closed. */
static enum MHD_Result take_upload(rf_http_t *h, req_t *rq, const char *upload,
                                   size_t *upload_size)
{
        if (!rq->replied && rq->route == R_BATCH && !rq->dropped && !rq->busy) {
                size_t cap = rf_buf_capacity_for(&rq->body, *upload_size);
                if (rf_mono_ms() > rq->body_by) {
                        /* a body sent a byte at a time holds its room */
                        atomic_fetch_add(&h->body_timeouts, 1);
                        return MHD_NO;
                }
                if (rq->body.len + *upload_size > h->max_body)
                        rq->dropped = 1;
                else if (cap > rq->reserved &&
                         body_reserve(h, rq, cap - rq->reserved) != 0)
                        rq->busy = 1;
                else {
                        rf_buf_append(&rq->body, upload, *upload_size);
                        *upload_size = 0;
                        return MHD_YES;
                }
                /* nothing of it is kept from now on */
                rq->drained += rq->body.len;
                rf_buf_free(&rq->body);
                body_release(h, rq);
        }
        if ((rq->drained += *upload_size) > 16 * h->max_body)
                return MHD_NO; /* a client that never stops */
        *upload_size = 0;
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
        rf_http_t *h = cls;
        req_t *rq = *con_cls;

        (void)version;
        if (!rq) {
                rq = rf_calloc(1, sizeof(*rq));
                *con_cls = rq;
                return on_headers(h, conn, url, method, rq);
        }
        if (*upload_size)
                return take_upload(h, rq, upload, upload_size);
        if (rq->replied)
                return MHD_YES;
        if (rq->dropped)
                return reply_error(h, conn, rq, MHD_HTTP_CONTENT_TOO_LARGE,
                                   NULL, "body larger than %zu bytes",
                                   h->max_body);
        if (rq->busy)
                return reply_busy(h, conn, rq);
        switch (rq->route) {
        case R_LIST:
                return handle_list(h, conn, rq, url);
        case R_BATCH:
                return handle_batch(h, conn, rq);
        case R_ROUTING:
                return handle_routing(h, conn, rq, url);
        case R_ADMIN:
                return handle_admin(h, conn, rq, url);
        default:
                return handle_fixed(h, conn, rq);
        }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        req_t *rq = *con_cls;

        (void)conn;
        (void)toe;
        if (!rq)
                return;
        body_release(cls, rq);
        for (size_t i = 0; i < rq->str_cnt; i++)
                free(rq->strs[i]);
        free(rq->strs);
        rf_buf_free(&rq->body);
        free(rq);
        *con_cls = NULL;
}

/* Leaves strings as they are: decoding is done per segment (see top). */
static size_t no_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
        (void)cls;
        (void)conn;
        return strlen(s);
}

/* libmicrohttpd's format strings: checked as printf formats by the
 * attribute, so -Wformat-nonliteral has nothing to say. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512];
        size_t n;

        (void)cls;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        rf_log_warn("http", "%s", msg);
}

/* ---- socket -------------------------------------------------------------*/

/* Splits "host:port", "[v6]:port" or ":port". @returns 0 or -1. */
static int split_addr(const char *addr, char *host, size_t hsize, char *port,
                      size_t psize)
{
        const char *colon;

        if (addr[0] == '[') {
                const char *end = strchr(addr, ']');
                if (!end || end[1] != ':' || (size_t)(end - addr) > hsize)
                        return -1;
                snprintf(host, hsize, "%.*s", (int)(end - addr - 1), addr + 1);
                colon = end + 1;
        } else {
                colon = strrchr(addr, ':');
                if (!colon || (size_t)(colon - addr) >= hsize)
                        return -1;
                snprintf(host, hsize, "%.*s", (int)(colon - addr), addr);
        }
        if (!colon[1] || strlen(colon + 1) >= psize ||
            strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
            atol(colon + 1) > 65535)
                return -1;
        snprintf(port, psize, "%s", colon + 1);
        return 0;
}

/* Binds and listens. @returns the socket or -1 with errstr set. */
static int listen_on(rf_http_t *h, const char *addr, int *family, char *errstr,
                     size_t errstr_size)
{
        struct addrinfo hints = { 0 }, *ai = NULL, *p;
        char host[256], port[16];
        int fd = -1, gai, err = 0;

        if (split_addr(addr, host, sizeof(host), port, sizeof(port))) {
                snprintf(errstr, errstr_size,
                         "http.addr: expected host:port, [v6]:port or :port, "
                         "got \"%s\"",
                         addr);
                return -1;
        }
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        gai = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
        if (gai) {
                snprintf(errstr, errstr_size, "http.addr %s: %s", addr,
                         gai_strerror(gai));
                return -1;
        }
        for (p = ai; p && fd < 0; p = p->ai_next) {
                int one = 1;
                fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC,
                            p->ai_protocol);
                if (fd < 0) {
                        err = errno;
                        continue;
                }
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(fd, p->ai_addr, p->ai_addrlen) != 0 ||
                    listen(fd, LISTEN_BACKLOG) != 0) {
                        err = errno;
                        close(fd);
                        fd = -1;
                        continue;
                }
                *family = p->ai_family;
        }
        freeaddrinfo(ai);
        if (fd < 0) {
                snprintf(errstr, errstr_size, "http.addr %s: bind: %s", addr,
                         strerror(err));
                return -1;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        char ip[INET6_ADDRSTRLEN] = "?";
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
                inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
                h->port = ntohs(s6->sin6_port);
                snprintf(h->addr, sizeof(h->addr), "[%s]:%d", ip, h->port);
        } else {
                struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
                inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
                h->port = ntohs(s4->sin_port);
                snprintf(h->addr, sizeof(h->addr), "%s:%d", ip, h->port);
        }
        return fd;
}

rf_http_t *rf_http_start(const rf_http_conf_t *hc, char *errstr,
                         size_t errstr_size)
{
        const rf_config_t *conf = hc->serve.conf;
        rf_http_t *h = rf_calloc(1, sizeof(*h));
        unsigned flags =
            MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
        int fd, family = AF_INET;

        h->hc = *hc;
        h->max_body = (size_t)conf->http_max_body_bytes;
        /* One largest body always fits, when it is alone. */
        h->max_body_total = (size_t)conf->http_max_body_total_bytes;
        if (h->max_body_total < 2 * h->max_body) {
                rf_log_warn("http",
                            "http.max_body_total_bytes %zu raised to twice "
                            "http.max_body_bytes (%zu): a largest body's "
                            "buffer must fit",
                            h->max_body_total, 2 * h->max_body);
                h->max_body_total = 2 * h->max_body;
        }
        h->body_timeout_ms = conf->http_body_timeout_ms;
        fd = listen_on(h, hc->addr, &family, errstr, errstr_size);
        if (fd < 0) {
                free(h);
                return NULL;
        }
        if (family == AF_INET6)
                flags |= MHD_USE_IPv6;
        h->mhd = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
            mhd_log, h, MHD_OPTION_LISTEN_SOCKET, fd,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)conf->http_threads,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)conf->http_max_connections,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
            MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, h, MHD_OPTION_END);
        if (!h->mhd) {
                close(fd);
                snprintf(errstr, errstr_size,
                         "http %s: could not start the HTTP server", h->addr);
                free(h);
                return NULL;
        }
        rf_log_info("http", "listening on %s", h->addr);
        return h;
}

const char *rf_http_addr(const rf_http_t *h)
{
        return h->addr;
}

int rf_http_port(const rf_http_t *h)
{
        return h->port;
}

void rf_http_stop(rf_http_t *h)
{
        if (!h)
                return;
        /* MHD closes the listen socket it was given. */
        MHD_stop_daemon(h->mhd);
        free(h);
}
