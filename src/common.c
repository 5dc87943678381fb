/*
 * recfresh - shared helpers: error and rejection names, RFC 3339 time,
 * the byte buffer and cursor used by every binary encoding in the store,
 * and allocation wrappers that abort on out-of-memory.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recfresh/common.h"

const rf_limits_t rf_limits_default = {
        .max_record_bytes = 1024 * 1024,
        .max_items_per_list = 1000,
        .max_id_len = 256,
        .max_json_depth = 16,
};

const char *rf_err2str(int err)
{
        switch (err) {
        case RF_OK:
                return "success";
        case RF_EINVAL:
                return "invalid argument or input";
        case RF_ENOENT:
                return "not found";
        case RF_ENOMEM:
                return "out of memory";
        case RF_ESTORE:
                return "storage error";
        case RF_EKAFKA:
                return "kafka error";
        case RF_EIO:
                return "I/O error";
        case RF_ESTALE:
                return "older than current state";
        case RF_ECONFIG:
                return "configuration error";
        case RF_ETOOBIG:
                return "over limit";
        case RF_EBLOCKED:
                return "blocked by policy";
        default:
                return "unknown error";
        }
}

static const char *reject_names[RF_REJ__CNT] = {
        [RF_REJ_NONE] = "none",
        [RF_REJ_INVALID_JSON] = "invalid_json",
        [RF_REJ_MISSING_FIELD] = "missing_field",
        [RF_REJ_BAD_TYPE] = "bad_type",
        [RF_REJ_BAD_VALUE] = "bad_value",
        [RF_REJ_UNKNOWN_TYPE] = "unknown_type",
        [RF_REJ_BAD_TIMESTAMP] = "bad_timestamp",
        [RF_REJ_TOO_LARGE] = "too_large",
        [RF_REJ_TOO_MANY_ITEMS] = "too_many_items",
        [RF_REJ_ID_TOO_LONG] = "id_too_long",
        [RF_REJ_TOO_DEEP] = "too_deep",
        [RF_REJ_KEY_MISMATCH] = "key_mismatch",
        [RF_REJ_UNKNOWN_TOPIC] = "unknown_topic",
};

const char *rf_reject2str(rf_reject_t r)
{
        if ((int)r < 0 || r >= RF_REJ__CNT)
                return "unknown";
        return reject_names[r];
}

void rf_reject(rf_rejection_t *rej, rf_reject_t reason, const char *fmt, ...)
{
        va_list ap;

        rej->reason = reason;
        va_start(ap, fmt);
        vsnprintf(rej->msg, sizeof(rej->msg), fmt, ap);
        va_end(ap);
}

/* ---- time ---------------------------------------------------------------*/

int64_t rf_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rf_mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int rf_mono_past(int64_t deadline_ns)
{
        return deadline_ns && rf_mono_ns() >= deadline_ns;
}

int rf_pid_gone(long pid)
{
        return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int64_t rf_mono_ms(void)
{
        return rf_mono_ns() / 1000000;
}

static int parse_digits(const char **sp, int n, int *out)
{
        int v = 0;

        for (int i = 0; i < n; i++) {
                char c = (*sp)[i];
                if (c < '0' || c > '9')
                        return -1;
                v = v * 10 + (c - '0');
        }
        *sp += n;
        *out = v;
        return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil); avoids timegm()'s dependence on the TZ machinery. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        const int64_t era = (y >= 0 ? y : y - 399) / 400;
        const unsigned yoe = (unsigned)(y - era * 400);
        const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

int rf_time_parse(const char *s, int64_t *msp)
{
        static const int mdays[] = { 31, 29, 31, 30, 31, 30,
                                     31, 31, 30, 31, 30, 31 };
        int Y, M, D, h, m, sec, ms = 0, off = 0;

        if (!s)
                return RF_EINVAL;
        if (parse_digits(&s, 4, &Y) || *s++ != '-' || parse_digits(&s, 2, &M) ||
            *s++ != '-' || parse_digits(&s, 2, &D) || (*s != 'T' && *s != 't'))
                return RF_EINVAL;
        s++;
        if (parse_digits(&s, 2, &h) || *s++ != ':' || parse_digits(&s, 2, &m) ||
            *s++ != ':' || parse_digits(&s, 2, &sec))
                return RF_EINVAL;
        if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 ||
            sec > 60)
                return RF_EINVAL;
        if (M == 2 && D == 29 &&
            !((Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0))
                return RF_EINVAL;
        if (*s == '.') {
                int digits = 0;
                s++;
                while (*s >= '0' && *s <= '9') {
                        if (digits < 3)
                                ms = ms * 10 + (*s - '0');
                        digits++;
                        s++;
                }
                if (digits == 0)
                        return RF_EINVAL;
                for (; digits < 3; digits++)
                        ms *= 10;
        }
        if (*s == 'Z' || *s == 'z') {
                s++;
        } else if (*s == '+' || *s == '-') {
                int sign = *s == '-' ? -1 : 1, oh, om;
                s++;
                if (parse_digits(&s, 2, &oh) || *s++ != ':' ||
                    parse_digits(&s, 2, &om) || oh > 23 || om > 59)
                        return RF_EINVAL;
                off = sign * (oh * 60 + om);
        } else {
                return RF_EINVAL;
        }
        if (*s != '\0')
                return RF_EINVAL;
        if (sec == 60) /* leap second: clamp, as most systems do */
                sec = 59;
        int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
        int64_t secs = days * 86400 + h * 3600 + m * 60 + sec - off * 60;
        *msp = secs * 1000 + ms;
        return RF_OK;
}

char *rf_time_format(int64_t ms, char *buf, size_t size)
{
        /* Clamp to years 0000..9999 so gmtime_r always succeeds and the
         * arithmetic below cannot overflow. */
        if (ms < -62167219200000LL)
                ms = -62167219200000LL;
        if (ms > 253402300799999LL)
                ms = 253402300799999LL;
        time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        int frac = (int)(ms - (int64_t)secs * 1000);
        struct tm tm;

        gmtime_r(&secs, &tm);
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, frac);
        return buf;
}

