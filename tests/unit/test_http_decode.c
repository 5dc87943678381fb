/*
 * Unit: percent-decoding of HTTP path segments and query values
 * (rf_http_pct_decode): escapes, '+', encoded NUL and invalid UTF-8. The
 * batch endpoint's Content-Type check (rf_http_json_type).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "recfresh/http.h"

static long dec(const char *in, int plus, char *out)
{
        return rf_http_pct_decode(in, strlen(in), out, plus);
}

static void test_decodes_escapes(void **state)
{
        char out[64];
        (void)state;

        assert_int_equal(dec("u%2F7%20%c3%A9", 0, out), 6);
        assert_string_equal(out, "u/7 \xc3\xa9");
        assert_int_equal(dec("", 0, out), 0);
        assert_string_equal(out, "");
        assert_int_equal(dec("a+b", 0, out), 3);
        assert_string_equal(out, "a+b");
        assert_int_equal(dec("a+b", 1, out), 3);
        assert_string_equal(out, "a b");
        assert_int_equal(dec("%2B", 1, out), 1);
        assert_string_equal(out, "+");
}

static void test_rejects_bad_input(void **state)
{
        char out[64];
        (void)state;

        assert_int_equal(dec("%", 0, out), -1);
        assert_int_equal(dec("a%2", 0, out), -1);
        assert_int_equal(dec("%zz", 0, out), -1);
        assert_int_equal(dec("%00", 0, out), -1);
        assert_int_equal(dec("%FF", 0, out), -1);          /* not UTF-8 */
        assert_int_equal(dec("%C3", 0, out), -1);          /* truncated */
        assert_int_equal(dec("%C0%AF", 0, out), -1);       /* overlong */
        assert_int_equal(dec("%ED%A0%80", 0, out), -1);    /* surrogate */
        assert_int_equal(dec("%F4%90%80%80", 0, out), -1); /* > U+10FFFF */
        assert_int_equal(dec("\xe2\x82", 0, out), -1);     /* raw, truncated */
        assert_int_equal(dec("%F0%9F%98%80", 0, out), 4);  /* U+1F600 */
}

static void test_json_content_type(void **state)
{
        (void)state;

        assert_true(rf_http_json_type("application/json"));
        assert_true(rf_http_json_type("Application/JSON"));
        assert_true(rf_http_json_type("application/json; charset=utf-8"));
        assert_true(rf_http_json_type("application/json;charset=UTF-8"));
        assert_true(rf_http_json_type("application/json "));
        assert_false(rf_http_json_type("application/jsonXYZ"));
        assert_false(rf_http_json_type("application/json-seq"));
        assert_false(rf_http_json_type("application/json5"));
        assert_false(rf_http_json_type("application/jso"));
        assert_false(rf_http_json_type("text/plain"));
        assert_false(rf_http_json_type(""));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decodes_escapes),
                cmocka_unit_test(test_rejects_bad_input),
                cmocka_unit_test(test_json_content_type),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
