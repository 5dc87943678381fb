/*
 * Unit tests of common.c: RFC 3339 parsing and formatting (offsets,
 * fractions, leap years, impossible dates), and the byte buffer and cursor
 * every store encoding is built on (varint, string and big-endian
 * round trips, and that a short or corrupt input sets the cursor's error
 * instead of reading past the end).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/codec_json.h"
#include "recfresh/common.h"
#include "recfresh/keys.h"
#include "recfresh/strset.h"
#include "recfresh/valid_memory.h"

#define HOUR_MS (3600 * INT64_C(1000))

static int64_t parse_ok(const char *s)
{
        int64_t ms = 0;

        if (rf_time_parse(s, &ms) != RF_OK)
                fail_msg("rf_time_parse(\"%s\") failed", s);
        return ms;
}

static const char *fmt(int64_t ms)
{
        static char buf[32];

        return rf_time_format(ms, buf, sizeof(buf));
}

/* ---- rf_time_parse ------------------------------------------------------*/

static void test_time_parse_utc(void **state)
{
        (void)state;
        assert_int_equal(parse_ok("1970-01-01T00:00:00Z"), 0);
        assert_int_equal(parse_ok("2026-11-22T09:14:00Z"), 1795338840000);
        /* 't' and 'z' may be lower case (RFC 3339 section 5.6) */
        assert_int_equal(parse_ok("2026-11-22t09:14:00z"), 1795338840000);
        assert_int_equal(parse_ok("2026-12-31T23:59:59Z"), 1798761599000);
        assert_int_equal(parse_ok("9999-12-31T23:59:59Z"), 253402300799000);
        /* before the epoch is negative */
        assert_int_equal(parse_ok("1969-07-20T20:17:40Z"), -14182940000);
        assert_int_equal(parse_ok("1969-12-31T23:59:59.999Z"), -1);
}

static void test_time_parse_offsets(void **state)
{
        const int64_t utc = 1795338840000; /* 2026-11-22T09:14:00Z */
        (void)state;

        assert_int_equal(parse_ok("2026-11-22T10:14:00+01:00"), utc);
        assert_int_equal(parse_ok("2026-11-22T03:44:00-05:30"), utc);
        assert_int_equal(parse_ok("2026-11-22T09:14:00+00:00"), utc);
        assert_int_equal(parse_ok("2026-11-22T09:14:00-00:00"), utc);
        /* an offset can move the instant across a day and a year */
        assert_int_equal(parse_ok("2027-01-01T08:59:59+09:00"), 1798761599000);
        assert_int_equal(parse_ok("2026-11-22T10:14:00.123+01:00"), utc + 123);
        assert_int_equal(parse_ok("2026-11-22T09:14:00+23:59"),
                         utc - 23 * HOUR_MS - 59 * 60000);
}

static void test_time_parse_fractions(void **state)
{
        const int64_t utc = 1795338840000;
        (void)state;

        assert_int_equal(parse_ok("2026-11-22T09:14:00.1Z"), utc + 100);
        assert_int_equal(parse_ok("2026-11-22T09:14:00.12Z"), utc + 120);
        assert_int_equal(parse_ok("2026-11-22T09:14:00.123Z"), utc + 123);
        assert_int_equal(parse_ok("2026-11-22T09:14:00.000Z"), utc);
        /* beyond milliseconds is truncated, never rounded up */
        assert_int_equal(parse_ok("2026-11-22T09:14:00.123456789Z"), utc + 123);
        assert_int_equal(parse_ok("2026-11-22T09:14:00.9999Z"), utc + 999);
}

static void test_time_parse_leap_years(void **state)
{
        (void)state;
        assert_int_equal(parse_ok("2024-02-29T12:00:00Z"), 1709208000000);
        assert_int_equal(parse_ok("2000-02-29T00:00:00Z"), 951782400000);
        /* the day after Feb 29 is Mar 1 */
        assert_int_equal(parse_ok("2024-03-01T12:00:00Z") -
                             parse_ok("2024-02-29T12:00:00Z"),
                         24 * HOUR_MS);
        assert_int_equal(parse_ok("2026-03-01T00:00:00Z") -
                             parse_ok("2026-02-28T00:00:00Z"),
                         24 * HOUR_MS);
}

