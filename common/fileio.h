/* fileio.h: whole-file reads with a size limit, atomic writes, directory helpers.
 *
 * Atomic write (Redis rdbSave style): write to "<path>.tmp.<pid>", fsync it, rename over the
 * target, fsync the directory; a crash leaves the old file or the new one, never half of one.
 * Tested by tests/common/test_fileio.c.
 */
#ifndef SHOAL_COMMON_FILEIO_H
#define SHOAL_COMMON_FILEIO_H

#include <stddef.h>

#include "common/status.h"

/* Read a whole file into a new NUL-terminated buffer (caller frees *data with free()).
 * Refuses files larger than max_bytes with SHOAL_ERR_LIMIT; NOT_FOUND if absent. */
shoal_status shoal_file_read(const char *path, size_t max_bytes, char **data, size_t *len);

/* Write data atomically to path (temp file, fsync, rename, fsync dir). On error the target is
 * untouched and the temp file removed. */
shoal_status shoal_file_write_atomic(const char *path, const void *data, size_t len);

/* Gathered form: writes n pieces back to back, atomically, as one file. */
typedef struct {
    const void *data;
    size_t len;
} shoal_iovec;
shoal_status shoal_file_writev_atomic(const char *path, const shoal_iovec *parts, int n);

/* fsync the directory that contains path (for renames and creations to be durable). */
shoal_status shoal_fsync_parent_dir(const char *path);

/* mkdir -p with mode 0755; OK if it already exists as a directory. */
shoal_status shoal_mkdir_p(const char *dir);

/* 1 if path exists (any type), 0 otherwise. */
int shoal_path_exists(const char *path);

/* Join dir and name into out (size cap); LIMIT if it does not fit. */
shoal_status shoal_path_join(char *out, size_t cap, const char *dir, const char *name);

#endif
