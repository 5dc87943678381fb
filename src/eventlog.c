/*
 * recfresh - the event log archive: segment writer with rotation and
 * retention, and a reader that reports damage with its position and goes
 * on (see eventlog.h for the format and the crash-consistency argument).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "recfresh/eventlog.h"
#include "recfresh/log.h"
#include "recfresh/topics.h"

#define FILE_MAGIC     "RFEVLOG1"
#define FILE_MAGIC_LEN 8
#define BLOCK_MAGIC    "RFb1"
#define HDR_LEN        24
/* A block never decompresses beyond this: a corrupt length cannot make the
 * reader allocate gigabytes. */
#define MAX_BLOCK_RAW (256u << 20)
#define ZSTD_LEVEL    3

struct rf_eventlog {
        char *dir;
        int64_t rotate_ms, retention_ms;
        int sync;
        int fd;               /* current segment, -1 before the first */
        char path[PATH_MAX];  /* of the current segment */
        int64_t seg_start_ms; /* when it was started */
        rf_buf_t raw;         /* encoded records of the next block */
        uint32_t nrec;        /* records in raw */
        rf_buf_t comp;        /* compression output */
        ZSTD_CCtx *cctx;
};

/* ---- CRC-32 (IEEE 802.3, reflected) -------------------------------------*/

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                crc_table[i] = c;
        }
}

uint32_t rf_crc32(uint32_t crc, const void *p, size_t len)
{
        const unsigned char *b = p;

        pthread_once(&crc_once, crc_init);
        crc = ~crc;
        while (len--)
                crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

static void put_le32(unsigned char *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
               (uint32_t)p[3] << 24;
}

/* ---- writer -------------------------------------------------------------*/

static int write_all(int fd, const void *p, size_t len)
{
        const char *c = p;

        while (len) {
                ssize_t w = write(fd, c, len);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return -1;
                c += w;
                len -= (size_t)w;
        }
        return 0;
}

static int is_segment_name(const char *name)
{
        size_t n = strlen(name), s = strlen(RF_EVENTLOG_SUFFIX);

        return !strncmp(name, "events-", 7) && n > s &&
               !strcmp(name + n - s, RF_EVENTLOG_SUFFIX);
}

int rf_eventlog_expire(const char *dir, int64_t retention_ms, int64_t now_ms,
                       const char *keep)
{
        char path[PATH_MAX];
        struct dirent *de;
        struct stat sb;
        int deleted = 0;
        DIR *d;

        if (retention_ms <= 0 || !(d = opendir(dir)))
                return 0;
        while ((de = readdir(d))) {
                if (!is_segment_name(de->d_name))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                if ((keep && !strcmp(path, keep)) || stat(path, &sb) != 0)
                        continue;
                int64_t mtime = (int64_t)sb.st_mtim.tv_sec * 1000 +
                                sb.st_mtim.tv_nsec / 1000000;
                if (mtime >= now_ms - retention_ms)
                        continue;
                if (unlink(path) == 0) {
                        deleted++;
                        rf_log_info("eventlog",
                                    "deleted %s: older than retention",
                                    de->d_name);
                } else {
                        rf_log_warn("eventlog", "cannot delete %s: %s", path,
                                    strerror(errno));
                }
        }
        closedir(d);
        return deleted;
}

static int segment_start(rf_eventlog_t *el, int64_t now_ms, char *errstr,
                         size_t errstr_size)
{
        if (el->fd >= 0) {
                if (el->sync)
                        fdatasync(el->fd);
                close(el->fd);
                el->fd = -1;
        }
        for (int n = 0; n < 1000 && el->fd < 0; n++) {
                if (n == 0)
                        snprintf(el->path, sizeof(el->path),
                                 "%s/events-%013lld" RF_EVENTLOG_SUFFIX,
                                 el->dir, (long long)now_ms);
                else
                        snprintf(el->path, sizeof(el->path),
                                 "%s/events-%013lld-%03d" RF_EVENTLOG_SUFFIX,
                                 el->dir, (long long)now_ms, n);
                el->fd = open(el->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                              0640);
                if (el->fd < 0 && errno != EEXIST)
                        break;
        }
        if (el->fd < 0 || write_all(el->fd, FILE_MAGIC, FILE_MAGIC_LEN)) {
                snprintf(errstr, errstr_size, "%s: %s", el->path,
                         strerror(errno));
                if (el->fd >= 0)
                        close(el->fd);
                el->fd = -1;
                el->path[0] = '\0';
                return RF_EIO;
        }
        el->seg_start_ms = now_ms;
        rf_eventlog_expire(el->dir, el->retention_ms, now_ms, el->path);
        rf_log_info("eventlog", "writing %s", el->path);
        return 0;
}

rf_eventlog_t *rf_eventlog_open(const char *dir, int64_t rotate_ms,
                                int64_t retention_ms, int sync, char *errstr,
                                size_t errstr_size)
{
        rf_eventlog_t *el;

        if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
                snprintf(errstr, errstr_size, "%s: %s", dir, strerror(errno));
                return NULL;
        }
        el = rf_calloc(1, sizeof(*el));
        el->dir = rf_strdup(dir);
        el->rotate_ms = rotate_ms;
        el->retention_ms = retention_ms;
        el->sync = sync;
        el->fd = -1;
        el->cctx = ZSTD_createCCtx();
        if (!el->cctx) {
                snprintf(errstr, errstr_size, "zstd: cannot create context");
                rf_eventlog_close(el);
                return NULL;
        }
        rf_eventlog_expire(dir, retention_ms, rf_now_ms(), NULL);
        return el;
}

