/* etch_rt.h: the runtime that emitted code links against, and that the etch
 * compiler itself uses to read and write the same files.
 *
 * Dependency-free C11 (libc and libm only), nothing model-specific: typed array
 * descriptors, .npy read/write, .npz write, safetensors read/write (metadata
 * too), IDX (MNIST format) read with built-in gzip decompression, PNG write,
 * aligned allocation, atomic file writes.
 * Every reader validates what it reads (magic, header, dtype, shape, sizes
 * against the file length) and fails with a message naming the file and the
 * values involved, written into the caller's err buffer; nothing here prints
 * or exits. Every writer writes to a temp file in the same folder and renames
 * it over the destination, so a crash never leaves a partial file.
 *
 * The version below is etch's one version number (CMakeLists.txt reads it
 * from here); an emitted model.h refuses to compile against a runtime header
 * of another version. C++ includes this header as C (extern "C"). */
#ifndef ETCH_RT_H
#define ETCH_RT_H

#include <stddef.h>
#include <stdint.h>

#define ETCH_RT_VERSION_MAJOR 0
#define ETCH_RT_VERSION_MINOR 1
#define ETCH_RT_VERSION_PATCH 0
/* One number to compare in #if: major * 10000 + minor * 100 + patch. */
#define ETCH_RT_VERSION (ETCH_RT_VERSION_MAJOR * 10000 + ETCH_RT_VERSION_MINOR * 100 + ETCH_RT_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

#define ETCH_RT_MAX_RANK 8

typedef enum etch_dtype {
    ETCH_F32,
    ETCH_F64,
    ETCH_I32,
    ETCH_I64,
    ETCH_BOOL, /* one byte, 0 or 1 (numpy '|b1', safetensors "BOOL") */
    ETCH_U8,   /* numpy '|u1', safetensors "U8" */
    ETCH_I8,   /* numpy '|i1', safetensors "I8" */
    ETCH_DTYPE_COUNT
} etch_dtype;

/* A dense, row-major array. data is owned by whoever filled it (free with etch_array_free). */
typedef struct etch_array {
    etch_dtype dtype;
    int rank;
    int64_t dim[ETCH_RT_MAX_RANK];
    void *data;
} etch_array;

const char *etch_dtype_name(etch_dtype t); /* "f32", "f64", "i32", "i64", "bool", "u8", "i8" */
size_t etch_dtype_size(etch_dtype t);
int64_t etch_array_numel(const etch_array *a);
size_t etch_array_nbytes(const etch_array *a);
/* Allocates zeroed, 64-byte aligned storage for a; returns 0 on success. */
int etch_array_alloc(etch_array *a, etch_dtype t, int rank, const int64_t *dim);
void etch_array_free(etch_array *a);
/* "f32[64,784]" into buf. */
char *etch_array_describe(char *buf, size_t n, etch_dtype t, int rank, const int64_t *dim);

/* 64-byte aligned allocation; free with etch_aligned_free. NULL on failure. */
void *etch_aligned_alloc(size_t nbytes);
void etch_aligned_free(void *p);

/* ---- .npy (NumPy format version 1.0/2.0/3.0, little-endian, C order) ------- */
/* Returns 0 on success; on failure -1 with a message in err. */
int etch_npy_read(const char *path, etch_array *out, char *err, size_t errlen);
int etch_npy_write(const char *path, const etch_array *a, char *err, size_t errlen);
/* A NumPy .npz (what numpy.savez writes: an uncompressed zip) of n arrays,
 * member i named NAMES[i].npy (numpy.load(path)[names[i]]), atomically. */
int etch_npz_write(const char *path, int n, const char *const *names, const etch_array *arrays, char *err,
                   size_t errlen);

/* ---- safetensors ---------------------------------------------------------- */
typedef struct etch_st_tensor {
    char *name;
    etch_array array; /* data points into the file's buffer; do not free it */
} etch_st_tensor;

