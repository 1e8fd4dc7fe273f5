// Process-wide runtime settings: one OpenMP runtime (libgomp) shared by MKL's GNU threading
// layer and our own loops, so one call sets both.
#pragma once

#include <string>

namespace truesparse {

void set_num_threads(int n);
int get_num_threads();
std::string mkl_version();

}  // namespace truesparse
