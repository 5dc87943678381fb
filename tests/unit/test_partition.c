/*
 * Unit tests of the subject partitioner (cluster.h): rf_murmur2() gives the
 * values of Kafka's own Utils.murmur2 test vectors (so the Java client's
 * default partitioner agrees), and rf_partition_of() agrees with
 * librdkafka's murmur2 partitioner, the reference, for keys of every length
 * class and many partition counts, including non-ASCII keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "recfresh/cluster.h"

/* org.apache.kafka.common.utils.UtilsTest#testMurmur2 (Java ints). */
static void test_murmur2_java_vectors(void **state)
{
        static const struct {
                const char *key;
                int32_t java;
        } cases[] = {
                { "21", -973932308 },
                { "foobar", -790332482 },
                { "a-little-bit-long-string", -985981536 },
                { "a-little-bit-longer-string", -1486304829 },
                { "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                  -58897971 },
                { "abc", 479470107 },
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint32_t h = rf_murmur2(cases[i].key, strlen(cases[i].key));
                if ((int32_t)h != cases[i].java)
                        fail_msg("murmur2(\"%s\") = %d, Java says %d",
                                 cases[i].key, (int32_t)h, cases[i].java);
        }
}

/* The Java default partitioner: toPositive(murmur2(key)) % partitions. */
static void test_partition_of_java(void **state)
{
        (void)state;
        /* -973932308 & 0x7fffffff = 1173551340 */
        assert_int_equal(rf_partition_of("21", 2, 8), 1173551340 % 8);
        assert_int_equal(rf_partition_of("21", 2, 1), 0);
        /* 479470107 is positive already */
        assert_int_equal(rf_partition_of("abc", 3, 7), 479470107 % 7);
        assert_int_equal(rf_partition_of("abc", 3, 0), -1);
        assert_int_equal(rf_partition_of("abc", 3, -3), -1);
}

static void test_partition_of_matches_librdkafka(void **state)
{
        static const char *const fixed[] = {
                "a",
                "hello",
                "u1",
                "user-42",
                "__fallback__",
                "s00",
                "",
                "\xc3\xa9t\xc3\xa9",
                "0123",
                "01234",
                "012345",
                "0123456",
        };
        static const int32_t counts[] = { 1, 2, 3, 4, 7, 8, 12, 16, 100, 1024 };
        char key[64];

        (void)state;
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
                for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
                        size_t len = strlen(fixed[i]);
                        int32_t ref = rd_kafka_msg_partitioner_murmur2(
                            NULL, fixed[i], len, counts[c], NULL, NULL);
                        if (rf_partition_of(fixed[i], len, counts[c]) != ref)
                                fail_msg(
                                    "\"%s\" over %d: %d, librdkafka %d",
                                    fixed[i], counts[c],
                                    rf_partition_of(fixed[i], len, counts[c]),
                                    ref);
                }
                for (int i = 0; i < 2000; i++) {
                        int n = snprintf(key, sizeof(key), "subject-%d-%s", i,
                                         i % 3 ? "x" : "yz");
                        int32_t ref = rd_kafka_msg_partitioner_murmur2(
                            NULL, key, (size_t)n, counts[c], NULL, NULL);
                        assert_int_equal(
                            rf_partition_of(key, (size_t)n, counts[c]), ref);
                }
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_murmur2_java_vectors),
                cmocka_unit_test(test_partition_of_java),
                cmocka_unit_test(test_partition_of_matches_librdkafka),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
