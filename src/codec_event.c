/*
 * recfresh - the codec of the five event topics (recs.item-bans.v1,
 * recs.stock.v1, recs.user-hides.v1, recs.consent.v1, recs.campaigns.v1).
 *
 * A value is read without a tree when yajl can read it as jansson would
 * (rf_json_flat_parse: every event of the common shape). Otherwise it is
 * checked against the limits before it is parsed (size, then nesting depth
 * on the raw bytes, so a hostile record cannot make jansson recurse), then
 * parsed with jansson. Either way the same code validates it field by field
 * against what topics/<name>.json says. Type-dependent requirements the schema
 * cannot express (item_id for item_hidden, creator_id for creator_hidden) are
 * enforced here. Every rejection names the field it is about and never
 * quotes the record's own bytes, so messages stay short, ASCII and safe to
 * log and to put on the dead-letter topic.
 *
 * A parsed event owns one block (mem_) holding all its strings; absent
 * fields point at an empty string inside it.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/list.h"
#include "recfresh/codec_json.h"
#include "recfresh/event.h"
#include "recfresh/keys.h"
#include "recfresh/topics.h"

/* Longest "reason" of a ban (free text, not an id): the schema's maxLength. */
#define REASON_MAX_LEN 1024

static const char *const type_names[RF_EV__CNT] = {
        [RF_EV_ITEM_BANNED] = "item_banned",
        [RF_EV_ITEM_UNBANNED] = "item_unbanned",
        [RF_EV_STOCK_CHANGED] = "stock_changed",
        [RF_EV_ITEM_HIDDEN] = "item_hidden",
        [RF_EV_ITEM_UNHIDDEN] = "item_unhidden",
        [RF_EV_CREATOR_HIDDEN] = "creator_hidden",
        [RF_EV_CREATOR_UNHIDDEN] = "creator_unhidden",
        [RF_EV_CONSENT_REVOKED] = "consent_revoked",
        [RF_EV_CONSENT_GRANTED] = "consent_granted",
        [RF_EV_CAMPAIGN_EXPIRED] = "campaign_expired",
};

static const char *const scope_names[RF_SCOPE__CNT] = {
        [RF_SCOPE_ALL] = "all",
        [RF_SCOPE_PERSONALIZATION] = "personalization",
        [RF_SCOPE_EMAIL] = "email",
        [RF_SCOPE_PUSH] = "push",
};

/* The string fields an event can carry. */
enum sfield {
        SF_EVENT_ID,
        SF_ITEM_ID,
        SF_CREATOR_ID,
        SF_CAMPAIGN_ID,
        SF_USER_ID,
        SF_REGION,
        SF_REASON,
        SF__CNT
};

#define BIT(f) (1u << (f))

static const struct sfield_def {
        const char *name;
        int is_id; /* an id: non-empty, at most max_id_len bytes */
} sfields[SF__CNT] = {
        [SF_EVENT_ID] = { "event_id", 1 },
        [SF_ITEM_ID] = { "item_id", 1 },
        [SF_CREATOR_ID] = { "creator_id", 1 },
        [SF_CAMPAIGN_ID] = { "campaign_id", 1 },
        [SF_USER_ID] = { "user_id", 1 },
        [SF_REGION] = { "region", 0 }, /* "" = every region */
        [SF_REASON] = { "reason", 0 }, /* free text */
};

/* What each event topic carries besides "type" and "occurred_at". */
static const struct topic_spec {
        int topic;         /* RF_TOPIC_* */
        enum sfield key;   /* the field the message key must equal */
        unsigned required; /* string fields every type needs */
        unsigned optional; /* string fields read when present */
} topic_specs[] = {
        { RF_TOPIC_ITEM_BANS, SF_ITEM_ID, BIT(SF_EVENT_ID) | BIT(SF_ITEM_ID),
          BIT(SF_REASON) },
        { RF_TOPIC_STOCK, SF_ITEM_ID, BIT(SF_EVENT_ID) | BIT(SF_ITEM_ID),
          BIT(SF_REGION) },
        { RF_TOPIC_USER_HIDES, SF_USER_ID, BIT(SF_EVENT_ID) | BIT(SF_USER_ID),
          BIT(SF_ITEM_ID) | BIT(SF_CREATOR_ID) },
        { RF_TOPIC_CONSENT, SF_USER_ID, BIT(SF_EVENT_ID) | BIT(SF_USER_ID), 0 },
        { RF_TOPIC_CAMPAIGNS, SF_CAMPAIGN_ID,
          BIT(SF_EVENT_ID) | BIT(SF_CAMPAIGN_ID), 0 },
};

