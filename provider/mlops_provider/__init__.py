import os

__version__ = "0.1.0"

# One OpenMP thread per task process unless the user set OMP_NUM_THREADS (as Ray and Dask do for their
# workers). scikit-learn's OpenMP code (HistGradientBoosting fit/predict) otherwise starts one
# busy-waiting thread per core in every task, and tasks share their cores with the scheduler, the
# dag-processor and other tasks: measured on 2 busy cores, a 75k-row fit took 36 s instead of 2.6 s
# and a 25k-row predict 5 s instead of 1 s; on idle cores one thread costs ~0-30%. It must be set
# before OpenMP loads, i.e. before the first scikit-learn import (inside execute()).
os.environ.setdefault("OMP_NUM_THREADS", "1")
