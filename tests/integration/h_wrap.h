/*
 * recfresh integration tests - RocksDB calls a test wraps (-Wl,--wrap=NAME;
 * see CMakeLists.txt): the linker sends the library's callers to
 * __wrap_NAME, which may call the real one as __real_NAME.
 */
#ifndef RECFRESH_H_WRAP_H
#define RECFRESH_H_WRAP_H

#include <rocksdb/c.h>

rocksdb_pinnableslice_t *
__real_rocksdb_get_pinned_cf(rocksdb_t *db, const rocksdb_readoptions_t *o,
                             rocksdb_column_family_handle_t *cf,
                             const char *key, size_t klen, char **errptr);
rocksdb_pinnableslice_t *
__wrap_rocksdb_get_pinned_cf(rocksdb_t *db, const rocksdb_readoptions_t *o,
                             rocksdb_column_family_handle_t *cf,
                             const char *key, size_t klen, char **errptr);

#endif /* RECFRESH_H_WRAP_H */
