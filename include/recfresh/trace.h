/*
 * recfresh - the apply trace: what the apply path decided about one record,
 * reported as it happens, so `recfresh replay --explain` can attribute every
 * effect (lists affected, entries tombstoned, recomputes queued, records
 * rejected, events ignored as stale) to the event that caused it.
 *
 * The apply path calls rf_trace() at each decision point. It costs one NULL
 * test when no hook is installed (the daemon never installs one); replay
 * installs a callback in rf_apply_ctx_t (apply.h: trace, trace_opaque).
 * Pointers in an rf_trace_t are valid only during the callback.
 */
#ifndef RECFRESH_TRACE_H
#define RECFRESH_TRACE_H

#include "recfresh/common.h"
#include "recfresh/event.h"
#include "recfresh/keys.h"
#include "recfresh/list.h"

typedef enum rf_trace_kind {
        RF_TRACE_TOMB_CHANGED = 0,   /* tombstone state written; see flipped */
        RF_TRACE_TOMB_STALE,         /* event older than the state: ignored */
        RF_TRACE_LIST_APPLIED,       /* list stored (replacing any older one) */
        RF_TRACE_LIST_STALE,         /* an equal or newer list is held */
        RF_TRACE_LIST_BLOCKED,       /* consent revoked: not stored */
        RF_TRACE_LIST_INVALIDATED,   /* a stored list affected by an event */
        RF_TRACE_REJECTED,           /* record dead-lettered */
        RF_TRACE_RECOMPUTE_ENQUEUED, /* recompute request queued */
        RF_TRACE_RECOMPUTE_COALESCED, /* merged into a pending request */
        RF_TRACE__CNT
} rf_trace_kind_t;

/** One decision. Only the fields of its kind are set; others are 0/NULL. */
typedef struct rf_trace {
        rf_trace_kind_t kind;
        const rf_event_t *ev;  /* TOMB_*, and LIST_INVALIDATED when the
                                * event is at hand (else NULL) */
        const rf_list_t *list; /* LIST_APPLIED/STALE/BLOCKED: the new list */
        const rf_list_t *held; /* LIST_STALE/APPLIED: the stored list it
                                * lost to / replaced, or NULL */
        const rf_tomb_t *cur;  /* TOMB_*: the state before, or NULL */
        int active;            /* TOMB_CHANGED: the new state */
        int flipped;           /* TOMB_CHANGED: the in-force flag changed */
        const char *list_key;  /* LIST_INVALIDATED, RECOMPUTE_*: key (a run's
                                * version: the reverse index's form) */
        size_t list_klen;
        const char *region;      /* LIST_INVALIDATED: the list's, or NULL */
        const char *list_id;     /* LIST_INVALIDATED */
        const char *entity_kind; /* LIST_INVALIDATED: "item", "user", ... */
        const char *entity_id;
        const rf_rejection_t *rej; /* REJECTED */
        const char *detail;        /* RECOMPUTE_*: reason, or NULL */
} rf_trace_t;

/** The hook: called synchronously on the writer thread. */
typedef void(rf_trace_cb_t)(void *opaque, const rf_trace_t *t);

/** @returns "tomb_changed", "list_applied", ... */
const char *rf_trace_kind2str(rf_trace_kind_t k);

/**
 * Reports \p t through ctx's hook, if one is installed. A macro so that the
 * apply path pays a NULL test only; \p ctx is an rf_apply_ctx_t *.
 */
#define rf_trace(ctx, ...)                                                     \
        do {                                                                   \
                if ((ctx)->trace) {                                            \
                        rf_trace_t rf_trace_t_ = { __VA_ARGS__ };              \
                        (ctx)->trace((ctx)->trace_opaque, &rf_trace_t_);       \
                }                                                              \
        } while (0)

#endif /* RECFRESH_TRACE_H */