static void put_bytes(rf_buf_t *b, const char *p, size_t len)
{
        rf_buf_put_varint(b, p ? (uint64_t)len + 1 : 0);
        if (p)
                rf_buf_append(b, p, len);
}

void rf_eventlog_add(rf_eventlog_t *el, const rf_record_t *rec)
{
        rf_buf_put_str(&el->raw, rec->topic_name ? rec->topic_name : "");
        rf_buf_put_varint(&el->raw, (uint64_t)(uint32_t)rec->partition);
        rf_buf_put_varint(&el->raw, (uint64_t)(rec->offset + 1));
        rf_buf_put_varint(&el->raw, (uint64_t)(rec->timestamp_ms + 1));
        put_bytes(&el->raw, rec->key, rec->key_len);
        put_bytes(&el->raw, rec->value, rec->value_len);
        el->nrec++;
}

int rf_eventlog_flush(rf_eventlog_t *el, int64_t now_ms, char *errstr,
                      size_t errstr_size)
{
        unsigned char hdr[HDR_LEN];
        size_t bound, clen;
        int r = 0;

        if (!el->nrec)
                return 0;
        if (el->fd < 0 || now_ms - el->seg_start_ms >= el->rotate_ms)
                if ((r = segment_start(el, now_ms, errstr, errstr_size)))
                        goto out;

        bound = ZSTD_compressBound(el->raw.len);
        rf_buf_reset(&el->comp);
        if (el->comp.size < bound) {
                el->comp.data = rf_realloc(el->comp.data, bound);
                el->comp.size = bound;
        }
        clen = ZSTD_compressCCtx(el->cctx, el->comp.data, bound, el->raw.data,
                                 el->raw.len, ZSTD_LEVEL);
        if (ZSTD_isError(clen)) {
                snprintf(errstr, errstr_size, "zstd: %s",
                         ZSTD_getErrorName(clen));
                r = RF_EIO;
                goto out;
        }
        memcpy(hdr, BLOCK_MAGIC, 4);
        put_le32(hdr + 4, (uint32_t)clen);
        put_le32(hdr + 8, (uint32_t)el->raw.len);
        put_le32(hdr + 12, el->nrec);
        put_le32(hdr + 16, rf_crc32(0, el->comp.data, clen));
        put_le32(hdr + 20, rf_crc32(0, hdr, 20));
        if (write_all(el->fd, hdr, HDR_LEN) ||
            write_all(el->fd, el->comp.data, clen) ||
            (el->sync && fdatasync(el->fd))) {
                snprintf(errstr, errstr_size, "%s: %s", el->path,
                         strerror(errno));
                r = RF_EIO;
        }
out:
        rf_buf_reset(&el->raw);
        el->nrec = 0;
        return r;
}

const char *rf_eventlog_segment(const rf_eventlog_t *el)
{
        return el->path;
}