/* The topic each type travels on, and what it needs beyond its topic's
 * required fields (the schema cannot say "item_id when item_hidden"). */
static const struct type_spec {
        int topic;
        unsigned needs;
} type_specs[RF_EV__CNT] = {
        [RF_EV_ITEM_BANNED] = { RF_TOPIC_ITEM_BANS, 0 },
        [RF_EV_ITEM_UNBANNED] = { RF_TOPIC_ITEM_BANS, 0 },
        [RF_EV_STOCK_CHANGED] = { RF_TOPIC_STOCK, 0 },
        [RF_EV_ITEM_HIDDEN] = { RF_TOPIC_USER_HIDES, BIT(SF_ITEM_ID) },
        [RF_EV_ITEM_UNHIDDEN] = { RF_TOPIC_USER_HIDES, BIT(SF_ITEM_ID) },
        [RF_EV_CREATOR_HIDDEN] = { RF_TOPIC_USER_HIDES, BIT(SF_CREATOR_ID) },
        [RF_EV_CREATOR_UNHIDDEN] = { RF_TOPIC_USER_HIDES, BIT(SF_CREATOR_ID) },
        [RF_EV_CONSENT_REVOKED] = { RF_TOPIC_CONSENT, 0 },
        [RF_EV_CONSENT_GRANTED] = { RF_TOPIC_CONSENT, 0 },
        [RF_EV_CAMPAIGN_EXPIRED] = { RF_TOPIC_CAMPAIGNS, 0 },
};

const char *rf_event_type2str(rf_event_type_t t)
{
        if ((int)t < 0 || t >= RF_EV__CNT)
                return "unknown";
        return type_names[t];
}

int rf_event_type_topic(rf_event_type_t t)
{
        if ((int)t < 0 || t >= RF_EV__CNT)
                return -1;
        return type_specs[t].topic;
}

const char *rf_consent_scope2str(rf_consent_scope_t s)
{
        if ((int)s < 0 || s >= RF_SCOPE__CNT)
                return "unknown";
        return scope_names[s];
}

int rf_consent_scope_parse(const char *name)
{
        if (!name)
                return -1;
        for (int s = 0; s < RF_SCOPE__CNT; s++)
                if (!strcmp(scope_names[s], name))
                        return s;
        return -1;
}

int rf_json_too_deep(const char *buf, size_t len, int max_depth)
{
        int depth = 0, in_str = 0;

        for (size_t i = 0; i < len; i++) {
                char c = buf[i];

                if (in_str) {
                        if (c == '\\')
                                i++; /* the escaped byte cannot end it */
                        else if (c == '"')
                                in_str = 0;
                        continue;
                }
                switch (c) {
                case '"':
                        in_str = 1;
                        break;
                case '[':
                case '{':
                        if (++depth > max_depth)
                                return 1;
                        break;
                case ']':
                case '}':
                        if (depth > 0)
                                depth--;
                        break;
                default:
                        break;
                }
        }
        return 0;
}

static const struct topic_spec *topic_spec_of(int topic)
{
        for (size_t i = 0; i < RF_ARRAY_SIZE(topic_specs); i++)
                if (topic_specs[i].topic == topic)
                        return &topic_specs[i];
        return NULL;
}

/* Where the fields come from: jansson's tree, or a flat streaming parse
 * of the same text (codec_json.h). Both give the same values, so every
 * check below runs once, on either. */
typedef struct fields {
        json_t *root;               /* the tree, or NULL */
        const rf_json_flat_t *flat; /* else the flat parse */
} fields_t;

