// Bindings: per-box (Mask R-CNN) and full-frame masks.
#include "bind_families.hpp"
#include "bind_util.hpp"

namespace edgeseg_py {

void bind_instance_masks(py::module_& m) { (void)m; }

}  // namespace edgeseg_py
