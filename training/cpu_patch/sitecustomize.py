"""CPU-only shim for xtuner 0.2.0, loaded by Python at start-up when this folder is on PYTHONPATH.

The pipeline puts it there only for ``cpu: true`` runs (smoke tests of train -> convert -> merge on machines
without a GPU); GPU runs never see it. xtuner asks ``get_torch_device().is_bf16_supported()``, and on a machine
without CUDA its device namespace is ``torch.cpu``, which has no such function in torch 2.9: the call raises
AttributeError while the model is being built. Answering False keeps xtuner on float16/float32, which is what a
CPU run uses anyway. A folder of its own so that nothing else is shadowed; xtuner's worker processes inherit
PYTHONPATH, so they get the shim too.
"""

try:
    import torch
except ImportError:  # not the training environment: nothing to patch
    torch = None

if torch is not None and not hasattr(torch.cpu, "is_bf16_supported"):
    torch.cpu.is_bf16_supported = lambda including_emulation=True: False