static void test_time_parse_rejects(void **state)
{
        static const char *const bad[] = {
                "",
                "2026-02-29T00:00:00Z", /* 2026 is not a leap year */
                "1900-02-29T00:00:00Z", /* centuries are not, unless /400 */
                "2026-02-30T00:00:00Z",
                "2024-02-30T00:00:00Z",
                "2026-04-31T00:00:00Z",
                "2026-00-10T00:00:00Z",
                "2026-13-01T00:00:00Z",
                "2026-11-00T00:00:00Z",
                "2026-11-32T00:00:00Z",
                "2026-11-22T24:00:00Z",
                "2026-11-22T09:60:00Z",
                "2026-11-22T09:14:61Z",
                "2026-11-22T09:14:00",       /* no zone */
                "2026-11-22",                /* no time */
                "2026-11-22T09:14Z",         /* no seconds */
                "2026-11-22 09:14:00Z",      /* space for T */
                "2026-11-22T09:14:00.Z",     /* dot without digits */
                "2026-11-22T09:14:00,5Z",    /* comma fraction */
                "2026-11-22T09:14:00+01",    /* offset without minutes */
                "2026-11-22T09:14:00+0100",  /* offset without colon */
                "2026-11-22T09:14:00+24:00", /* offset hour out of range */
                "2026-11-22T09:14:00+01:60",
                "2026-11-22T09:14:00ZZ", /* trailing junk */
                "2026-11-22T09:14:00Z ",
                "2026-1-22T09:14:00Z", /* one-digit month */
                "26-11-22T09:14:00Z",
                "+2026-11-22T09:14:00Z",
                "2026/11/22T09:14:00Z",
                "1795338840000",
        };
        (void)state;

        for (size_t i = 0; i < RF_ARRAY_SIZE(bad); i++) {
                int64_t ms = 42;

                if (rf_time_parse(bad[i], &ms) != RF_EINVAL)
                        fail_msg("\"%s\" was accepted", bad[i]);
                /* the output is untouched on error */
                assert_int_equal(ms, 42);
        }
        assert_int_equal(rf_time_parse(NULL, &(int64_t){ 0 }), RF_EINVAL);
}

static void test_time_parse_leap_second(void **state)
{
        (void)state;
        /* A leap second is accepted and read as the second before it. */
        assert_int_equal(parse_ok("2016-12-31T23:59:60Z"),
                         parse_ok("2016-12-31T23:59:59Z"));
        assert_int_equal(parse_ok("2016-12-31T23:59:60.5Z"),
                         parse_ok("2016-12-31T23:59:59.500Z"));
}

/* ---- rf_time_format -----------------------------------------------------*/

static void test_time_format(void **state)
{
        (void)state;
        assert_string_equal(fmt(0), "1970-01-01T00:00:00.000Z");
        assert_string_equal(fmt(1795338840123), "2026-11-22T09:14:00.123Z");
        assert_string_equal(fmt(1709208000000), "2024-02-29T12:00:00.000Z");
        assert_string_equal(fmt(253402300799999), "9999-12-31T23:59:59.999Z");
        /* before the epoch the fraction still counts up within a second */
        assert_string_equal(fmt(-1), "1969-12-31T23:59:59.999Z");
        assert_string_equal(fmt(-1000), "1969-12-31T23:59:59.000Z");
        assert_string_equal(fmt(-1001), "1969-12-31T23:59:58.999Z");
        assert_string_equal(fmt(-14182940000), "1969-07-20T20:17:40.000Z");
}

static void test_time_format_normalises_offsets(void **state)
{
        (void)state;
        assert_string_equal(fmt(parse_ok("2026-11-22T10:14:00.5+01:00")),
                            "2026-11-22T09:14:00.500Z");
        assert_string_equal(fmt(parse_ok("2026-12-31T20:00:00-05:00")),
                            "2027-01-01T01:00:00.000Z");
}

static void test_time_round_trip(void **state)
{
        static const int64_t fixed[] = {
                0,
                1,
                -1,
                999,
                1000,
                -999,
                -1000,
                -1001,
                951782400000,
                1709208000000,
                1795338840123,
                4102444799999,
                -2208988800000,
                253402300799999,
        };
        uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift, fixed seed */
        (void)state;

        for (size_t i = 0; i < RF_ARRAY_SIZE(fixed); i++)
                assert_int_equal(parse_ok(fmt(fixed[i])), fixed[i]);
        for (int i = 0; i < 10000; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                /* years 1 .. 9999 */
                int64_t ms = (int64_t)(x % 315537897600000u) - 62135596800000;
                if (parse_ok(fmt(ms)) != ms)
                        fail_msg("%lld -> %s", (long long)ms, fmt(ms));
        }
}

static void test_time_format_small_buffer(void **state)
{
        char buf[11];
        (void)state;

        memset(buf, 'x', sizeof(buf));
        /* truncated and NUL-terminated, never written past (ASan) */
        assert_ptr_equal(rf_time_format(1795338840123, buf, sizeof(buf)), buf);
        assert_string_equal(buf, "2026-11-22");
}

static void test_clocks(void **state)
{
        int64_t m1 = rf_mono_ms(), n1 = rf_mono_ns();
        (void)state;

        /* after 2020-01-01 and before 2100-01-01 */
        assert_true(rf_now_ms() > 1577836800000);
        assert_true(rf_now_ms() < 4102444800000);
        assert_true(rf_mono_ms() >= m1);
        assert_true(rf_mono_ns() >= n1);
}

