/*
 * recfresh - the event log archive: every record the daemon applies, kept in
 * append-only local segment files so a replay does not depend on the
 * broker's retention (`recfresh replay`, `recfresh export`).
 *
 * Layout of a directory (config eventlog.dir):
 *   events-<start ms, 13 digits>[-N].rfev   one segment per eventlog.rotate
 * Names sort in creation order. A segment is
 *   "RFEVLOG1"                               8-byte file magic
 *   block*                                   one block per applied batch
 * and a block is a 24-byte header, all little-endian u32:
 *   "RFb1" | payload bytes | raw bytes | records | crc32(payload) |
 *   crc32(the 20 header bytes before it)
 * followed by the payload: one zstd frame holding the block's records, each
 *   topic (varint len, bytes, NUL) | partition (varint) | offset+1 (varint)
 *   | timestamp+1 (varint) | key len+1 (varint, 0 = null) + bytes
 *   | value len+1 (varint, 0 = null) + bytes
 *
 * Damage is detected, reported with its position and skipped: a header whose
 * CRC fails is resynchronised by scanning for the next valid header, a
 * payload whose CRC fails or does not decompress loses that block only, and
 * a block cut short by a crash is reported as a truncated tail.
 *
 * Crash consistency: the daemon appends a batch's block (and, with
 * store.sync, fdatasyncs it) BEFORE it commits the batch to RocksDB. So every
 * committed record is in the log, unless the write failed (eventlog.dir full
 * or failing: the batch is committed anyway, so that invalidations never
 * wait on the archive, and its records are counted in
 * recfresh_eventlog_unarchived_records_total); a crash between the two leaves
 * records in the log that the store never committed, and the consumer
 * re-delivers them (their offsets were not advanced), so they appear twice with
 * the same (topic, partition, offset). Readers keep the first copy of each
 * (topic, partition, offset): nothing is lost or applied twice.
 *
 * Privacy: segments hold subject ids. Segments whose last write is older
 * than eventlog.retention are deleted (at open and at each rotation), so a
 * consent purge reaches the archive within that bound.
 */
#ifndef RECFRESH_EVENTLOG_H
#define RECFRESH_EVENTLOG_H

#include "recfresh/apply.h"

#define RF_EVENTLOG_SUFFIX ".rfev"

typedef struct rf_eventlog rf_eventlog_t;

/**
 * Opens a writer over directory \p dir (created if missing). Each writer
 * starts a new segment (an old segment is never appended to, so a torn tail
 * stays where it is). \p rotate_ms: start a new segment when the current one
 * is older; \p retention_ms: delete segments last written longer ago
 * (0 = keep forever); \p sync: fdatasync each block.
 * @returns the writer or NULL with errstr set.
 */
rf_eventlog_t *rf_eventlog_open(const char *dir, int64_t rotate_ms,
                                int64_t retention_ms, int sync, char *errstr,
                                size_t errstr_size);

/** Buffers one record for the next block (copies what it points to). */
void rf_eventlog_add(rf_eventlog_t *el, const rf_record_t *rec);

/**
 * Writes the buffered records as one block (nothing if none), rotating
 * first if the segment is older than rotate_ms at \p now_ms.
 * @returns 0 or RF_EIO with errstr set (the buffered records are dropped).
 */
int rf_eventlog_flush(rf_eventlog_t *el, int64_t now_ms, char *errstr,
                      size_t errstr_size);

/** @returns the path of the segment being written ("" before the first). */
const char *rf_eventlog_segment(const rf_eventlog_t *el);

/** Closes the current segment and frees the writer. NULL is a no-op. */
void rf_eventlog_close(rf_eventlog_t *el);

/**
 * Deletes the segments of \p dir last modified before \p now_ms -
 * \p retention_ms, except \p keep (may be NULL).
 * @returns the number deleted.
 */
int rf_eventlog_expire(const char *dir, int64_t retention_ms, int64_t now_ms,
                       const char *keep);

/** Called for each record read. @returns 0 to go on, non-zero to stop. */
typedef int(rf_eventlog_rec_cb)(void *opaque, const rf_record_t *rec);

/** Called for each damaged range: \p path, byte \p pos, \p len bytes
 *  skipped, and what was wrong. */
typedef void(rf_eventlog_damage_cb)(void *opaque, const char *path,
                                    uint64_t pos, uint64_t len,
                                    const char *what);

/**
 * Reads a segment file, or every segment of a directory in name order,
 * calling \p rec_cb for each record (rec->topic is resolved from the name,
 * -1 if unknown) and \p damage_cb (may be NULL) for each damaged range.
 * Damage is not an error. Duplicates are NOT removed here (see above).
 * @returns 0, the callback's non-zero value, or RF_EIO/RF_ENOENT with errstr.
 */
int rf_eventlog_read(const char *path, rf_eventlog_rec_cb *rec_cb,
                     rf_eventlog_damage_cb *damage_cb, void *opaque,
                     char *errstr, size_t errstr_size);

/** @returns 1 if \p path is a directory or names a segment file. */
int rf_eventlog_is_log(const char *path);

/** @returns the CRC-32 (IEEE) of \p len bytes, continuing from \p crc. */
uint32_t rf_crc32(uint32_t crc, const void *p, size_t len);

#endif /* RECFRESH_EVENTLOG_H */