typedef struct etch_st_file {
    int n;
    etch_st_tensor *tensors;
    void *buffer; /* whole file contents */
    int n_meta;   /* the "__metadata__" strings: meta[2i] the key, meta[2i+1] the value */
    char **meta;
} etch_st_file;

/* Reads and validates a whole safetensors file (F32, F64, I32, I64, BOOL, U8, I8
 * tensors; other dtypes are reported as unsupported). */
int etch_st_read(const char *path, etch_st_file *out, char *err, size_t errlen);
/* Finds name; NULL when absent. */
const etch_st_tensor *etch_st_find(const etch_st_file *f, const char *name);
/* Finds name and checks its dtype and shape; -1 with a message naming the
 * tensor, the expected and the found type when missing or different. */
int etch_st_expect(const etch_st_file *f, const char *path, const char *name, etch_dtype t, int rank,
                   const int64_t *dim, const void **data, char *err, size_t errlen);
/* The "__metadata__" string stored under key; NULL when absent. */
const char *etch_st_meta(const etch_st_file *f, const char *key);
void etch_st_close(etch_st_file *f);
/* Writes n tensors (names in the given order; the header lists them sorted as
 * the reference implementation does), atomically. metadata may be NULL or a
 * list of n_meta key/value string pairs for the "__metadata__" entry. */
int etch_st_write(const char *path, int n, const char *const *names, const etch_array *arrays, int n_meta,
                  const char *const *meta_kv, char *err, size_t errlen);

/* ---- IDX (MNIST / Fashion-MNIST), plain or gzip-compressed -------------- */
/* Reads an IDX file (ubyte/byte/short/int/float/double payloads); a ".gz" file,
 * or any file starting with the gzip magic, is inflated in memory. Unsigned
 * bytes come back as ETCH_U8; the rest as I32/F32/F64. */
int etch_idx_read(const char *path, etch_array *out, char *err, size_t errlen);
/* The first max_rows rows (along dim 0; all of them when the file has
 * fewer) of an IDX file, reading and inflating no further than they reach:
 * the rest of the file is not checked. max_rows < 0: etch_idx_read. */
int etch_idx_read_rows(const char *path, int64_t max_rows, etch_array *out, char *err, size_t errlen);
/* Inflates a gzip member (RFC 1952 wrapper around RFC 1951 deflate) into a
 * malloc'd buffer; verifies CRC-32 and length. */
int etch_gunzip(const unsigned char *in, size_t n_in, unsigned char **out, size_t *n_out, char *err, size_t errlen);
/* etch_gunzip stopped once the output holds limit bytes (limit > 0): *out
 * gets the first min(limit, all) bytes; the data past them is neither
 * inflated nor checked (no CRC-32 of a member cut short). */
int etch_gunzip_prefix(const unsigned char *in, size_t n_in, size_t limit, unsigned char **out, size_t *n_out,
                       char *err, size_t errlen);

/* ---- PNG ------------------------------------------------------------------- */
/* Writes an 8-bit grayscale PNG (row-major pixels), atomically. */
int etch_png_write_gray(const char *path, int width, int height, const unsigned char *pixels, char *err,
                        size_t errlen);

/* ---- files ---------------------------------------------------------------- */
/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience). */
int etch_read_file(const char *path, unsigned char **out, size_t *n, char *err, size_t errlen);
/* Writes bytes atomically: PATH.tmp.PID then rename(2). */
int etch_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen);

/* ---- counter-based RNG (Philox4x32-10): same stream for any thread count ---- */
/* Four 32-bit random words for (key, counter). */
void etch_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]);
/* Uniform in [0, 1) from one 32-bit word (24 random bits, exact in float). */
double etch_u01(uint32_t x);

/* ---- model descriptions (emitted model.h tables) -------------------------- */
/* One input, output or parameter of a compiled model: what a driver needs to
 * read, check and write it without knowing the model. */
typedef struct etch_tensor_info {
    const char *name;
    etch_dtype dtype;
    int rank;
    int64_t dim[ETCH_RT_MAX_RANK];
} etch_tensor_info;

#ifdef __cplusplus
}
#endif

#endif
