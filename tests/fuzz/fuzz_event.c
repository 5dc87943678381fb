/*
 * libFuzzer target: every event topic's codec. The first byte picks the
 * topic (bans, stock, hides, consent, campaigns) and whether a key is given.
 * rf_event_parse() reads flat events with yajl when it can: it must answer
 * exactly as the tree parser does, event or rejection.
 */
#include <string.h>

#include "recfresh/event.h"
#include "recfresh/topics.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int same_str(const char *a, const char *b)
{
        return (!a && !b) || (a && b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        static const int topics[] = { RF_TOPIC_ITEM_BANS, RF_TOPIC_STOCK,
                                      RF_TOPIC_USER_HIDES, RF_TOPIC_CONSENT,
                                      RF_TOPIC_CAMPAIGNS };
        rf_rejection_t rej, rej2;
        rf_event_t ev, ev2;

        if (size < 1)
                return 0;
        int topic = topics[(data[0] >> 1) % RF_ARRAY_SIZE(topics)];
        const char *key = (data[0] & 1) ? "k1" : NULL;
        const char *text = (const char *)data + 1;
        int r = rf_event_parse(topic, key, key ? 2 : 0, text, size - 1,
                               &rf_limits_default, &ev, &rej);
        int r2 = rf_event_parse_tree(topic, key, key ? 2 : 0, text, size - 1,
                                     &rf_limits_default, &ev2, &rej2);
        if (r != r2)
                __builtin_trap(); /* the two parsers disagree */
        if (r == 0) {
                if (ev.type != ev2.type || ev.in_stock != ev2.in_stock ||
                    ev.scope != ev2.scope ||
                    ev.occurred_at != ev2.occurred_at ||
                    !same_str(ev.event_id, ev2.event_id) ||
                    !same_str(ev.item_id, ev2.item_id) ||
                    !same_str(ev.creator_id, ev2.creator_id) ||
                    !same_str(ev.campaign_id, ev2.campaign_id) ||
                    !same_str(ev.user_id, ev2.user_id) ||
                    !same_str(ev.region, ev2.region) ||
                    !same_str(ev.reason, ev2.reason))
                        __builtin_trap();
                rf_event_clear(&ev);
                rf_event_clear(&ev2);
        } else if (rej.reason == RF_REJ_NONE) {
                __builtin_trap(); /* a rejection always has a reason */
        } else if (rej.reason != rej2.reason || strcmp(rej.msg, rej2.msg)) {
                __builtin_trap();
        }
        return 0;
}
