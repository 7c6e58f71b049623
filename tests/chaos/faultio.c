/*
 * Storage fault injection for chaos runs, preloaded into one clustermgr process:
 *
 *   LD_PRELOAD=libfaultio.so CM_FAULTIO_DIR=<data dir> CM_FAULTIO_FLAG=<file> clustermgr ...
 *
 * While the file CM_FAULTIO_FLAG exists, every write, fsync, fdatasync and preallocation on a
 * file under CM_FAULTIO_DIR fails with EIO, or with ENOSPC when the flag file starts with
 * "ENOSPC". Asynchronous writes (canonical raft submits its O_DIRECT segment writes with
 * io_submit) complete with that error, as a failing device reports it. When the flag file starts
 * with "SUBMIT", io_submit itself refuses with EAGAIN (the kernel's answer when its aio limits are
 * exhausted), and the other calls fail with EIO. Everything else goes to the C library untouched.
 * Removing the flag file ends the fault; nothing is cached, so it can be switched at any moment.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { FAULT_NONE = 0, FAULT_COMPLETE, FAULT_SUBMIT };

/* The errno to inject right now, or 0; *how says where asynchronous writes fail. Uses raw
 * syscalls so that it never recurses. */
static int fault_how(int *how)
{
    const char *flag = getenv("CM_FAULTIO_FLAG");
    if (flag == NULL)
        return 0;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, flag, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[16] = {0};
    long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    *how = n >= 6 && memcmp(buf, "SUBMIT", 6) == 0 ? FAULT_SUBMIT : FAULT_COMPLETE;
    return n >= 6 && memcmp(buf, "ENOSPC", 6) == 0 ? ENOSPC : EIO;
}

static int fault_now(void)
{
    int how;
    return fault_how(&how);
}

/* Whether fd is a file under CM_FAULTIO_DIR. */
static int in_dir(int fd)
{
    const char *dir = getenv("CM_FAULTIO_DIR");
    if (dir == NULL || fd < 0)
        return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    long n = syscall(SYS_readlinkat, AT_FDCWD, link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    return strncmp(path, dir, dl) == 0 && (path[dl] == '/' || path[dl] == '\0');
}

static int inject(int fd)
{
    int e = fault_now();
    if (e && in_dir(fd)) {
        errno = e;
        return 1;
    }
    return 0;
}

/* The next definition of `name` (the C library's, or a sanitizer's), looked up once. */
#define REAL(name)                                                                                 \
    ({                                                                                             \
        static __typeof__(&name) real_;                                                            \
        if (real_ == NULL)                                                                         \
            real_ = (__typeof__(&name))dlsym(RTLD_NEXT, #name);                                    \
        real_;                                                                                     \
    })

ssize_t write(int fd, const void *buf, size_t n)
{
    if (inject(fd))
        return -1;
    return REAL(write)(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (inject(fd))
        return -1;
    return REAL(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    if (inject(fd))
        return -1;
    return REAL(pwrite64)(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (inject(fd))
        return -1;
    return REAL(writev)(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (inject(fd))
        return -1;
    return REAL(pwritev)(fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (inject(fd))
        return -1;
    return REAL(pwritev64)(fd, iov, cnt, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    if (inject(fd))
        return -1;
    return REAL(pwritev2)(fd, iov, cnt, off, flags);
}

int fsync(int fd)
{
    if (inject(fd))
        return -1;
    return REAL(fsync)(fd);
}

int fdatasync(int fd)
{
    if (inject(fd))
        return -1;
    return REAL(fdatasync)(fd);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
    int e = fault_now();
    if (e && in_dir(fd))
        return e; /* returns the error, does not set errno */
    return REAL(posix_fallocate)(fd, off, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    if (inject(fd))
        return -1;
    return REAL(fallocate)(fd, mode, off, len);
}

/* canonical raft submits its O_DIRECT writes and reaps them with syscall(2) */
long syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    int how = FAULT_NONE;
    if (nr == SYS_io_submit && fault_how(&how) && how == FAULT_SUBMIT) {
        errno = EAGAIN;
        return -1;
    }
    long rv = REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    if (nr == SYS_io_getevents && rv > 0) {
        int e = fault_how(&how);
        struct io_event *ev = (struct io_event *)a[3];
        for (long i = 0; e && how == FAULT_COMPLETE && i < rv; i++) {
            const struct iocb *cb = (const struct iocb *)(uintptr_t)ev[i].obj;
            if (cb && in_dir((int)cb->aio_fildes))
                ev[i].res = -e;
        }
    }
    return rv;
}
