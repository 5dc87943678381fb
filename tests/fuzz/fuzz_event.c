/*
 * libFuzzer target: every event topic's codec. The first byte picks the
 * topic (bans, stock, hides, consent, campaigns) and whether a key is given.
 */
#include "recfresh/event.h"
#include "recfresh/topics.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        static const int topics[] = { RF_TOPIC_ITEM_BANS, RF_TOPIC_STOCK,
                                      RF_TOPIC_USER_HIDES, RF_TOPIC_CONSENT,
                                      RF_TOPIC_CAMPAIGNS };
        rf_rejection_t rej;
        rf_event_t ev;

        if (size < 1)
                return 0;
        int topic = topics[(data[0] >> 1) % RF_ARRAY_SIZE(topics)];
        const char *key = (data[0] & 1) ? "k1" : NULL;
        if (rf_event_parse(topic, key, key ? 2 : 0, (const char *)data + 1,
                           size - 1, &rf_limits_default, &ev, &rej) == 0)
                rf_event_clear(&ev);
        else if (rej.reason == RF_REJ_NONE)
                __builtin_trap(); /* a rejection always has a reason */
        return 0;
}
