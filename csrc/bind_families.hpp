// One bind_<part>(m) per binding file; PYBIND11_MODULE in bindings.cpp calls each. A family's
// decoders, NMS variants and mask assembly get their own file so that adding one touches no other.
#pragma once

#include <pybind11/pybind11.h>

namespace edgeseg_py {
void bind_nms_variants(pybind11::module_& m);    // bind_nms.cpp: Fast, Matrix and mask-IoU NMS
void bind_instance_masks(pybind11::module_& m);  // bind_paste.cpp: per-box and full-frame masks
void bind_yolact(pybind11::module_& m);          // bind_yolact.cpp
void bind_solov2(pybind11::module_& m);          // bind_solov2.cpp
void bind_dynamic_masks(pybind11::module_& m);   // bind_dynconv.cpp: CondInst / RTMDet-Ins
void bind_split(pybind11::module_& m);           // bind_split.cpp: YOLO heads split for NPUs
void bind_postprocess(pybind11::module_& m);     // bind_postprocess.cpp: whole YOLO postprocess
}  // namespace edgeseg_py
