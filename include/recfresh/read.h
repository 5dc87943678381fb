/*
 * recfresh - the read path: what a serving layer gets for (subject,
 * surface, context). One function, rf_read_list(), used by `recfresh get`
 * and the HTTP API. It applies every tombstone at read time (the final
 * check), so a read is correct the moment an event is committed.
 */
#ifndef RECFRESH_READ_H
#define RECFRESH_READ_H

#include "recfresh/config.h"
#include "recfresh/list.h"
#include "recfresh/store.h"
#include "recfresh/tombstone.h"

typedef struct rf_read_req {
        const char *subject_id;
        const char *surface;
        const char *context_key; /* NULL or "" for the default */
        size_t limit;            /* entries wanted; 0 = all that survive */
} rf_read_req_t;

typedef enum rf_read_status {
        RF_READ_FOUND = 0,      /* a stored list was checked */
        RF_READ_NO_LIST,        /* nothing stored for the key */
        RF_READ_CONSENT_BLOCKED /* the subject's consent forbids it */
} rf_read_status_t;

/** @returns "found", "no_list", "consent_blocked". */
const char *rf_read_status2str(rf_read_status_t s);

/** One served entry. */
typedef struct rf_served {
        const rf_entry_t *entry; /* points into result.list */
        uint32_t position;       /* 0-based position in the stored list */
} rf_served_t;

typedef struct rf_read_result {
        rf_read_status_t status;
        rf_list_t *list;     /* the stored list (owned) or NULL; holds at
                              * least the entries scanned (a read decodes
                              * only as many as it needs) */
        rf_served_t *served; /* owned */
        size_t served_cnt;
        size_t filtered[RF_FILTER__CNT]; /* entries skipped, by reason */
        size_t scanned;                  /* entries examined */
} rf_read_result_t;

/**
 * Reads and checks one list. \p res is filled; release it with
 * rf_read_result_clear(). Entries are served in stored order.
 * @returns 0 (see res->status) or a store error.
 */
int rf_read_list(rf_store_t *st, const rf_config_t *conf,
                 const rf_read_req_t *req, rf_read_result_t *res);

void rf_read_result_clear(rf_read_result_t *res);

#endif /* RECFRESH_READ_H */