static rf_jv_t field(const fields_t *fs, const char *name)
{
        return fs->root ? rf_json_jv(json_object_get(fs->root, name))
                        : rf_json_flat_get(fs->flat, name);
}

/* Reads string field \p f into *sp and *lenp (NULL, 0 when absent and not
 * required). @returns 0 or -1 with rej set. */
static int get_sfield(const fields_t *fs, enum sfield f, int required,
                      const rf_limits_t *lim, const char **sp, size_t *lenp,
                      rf_rejection_t *rej)
{
        const char *name = sfields[f].name;
        rf_jv_t v = field(fs, name);

        *sp = NULL;
        *lenp = 0;
        if (v.kind == RF_JV_ABSENT) {
                if (!required)
                        return 0;
                rf_reject(rej, RF_REJ_MISSING_FIELD, "missing field \"%s\"",
                          name);
                return -1;
        }
        if (v.kind == RF_JV_NULL && !required)
                return 0; /* null for an optional field means absent */
        if (v.kind != RF_JV_STRING) {
                rf_reject(rej, RF_REJ_BAD_TYPE, "field \"%s\": expected string",
                          name);
                return -1;
        }
        size_t max = sfields[f].is_id || f == SF_REGION ? lim->max_id_len
                                                        : REASON_MAX_LEN;
        if (f == SF_EVENT_ID && max > RF_EVENT_ID_MAX)
                max = RF_EVENT_ID_MAX; /* stored whole (keys.h) */
        if (memchr(v.s, '\0', v.len)) {
                rf_reject(rej, RF_REJ_BAD_VALUE,
                          "field \"%s\": contains a NUL byte", name);
                return -1;
        }
        if (sfields[f].is_id && v.len == 0) {
                rf_reject(rej, RF_REJ_BAD_VALUE,
                          "field \"%s\": must not be empty", name);
                return -1;
        }
        if (v.len > max) {
                rf_reject(rej,
                          sfields[f].is_id || f == SF_REGION
                              ? RF_REJ_ID_TOO_LONG
                              : RF_REJ_BAD_VALUE,
                          "field \"%s\": longer than %zu bytes", name, max);
                return -1;
        }
        *sp = v.s;
        *lenp = v.len;
        return 0;
}

/* Reads the required string field \p name (type-checked, NUL-free). */
static int get_required_string(const fields_t *fs, const char *name,
                               rf_jv_t *vp, rf_rejection_t *rej)
{
        rf_jv_t v = field(fs, name);

        if (v.kind == RF_JV_ABSENT) {
                rf_reject(rej, RF_REJ_MISSING_FIELD, "missing field \"%s\"",
                          name);
                return -1;
        }
        if (v.kind != RF_JV_STRING) {
                rf_reject(rej, RF_REJ_BAD_TYPE, "field \"%s\": expected string",
                          name);
                return -1;
        }
        if (memchr(v.s, '\0', v.len)) {
                rf_reject(rej, RF_REJ_BAD_VALUE,
                          "field \"%s\": contains a NUL byte", name);
                return -1;
        }
        *vp = v;
        return 0;
}

/* 1 if string value \p v is \p s. */
static int jv_is(rf_jv_t v, const char *s)
{
        return strlen(s) == v.len && !memcmp(s, v.s, v.len);
}

/* Reads the required RFC 3339 timestamp \p name (a NUL in it makes it a bad
 * timestamp, not a bad value, as for lists). */
static int get_time(const fields_t *fs, const char *name, int64_t *msp,
                    rf_rejection_t *rej)
{
        rf_jv_t v = field(fs, name);
        char tmp[64];

        if (v.kind == RF_JV_ABSENT) {
                rf_reject(rej, RF_REJ_MISSING_FIELD, "missing field \"%s\"",
                          name);
                return -1;
        }
        if (v.kind != RF_JV_STRING) {
                rf_reject(rej, RF_REJ_BAD_TYPE, "field \"%s\": expected string",
                          name);
                return -1;
        }
        /* NUL-terminated for the parser (a flat parse's string is a
         * slice): on the stack unless the fraction is very long. */
        char *t = v.len < sizeof(tmp) ? tmp : rf_malloc(v.len + 1);
        memcpy(t, v.s, v.len);
        t[v.len] = '\0';
        int bad = memchr(v.s, '\0', v.len) || rf_time_parse(t, msp);
        if (t != tmp)
                free(t);
        if (bad) {
                rf_reject(rej, RF_REJ_BAD_TIMESTAMP,
                          "field \"%s\": not an RFC 3339 timestamp", name);
                return -1;
        }
        return 0;
}

