"""Keras' Adam update in torch's fused kernel (torch line only).

Keras 3 updates Adam's variables on torch with ``torch._foreach_*`` calls: on a CPU each
is a loop over the variables, ten of them per step; ``optimizer.apply`` took 0.99 ms
for the default student's 35 variables on 2 cores, and 0.21 ms with one call of
torch's fused kernel (``torch._fused_adam_``). The kernel computes Keras' update
exactly when given the step's epsilon: Keras adds ``epsilon`` to ``sqrt(v)`` before
the bias correction of ``v`` (``lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) +
eps)``), torch after it (``lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) +
eps')``): the two agree for ``eps' = eps / sqrt(1 - b2^t)``.

The fused kernel runs only where it was measured and checked: float32 or float64
variables, all of one dtype, on the CPU, outside Keras' stateless and autocast scopes.
Everything else takes the update Keras' own Adam takes on torch.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import keras
import torch
from keras.src.backend import get_autocast_scope, in_stateless_scope
from keras.src.backend.torch.optimizers.torch_adam import Adam as KerasTorchAdam

#: torch's fused Adam kernel is there (a private op: checked, not assumed)
AVAILABLE = hasattr(torch, "_fused_adam_")
_DTYPES = (torch.float32, torch.float64)
# per optimizer (not an attribute: a Keras optimizer tracks the variables it is given)
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@torch.no_grad()
def adam_step(optimizer: Any, grads: list[torch.Tensor], variables: list[Any],
              learning_rate: Any) -> None:
    """One Adam step of a Keras ``Adam`` ``optimizer`` over its Keras ``variables``: the
    fused kernel where it applies (:func:`fused_adam_step`), else Keras' own update."""
    if not fused_adam_step(optimizer, grads, variables, learning_rate):
        KerasTorchAdam._parallel_update_step(optimizer, grads, variables, learning_rate)


@torch.no_grad()
def fused_adam_step(optimizer: Any, grads: list[torch.Tensor], variables: list[Any],
                    learning_rate: Any) -> bool:
    """One Adam step in torch's fused kernel; False, changing nothing, where the kernel
    does not apply (see the module's docstring). Weight decay is not applied here: Keras
    applies it before the update step."""
    if not AVAILABLE or in_stateless_scope() or get_autocast_scope() is not None:
        return False  # a scope's variables are stand-ins: Keras' own update handles them
    tensors = _tensors(optimizer, variables)
    if tensors is None:
        return False
    params, m, v2, v_max = tensors
    # Keras' step (with gradient accumulation, its iterations count applied steps)
    t = int(keras.ops.convert_to_numpy(optimizer.iterations)) + 1
    beta_1, beta_2 = float(optimizer.beta_1), float(optimizer.beta_2)
    step = torch.tensor(float(t), dtype=torch.float32)
    dtype = params[0].dtype
    grads = [g if g.dtype == dtype else g.to(dtype) for g in grads]
    torch._fused_adam_(
        params, grads, m, v2, v_max, [step] * len(params),
        lr=float(learning_rate), beta1=beta_1, beta2=beta_2, weight_decay=0.0,
        eps=float(optimizer.epsilon) / math.sqrt(1.0 - beta_2 ** t),
        amsgrad=bool(optimizer.amsgrad), maximize=False,
    )
    return True


def _tensors(optimizer: Any, variables: list[Any]) -> tuple[list, list, list, list] | None:
    """The torch tensors behind ``variables`` and their moments, looked up once per
    variable list (Keras' ``Variable.value`` costs microseconds each, 140 per step);
    Keras assigns variables in place, so the tensors stay the ones it updates. None
    where the kernel does not apply."""
    key = tuple(map(id, variables))
    cached = _CACHE.get(optimizer)
    if cached is not None and cached[0] == key:
        return cached[2]
    index = optimizer._get_variable_index
    params = [v.value for v in variables]
    tensors = None
    if {(p.dtype, p.device.type) for p in params} <= {(params[0].dtype, "cpu")} \
            and params[0].dtype in _DTYPES:
        m = [optimizer._momentums[index(v)].value for v in variables]
        v2 = [optimizer._velocities[index(v)].value for v in variables]
        v_max = ([optimizer._velocity_hats[index(v)].value for v in variables]
                 if optimizer.amsgrad else [])
        tensors = params, m, v2, v_max
    # the variables are kept with their ids, so that no other list can reuse the ids
    _CACHE[optimizer] = (key, list(variables), tensors)
    return tensors
