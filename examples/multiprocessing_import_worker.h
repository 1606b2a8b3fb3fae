// multiprocessing_import_worker.py: the worker lives in its own module
// (here, its own library target).
#ifndef EXAMPLES_MULTIPROCESSING_IMPORT_WORKER_H_
#define EXAMPLES_MULTIPROCESSING_IMPORT_WORKER_H_

namespace multiprocessing_import_worker {

// worker function
void worker();

}  // namespace multiprocessing_import_worker

#endif  // EXAMPLES_MULTIPROCESSING_IMPORT_WORKER_H_
