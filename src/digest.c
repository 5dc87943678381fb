/*
 * recfresh - the logical-state digest (see digest.h for what it covers and
 * why consent keys are digested without their pseudonyms).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "recfresh/digest.h"
#include "recfresh/keys.h"

static const struct {
        rf_cf_t cf;
        int digested;
} covered[] = {
        { RF_CF_LISTS, 1 },    { RF_CF_INDEX, 1 }, { RF_CF_TOMBSTONES, 1 },
        { RF_CF_ACTIVITY, 1 }, { RF_CF_RUNS, 1 },  { RF_CF_VERSIONS, 1 },
        { RF_CF_QUEUE, 0 },
};

static void put_len(EVP_MD_CTX *md, uint64_t v)
{
        unsigned char b[8];

        for (int i = 0; i < 8; i++)
                b[i] = (unsigned char)(v >> (56 - 8 * i));
        EVP_DigestUpdate(md, b, 8);
}

static void put_bytes(EVP_MD_CTX *md, const void *p, size_t len)
{
        put_len(md, len);
        EVP_DigestUpdate(md, p, len);
}

static int cmp32(const void *a, const void *b)
{
        return memcmp(a, b, 32);
}

static void digest_cf(rf_store_t *st, rf_digest_cf_t *out)
{
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char *consent = NULL; /* 32-byte digests */
        size_t ccnt = 0;
        rf_iter_t *it = rf_iter_new(st, NULL, out->cf, NULL, 0);
        unsigned int mdlen;

        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        for (; rf_iter_valid(it); rf_iter_next(it)) {
                size_t klen, vlen;
                const char *k = rf_iter_key(it, &klen);
                const char *v = rf_iter_value(it, &vlen);

                /* Refresh runs ('R' keys of activity) are started by the
                 * daemon's wall-clock schedule, not by input records. */
                if (out->cf == RF_CF_ACTIVITY && klen && k[0] == 'R')
                        continue;
                out->count++;
                if (!out->digested)
                        continue;
                if (out->cf == RF_CF_TOMBSTONES && klen == 18 &&
                    k[0] == RF_TOMB_CONSENT) {
                        /* 'C' pseudonym[16] scope: keep scope and state. */
                        EVP_MD_CTX *one = EVP_MD_CTX_new();
                        consent = rf_realloc(consent, (ccnt + 1) * 32);
                        EVP_DigestInit_ex(one, EVP_sha256(), NULL);
                        put_bytes(one, k + 17, 1);
                        put_bytes(one, v, vlen);
                        EVP_DigestFinal_ex(one, consent + 32 * ccnt++, &mdlen);
                        EVP_MD_CTX_free(one);
                        continue;
                }
                put_bytes(md, k, klen);
                put_bytes(md, v, vlen);
        }
        rf_iter_destroy(it);
        if (ccnt) {
                qsort(consent, ccnt, 32, cmp32);
                put_bytes(md, "consent", 7);
                put_len(md, ccnt);
                EVP_DigestUpdate(md, consent, 32 * ccnt);
        }
        free(consent);
        if (out->digested)
                EVP_DigestFinal_ex(md, out->sha256, &mdlen);
        EVP_MD_CTX_free(md);
}

int rf_digest_store(rf_store_t *st, rf_digest_t *out)
{
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned int mdlen;

        memset(out, 0, sizeof(*out));
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        for (size_t i = 0; i < RF_ARRAY_SIZE(covered); i++) {
                rf_digest_cf_t *c = &out->cfs[out->cf_cnt++];
                c->cf = covered[i].cf;
                c->digested = covered[i].digested;
                digest_cf(st, c);
                if (!c->digested)
                        continue;
                put_bytes(md, rf_cf_name(c->cf), strlen(rf_cf_name(c->cf)));
                put_len(md, c->count);
                EVP_DigestUpdate(md, c->sha256, 32);
        }
        EVP_DigestFinal_ex(md, out->sha256, &mdlen);
        EVP_MD_CTX_free(md);
        return 0;
}

char *rf_digest_hex(const unsigned char sha256[32], char hex[65])
{
        return rf_hex(sha256, 32, hex);
}

void rf_digest_print(const rf_digest_t *d, FILE *fp)
{
        char hex[65];

        fprintf(fp, "digest sha256:%s\n", rf_digest_hex(d->sha256, hex));
        for (size_t i = 0; i < d->cf_cnt; i++) {
                const rf_digest_cf_t *c = &d->cfs[i];
                if (c->digested)
                        fprintf(fp, "  %-10s %8llu entries  sha256:%.16s\n",
                                rf_cf_name(c->cf), (unsigned long long)c->count,
                                rf_digest_hex(c->sha256, hex));
                else
                        fprintf(fp, "  %-10s %8llu entries  (not digested)\n",
                                rf_cf_name(c->cf),
                                (unsigned long long)c->count);
        }
}
