// Placeholder until this part of the core lands; see csrc/include/edgeseg/yolact.hpp.
#include "edgeseg/core.hpp"
