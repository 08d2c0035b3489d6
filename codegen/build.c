/* build.c: running the system C compiler and programs (see build.h). */
#include "codegen/build.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

bool build_spawn(const char *const *argv, Diag *d) {
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
    if (rc != 0) return diag_error_plain(d, "cannot run '%s': %s", argv[0], strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return diag_error_plain(d, "waiting for '%s': %s", argv[0], strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    if (WIFSIGNALED(status)) return diag_error_plain(d, "'%s' was killed by signal %d", argv[0], WTERMSIG(status));
    return diag_error_plain(d, "'%s' failed with exit status %d", argv[0], WEXITSTATUS(status));
}

pid_t build_start_logged(const char *const *argv, const char *log, Diag *d) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return diag_error_plain(d, "cannot run '%s': %s", argv[0], strerror(rc)), -1;
    return pid;
}

bool build_compile(const char *dir, const char *const *sources, int n_sources, const char *out, bool shared,
                   const char *opt_flags, Diag *d) {
    return build_compile_libs(dir, sources, n_sources, out, shared, opt_flags, NULL, d);
}

bool build_compile_libs(const char *dir, const char *const *sources, int n_sources, const char *out, bool shared,
                        const char *opt_flags, const char *libs, Diag *d) {
    const char *cc = getenv("CC");
    if (!cc || !*cc) cc = "cc";
    char tmp[4096], final[4096];
    snprintf(final, sizeof final, "%s/%s", dir, out);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld", dir, out, (long)getpid());
    const char *argv[80];
    char *paths[32];
    int n = 0;
    argv[n++] = cc;
    argv[n++] = "-std=c11";
    /* flags are one string ("-O3 -march=native"): split at spaces into arguments */
    char *flags = strdup(opt_flags && *opt_flags ? opt_flags : BUILD_DEFAULT_CFLAGS);
    if (!flags) abort();
    for (char *tok = strtok(flags, " \t"); tok && n < 40; tok = strtok(NULL, " \t")) argv[n++] = tok;
    argv[n++] = "-D_POSIX_C_SOURCE=200809L";
    /* embedded weights: model.c's .incbin finds <prefix>_weights.bin here */
    size_t inc_len = strlen(dir) + 8;
    char *inc = malloc(inc_len);
    if (!inc) abort();
    snprintf(inc, inc_len, "-Wa,-I%s", dir);
    argv[n++] = inc;
    if (shared) {
        argv[n++] = "-shared";
        argv[n++] = "-fPIC";
    }
    argv[n++] = "-o";
    argv[n++] = tmp;
    for (int i = 0; i < n_sources && i < 32; i++) {
        size_t len = strlen(dir) + strlen(sources[i]) + 2;
        paths[i] = malloc(len);
        if (!paths[i]) abort();
        snprintf(paths[i], len, "%s/%s", dir, sources[i]);
        argv[n++] = paths[i];
    }
    char *lib_list = strdup(libs ? libs : "");
    if (!lib_list) abort();
    for (char *tok = strtok(lib_list, " \t"); tok && n < 76; tok = strtok(NULL, " \t")) argv[n++] = tok;
    argv[n++] = "-lm";
    argv[n] = NULL;
    bool ok = build_spawn(argv, d);
    for (int i = 0; i < n_sources && i < 32; i++) free(paths[i]);
    free(flags);
    free(inc);
    free(lib_list);
    if (ok && rename(tmp, final) != 0) ok = diag_error_plain(d, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    if (!ok) unlink(tmp);
    return ok;
}

bool build_mkdirs(const char *path, Diag *d) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; ; p++) {
        bool end = *p == 0;
        if (*p == '/' || end) {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return diag_error_plain(d, "cannot create folder %s: %s", buf, strerror(errno));
            struct stat st;
            if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return diag_error_plain(d, "%s exists and is not a folder", buf);
            if (end) break;
            *p = '/';
        }
    }
    return true;
}

char *build_tempdir(Diag *d) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + 32;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/etch-XXXXXX", base);
    if (!mkdtemp(p)) {
        diag_error_plain(d, "cannot create a temporary folder in %s: %s", base, strerror(errno));
        free(p);
        return NULL;
    }
    return p;
}

void build_rmtree(const char *path) {
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            size_t n = strlen(path) + strlen(de->d_name) + 2;
            char *child = malloc(n);
            if (!child) abort();
            snprintf(child, n, "%s/%s", path, de->d_name);
            struct stat st;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) build_rmtree(child);
            else unlink(child);
            free(child);
        }
        closedir(dir);
    }
    rmdir(path);
}

/* One line of `mpicc ARG` into buf (its trailing newline dropped). */
static bool mpicc_line(const char *arg, char *buf, size_t n, Diag *d) {
    char cmd[64];
    snprintf(cmd, sizeof cmd, "mpicc %s 2>/dev/null", arg);
    FILE *f = popen(cmd, "r");
    bool ok = f && fgets(buf, (int)n, f) != NULL;
    int status = f ? pclose(f) : -1;
    if (!ok || status != 0)
        return diag_error_plain(d, "a data-parallel (MPI) build needs Open MPI's mpicc, and `%s` failed; install "
                                   "libopenmpi-dev and openmpi-bin (scripts/deps.sh does)", cmd);
    buf[strcspn(buf, "\n")] = 0;
    return true;
}

bool build_mpi_flags(char *cflags, size_t cflags_len, char *libs, size_t libs_len, Diag *d) {
    return mpicc_line("--showme:compile", cflags, cflags_len, d) && mpicc_line("--showme:link", libs, libs_len, d);
}
