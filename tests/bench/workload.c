/*
 * recfresh bench - the synthetic workload model and its JSON records (see
 * workload.h). Deterministic: the same seed and sizes give the same lists
 * and the same n-th event on any machine.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

static const char *surfaces[WL_SURFACES_MAX] = { "home", "email", "search" };
static const char *regions[WL_REGIONS] = { "eu-west", "us-east", "ap-south" };

uint64_t wl_rng_next(wl_rng_t *r)
{
        uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

uint32_t wl_rng_below(wl_rng_t *r, uint32_t n)
{
        return (uint32_t)(((wl_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static double rng_unit(wl_rng_t *r)
{
        return (double)(wl_rng_next(r) >> 11) / 9007199254740992.0;
}

const char *wl_surface(int i)
{
        return surfaces[i];
}

static uint64_t mix(uint64_t seed, uint64_t n)
{
        wl_rng_t r = { seed ^ (n * 0xd6e8feb86659fd93ULL) };
        return wl_rng_next(&r);
}

const char *wl_region(uint32_t s)
{
        return regions[s % WL_REGIONS];
}

static uint32_t zipf_draw(const double *cdf, uint32_t n, wl_rng_t *r)
{
        double u = rng_unit(r) * cdf[n - 1];
        uint32_t lo = 0, hi = n - 1;

        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (cdf[mid] < u)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

wl_t *wl_new(uint64_t seed, uint32_t subjects, uint32_t items)
{
        wl_t *w = rf_calloc(1, sizeof(*w));
        wl_rng_t r = { seed };
        double *cdf = rf_malloc(items * sizeof(*cdf)), acc = 0;
        uint32_t *stamp = rf_calloc(items, sizeof(*stamp));
        uint32_t l = 0;

        w->seed = seed;
        w->subjects = subjects;
        w->items = items;
        for (uint32_t i = 0; i < items; i++) {
                acc += 1.0 / (i + 1.0);
                cdf[i] = acc;
        }
        /* Surfaces per subject: 1-3, from the seed. */
        uint8_t *nsurf = rf_malloc(subjects);
        for (uint32_t s = 0; s < subjects; s++) {
                nsurf[s] = (uint8_t)(1 + wl_rng_below(&r, WL_SURFACES_MAX));
                w->list_cnt += nsurf[s];
        }
        w->list_subject = rf_malloc(w->list_cnt * sizeof(uint32_t));
        w->list_surface = rf_malloc(w->list_cnt);
        w->entries =
            rf_malloc((size_t)w->list_cnt * WL_LIST_LEN * sizeof(uint32_t));
        w->item_lists = rf_calloc(items, sizeof(uint32_t));
        w->item_first = rf_malloc(items * sizeof(uint32_t));
        memset(w->item_first, 0xff, items * sizeof(uint32_t));
        for (uint32_t s = 0; s < subjects; s++) {
                for (int f = 0; f < nsurf[s]; f++, l++) {
                        uint32_t *e = &w->entries[(size_t)l * WL_LIST_LEN];
                        w->list_subject[l] = s;
                        w->list_surface[l] = (uint8_t)f;
                        for (int k = 0; k < WL_LIST_LEN;) {
                                uint32_t it = zipf_draw(cdf, items, &r);
                                if (stamp[it] == l + 1)
                                        continue; /* distinct items */
                                stamp[it] = l + 1;
                                e[k++] = it;
                                if (w->item_lists[it]++ == 0)
                                        w->item_first[it] = l;
                        }
                }
        }
        free(nsurf);
        free(stamp);
        free(cdf);

        /* Tail items, split into background, probe and campaign items. */
        w->tail = rf_malloc(items * sizeof(uint32_t));
        w->probe = rf_malloc(items * sizeof(uint32_t));
        w->campaign_items = rf_malloc(items * sizeof(uint32_t));
        w->item_campaign = rf_malloc(items * sizeof(int32_t));
        for (uint32_t i = 0; i < items; i++) {
                uint32_t c = w->item_lists[i];
                w->item_campaign[i] = -1;
                if (c < 1 || c > 10)
                        continue;
                if (i % 4 == 3)
                        w->probe[w->probe_cnt++] = i;
                else if (i % 4 == 1)
                        w->campaign_items[w->campaign_item_cnt++] = i;
                else
                        w->tail[w->tail_cnt++] = i;
        }
        /* Two items per campaign. */
        w->campaigns = (w->campaign_item_cnt + 1) / 2;
        for (uint32_t j = 0; j < w->campaign_item_cnt; j++)
                w->item_campaign[w->campaign_items[j]] = (int32_t)(j / 2);
        for (uint32_t i = 0; i < items; i++)
                w->index_entries += (uint64_t)w->item_lists[i] *
                                    (w->item_campaign[i] >= 0 ? 3 : 2);
        return w;
}

