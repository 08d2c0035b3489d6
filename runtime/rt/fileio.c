/* rt/fileio.c: whole-file reads and atomic writes: every writer goes through
 * the aw_* helpers (PATH.tmp.PID, fsync, rename), so a crash leaves the old
 * file or the whole new one, never a partial one. */

/* ---- files ------------------------------------------------------------------ */

int etch_read_file(const char *path, unsigned char **out, size_t *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 1 << 16, len = 0, got = 1; /* pipes and the like: grow as needed */
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) return fclose(f), fail(err, errlen, "%s: is a directory", path);
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < SIZE_MAX - 2)
            cap = (size_t)st.st_size + 2; /* +2: the NUL, and room to see EOF without growing */
    }
    unsigned char *buf = malloc(cap), *nb;
    while (buf && got) {
        if (cap - len < 2) { /* keep room for the NUL */
            nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) free(buf);
            buf = nb;
            cap *= 2;
            if (!buf) break;
        }
        len += got = fread(buf + len, 1, cap - 1 - len, f);
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    if (!buf) return fail(err, errlen, "%s: out of memory reading the file", path);
    if (bad) return free(buf), fail(err, errlen, "%s: read error: %s", path, strerror(e));
    buf[len] = 0;
    *out = buf;
    *n = len;
    return 0;
}

/* Atomic writer: everything goes to PATH.tmp.PID, renamed over PATH on commit;
 * any failure removes the temp file. */
typedef struct aw {
    FILE *f;
    char *tmp;
    const char *path;
} aw;

static void aw_abort(aw *w) {
    if (w->f) fclose(w->f);
    if (w->tmp) remove(w->tmp);
    free(w->tmp);
    w->f = NULL;
    w->tmp = NULL;
}

static int aw_fail(aw *w, const char *what, char *err, size_t errlen) {
    int e = errno;
    fail(err, errlen, "%s: %s %s: %s", w->path, what, w->tmp, strerror(e));
    aw_abort(w);
    return -1;
}

static int aw_open(aw *w, const char *path, char *err, size_t errlen) {
    size_t len = strlen(path) + 32;
    w->path = path;
    w->f = NULL;
    if (!(w->tmp = malloc(len))) return fail(err, errlen, "%s: out of memory", path);
    snprintf(w->tmp, len, "%s.tmp.%ld", path, (long)getpid());
    return (w->f = fopen(w->tmp, "wb")) ? 0 : aw_fail(w, "cannot create", err, errlen);
}

static int aw_write(aw *w, const void *p, size_t n, char *err, size_t errlen) {
    return n == 0 || fwrite(p, 1, n, w->f) == n ? 0 : aw_fail(w, "cannot write", err, errlen);
}

/* Writes count elements of sz bytes in little-endian order. */
static int aw_write_le(aw *w, const void *p, size_t count, size_t sz, char *err, size_t errlen) {
    if (sz == 1 || host_is_le()) return aw_write(w, p, count * sz, err, errlen);
    unsigned char chunk[4096];
    for (size_t i = 0, per = sizeof chunk / sz, m; i < count; i += per) {
        m = count - i < per ? count - i : per;
        memcpy(chunk, (const unsigned char *)p + i * sz, m * sz);
        le_swap(chunk, m, sz);
        if (aw_write(w, chunk, m * sz, err, errlen)) return -1;
    }
    return 0;
}

static int aw_commit(aw *w, char *err, size_t errlen) {
    /* fsync before rename: after a crash PATH holds the old file or the whole new one */
    if (fflush(w->f) || fsync(fileno(w->f))) return aw_fail(w, "cannot write", err, errlen);
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f)) return aw_fail(w, "cannot write", err, errlen);
    if (rename(w->tmp, w->path)) return aw_fail(w, "cannot rename", err, errlen);
    free(w->tmp);
    w->tmp = NULL;
    return 0;
}

int etch_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen) {
    aw w;
    if (aw_open(&w, path, err, errlen) || aw_write(&w, data, n, err, errlen)) return -1;
    return aw_commit(&w, err, errlen);
}
