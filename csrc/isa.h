// Run-time choice of the instruction set the kernels use.
#pragma once

#include <string>
#include <vector>

#include "kernels.h"

namespace mnengine {

// The kernel sets this build contains and this CPU can run, best first; "scalar" is always
// last and always present.
std::vector<const KernelSet*> available_kernel_sets();

// The kernel set named `isa` ("scalar", "avx2_fma", "avx512f", "avx512vnni", "neon",
// "neon_dotprod"); "" or "auto" means the best
// available. Throws std::invalid_argument naming the choices if it is unknown or unavailable.
const KernelSet& select_kernel_set(const std::string& isa);

}  // namespace mnengine
