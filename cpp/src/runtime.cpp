// Thread control and library information (see runtime.h).
#include "truesparse/runtime.h"

#include <mkl.h>
#include <omp.h>

#include "truesparse/common.h"

namespace truesparse {

void set_num_threads(int n) {
  TS_REQUIRE(n >= 1, "[set_num_threads] the number of threads must be at least 1, got ", n);
  omp_set_num_threads(n);
  mkl_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

std::string mkl_version() {
  MKLVersion v;
  mkl_get_version(&v);
  return msg(v.MajorVersion, ".", v.MinorVersion, ".", v.UpdateVersion);
}

}  // namespace truesparse
