// Placeholder until this part of the core lands; see csrc/include/edgeseg/dynconv.hpp.
#include "edgeseg/core.hpp"
