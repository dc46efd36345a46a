"""ndif 0.1.2 on a CPU-only host under nnsight 0.8.1: the controller and model actors ``ndif_stack.py`` deploys
(chosen with ``NDIF_CONTROLLER_IMPORT_PATH=ndif_actors.Controller`` and
``NDIF_MODEL_IMPORT_PATH=ndif_actors.ModelActor``, this folder on the Ray workers' ``PYTHONPATH``; needs ndif and ray
installed, see docs/remote.md). Importing it patches ndif's sandbox driver in that process. Each works around one
thing, said where it is:

    Controller          ndif's controller actor. ndif 0.1.2's evaluator passes ``trust_remote_code=`` to nnsight's
                        ``describe_checkpoint`` and ``max_tp_size``, which nnsight 0.8.1 does not take (every deploy
                        fails with "Could not deploy this model"): dropped here (upstream bug)
    ModelActor          ndif's model actor for trusted requests, on the CPU (ndif loads onto GPU ids and calls
                        ``torch.cuda`` unconditionally; these calls are no-ops here when torch has no CUDA)
    SandboxModelActor   the same, running untrusted requests in ndif's sandbox runner processes, with the driver's
                        fix (``resolve_on_module``)
    resolve_on_module   ndif 0.1.2's sandbox driver looks up the model's ``__call__`` on the nnsight Envoy, which in
                        nnsight 0.8.1 runs the model outside the trace (every untrusted request fails with
                        OutOfOrderError); the fix looks it up on the wrapped module, as nnsight's own
                        ``Envoy.interleave`` does (upstream bug; installed on ndif's driver module by importing this)
"""

from __future__ import annotations

import builtins

import ray
import torch
from ndif.services.ray.deployments.controller.controller import _ControllerActor
from ndif.services.ray.deployments.modeling.base import BaseModelDeployment
from ndif.services.ray.sandbox import driver
from ndif.services.ray.sandbox.model import SandboxModelDeployment
from nnsight.intervention.envoy import Envoy
from nnsight.modeling.mixins.remotable import Remotable

__all__ = ["Controller", "ModelActor", "SandboxModelActor", "resolve_on_module"]


def resolve_on_module(obj, name, *default):
    """``getattr`` for ndif's sandbox driver: an Envoy's ``__call__`` resolves on its module."""
    if name == "__call__" and isinstance(obj, Envoy):
        return obj._module.__call__
    return builtins.getattr(obj, name, *default)


driver.getattr = resolve_on_module  # the driver's module-level name lookup finds this before the builtin

if not torch.cuda.is_available():  # ndif calls these around every request and load; nothing to do on the CPU
    torch.cuda.synchronize = lambda device=None: None
    torch.cuda.empty_cache = lambda: None


def _accept_trust_remote_code() -> None:
    for name in ("describe_checkpoint", "max_tp_size"):
        original = getattr(Remotable, name).__func__
        if getattr(original, "_drops_trust_remote_code", False):
            continue

        def call(cls, model_key, *args, trust_remote_code=False, _original=original, **kwargs):
            return _original(cls, model_key, *args, **kwargs)
        call._drops_trust_remote_code = True
        setattr(Remotable, name, classmethod(call))


class _Controller(_ControllerActor):
    def __init__(self, *args, **kwargs):
        _accept_trust_remote_code()
        super().__init__(*args, **kwargs)


class _OnCPU:
    def load_from_disk(self):
        """The model from its key, on the CPU, in the deployment's dtype (``dit_lens.remote.DiT`` refuses a dtype
        other than its key's)."""
        model = Remotable.from_model_key(self.model_key, dispatch=True, dtype=self.dtype_name, device="cpu",
                                         **self.kwargs)
        model._module.requires_grad_(False)
        return model


class _ModelActor(_OnCPU, BaseModelDeployment):
    pass


class _SandboxModelActor(_OnCPU, SandboxModelDeployment):
    pass


Controller = ray.remote(num_cpus=1, num_gpus=0, max_restarts=-1, resources={"head": 1})(_Controller)
ModelActor = ray.remote(num_cpus=1, max_restarts=-1)(_ModelActor)
SandboxModelActor = ray.remote(num_cpus=1, max_restarts=-1)(_SandboxModelActor)
