// Bindings: CondInst / RTMDet-Ins dynamic mask heads.
#include "bind_families.hpp"
#include "bind_util.hpp"

namespace edgeseg_py {

void bind_dynamic_masks(py::module_& m) { (void)m; }

}  // namespace edgeseg_py