/* ---- rf_buf -------------------------------------------------------------*/

static void test_buf_append_printf_reset(void **state)
{
        rf_buf_t b = { 0 };
        (void)state;

        rf_buf_append(&b, "abc", 3);
        rf_buf_printf(&b, "-%d-%s", 42, "x");
        assert_int_equal(b.len, 8);
        assert_string_equal(b.data, "abc-42-x");

        /* grows across many doublings, staying NUL-terminated */
        for (int i = 0; i < 1000; i++)
                rf_buf_printf(&b, "%04d", i);
        assert_int_equal(b.len, 8 + 4000);
        assert_int_equal(b.data[b.len], '\0');
        assert_memory_equal(b.data + 8 + 4 * 999, "0999", 4);
        assert_true(b.size > b.len);

        char *before = b.data;
        size_t size = b.size;
        rf_buf_reset(&b);
        assert_int_equal(b.len, 0);
        assert_string_equal(b.data, "");
        assert_ptr_equal(b.data, before);
        assert_int_equal(b.size, size);

        rf_buf_free(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.size, 0);
        rf_buf_free(&b); /* twice is harmless */
}

/* The printf-free formatters print what printf prints. */
static void test_decimal_and_number_formatting(void **state)
{
        const uint64_t ints[] = { 0, 7, 10, 99, 100, 4294967295u, UINT64_MAX };
        const double nums[] = { 0.0,
                                -0.0,
                                1.0,
                                -1.0,
                                100.0,
                                0.5,
                                -2.25,
                                0.30000000000000004,
                                1e-7,
                                123456789012345.0,
                                -123456789012345.0,
                                999999999999999.0,
                                1e15,
                                -1e15,
                                1e16,
                                9007199254740993.0,
                                1.7976931348623157e308,
                                5e-324 };
        rf_buf_t got = { 0 };
        char want[64];
        (void)state;

        for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
                rf_buf_reset(&got);
                rf_buf_put_dec(&got, ints[i]);
                snprintf(want, sizeof(want), "%llu",
                         (unsigned long long)ints[i]);
                assert_string_equal(got.data, want);
        }
        for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
                rf_buf_reset(&got);
                rf_json_num(&got, nums[i]);
                snprintf(want, sizeof(want), "%.15g", nums[i]);
                assert_string_equal(got.data, want);
        }
        rf_buf_reset(&got);
        rf_buf_puts(&got, "a\"b");
        assert_string_equal(got.data, "a\"b");
        rf_buf_free(&got);
}

static void test_varint_encoding(void **state)
{
        rf_buf_t b = { 0 };
        (void)state;

        rf_buf_put_varint(&b, 0);
        assert_int_equal(b.len, 1);
        assert_memory_equal(b.data, "\x00", 1);
        rf_buf_reset(&b);

        rf_buf_put_varint(&b, 300); /* the protobuf docs' example */
        assert_int_equal(b.len, 2);
        assert_memory_equal(b.data, "\xac\x02", 2);
        rf_buf_reset(&b);

        rf_buf_put_varint(&b, 127);
        assert_int_equal(b.len, 1);
        rf_buf_reset(&b);
        rf_buf_put_varint(&b, 128);
        assert_int_equal(b.len, 2);
        rf_buf_reset(&b);
        rf_buf_put_varint(&b, UINT64_MAX);
        assert_int_equal(b.len, 10);
        rf_buf_free(&b);
}

static void test_varint_round_trip(void **state)
{
        static const uint64_t vals[] = {
                0,          1,
                127,        128,
                255,        300,
                16383,      16384,
                2097151,    2097152,
                UINT32_MAX, (uint64_t)UINT32_MAX + 1,
                1ull << 56, (1ull << 63) - 1,
                1ull << 63, UINT64_MAX,
        };
        rf_buf_t b = { 0 };
        rf_cur_t c;
        (void)state;

        for (size_t i = 0; i < RF_ARRAY_SIZE(vals); i++)
                rf_buf_put_varint(&b, vals[i]);
        c = (rf_cur_t){ b.data, b.data + b.len, 0 };
        for (size_t i = 0; i < RF_ARRAY_SIZE(vals); i++)
                assert_int_equal(rf_cur_varint(&c), vals[i]);
        assert_int_equal(c.err, 0);
        assert_ptr_equal(c.p, c.end);
        rf_buf_free(&b);
}

