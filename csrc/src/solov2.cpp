// Placeholder until this part of the core lands; see csrc/include/edgeseg/solov2.hpp.
#include "edgeseg/core.hpp"
