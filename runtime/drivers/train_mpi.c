/* train_mpi.c: the MPI driver part of a data-parallel training program
 * (etch train --ranks N, etch build --train --mpi). `etch` writes it next to
 * the model as etch_mpi.c and compiles it, with Open MPI's flags (mpicc
 * --showme) and -DETCH_MPI, into the training program, which then runs as
 * one rank of an MPI job under any launcher (mpirun -np N, a hostfile, ...).
 *
 * It provides the hooks the emitted model calls for each bucket of gradients
 * (allreduce_start and allreduce_wait, codegen/c/ops/collective.c: a
 * non-blocking reduction started during the backward pass, waited for before
 * the optimizer update; a library built with
 * etch build --train --mpi links it too, for a host program that has
 * called MPI_Init) and the few calls
 * the training driver makes (runtime/drivers/train/common.c): start and end
 * the job, and average the losses it prints. Errors of MPI calls are fatal
 * (MPI_ERRORS_ARE_FATAL, the default): a rank that dies takes the job down,
 * and rank 0's files are written atomically, so the last checkpoint stays. */
#include <limits.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int world_size = 1;

/* Reductions in flight: one per allreduce_start whose wait has not come
 * yet, found again by the bucket's buffer. A bucket larger than INT_MAX
 * floats takes one request per int-sized chunk. */
typedef struct InFlight {
    float *buf;
    int n_req;
    MPI_Request *req;
} InFlight;
static InFlight *in_flight;
static int n_in_flight, cap_in_flight;

static void *xrealloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes);
    if (!q) {
        fprintf(stderr, "etch: out of memory for the gradient reductions\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return q;
}

/* Starts averaging buf over the ranks in place: MPI_Iallreduce(MPI_SUM) in
 * chunks that fit an int count, with no wait; etch_allreduce_wait finishes
 * it. For a fixed rank count Open MPI picks the same algorithm (and so the
 * same summation order) every run, so runs are repeatable; across rank
 * counts the order differs (docs/passes.md says by how much). */
void etch_allreduce_start(float *buf, int64_t n) {
    int size; /* asked each time: a library built with etch build --train --mpi runs in its host's MPI job */
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1) return;
    if (n_in_flight == cap_in_flight) {
        cap_in_flight = cap_in_flight ? 2 * cap_in_flight : 16;
        in_flight = xrealloc(in_flight, sizeof *in_flight * (size_t)cap_in_flight);
    }
    InFlight *f = &in_flight[n_in_flight++];
    f->buf = buf;
    f->n_req = (int)((n + INT_MAX - 1) / INT_MAX);
    f->req = xrealloc(NULL, sizeof *f->req * (size_t)(f->n_req ? f->n_req : 1));
    int k = 0;
    for (int64_t done = 0; done < n; k++) {
        int chunk = n - done > INT_MAX ? INT_MAX : (int)(n - done);
        MPI_Iallreduce(MPI_IN_PLACE, buf + done, chunk, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &f->req[k]);
        done += chunk;
    }
}

/* Waits for the reduction etch_allreduce_start(buf, n) started, then divides
 * by the rank count: buf holds the mean. */
void etch_allreduce_wait(float *buf, int64_t n) {
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1) return;
    int i = 0;
    while (i < n_in_flight && in_flight[i].buf != buf) i++;
    if (i == n_in_flight) {
        fprintf(stderr, "etch: etch_allreduce_wait without etch_allreduce_start for this buffer\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Waitall(in_flight[i].n_req, in_flight[i].req, MPI_STATUSES_IGNORE);
    free(in_flight[i].req);
    in_flight[i] = in_flight[--n_in_flight];
    const float ranks = (float)size;
    for (int64_t j = 0; j < n; j++) buf[j] /= ranks;
}

int etch_dp_init(int *argc, char ***argv, int *rank, int *size) {
    if (MPI_Init(argc, argv) != MPI_SUCCESS) return 1;
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    world_size = *size;
    return 0;
}

void etch_dp_mean(double *v, int n) {
    MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (int i = 0; i < n; i++) v[i] /= world_size;
}

int etch_dp_same(uint64_t v) {
    uint64_t lo = v, hi = v;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return lo == hi;
}

/* A failed rank (bad data, a non-finite loss) aborts the whole job: the
 * others would otherwise wait for it in their next reduction. */
void etch_dp_finish(int status) {
    if (status && world_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize();
}