/* Resolves "type" to one carried by \p topic. */
static int get_type(const fields_t *fs, int topic, rf_event_type_t *tp,
                    rf_rejection_t *rej)
{
        rf_jv_t v;

        if (get_required_string(fs, "type", &v, rej))
                return -1;
        for (int t = 0; t < RF_EV__CNT; t++) {
                if (type_specs[t].topic == topic && jv_is(v, type_names[t])) {
                        *tp = (rf_event_type_t)t;
                        return 0;
                }
        }
        rf_reject(rej, RF_REJ_UNKNOWN_TYPE,
                  "field \"type\": not an event type of %s",
                  rf_topic(topic)->name);
        return -1;
}

/* Copies the present strings into one block owned by \p ev. */
static void fill_strings(rf_event_t *ev, const char *s[SF__CNT],
                         const size_t len[SF__CNT])
{
        size_t total = 1; /* the shared "" */
        char *mem, *p;
        const char *out[SF__CNT];

        for (int f = 0; f < SF__CNT; f++)
                if (s[f])
                        total += len[f] + 1;
        mem = p = rf_malloc(total);
        *p++ = '\0';
        for (int f = 0; f < SF__CNT; f++) {
                out[f] = mem;
                if (!s[f])
                        continue;
                memcpy(p, s[f], len[f]);
                p[len[f]] = '\0';
                out[f] = p;
                p += len[f] + 1;
        }
        ev->event_id = out[SF_EVENT_ID];
        ev->item_id = out[SF_ITEM_ID];
        ev->creator_id = out[SF_CREATOR_ID];
        ev->campaign_id = out[SF_CAMPAIGN_ID];
        ev->user_id = out[SF_USER_ID];
        ev->region = out[SF_REGION];
        ev->reason = out[SF_REASON];
        ev->mem_ = mem;
}

/* Checks the fields of a parsed event and fills \p ev. */
static int event_fields(int topic, const struct topic_spec *ts, const char *key,
                        size_t key_len, const fields_t *fs,
                        const rf_limits_t *lim, rf_event_t *ev,
                        rf_rejection_t *rej)
{
        const char *s[SF__CNT] = { 0 };
        size_t slen[SF__CNT] = { 0 };
        rf_event_type_t type = RF_EV_ITEM_BANNED;
        int in_stock = 0, scope = RF_SCOPE_ALL;
        int64_t occurred_at = 0;
        rf_jv_t v;

        if (get_type(fs, topic, &type, rej))
                return RF_EINVAL;
        unsigned required = ts->required | type_specs[type].needs;
        for (int f = 0; f < SF__CNT; f++) {
                if (!((required | ts->optional) & BIT(f)))
                        continue;
                if (get_sfield(fs, (enum sfield)f, !!(required & BIT(f)), lim,
                               &s[f], &slen[f], rej))
                        return RF_EINVAL;
        }
        if (get_time(fs, "occurred_at", &occurred_at, rej))
                return RF_EINVAL;
        if (topic == RF_TOPIC_STOCK) {
                v = field(fs, "in_stock");
                if (v.kind == RF_JV_ABSENT) {
                        rf_reject(rej, RF_REJ_MISSING_FIELD,
                                  "missing field \"in_stock\"");
                        return RF_EINVAL;
                }
                if (v.kind != RF_JV_TRUE && v.kind != RF_JV_FALSE) {
                        rf_reject(rej, RF_REJ_BAD_TYPE,
                                  "field \"in_stock\": expected boolean");
                        return RF_EINVAL;
                }
                in_stock = v.kind == RF_JV_TRUE;
        }
        if (topic == RF_TOPIC_CONSENT) {
                if (get_required_string(fs, "scope", &v, rej))
                        return RF_EINVAL;
                scope = -1;
                for (int i = 0; i < RF_SCOPE__CNT; i++)
                        if (jv_is(v, scope_names[i]))
                                scope = i;
                if (scope < 0) {
                        rf_reject(rej, RF_REJ_BAD_VALUE,
                                  "field \"scope\": not a consent scope");
                        return RF_EINVAL;
                }
        }
        /* The fallback lists' subject is not a user: a hide or consent
         * change for it would apply to (or purge) every fallback list. */
        if (s[SF_USER_ID] && slen[SF_USER_ID] == strlen(RF_FALLBACK_SUBJECT) &&
            !memcmp(s[SF_USER_ID], RF_FALLBACK_SUBJECT, slen[SF_USER_ID])) {
                rf_reject(rej, RF_REJ_BAD_VALUE,
                          "field \"user_id\": \"%s\" is reserved for "
                          "fallback lists",
                          RF_FALLBACK_SUBJECT);
                return RF_EINVAL;
        }
        if (key && key_len > 0 &&
            (key_len != slen[ts->key] || memcmp(key, s[ts->key], key_len))) {
                rf_reject(rej, RF_REJ_KEY_MISMATCH,
                          "message key does not match field \"%s\"",
                          sfields[ts->key].name);
                return RF_EINVAL;
        }

        fill_strings(ev, s, slen);
        ev->type = type;
        ev->topic = topic;
        ev->in_stock = in_stock;
        ev->scope = (rf_consent_scope_t)scope;
        ev->occurred_at = occurred_at;
        return RF_OK;
}

