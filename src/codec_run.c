/*
 * recfresh - the codec of recs.runs.v1, the batch run control records
 * (run_started, run_completed, run_aborted, run_rolled_back). Checked
 * against the limits, parsed with jansson and validated field by field as
 * topics/recs.runs.v1.json says; every rejection names its field.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "recfresh/codec_json.h"
#include "recfresh/event.h"
#include "recfresh/runs.h"

/* The schema's maxItems of "surfaces". */
#define MAX_SURFACES 64

static const char *const type_names[RF_RUN_CTL__CNT] = {
        [RF_RUN_CTL_STARTED] = "run_started",
        [RF_RUN_CTL_COMPLETED] = "run_completed",
        [RF_RUN_CTL_ABORTED] = "run_aborted",
        [RF_RUN_CTL_ROLLED_BACK] = "run_rolled_back",
};

const char *rf_run_ctl_type2str(rf_run_ctl_type_t t)
{
        return (unsigned)t < RF_RUN_CTL__CNT ? type_names[t] : "unknown";
}

/* Reads string \p v named \p name: an id when \p min_len is 1.
 * @returns 0 or -1 with rej set. */
static int check_string(json_t *v, const char *name, size_t min_len,
                        const rf_limits_t *lim, rf_rejection_t *rej)
{
        size_t len;

        if (!json_is_string(v)) {
                rf_reject(rej, RF_REJ_BAD_TYPE, "field \"%s\": expected string",
                          name);
                return -1;
        }
        len = json_string_length(v);
        if (memchr(json_string_value(v), '\0', len)) {
                rf_reject(rej, RF_REJ_BAD_VALUE,
                          "field \"%s\": contains a NUL byte", name);
                return -1;
        }
        if (len < min_len) {
                rf_reject(rej, RF_REJ_BAD_VALUE, "field \"%s\": empty", name);
                return -1;
        }
        if (len > lim->max_id_len) {
                rf_reject(rej, RF_REJ_ID_TOO_LONG,
                          "field \"%s\": longer than %zu bytes", name,
                          lim->max_id_len);
                return -1;
        }
        return 0;
}

