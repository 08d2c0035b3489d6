/* train_mpi.c: the MPI driver part of a data-parallel training program
 * (etch train --ranks N, etch build --train --mpi). `etch` writes it next to
 * the model as etch_mpi.c and compiles it, with Open MPI's flags (mpicc
 * --showme) and -DETCH_MPI, into the training program, which then runs as
 * one rank of an MPI job under any launcher (mpirun -np N, a hostfile, ...).
 *
 * It provides the hook the emitted model calls for each allreduce_mean op
 * (one bucket of gradients, codegen/c/ops/collective.c; a library built with
 * etch build --train --mpi links it too, for a host program that has
 * called MPI_Init) and the few calls
 * the training driver makes (runtime/drivers/train/common.c): start and end
 * the job, and average the losses it prints. Errors of MPI calls are fatal
 * (MPI_ERRORS_ARE_FATAL, the default): a rank that dies takes the job down,
 * and rank 0's files are written atomically, so the last checkpoint stays. */
#include <limits.h>
#include <mpi.h>
#include <stdint.h>

static int world_size = 1;

/* Averages buf over the ranks in place: MPI_Allreduce(MPI_SUM) in chunks
 * that fit an int count, then a division by the rank count. For a fixed
 * rank count Open MPI picks the same algorithm (and so the same summation
 * order) every run, so runs are repeatable; across rank counts the order
 * differs (docs/passes.md says by how much). */
void etch_allreduce_mean(float *buf, int64_t n) {
    int size; /* asked each time: a library built with etch build --train --mpi runs in its host's MPI job */
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1) return;
    for (int64_t done = 0; done < n;) {
        int chunk = n - done > INT_MAX ? INT_MAX : (int)(n - done);
        MPI_Allreduce(MPI_IN_PLACE, buf + done, chunk, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        done += chunk;
    }
    const float ranks = (float)size;
    for (int64_t i = 0; i < n; i++) buf[i] /= ranks;
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
