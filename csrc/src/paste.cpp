// Placeholder until this part of the core lands; see csrc/include/edgeseg/paste.hpp.
#include "edgeseg/core.hpp"
