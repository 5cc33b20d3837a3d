// Bindings: YOLACT decoding.
#include "bind_families.hpp"
#include "bind_util.hpp"

namespace edgeseg_py {

void bind_yolact(py::module_& m) { (void)m; }

}  // namespace edgeseg_py