int rf_run_ctl_parse(const char *key, size_t key_len, const char *buf,
                     size_t len, const rf_limits_t *lim, rf_run_ctl_t *ctl,
                     rf_rejection_t *rej)
{
        json_t *root = NULL, *v, *surf = NULL;
        const char *type, *run_id, *to = "";
        size_t total, n = 0;
        char *p;
        int t = -1;

        memset(ctl, 0, sizeof(*ctl));
        rej->reason = RF_REJ_NONE;
        rej->msg[0] = '\0';
        if (!lim)
                lim = &rf_limits_default;
        if (key && key_len > lim->max_id_len) {
                rf_reject(rej, RF_REJ_ID_TOO_LONG,
                          "message key: longer than %zu bytes",
                          lim->max_id_len);
                return RF_EINVAL;
        }
        if (!(root = rf_json_load_object(buf, len, lim, rej)))
                return RF_EINVAL;

        /* required fields, in schema order */
        if (!(v = json_object_get(root, "run_id"))) {
                rf_reject(rej, RF_REJ_MISSING_FIELD,
                          "missing field \"run_id\"");
                goto fail;
        }
        if (check_string(v, "run_id", 1, lim, rej))
                goto fail;
        run_id = json_string_value(v);
        if (!(v = json_object_get(root, "type"))) {
                rf_reject(rej, RF_REJ_MISSING_FIELD, "missing field \"type\"");
                goto fail;
        }
        if (!json_is_string(v)) {
                rf_reject(rej, RF_REJ_BAD_TYPE,
                          "field \"type\": expected string");
                goto fail;
        }
        type = json_string_value(v);
        for (int i = 0; i < RF_RUN_CTL__CNT; i++)
                if (strlen(type) == json_string_length(v) &&
                    !strcmp(type, type_names[i]))
                        t = i;
        if (t < 0) {
                rf_reject(rej, RF_REJ_UNKNOWN_TYPE,
                          "field \"type\": not a run control type");
                goto fail;
        }
        if (!(v = json_object_get(root, "generated_at"))) {
                rf_reject(rej, RF_REJ_MISSING_FIELD,
                          "missing field \"generated_at\"");
                goto fail;
        }
        if (!json_is_string(v)) {
                rf_reject(rej, RF_REJ_BAD_TYPE,
                          "field \"generated_at\": expected string");
                goto fail;
        }
        if (strlen(json_string_value(v)) != json_string_length(v) ||
            rf_time_parse(json_string_value(v), &ctl->generated_at)) {
                rf_reject(rej, RF_REJ_BAD_TIMESTAMP,
                          "field \"generated_at\": not an RFC 3339 timestamp");
                goto fail;
        }

        /* optional fields */
        ctl->expected_lists = -1;
        if ((v = json_object_get(root, "expected_lists")) && !json_is_null(v)) {
                if (!json_is_integer(v)) {
                        rf_reject(rej, RF_REJ_BAD_TYPE,
                                  "field \"expected_lists\": expected integer");
                        goto fail;
                }
                if (json_integer_value(v) < 0) {
                        rf_reject(rej, RF_REJ_BAD_VALUE,
                                  "field \"expected_lists\": negative");
                        goto fail;
                }
                ctl->expected_lists = json_integer_value(v);
        }
        if ((v = json_object_get(root, "to")) && !json_is_null(v)) {
                if (check_string(v, "to", 0, lim, rej))
                        goto fail;
                to = json_string_value(v);
        }
        if ((surf = json_object_get(root, "surfaces")) && !json_is_null(surf)) {
                json_t *s;
                size_t i;

                if (!json_is_array(surf)) {
                        rf_reject(rej, RF_REJ_BAD_TYPE,
                                  "field \"surfaces\": expected array");
                        goto fail;
                }
                if (json_array_size(surf) > MAX_SURFACES) {
                        rf_reject(rej, RF_REJ_BAD_VALUE,
                                  "field \"surfaces\": more than %d",
                                  MAX_SURFACES);
                        goto fail;
                }
                json_array_foreach(surf, i, s)
                {
                        char name[32];
                        snprintf(name, sizeof(name), "surfaces[%zu]", i);
                        if (check_string(s, name, 1, lim, rej))
                                goto fail;
                }
                n = json_array_size(surf);
        } else {
                surf = NULL;
        }
        if (t == RF_RUN_CTL_STARTED && n == 0) {
                rf_reject(rej, surf ? RF_REJ_BAD_VALUE : RF_REJ_MISSING_FIELD,
                          surf ? "field \"surfaces\": empty"
                               : "missing field \"surfaces\"");
                goto fail;
        }
        if (key && key_len > 0 &&
            (key_len != strlen(run_id) || memcmp(key, run_id, key_len))) {
                rf_reject(rej, RF_REJ_KEY_MISMATCH,
                          "message key does not match field \"run_id\"");
                goto fail;
        }

        /* one block: the surfaces array, then the strings */
        total = (n + 1) * sizeof(char *) + strlen(run_id) + strlen(to) + 2;
        for (size_t i = 0; i < n; i++)
                total += strlen(json_string_value(json_array_get(surf, i))) + 1;
        ctl->mem_ = rf_malloc(total);
        ctl->surfaces = ctl->mem_;
        p = (char *)ctl->mem_ + (n + 1) * sizeof(char *);
        for (size_t i = 0; i < n; i++) {
                const char *s = json_string_value(json_array_get(surf, i));
                ctl->surfaces[i] = p;
                p = stpcpy(p, s) + 1;
        }
        ctl->surfaces[n] = NULL;
        ctl->surface_cnt = n;
        ctl->run_id = p;
        p = stpcpy(p, run_id) + 1;
        ctl->to = p;
        strcpy(p, to);
        ctl->type = (rf_run_ctl_type_t)t;
        json_decref(root);
        return 0;
fail:
        json_decref(root);
        memset(ctl, 0, sizeof(*ctl));
        return RF_EINVAL;
}

void rf_run_ctl_clear(rf_run_ctl_t *ctl)
{
        if (!ctl)
                return;
        free(ctl->mem_);
        memset(ctl, 0, sizeof(*ctl));
}