static void test_be64_round_trip_and_order(void **state)
{
        rf_buf_t b = { 0 }, lo = { 0 }, hi = { 0 };
        rf_cur_t c;
        (void)state;

        rf_buf_put_be64(&b, 0x0102030405060708u);
        assert_int_equal(b.len, 8);
        assert_memory_equal(b.data, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
        rf_buf_put_be64(&b, 0);
        rf_buf_put_be64(&b, UINT64_MAX);
        c = (rf_cur_t){ b.data, b.data + b.len, 0 };
        assert_int_equal(rf_cur_be64(&c), 0x0102030405060708u);
        assert_int_equal(rf_cur_be64(&c), 0);
        assert_int_equal(rf_cur_be64(&c), UINT64_MAX);
        assert_int_equal(c.err, 0);

        /* keys built with it sort numerically as bytes (RocksDB order) */
        rf_buf_put_be64(&lo, 255);
        rf_buf_put_be64(&hi, 256);
        assert_true(memcmp(lo.data, hi.data, 8) < 0);
        rf_buf_free(&b);
        rf_buf_free(&lo);
        rf_buf_free(&hi);
}

static void test_str_round_trip(void **state)
{
        static const char *const strs[] = { "hello", "", "with\ttab",
                                            "ünïcödé" };
        rf_buf_t b = { 0 };
        rf_cur_t c;
        size_t len;
        char big[300];
        (void)state;

        memset(big, 'z', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        for (size_t i = 0; i < RF_ARRAY_SIZE(strs); i++)
                rf_buf_put_str(&b, strs[i]);
        rf_buf_put_str(&b, NULL);
        rf_buf_put_str(&b, big); /* two-byte length prefix */

        c = (rf_cur_t){ b.data, b.data + b.len, 0 };
        for (size_t i = 0; i < RF_ARRAY_SIZE(strs); i++) {
                const char *s = rf_cur_str(&c, &len);
                assert_string_equal(s, strs[i]);
                assert_int_equal(len, strlen(strs[i]));
                /* decoded strings point into the buffer: no copy */
                assert_true(s >= b.data && s < b.data + b.len);
        }
        assert_string_equal(rf_cur_str(&c, &len), ""); /* from NULL */
        assert_int_equal(len, 0);
        assert_string_equal(rf_cur_str(&c, NULL), big);
        assert_int_equal(c.err, 0);
        assert_ptr_equal(c.p, c.end);
        rf_buf_free(&b);
}

static void test_mixed_record_round_trip(void **state)
{
        rf_buf_t b = { 0 };
        rf_cur_t c;
        double score = 0.875;
        uint8_t flag = 0xa5;
        (void)state;

        /* the shape of a stored list entry */
        rf_buf_put_be64(&b, 1795338840123);
        rf_buf_put_str(&b, "item-42");
        rf_buf_append(&b, &score, sizeof(score));
        rf_buf_append(&b, &flag, 1);
        rf_buf_put_varint(&b, 7);

        c = (rf_cur_t){ b.data, b.data + b.len, 0 };
        assert_int_equal(rf_cur_be64(&c), 1795338840123);
        assert_string_equal(rf_cur_str(&c, NULL), "item-42");
        assert_true(rf_cur_double(&c) == 0.875);
        assert_int_equal(rf_cur_u8(&c), 0xa5);
        assert_int_equal(rf_cur_varint(&c), 7);
        assert_int_equal(c.err, 0);
        assert_ptr_equal(c.p, c.end);
        rf_buf_free(&b);
}

/* ---- rf_cur overruns ----------------------------------------------------*/

static void test_cur_overrun_on_empty(void **state)
{
        const char *empty = "";
        rf_cur_t c;
        size_t len = 99;
        (void)state;

        c = (rf_cur_t){ empty, empty, 0 };
        assert_int_equal(rf_cur_varint(&c), 0);
        assert_int_equal(c.err, RF_EINVAL);

        c = (rf_cur_t){ empty, empty, 0 };
        assert_string_equal(rf_cur_str(&c, &len), "");
        assert_int_equal(len, 0);
        assert_int_equal(c.err, RF_EINVAL);

        c = (rf_cur_t){ empty, empty, 0 };
        assert_int_equal(rf_cur_be64(&c), 0);
        assert_int_equal(c.err, RF_EINVAL);

        c = (rf_cur_t){ empty, empty, 0 };
        assert_int_equal(rf_cur_u8(&c), 0);
        assert_int_equal(c.err, RF_EINVAL);

        c = (rf_cur_t){ empty, empty, 0 };
        assert_true(rf_cur_double(&c) == 0);
        assert_int_equal(c.err, RF_EINVAL);
        assert_ptr_equal(c.p, empty);
}

/* Copies \p n bytes to the heap so ASan catches any read past them. */
static char *exact(const void *p, size_t n)
{
        char *d = malloc(n ? n : 1);

        assert_non_null(d);
        memcpy(d, p, n);
        return d;
}

static void test_cur_truncated_inputs(void **state)
{
        rf_buf_t b = { 0 };
        rf_cur_t c;
        char *d;
        (void)state;

        /* every proper prefix of an encoded record fails somewhere, and
         * no read goes past the prefix */
        rf_buf_put_varint(&b, 1ull << 40);
        rf_buf_put_str(&b, "a string of some length");
        rf_buf_put_be64(&b, 12345);
        for (size_t n = 0; n < b.len; n++) {
                d = exact(b.data, n);
                c = (rf_cur_t){ d, d + n, 0 };
                rf_cur_varint(&c);
                rf_cur_str(&c, NULL);
                rf_cur_be64(&c);
                if (c.err != RF_EINVAL)
                        fail_msg("prefix of %zu/%zu bytes decoded", n, b.len);
                assert_true(c.p <= c.end);
                free(d);
        }
        rf_buf_free(&b);
}

static void test_cur_corrupt_inputs(void **state)
{
        /* continuation bit set on the last byte */
        static const char cont[] = { (char)0x80, (char)0x80 };
        /* 11 bytes of continuation: longer than any uint64 varint */
        static const char toolong[] = { (char)0xff, (char)0xff, (char)0xff,
                                        (char)0xff, (char)0xff, (char)0xff,
                                        (char)0xff, (char)0xff, (char)0xff,
                                        (char)0xff, 0x01 };
        /* a length that runs past the end */
        static const char longlen[] = { 10, 'a', 'b', 'c', 0 };
        /* the stored NUL is missing */
        static const char nonul[] = { 3, 'a', 'b', 'c', 'd' };
        static const char seven[] = { 1, 2, 3, 4, 5, 6, 7 };
        rf_cur_t c;
        char *d;
        (void)state;

        d = exact(cont, sizeof(cont));
        c = (rf_cur_t){ d, d + sizeof(cont), 0 };
        assert_int_equal(rf_cur_varint(&c), 0);
        assert_int_equal(c.err, RF_EINVAL);
        free(d);

        d = exact(toolong, sizeof(toolong));
        c = (rf_cur_t){ d, d + sizeof(toolong), 0 };
        rf_cur_varint(&c);
        assert_int_equal(c.err, RF_EINVAL);
        free(d);

        d = exact(longlen, sizeof(longlen));
        c = (rf_cur_t){ d, d + sizeof(longlen), 0 };
        assert_string_equal(rf_cur_str(&c, NULL), "");
        assert_int_equal(c.err, RF_EINVAL);
        free(d);

        d = exact(nonul, sizeof(nonul));
        c = (rf_cur_t){ d, d + sizeof(nonul), 0 };
        assert_string_equal(rf_cur_str(&c, NULL), "");
        assert_int_equal(c.err, RF_EINVAL);
        free(d);

        d = exact(seven, sizeof(seven));
        c = (rf_cur_t){ d, d + sizeof(seven), 0 };
        assert_int_equal(rf_cur_be64(&c), 0);
        assert_int_equal(c.err, RF_EINVAL);
        assert_ptr_equal(c.p, d); /* nothing consumed */
        free(d);
}

static void test_cur_error_is_sticky(void **state)
{
        rf_buf_t b = { 0 };
        rf_cur_t c;
        (void)state;

        rf_buf_put_be64(&b, 1);
        rf_buf_put_varint(&b, 5);
        /* read the 9 bytes as a be64 then a str: the str overruns... */
        c = (rf_cur_t){ b.data, b.data + b.len, 0 };
        rf_cur_be64(&c);
        rf_cur_str(&c, NULL);
        assert_int_equal(c.err, RF_EINVAL);
        /* ...and later reads cannot clear the error */
        c.p = b.data;
        rf_cur_u8(&c);
        assert_int_equal(c.err, RF_EINVAL);
        rf_buf_free(&b);
}

/* ---- names and helpers --------------------------------------------------*/

static void test_names(void **state)
{
        (void)state;
        assert_string_equal(rf_err2str(RF_OK), "success");
        assert_string_equal(rf_err2str(RF_ECONFIG), "configuration error");
        assert_string_equal(rf_err2str(12345), "unknown error");
        for (int r = 0; r < RF_REJ__CNT; r++) {
                const char *n = rf_reject2str((rf_reject_t)r);
                assert_non_null(n);
                assert_string_not_equal(n, "unknown");
        }
        assert_string_equal(rf_reject2str(RF_REJ_MISSING_FIELD),
                            "missing_field");
        assert_string_equal(rf_reject2str(RF_REJ__CNT), "unknown");
        assert_string_equal(rf_reject2str((rf_reject_t)-1), "unknown");

        rf_rejection_t rej;
        rf_reject(&rej, RF_REJ_BAD_TYPE, "field \"%s\": expected %s", "score",
                  "number");
        assert_int_equal(rej.reason, RF_REJ_BAD_TYPE);
        assert_string_equal(rej.msg, "field \"score\": expected number");
}

static void test_strdup_and_strv(void **state)
{
        char **v = rf_calloc(3, sizeof(*v));
        (void)state;

        assert_null(rf_strdup(NULL));
        v[0] = rf_strdup("a");
        v[1] = rf_strdup("");
        assert_string_equal(v[0], "a");
        assert_string_equal(v[1], "");
        assert_null(v[2]);
        rf_strv_free(v); /* LSan checks that all three are freed */
        rf_strv_free(NULL);
}

static void *json_in_thread(void *arg)
{
        (void)arg;
        /* no arena open on this thread: plain malloc, even while the
         * main thread has one */
        return json_pack("{s:s}", "made", "elsewhere");
}

static void test_json_arena(void **state)
{
        (void)state;
        json_t *outside = json_string("made before the arena");
        json_error_t err;
        pthread_t th;
        void *other;

        assert_int_equal(rf_json_arena_bytes(), 0);
        rf_json_arena_begin();
        /* Values from the arena: the parse is counted in it. */
        json_t *v =
            json_loads("{\"a\":[1,2,{\"b\":\"c\"}],\"d\":\"e\"}", 0, &err);
        assert_non_null(v);
        assert_true(rf_json_arena_bytes() > 0);
        assert_string_equal(
            json_string_value(json_object_get(
                json_array_get(json_object_get(v, "a"), 2), "b")),
            "c");
        /* Bigger than a chunk. */
        char *big = malloc(300000);
        memset(big, 'x', 299999);
        big[299999] = '\0';
        json_t *bs = json_string(big);
        assert_int_equal(json_string_length(bs), 299999);
        assert_true(rf_json_arena_bytes() >= 299999);
        free(big);
        /* Made on another thread meanwhile: malloc'd, freed here by
         * free() (LeakSanitizer would report it otherwise). */
        assert_int_equal(pthread_create(&th, NULL, json_in_thread, NULL), 0);
        assert_int_equal(pthread_join(th, &other), 0);
        assert_string_equal(json_string_value(json_object_get(other, "made")),
                            "elsewhere");
        json_decref(other);
        /* Made before: freed for real as well. */
        json_decref(outside);
        /* Nested pairs: the inner end leaves the arena open. */
        rf_json_arena_begin();
        json_t *w = json_integer(7);
        rf_json_arena_end();
        assert_true(rf_json_arena_bytes() > 0);
        assert_int_equal(json_integer_value(w), 7);
        json_decref(w);
        json_decref(bs);
        json_decref(v);
        rf_json_arena_end();
        assert_int_equal(rf_json_arena_bytes(), 0);
        rf_json_arena_end(); /* unpaired: ignored */
        assert_int_equal(rf_json_arena_bytes(), 0);

        /* A second arena on the thread works as the first. */
        rf_json_arena_begin();
        v = json_loads("[\"again\"]", 0, &err);
        assert_string_equal(json_string_value(json_array_get(v, 0)), "again");
        json_decref(v);
        rf_json_arena_end();
        /* Outside, jansson allocates as before. */
        v = json_string("after");
        assert_int_equal(rf_json_arena_bytes(), 0);
        json_decref(v);
}

/* rf_validmem_get()'s valid count, or -1; its campaign count must be what
 * vm_put() stored beside it. */
static int64_t vm_get(const rf_validmem_t *m, const char *key, size_t klen,
                      const char *run, uint64_t epoch)
{
        rf_validmem_val_t v;

        if (!rf_validmem_get(m, "u", key, klen, run, strlen(run), epoch, &v))
                return -1;
        assert_int_equal(v.campaigns, v.valid + 1000);
        return v.valid;
}

static void vm_put(rf_validmem_t *m, const char *key, size_t klen,
                   const char *run, uint64_t epoch, int32_t valid)
{
        rf_validmem_put(
            m, "u", key, klen, run, strlen(run), epoch,
            (rf_validmem_val_t){ .valid = valid, .campaigns = valid + 1000 });
}

/* valid_memory.h: a bound is of one list, version and runs epoch; a list
 * forgotten stays forgotten through the batch's settle, and a new list in
 * its slot evicts it. */
/* The run of a reverse-index entry's list key: after the third NUL, or
 * after the fourth for a fallback list with a region. */
static void test_key_list_run(void **state)
{
        static const struct {
                const char *key;
                size_t klen;
                const char *region;
                const char *run; /* NULL: incremental */
                size_t base;
        } cases[] = {
                { "u\0home\0ctx", 10, "eu", NULL, 10 },
                { "u\0home\0ctx\0r1", 13, "eu", "r1", 10 },
                { "u\0home\0\0r1", 10, NULL, "r1", 7 },
                { "__fallback__\0home\0", 18, "", NULL, 18 },
                { "__fallback__\0home\0\0r1", 21, "", "r1", 18 },
                { "__fallback__\0home\0\0eu", 21, "eu", NULL, 21 },
                { "__fallback__\0home\0\0eu\0r1", 24, "eu", "r1", 21 },
                { "__fallback__x\0home\0\0eu", 22, "eu", "eu", 19 },
        };
        (void)state;
        for (size_t i = 0; i < RF_ARRAY_SIZE(cases); i++) {
                size_t base = 0, rlen = 99;
                const char *run = rf_key_list_run(
                    cases[i].key, cases[i].klen, cases[i].region, &base, &rlen);
                assert_int_equal(base, cases[i].base);
                if (!cases[i].run) {
                        assert_null(run);
                        assert_int_equal(rlen, 0);
                        continue;
                }
                assert_non_null(run);
                assert_int_equal(rlen, strlen(cases[i].run));
                assert_memory_equal(run, cases[i].run, rlen);
        }
}

/* The id set answers membership exactly, sized small (slots in the
 * struct, reused after a free) or large (allocated), with colliding
 * probes. */
static void test_idset(void **state)
{
        static const size_t sizes[] = { 0, 1, 100, 128, 129, 5000 };
        char(*ids)[16] = rf_malloc(2 * 5000 * sizeof(*ids));
        rf_idset_t set;

        (void)state;
        for (size_t n = 0; n < 2 * 5000; n++)
                snprintf(ids[n], sizeof(ids[n]), "i%07zu", n);
        for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
                size_t n = sizes[z];
                for (int round = 0; round < 2; round++) {
                        rf_idset_init(&set, n);
                        assert_true(set.mask + 1 >= 2 * n);
                        assert_int_equal(set.slot == set.inl,
                                         set.mask + 1 <= RF_IDSET_INLINE);
                        for (size_t i = 0; i < n; i++)
                                assert_int_equal(rf_idset_add(&set, ids[i]), 0);
                        for (size_t i = 0; i < n; i++)
                                assert_int_equal(rf_idset_add(&set, ids[i]), 1);
                        /* absent ids stay absent (and are added once) */
                        for (size_t i = n; i < 2 * n && i < n + 3; i++)
                                assert_int_equal(
                                    rf_idset_add(&set, ids[i + 5000 - n]), 0);
                        rf_idset_free(&set);
                        assert_null(set.slot);
                }
        }
        free(ids);
}

static void test_valid_memory(void **state)
{
        (void)state;
        const char key[] = "u1\0home\0", other[] = "u2\0home\0";
        rf_validmem_t *m = rf_validmem_new(8);

        assert_null(rf_validmem_new(0));
        assert_int_equal(vm_get(NULL, key, sizeof(key), "", 1), -1);
        assert_int_equal(vm_get(m, key, sizeof(key), "", 1), -1);
        vm_put(m, key, sizeof(key), "r1", 7, 42);
        assert_int_equal(vm_get(m, key, sizeof(key), "r1", 7), 42);
        /* another version, another epoch, another list: not this bound */
        assert_int_equal(vm_get(m, key, sizeof(key), "", 7), -1);
        assert_int_equal(vm_get(m, key, sizeof(key), "r2", 7), -1);
        assert_int_equal(vm_get(m, key, sizeof(key), "r1", 8), -1);
        assert_int_equal(vm_get(m, other, sizeof(other), "r1", 7), -1);
        /* keys differ only past a NUL */
        assert_int_equal(vm_get(m, key, 3, "r1", 7), -1);
        rf_validmem_forget(m, key, sizeof(key));
        assert_int_equal(vm_get(m, key, sizeof(key), "r1", 7), -1);
        /* counted again inside the batch: forgotten at its settle */
        vm_put(m, key, sizeof(key), "r1", 7, 40);
        assert_int_equal(vm_get(m, key, sizeof(key), "r1", 7), 40);
        rf_validmem_settle(m);
        assert_int_equal(vm_get(m, key, sizeof(key), "r1", 7), -1);
        vm_put(m, key, sizeof(key), "r1", 7, 39);
        rf_validmem_settle(m); /* nothing changed since the last */
        assert_int_equal(vm_get(m, key, sizeof(key), "r1", 7), 39);
        /* the subject's hides or consent changed */
        rf_validmem_subject_changed(m, "u");
        assert_int_equal(vm_get(m, key, sizeof(key), "r1", 7), -1);
        vm_put(m, key, sizeof(key), "r1", 7, 38);
        assert_int_equal(vm_get(m, key, sizeof(key), "r1", 7), 38);
        /* 8 slots: of 64 lists, some share the slot and evict */
        int kept = 0;
        for (int i = 0; i < 64; i++) {
                char k[16];
                int n = snprintf(k, sizeof(k), "s%d", i);
                vm_put(m, k, (size_t)n, "", 7, i);
        }
        for (int i = 0; i < 64; i++) {
                char k[16];
                int n = snprintf(k, sizeof(k), "s%d", i);
                int64_t v = vm_get(m, k, (size_t)n, "", 7);
                assert_true(v == -1 || v == i);
                kept += v == i;
        }
        assert_true(kept >= 1 && kept <= 8);
        rf_validmem_destroy(m);
}

/* Keys of the valid memory's set \p set (of \p sets), by the hash it picks
 * sets with: "kN" for the next N from *from. */
static int vm_key_in_set(uint64_t set, uint64_t sets, int *from, char *k,
                         size_t size)
{
        for (;; (*from)++) {
                int n = snprintf(k, size, "k%d", *from);
                if ((rf_hash_slot(k, (size_t)n) & (sets - 1)) == set) {
                        (*from)++;
                        return n;
                }
        }
}

/* Two ways a set: two lists of one set are both kept, a third evicts the
 * one remembered less recently, and a forget finds a list in either way.
 * As many lists as slots keep well over the 63% a direct-mapped table
 * keeps (about 73%). */
static void test_valid_memory_ways(void **state)
{
        char a[16], b[16], c[16], d[16];
        int from = 0;
        rf_validmem_t *m = rf_validmem_new(8); /* 4 sets of 2 */

        (void)state;
        int na = vm_key_in_set(1, 4, &from, a, sizeof(a));
        int nb = vm_key_in_set(1, 4, &from, b, sizeof(b));
        int nc = vm_key_in_set(1, 4, &from, c, sizeof(c));
        int nd = vm_key_in_set(1, 4, &from, d, sizeof(d));
        vm_put(m, a, (size_t)na, "", 1, 10);
        vm_put(m, b, (size_t)nb, "", 1, 11);
        assert_int_equal(vm_get(m, a, (size_t)na, "", 1), 10);
        assert_int_equal(vm_get(m, b, (size_t)nb, "", 1), 11);
        vm_put(m, c, (size_t)nc, "", 1, 12); /* a leaves */
        assert_int_equal(vm_get(m, a, (size_t)na, "", 1), -1);
        assert_int_equal(vm_get(m, b, (size_t)nb, "", 1), 11);
        assert_int_equal(vm_get(m, c, (size_t)nc, "", 1), 12);
        vm_put(m, b, (size_t)nb, "", 1, 13); /* b to the front */
        vm_put(m, d, (size_t)nd, "", 1, 14); /* c leaves */
        assert_int_equal(vm_get(m, c, (size_t)nc, "", 1), -1);
        assert_int_equal(vm_get(m, b, (size_t)nb, "", 1), 13);
        assert_int_equal(vm_get(m, d, (size_t)nd, "", 1), 14);
        rf_validmem_forget(m, b, (size_t)nb); /* behind d */
        assert_int_equal(vm_get(m, b, (size_t)nb, "", 1), -1);
        vm_put(m, a, (size_t)na, "", 1, 15); /* the empty way, d stays */
        assert_int_equal(vm_get(m, a, (size_t)na, "", 1), 15);
        assert_int_equal(vm_get(m, d, (size_t)nd, "", 1), 14);
        rf_validmem_destroy(m);

        enum { SLOTS = 65536 };
        int kept = 0;
        m = rf_validmem_new(SLOTS);
        for (int i = 0; i < SLOTS; i++) {
                int n = snprintf(a, sizeof(a), "l%d", i);
                vm_put(m, a, (size_t)n, "", 1, i);
        }
        for (int i = 0; i < SLOTS; i++) {
                int n = snprintf(a, sizeof(a), "l%d", i);
                int64_t v = vm_get(m, a, (size_t)n, "", 1);
                assert_true(v == -1 || v == i);
                kept += v == i;
        }
        assert_true(kept > SLOTS * 7 / 10);
        rf_validmem_destroy(m);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_time_parse_utc),
                cmocka_unit_test(test_key_list_run),
                cmocka_unit_test(test_valid_memory),
                cmocka_unit_test(test_valid_memory_ways),
                cmocka_unit_test(test_idset),
                cmocka_unit_test(test_decimal_and_number_formatting),
                cmocka_unit_test(test_json_arena),
                cmocka_unit_test(test_time_parse_offsets),
                cmocka_unit_test(test_time_parse_fractions),
                cmocka_unit_test(test_time_parse_leap_years),
                cmocka_unit_test(test_time_parse_rejects),
                cmocka_unit_test(test_time_parse_leap_second),
                cmocka_unit_test(test_time_format),
                cmocka_unit_test(test_time_format_normalises_offsets),
                cmocka_unit_test(test_time_round_trip),
                cmocka_unit_test(test_time_format_small_buffer),
                cmocka_unit_test(test_clocks),
                cmocka_unit_test(test_buf_append_printf_reset),
                cmocka_unit_test(test_varint_encoding),
                cmocka_unit_test(test_varint_round_trip),
                cmocka_unit_test(test_be64_round_trip_and_order),
                cmocka_unit_test(test_str_round_trip),
                cmocka_unit_test(test_mixed_record_round_trip),
                cmocka_unit_test(test_cur_overrun_on_empty),
                cmocka_unit_test(test_cur_truncated_inputs),
                cmocka_unit_test(test_cur_corrupt_inputs),
                cmocka_unit_test(test_cur_error_is_sticky),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_strdup_and_strv),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