/* ---- allocation ---------------------------------------------------------*/

static void oom(size_t size)
{
        fprintf(stderr, "recfresh: out of memory allocating %zu bytes\n", size);
        abort();
}

void *rf_malloc(size_t size)
{
        void *p = malloc(size ? size : 1);
        if (!p)
                oom(size);
        return p;
}

void *rf_calloc(size_t n, size_t size)
{
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                oom(n * size);
        return p;
}

void *rf_realloc(void *p, size_t size)
{
        void *np = realloc(p, size ? size : 1);
        if (!np)
                oom(size);
        return np;
}

char *rf_strdup(const char *s)
{
        if (!s)
                return NULL;
        size_t len = strlen(s) + 1;
        char *d = rf_malloc(len);
        memcpy(d, s, len);
        return d;
}

char *rf_strndup(const char *s, size_t n)
{
        char *d = rf_malloc(n + 1);
        memcpy(d, s, n);
        d[n] = '\0';
        return d;
}

char *rf_hex(const void *p, size_t n, char *out)
{
        static const char digits[] = "0123456789abcdef";
        const unsigned char *b = p;

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[b[i] >> 4];
                out[2 * i + 1] = digits[b[i] & 15];
        }
        out[2 * n] = '\0';
        return out;
}

void rf_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

/* ---- buffer -------------------------------------------------------------*/

static void buf_reserve(rf_buf_t *b, size_t extra)
{
        size_t nsize = rf_buf_capacity_for(b, extra);

        if (nsize == b->size)
                return;
        b->data = rf_realloc(b->data, nsize);
        b->size = nsize;
}

size_t rf_buf_capacity_for(const rf_buf_t *b, size_t extra)
{
        size_t need = b->len + extra + 1, nsize;

        if (need <= b->size)
                return b->size;
        nsize = b->size ? b->size * 2 : 64;
        while (nsize < need)
                nsize *= 2;
        return nsize;
}

void rf_buf_append(rf_buf_t *b, const void *p, size_t len)
{
        buf_reserve(b, len);
        if (len)
                memcpy(b->data + b->len, p, len);
        b->len += len;
        b->data[b->len] = '\0';
}