static int event_parse(int flat_ok, int topic, const char *key, size_t key_len,
                       const char *buf, size_t len, const rf_limits_t *lim,
                       rf_event_t *ev, rf_rejection_t *rej)
{
        const struct topic_spec *ts = topic_spec_of(topic);
        rf_json_flat_t flat;
        fields_t fs = { NULL, NULL };
        int r;

        memset(ev, 0, sizeof(*ev));
        rej->reason = RF_REJ_NONE;
        rej->msg[0] = '\0';
        if (!lim)
                lim = &rf_limits_default;
        if (!ts) {
                rf_reject(rej, RF_REJ_UNKNOWN_TOPIC,
                          "topic %d carries no events", topic);
                return RF_EINVAL;
        }
        if (key && key_len > lim->max_id_len) {
                rf_reject(rej, RF_REJ_ID_TOO_LONG,
                          "message key: longer than %zu bytes",
                          lim->max_id_len);
                return RF_EINVAL;
        }
        /* Events are flat: yajl reads them without a tree when it reads
         * them as jansson would; jansson parses the rest. */
        if (flat_ok && rf_json_flat_parse(buf, len, lim, &flat) == 0) {
                fs.flat = &flat;
                return event_fields(topic, ts, key, key_len, &fs, lim, ev, rej);
        }
        /* The event's strings are copied out (fill_strings) before the
         * tree goes: the arena may drop it. */
        rf_json_arena_begin();
        if ((fs.root = rf_json_load_object(buf, len, lim, rej))) {
                r = event_fields(topic, ts, key, key_len, &fs, lim, ev, rej);
                json_decref(fs.root);
        } else {
                r = RF_EINVAL;
        }
        rf_json_arena_end();
        return r;
}

int rf_event_parse(int topic, const char *key, size_t key_len, const char *buf,
                   size_t len, const rf_limits_t *lim, rf_event_t *ev,
                   rf_rejection_t *rej)
{
        return event_parse(1, topic, key, key_len, buf, len, lim, ev, rej);
}

int rf_event_parse_tree(int topic, const char *key, size_t key_len,
                        const char *buf, size_t len, const rf_limits_t *lim,
                        rf_event_t *ev, rf_rejection_t *rej)
{
        return event_parse(0, topic, key, key_len, buf, len, lim, ev, rej);
}

void rf_event_clear(rf_event_t *ev)
{
        if (!ev)
                return;
        free(ev->mem_);
        memset(ev, 0, sizeof(*ev));
}
