#include "examples/multiprocessing_import_worker.h"

#include <iostream>

namespace multiprocessing_import_worker {

void worker() { std::cout << "Worker\n"; }

}  // namespace multiprocessing_import_worker