void rf_eventlog_close(rf_eventlog_t *el)
{
        if (!el)
                return;
        if (el->fd >= 0) {
                if (el->sync)
                        fdatasync(el->fd);
                close(el->fd);
        }
        ZSTD_freeCCtx(el->cctx);
        rf_buf_free(&el->raw);
        rf_buf_free(&el->comp);
        free(el->dir);
        free(el);
}

/* ---- reader -------------------------------------------------------------*/

typedef struct reader {
        const char *path;
        rf_eventlog_rec_cb *rec_cb;
        rf_eventlog_damage_cb *damage_cb;
        void *opaque;
        rf_buf_t raw;
        ZSTD_DCtx *dctx;
} reader_t;

static void damage(reader_t *rd, uint64_t pos, uint64_t len, const char *what)
{
        if (rd->damage_cb)
                rd->damage_cb(rd->opaque, rd->path, pos, len, what);
}

static int header_ok(const unsigned char *h)
{
        return !memcmp(h, BLOCK_MAGIC, 4) &&
               get_le32(h + 20) == rf_crc32(0, h, 20);
}

static const char *get_bytes(rf_cur_t *c, size_t *len)
{
        uint64_t n = rf_cur_varint(c);
        const char *p;

        *len = 0;
        if (c->err || n == 0)
                return NULL;
        if (n - 1 > (uint64_t)(c->end - c->p)) {
                c->err = RF_EINVAL;
                return NULL;
        }
        p = c->p;
        *len = (size_t)(n - 1);
        c->p += *len;
        return p;
}

/* Decodes and delivers the records of one block. @returns 0, the callback's
 * value, or 1 with *bad set if the records are malformed. */
static int block_records(reader_t *rd, uint32_t nrec, int *bad)
{
        rf_cur_t c = { rd->raw.data, rd->raw.data + rd->raw.len, 0 };

        for (uint32_t i = 0; i < nrec; i++) {
                rf_record_t rec = { 0 };
                rec.topic_name = rf_cur_str(&c, NULL);
                rec.partition = (int32_t)rf_cur_varint(&c);
                rec.offset = (int64_t)rf_cur_varint(&c) - 1;
                rec.timestamp_ms = (int64_t)rf_cur_varint(&c) - 1;
                rec.key = get_bytes(&c, &rec.key_len);
                rec.value = get_bytes(&c, &rec.value_len);
                if (c.err) {
                        *bad = 1;
                        return 1;
                }
                rec.topic = rf_topic_by_name(rec.topic_name);
                int r = rd->rec_cb(rd->opaque, &rec);
                if (r)
                        return r;
        }
        if (c.p != c.end)
                *bad = 1;
        return *bad;
}

/* Scans for the next valid block header after \p from. @returns its
 * position or \p size. */
static size_t resync(const unsigned char *buf, size_t size, size_t from)
{
        for (size_t p = from; p + HDR_LEN <= size; p++)
                if (buf[p] == 'R' && header_ok(buf + p))
                        return p;
        return size;
}

static int read_segment(reader_t *rd, const unsigned char *buf, size_t size)
{
        char what[160];
        size_t pos = FILE_MAGIC_LEN;

        if (size < FILE_MAGIC_LEN || memcmp(buf, FILE_MAGIC, FILE_MAGIC_LEN)) {
                size_t next = resync(buf, size, 0);
                damage(rd, 0, next, "bad file magic");
                pos = next;
        }
        while (pos < size) {
                const unsigned char *h = buf + pos;
                size_t next;

                if (size - pos < HDR_LEN) {
                        damage(rd, pos, size - pos,
                               "truncated block header at end of file");
                        break;
                }
                if (!header_ok(h)) {
                        next = resync(buf, size, pos + 1);
                        damage(rd, pos, next - pos, "bad block header");
                        pos = next;
                        continue;
                }
                uint32_t clen = get_le32(h + 4), rlen = get_le32(h + 8);
                uint32_t nrec = get_le32(h + 12);
                if (clen > size - pos - HDR_LEN) {
                        snprintf(what, sizeof(what),
                                 "truncated block (%zu of %u payload bytes)",
                                 size - pos - HDR_LEN, clen);
                        next = resync(buf, size, pos + 1);
                        damage(rd, pos, next - pos, what);
                        pos = next;
                        continue;
                }
                next = pos + HDR_LEN + clen;
                if (get_le32(h + 16) != rf_crc32(0, h + HDR_LEN, clen)) {
                        snprintf(what, sizeof(what),
                                 "block payload CRC mismatch (%u records "
                                 "lost)",
                                 nrec);
                        damage(rd, pos, next - pos, what);
                        pos = next;
                        continue;
                }
                if (rlen > MAX_BLOCK_RAW) {
                        damage(rd, pos, next - pos, "block too large");
                        pos = next;
                        continue;
                }
                rf_buf_reset(&rd->raw);
                if (rd->raw.size < (size_t)rlen + 1) {
                        rd->raw.data = rf_realloc(rd->raw.data, rlen + 1);
                        rd->raw.size = rlen + 1;
                }
                size_t got = ZSTD_decompressDCtx(rd->dctx, rd->raw.data, rlen,
                                                 h + HDR_LEN, clen);
                if (ZSTD_isError(got) || got != rlen) {
                        snprintf(what, sizeof(what),
                                 "block does not decompress (%u records "
                                 "lost)",
                                 nrec);
                        damage(rd, pos, next - pos, what);
                        pos = next;
                        continue;
                }
                rd->raw.len = got;
                int bad = 0, r = block_records(rd, nrec, &bad);
                if (bad) {
                        damage(rd, pos, next - pos,
                               "malformed records in block");
                } else if (r) {
                        return r;
                }
                pos = next;
        }
        return 0;
}