void wl_destroy(wl_t *w)
{
        if (!w)
                return;
        free(w->list_subject);
        free(w->list_surface);
        free(w->entries);
        free(w->item_lists);
        free(w->item_first);
        free(w->tail);
        free(w->probe);
        free(w->campaign_items);
        free(w->item_campaign);
        free(w);
}

static const char *iso(int64_t ms, char *buf, size_t size)
{
        return rf_time_format(ms, buf, size);
}

void wl_list_json(const wl_t *w, uint32_t l, const char *run_id,
                  int64_t generated_ms, rf_buf_t *out)
{
        uint32_t s = w->list_subject[l];
        const uint32_t *e = &w->entries[(size_t)l * WL_LIST_LEN];
        char gen[40], exp[40];

        rf_buf_printf(out,
                      "{\"subject_id\":\"u%08u\",\"surface\":\"%s\","
                      "\"region\":\"%s\",\"list_id\":\"l%08u-%u\",",
                      s, surfaces[w->list_surface[l]], wl_region(s), l,
                      (unsigned)(w->seed & 0xffff));
        if (run_id)
                rf_buf_printf(out, "\"run_id\":\"%s\",", run_id);
        rf_buf_printf(out,
                      "\"generated_at\":\"%s\",\"expires_at\":\"%s\","
                      "\"model_version\":\"bench-v1\",\"items\":[",
                      iso(generated_ms, gen, sizeof(gen)),
                      iso(generated_ms + 30LL * 86400000, exp, sizeof(exp)));
        for (int k = 0; k < WL_LIST_LEN; k++) {
                uint32_t it = e[k];
                rf_buf_printf(out,
                              "%s{\"item_id\":\"i%07u\",\"score\":%d,"
                              "\"creator_id\":\"c%05u\"",
                              k ? "," : "", it, WL_LIST_LEN - k, it % 50000);
                if (w->item_campaign[it] >= 0)
                        rf_buf_printf(out, ",\"campaign_id\":\"k%05d\"",
                                      w->item_campaign[it]);
                rf_buf_append(out, "}", 1);
        }
        rf_buf_append(out, "]}", 2);
}

void wl_ban_json(uint32_t item, const char *event_id, int64_t now_ms,
                 rf_buf_t *out)
{
        char t[40];
        rf_buf_printf(out,
                      "{\"event_id\":\"%s\",\"type\":\"item_banned\","
                      "\"item_id\":\"i%07u\",\"occurred_at\":\"%s\"}",
                      event_id, item, iso(now_ms, t, sizeof(t)));
}

