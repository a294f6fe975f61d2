#include "isa.h"

#include <stdexcept>

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace mnengine {
namespace {

#if defined(__x86_64__) || defined(_M_X64)
bool cpu_has_avx2_fma() {
  // libgcc / compiler-rt also check that the OS saves the ymm state (XCR0) before
  // reporting AVX features.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool cpu_has_avx512f() {
  // As for AVX2, the check includes the OS saving the zmm and mask registers (XCR0);
  // cpu_has_avx2_fma() has initialised the CPU model by the time it is read.
  return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
}

bool cpu_has_avx512vnni() {
  // The int8 kernels use byte and word instructions on zmm registers (BW) besides VPDPBUSD.
  return cpu_has_avx512f() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}
#endif

#if defined(__aarch64__)
bool cpu_has_dotprod() {
  // The kernel reports the ARMv8.2 dot-product instructions (SDOT) in the auxiliary vector.
  constexpr unsigned long kHwcapAsimdDotProduct = 1UL << 20;  // HWCAP_ASIMDDP
  return (getauxval(AT_HWCAP) & kHwcapAsimdDotProduct) != 0;
}
#endif

}  // namespace

std::vector<const KernelSet*> available_kernel_sets() {
  std::vector<const KernelSet*> sets;
#if defined(__x86_64__) || defined(_M_X64)
  if (cpu_has_avx512vnni()) sets.push_back(&avx512vnni_kernels());
  if (cpu_has_avx512f()) sets.push_back(&avx512f_kernels());
  if (cpu_has_avx2_fma()) sets.push_back(&avx2_fma_kernels());
#endif
#if defined(__aarch64__)
  if (cpu_has_dotprod()) sets.push_back(&neon_dotprod_kernels());
  sets.push_back(&neon_kernels());  // Advanced SIMD is part of the ARMv8-A baseline.
#endif
  sets.push_back(&scalar_kernels());
  return sets;
}

const KernelSet& select_kernel_set(const std::string& isa) {
  const std::vector<const KernelSet*> sets = available_kernel_sets();
  if (isa.empty() || isa == "auto") return *sets.front();
  std::string names;
  for (const KernelSet* set : sets) {
    if (isa == set->isa) return *set;
    names += names.empty() ? "" : ", ";
    names += set->isa;
  }
  throw std::invalid_argument("instruction set '" + isa +
                              "' is not available on this machine; expected one of: auto, " +
                              names);
}

}  // namespace mnengine
