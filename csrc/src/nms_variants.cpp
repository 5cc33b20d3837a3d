// Placeholder until this part of the core lands; see csrc/include/edgeseg/nms_variants.hpp.
#include "edgeseg/core.hpp"
