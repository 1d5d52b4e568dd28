/* fileio.c: see fileio.h. */
#define SHOAL_LOG_SUBSYS "fileio"
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/limits.h"

shoal_status shoal_file_read(const char *path, size_t max_bytes, char **data, size_t *len) {
    *data = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        SHOAL_LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return errno == ENOENT ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO;
    }
    shoal_status st = SHOAL_OK;
    char *buf = NULL;
    struct stat sb;
    SHOAL_REQUIRE_GOTO(fstat(fd, &sb) == 0, SHOAL_ERR_IO, "%s: stat: %s", path, strerror(errno));
    SHOAL_REQUIRE_GOTO(!S_ISDIR(sb.st_mode), SHOAL_ERR_INVALID_ARG, "%s: is a directory", path);
    SHOAL_REQUIRE_GOTO((uint64_t)sb.st_size <= max_bytes, SHOAL_ERR_LIMIT,
                       "%s: %lld bytes is over the limit of %zu bytes", path,
                       (long long)sb.st_size, max_bytes);
    size_t size = (size_t)sb.st_size;
    buf = malloc(size + 1);
    SHOAL_REQUIRE_GOTO(buf, SHOAL_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        SHOAL_REQUIRE_GOTO(r >= 0, SHOAL_ERR_IO, "%s: read: %s", path, strerror(errno));
        if (r == 0) break; /* file shrank under us: return what is there */
        got += (size_t)r;
    }
    buf[got] = '\0';
    *data = buf;
    buf = NULL;
    if (len) *len = got;
cleanup:
    free(buf);
    close(fd);
    return st;
}

shoal_status shoal_fsync_parent_dir(const char *path) {
    char dir[SHOAL_MAX_PATH];
    size_t n = strlen(path);
    SHOAL_REQUIRE(n < sizeof dir, SHOAL_ERR_LIMIT, "path too long: %.64s...", path);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    SHOAL_REQUIRE(fd >= 0, SHOAL_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    SHOAL_REQUIRE(rc == 0, SHOAL_ERR_IO, "%s: fsync directory: %s", dir, strerror(errno));
    return SHOAL_OK;
}

static shoal_status write_all(int fd, const char *path, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        SHOAL_REQUIRE(w > 0, SHOAL_ERR_IO, "%s: write: %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    return SHOAL_OK;
}

shoal_status shoal_file_writev_atomic(const char *path, const shoal_iovec *parts, int n) {
    char tmp[SHOAL_MAX_PATH];
    int k = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    SHOAL_REQUIRE(k > 0 && (size_t)k < sizeof tmp, SHOAL_ERR_LIMIT, "path too long: %.64s...",
                  path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    SHOAL_REQUIRE(fd >= 0, SHOAL_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    shoal_status st = SHOAL_OK;
    for (int i = 0; i < n; i++) SHOAL_CHECK_GOTO(write_all(fd, tmp, parts[i].data, parts[i].len));
    SHOAL_REQUIRE_GOTO(fsync(fd) == 0, SHOAL_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
    SHOAL_REQUIRE_GOTO(close(fd) == 0, SHOAL_ERR_IO, "%s: close: %s", tmp, strerror(errno));
    fd = -1;
    SHOAL_REQUIRE_GOTO(rename(tmp, path) == 0, SHOAL_ERR_IO, "rename %s -> %s: %s", tmp, path,
                       strerror(errno));
    return shoal_fsync_parent_dir(path);
cleanup:
    if (fd >= 0) close(fd);
    unlink(tmp);
    return st;
}

shoal_status shoal_file_write_atomic(const char *path, const void *data, size_t len) {
    shoal_iovec part = {data, len};
    return shoal_file_writev_atomic(path, &part, 1);
}

shoal_status shoal_mkdir_p(const char *dir) {
    char buf[SHOAL_MAX_PATH];
    size_t n = strlen(dir);
    SHOAL_REQUIRE(n > 0 && n < sizeof buf, SHOAL_ERR_INVALID_ARG, "bad directory path");
    memcpy(buf, dir, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            SHOAL_LOG_ERROR("%s: mkdir: %s", buf, strerror(errno));
            return SHOAL_ERR_IO;
        }
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        SHOAL_LOG_ERROR("%s: mkdir: %s", buf, strerror(errno));
        return SHOAL_ERR_IO;
    }
    struct stat sb;
    SHOAL_REQUIRE(stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode), SHOAL_ERR_IO,
                  "%s: exists and is not a directory", buf);
    return SHOAL_OK;
}

int shoal_path_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

shoal_status shoal_path_join(char *out, size_t cap, const char *dir, const char *name) {
    int k = snprintf(out, cap, "%s/%s", dir, name);
    SHOAL_REQUIRE(k > 0 && (size_t)k < cap, SHOAL_ERR_LIMIT, "path too long: %.64s/%.64s", dir,
                  name);
    return SHOAL_OK;
}