static int read_file(reader_t *rd, const char *path, char *errstr,
                     size_t errstr_size)
{
        unsigned char *buf = NULL;
        struct stat sb;
        size_t got = 0;
        int fd, r = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &sb) != 0) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                if (fd >= 0)
                        close(fd);
                return errno == ENOENT ? RF_ENOENT : RF_EIO;
        }
        buf = rf_malloc((size_t)sb.st_size + 1);
        while (got < (size_t)sb.st_size) {
                ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        rd->path = path;
        r = read_segment(rd, buf, got);
        free(buf);
        return r;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int rf_eventlog_read(const char *path, rf_eventlog_rec_cb *rec_cb,
                     rf_eventlog_damage_cb *damage_cb, void *opaque,
                     char *errstr, size_t errstr_size)
{
        reader_t rd = { .rec_cb = rec_cb,
                        .damage_cb = damage_cb,
                        .opaque = opaque };
        char **names = NULL;
        size_t cnt = 0;
        struct stat sb;
        int r = 0;

        if (stat(path, &sb) != 0) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return RF_ENOENT;
        }
        rd.dctx = ZSTD_createDCtx();
        if (!S_ISDIR(sb.st_mode)) {
                r = read_file(&rd, path, errstr, errstr_size);
                goto out;
        }
        DIR *d = opendir(path);
        struct dirent *de;
        if (!d) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                r = RF_EIO;
                goto out;
        }
        while ((de = readdir(d))) {
                if (!is_segment_name(de->d_name))
                        continue;
                names = rf_realloc(names, (cnt + 1) * sizeof(*names));
                names[cnt++] = rf_strdup(de->d_name);
        }
        closedir(d);
        qsort(names, cnt, sizeof(*names), cmp_str);
        for (size_t i = 0; i < cnt && r == 0; i++) {
                char p[PATH_MAX];
                snprintf(p, sizeof(p), "%s/%s", path, names[i]);
                r = read_file(&rd, p, errstr, errstr_size);
        }
        for (size_t i = 0; i < cnt; i++)
                free(names[i]);
        free(names);
out:
        ZSTD_freeDCtx(rd.dctx);
        rf_buf_free(&rd.raw);
        return r;
}

int rf_eventlog_is_log(const char *path)
{
        char magic[FILE_MAGIC_LEN];
        size_t n = strlen(path), s = strlen(RF_EVENTLOG_SUFFIX);
        struct stat sb;
        FILE *fp;
        int is = 0;

        if (stat(path, &sb) != 0)
                return 0;
        if (S_ISDIR(sb.st_mode))
                return 1;
        if (n > s && !strcmp(path + n - s, RF_EVENTLOG_SUFFIX))
                return 1;
        if ((fp = fopen(path, "rb"))) {
                is = fread(magic, 1, sizeof(magic), fp) == sizeof(magic) &&
                     !memcmp(magic, FILE_MAGIC, FILE_MAGIC_LEN);
                fclose(fp);
        }
        return is;
}