void rf_buf_printf(rf_buf_t *b, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

void rf_buf_put_varint(rf_buf_t *b, uint64_t v)
{
        unsigned char tmp[10];
        size_t n = 0;

        do {
                tmp[n] = v & 0x7f;
                v >>= 7;
                if (v)
                        tmp[n] |= 0x80;
                n++;
        } while (v);
        rf_buf_append(b, tmp, n);
}

void rf_buf_put_str(rf_buf_t *b, const char *s)
{
        rf_buf_put_strn(b, s, s ? strlen(s) : 0);
}

void rf_buf_put_strn(rf_buf_t *b, const char *s, size_t len)
{
        rf_buf_put_varint(b, len);
        buf_reserve(b, len + 1);
        if (len)
                memcpy(b->data + b->len, s, len);
        b->data[b->len + len] = '\0'; /* the stored NUL */
        b->len += len + 1;
        b->data[b->len] = '\0';
}

void rf_buf_puts(rf_buf_t *b, const char *s)
{
        rf_buf_append(b, s, strlen(s));
}

void rf_buf_put_dec(rf_buf_t *b, uint64_t v)
{
        char tmp[20];
        size_t i = sizeof(tmp);

        do {
                tmp[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        rf_buf_append(b, tmp + i, sizeof(tmp) - i);
}

void rf_buf_put_be64(rf_buf_t *b, uint64_t v)
{
        unsigned char tmp[8];

        for (int i = 7; i >= 0; i--) {
                tmp[i] = v & 0xff;
                v >>= 8;
        }
        rf_buf_append(b, tmp, 8);
}

void rf_buf_reset(rf_buf_t *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

void rf_buf_free(rf_buf_t *b)
{
        free(b->data);
        memset(b, 0, sizeof(*b));
}

/* ---- cursor -------------------------------------------------------------*/

uint64_t rf_cur_varint(rf_cur_t *c)
{
        uint64_t v = 0;
        int shift = 0;

        while (c->p < c->end && shift < 64) {
                unsigned char byte = (unsigned char)*c->p++;
                if (shift == 63 && byte > 1)
                        break; /* over-long: would drop high bits */
                v |= (uint64_t)(byte & 0x7f) << shift;
                if (!(byte & 0x80))
                        return v;
                shift += 7;
        }
        c->err = RF_EINVAL;
        return 0;
}

const char *rf_cur_str(rf_cur_t *c, size_t *lenp)
{
        uint64_t len = rf_cur_varint(c);

        if (c->err || len >= (uint64_t)(c->end - c->p) || c->p[len] != '\0') {
                c->err = RF_EINVAL;
                if (lenp)
                        *lenp = 0;
                return "";
        }
        const char *s = c->p;
        c->p += len + 1;
        if (lenp)
                *lenp = (size_t)len;
        return s;
}

uint64_t rf_cur_be64(rf_cur_t *c)
{
        uint64_t v = 0;

        if (c->end - c->p < 8) {
                c->err = RF_EINVAL;
                return 0;
        }
        for (int i = 0; i < 8; i++)
                v = (v << 8) | (unsigned char)c->p[i];
        c->p += 8;
        return v;
}

double rf_cur_double(rf_cur_t *c)
{
        double d = 0;

        if (c->end - c->p < (ptrdiff_t)sizeof(d)) {
                c->err = RF_EINVAL;
                return 0;
        }
        memcpy(&d, c->p, sizeof(d));
        c->p += sizeof(d);
        return d;
}

uint8_t rf_cur_u8(rf_cur_t *c)
{
        if (c->p >= c->end) {
                c->err = RF_EINVAL;
                return 0;
        }
        return (uint8_t)*c->p++;
}

/* ---- id set -------------------------------------------------------------*/

static uint64_t fnv1a(const char *s)
{
        uint64_t h = 1469598103934665603ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

void rf_idset_init(rf_idset_t *set, size_t n)
{
        size_t size = 16;

        while (size < n * 2)
                size <<= 1;
        if (size <= RF_IDSET_INLINE) {
                memset(set->inl, 0, size * sizeof(*set->slot));
                set->slot = set->inl;
        } else {
                set->slot = rf_calloc(size, sizeof(*set->slot));
        }
        set->mask = size - 1;
        set->cnt = 0;
}

int rf_idset_add(rf_idset_t *set, const char *id)
{
        size_t i = fnv1a(id) & set->mask;

        while (set->slot[i]) {
                if (!strcmp(set->slot[i], id))
                        return 1;
                i = (i + 1) & set->mask;
        }
        set->slot[i] = id;
        set->cnt++;
        return 0;
}

void rf_idset_free(rf_idset_t *set)
{
        if (set->slot != set->inl)
                free(set->slot);
        set->slot = NULL;
        set->mask = set->cnt = 0;
}

int rf_utf8_valid(const unsigned char *s, size_t len)
{
        size_t i = 0;

        while (i < len) {
                unsigned c = s[i];
                size_t n;
                unsigned min, cp;

                if (c < 0x80) {
                        i++;
                        continue;
                } else if ((c & 0xe0) == 0xc0) {
                        n = 1, min = 0x80, cp = c & 0x1f;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 2, min = 0x800, cp = c & 0x0f;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 3, min = 0x10000, cp = c & 0x07;
                } else {
                        return 0;
                }
                if (len - i <= n)
                        return 0;
                for (size_t k = 1; k <= n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return 0;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return 0;
                i += n + 1;
        }
        return 1;
}
