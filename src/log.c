/*
 * recfresh - logging: one logfmt line per rf_log() call on stderr,
 *
 *   ts=2026-11-22T09:14:00.123Z level=info sub=consumer msg="assigned 8"
 *
 * The line is formatted into a stack buffer and written with a single
 * fwrite(), so lines from concurrent threads never interleave (stdio locks
 * the stream per call, and stderr is unbuffered, so it is one write(2)).
 * Nothing here allocates: logging must keep working when memory is short.
 * Messages longer than MSG_MAX bytes are cut and end in "...".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

#include "recfresh/log.h"

#define MSG_MAX 4096 /* message bytes kept, before escaping */

static atomic_int log_level = RF_LOG_INFO;

static const struct {
        const char *name;
        int level;
} level_names[] = {
        { "error", RF_LOG_ERROR },
        { "warn", RF_LOG_WARN },
        { "info", RF_LOG_INFO },
        { "debug", RF_LOG_DEBUG },
};

void rf_log_set_level(int level)
{
        atomic_store(&log_level, level);
}

int rf_log_get_level(void)
{
        return atomic_load(&log_level);
}

int rf_log_level_parse(const char *name)
{
        if (!name)
                return -1;
        for (size_t i = 0; i < RF_ARRAY_SIZE(level_names); i++)
                if (!strcmp(level_names[i].name, name))
                        return level_names[i].level;
        return -1;
}

/* Syslog levels 0-3 (emerg..err) are errors and 5 (notice) is info, so
 * librdkafka's levels map without a table of their own. */
static const char *level_name(int level)
{
        if (level <= RF_LOG_ERROR)
                return "error";
        if (level == RF_LOG_WARN)
                return "warn";
        if (level < RF_LOG_DEBUG)
                return "info";
        return "debug";
}

/* Appends \p s to \p out escaped for a logfmt quoted value: `"`, `\` and
 * line breaks are backslash-escaped and other control bytes become \xHH,
 * so one call is always one line. @returns the new length. */
static size_t escape(char *out, size_t len, size_t size, const char *s)
{
        static const char hex[] = "0123456789abcdef";

        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                char esc[4];
                size_t n = 0;

                switch (c) {
                case '"':
                case '\\':
                        esc[n++] = '\\';
                        esc[n++] = (char)c;
                        break;
                case '\n':
                        esc[n++] = '\\';
                        esc[n++] = 'n';
                        break;
                case '\r':
                        esc[n++] = '\\';
                        esc[n++] = 'r';
                        break;
                case '\t':
                        esc[n++] = '\\';
                        esc[n++] = 't';
                        break;
                default:
                        if (c < 0x20 || c == 0x7f) {
                                esc[n++] = '\\';
                                esc[n++] = 'x';
                                esc[n++] = hex[c >> 4];
                                esc[n++] = hex[c & 0xf];
                        } else {
                                esc[n++] = (char)c;
                        }
                }
                if (len + n >= size)
                        break;
                memcpy(out + len, esc, n);
                len += n;
        }
        return len;
}

void rf_log(int level, const char *subsys, const char *fmt, ...)
{
        /* Escaping at most quadruples the message; the rest is the
         * ts/level/sub prefix. */
        char msg[MSG_MAX], line[MSG_MAX * 4 + 256], ts[32];
        int saved_errno = errno; /* callers log, then look at errno */
        va_list ap;
        int n;
        size_t len;

        if (level > atomic_load(&log_level))
                return;

        va_start(ap, fmt);
        n = vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (n < 0)
                snprintf(msg, sizeof(msg), "(bad log format \"%s\")", fmt);
        else if ((size_t)n >= sizeof(msg))
                memcpy(msg + sizeof(msg) - 4, "...", 4);

        rf_time_format(rf_now_ms(), ts, sizeof(ts));
        n = snprintf(line, sizeof(line), "ts=%s level=%s sub=%s msg=\"", ts,
                     level_name(level), subsys ? subsys : "-");
        /* a runaway subsystem name cannot overflow: snprintf truncated */
        len = n < 0 ? 0 : (size_t)n;
        if (len > sizeof(line) - 3)
                len = sizeof(line) - 3;
        len = escape(line, len, sizeof(line) - 2, msg);
        line[len++] = '"';
        line[len++] = '\n';

        fwrite(line, 1, len, stderr);
        errno = saved_errno;
}