void wl_event(const wl_t *w, uint64_t n, int64_t now_ms, wl_event_t *ev)
{
        wl_rng_t r = { mix(w->seed, n) };
        uint32_t pick = wl_rng_below(&r, 100);
        uint32_t subj = wl_rng_below(&r, w->subjects);
        uint32_t item = w->tail_cnt ? w->tail[wl_rng_below(&r, w->tail_cnt)]
                                    : wl_rng_below(&r, w->items);
        char t[40], id[48];

        iso(now_ms, t, sizeof(t));
        snprintf(id, sizeof(id), "b%llx-%llu",
                 (unsigned long long)(w->seed & 0xffffff),
                 (unsigned long long)n);
        rf_buf_reset(&ev->value);
        if (pick < 20) {
                ev->kind = WL_BAN;
                ev->topic = "recs.item-bans.v1";
                snprintf(ev->key, sizeof(ev->key), "i%07u", item);
                rf_buf_printf(
                    &ev->value,
                    "{\"event_id\":\"%s\",\"type\":\"%s\","
                    "\"item_id\":\"%s\",\"occurred_at\":\"%s\"}",
                    id, wl_rng_below(&r, 2) ? "item_banned" : "item_unbanned",
                    ev->key, t);
        } else if (pick < 50) {
                ev->kind = WL_STOCK;
                ev->topic = "recs.stock.v1";
                snprintf(ev->key, sizeof(ev->key), "i%07u", item);
                rf_buf_printf(&ev->value,
                              "{\"event_id\":\"%s\",\"type\":\"stock_changed\","
                              "\"item_id\":\"%s\",\"in_stock\":%s,",
                              id, ev->key,
                              wl_rng_below(&r, 2) ? "true" : "false");
                if (wl_rng_below(&r, 10) < 4)
                        rf_buf_printf(&ev->value, "\"region\":\"%s\",",
                                      regions[wl_rng_below(&r, WL_REGIONS)]);
                rf_buf_printf(&ev->value, "\"occurred_at\":\"%s\"}", t);
        } else if (pick < 70) {
                /* A hide of an item or creator of one of the user's lists
                 * (approximately: the first list of a tail item). */
                static const char *types[4] = { "item_hidden", "item_unhidden",
                                                "creator_hidden",
                                                "creator_unhidden" };
                int ty = (int)wl_rng_below(&r, 4);
                uint32_t l = w->item_first[item];
                if (l != UINT32_MAX)
                        subj = w->list_subject[l];
                ev->kind = WL_HIDE;
                ev->topic = "recs.user-hides.v1";
                snprintf(ev->key, sizeof(ev->key), "u%08u", subj);
                rf_buf_printf(&ev->value,
                              "{\"event_id\":\"%s\",\"type\":\"%s\","
                              "\"user_id\":\"%s\",",
                              id, types[ty], ev->key);
                if (ty < 2)
                        rf_buf_printf(&ev->value, "\"item_id\":\"i%07u\",",
                                      item);
                else
                        rf_buf_printf(&ev->value, "\"creator_id\":\"c%05u\",",
                                      item % 50000);
                rf_buf_printf(&ev->value, "\"occurred_at\":\"%s\"}", t);
        } else if (pick < 75) {
                /* email/push only: a personalization revocation purges the
                 * subject's lists, which later rows read. */
                ev->kind = WL_CONSENT;
                ev->topic = "recs.consent.v1";
                snprintf(ev->key, sizeof(ev->key), "u%08u", subj);
                rf_buf_printf(
                    &ev->value,
                    "{\"event_id\":\"%s\",\"type\":\"%s\",\"user_id\":\"%s\","
                    "\"scope\":\"%s\",\"occurred_at\":\"%s\"}",
                    id,
                    wl_rng_below(&r, 2) ? "consent_revoked" : "consent_granted",
                    ev->key, wl_rng_below(&r, 2) ? "email" : "push", t);
        } else if (pick < 80 && w->campaigns) {
                ev->kind = WL_CAMPAIGN;
                ev->topic = "recs.campaigns.v1";
                snprintf(ev->key, sizeof(ev->key), "k%05u",
                         wl_rng_below(&r, w->campaigns));
                rf_buf_printf(&ev->value,
                              "{\"event_id\":\"%s\",\"type\":"
                              "\"campaign_expired\",\"campaign_id\":\"%s\","
                              "\"occurred_at\":\"%s\"}",
                              id, ev->key, t);
        } else {
                /* `at` grows with n, so no activity record is older than
                 * the one held (stale ones are not counted as taken). */
                ev->kind = WL_ACTIVITY;
                ev->topic = "recs.activity.v1";
                snprintf(ev->key, sizeof(ev->key), "u%08u", subj);
                iso(WL_ACTIVITY_EPOCH_MS + (int64_t)n, t, sizeof(t));
                rf_buf_printf(&ev->value,
                              "{\"user_id\":\"%s\",\"at\":\"%s\","
                              "\"surface\":\"home\"}",
                              ev->key, t);
        }
}
