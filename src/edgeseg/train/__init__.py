"""Training edgeseg's own PartSeg model (needs PyTorch: ``pip install 'edgeseg[train]'``).

``edgeseg train`` runs the whole recipe (``recipe.make_partseg``): synthetic data, training on the CPU,
FP32 and INT8 ONNX export, evaluation on a held-out split and the model card. Only this subpackage
imports torch; the SDK itself never does.
"""
