// Bindings: Fast, Matrix and mask-IoU NMS.
#include "bind_families.hpp"
#include "bind_util.hpp"

namespace edgeseg_py {

void bind_nms_variants(py::module_& m) { (void)m; }

}  // namespace edgeseg_py
