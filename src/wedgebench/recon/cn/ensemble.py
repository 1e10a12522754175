"""A batched ensemble of coordinate networks: one forward/backward for many slabs.

The networks of an ensemble have the same architecture but their own weights. Their
parameters and buffers are stacked along a new leading axis
(:func:`torch.func.stack_module_state`) and :class:`~.model.CoordinateNetwork`'s own
``forward`` is mapped over that axis with :func:`torch.func.vmap`, so every linear
layer becomes one batched matrix product. Nothing couples the networks: the output of
network ``i`` depends only on its own weights, hence the gradient of a *sum* of
per-network losses with respect to network ``i``'s weights is the gradient of its own
loss, and an elementwise optimiser (Adam) over the stacked parameters takes exactly the
per-network steps.
"""

from __future__ import annotations

import copy

import torch
from torch.func import functional_call, stack_module_state, vmap

from .model import CoordinateNetwork


class NetworkEnsemble:
    """``n`` networks of one architecture evaluated together.

    Parameters
    ----------
    nets : list of CoordinateNetwork
        The initial networks (same architecture, on the same device, same train/eval
        mode). Their weights are copied; the networks themselves are not modified.

    Attributes
    ----------
    params, buffers : dict of str to Tensor
        Stacked parameters (leaf tensors that require grad) and buffers, each with a
        leading axis of length ``n``.
    """

    def __init__(self, nets: list[CoordinateNetwork]):
        if not nets:
            raise ValueError("NetworkEnsemble needs at least one network")
        self.params, self.buffers = stack_module_state(list(nets))
        self._keys = list(nets[0].state_dict())
        base = copy.deepcopy(nets[0]).to("meta")  # structure only: weights come per call

        def one(params, buffers, coords):
            return functional_call(base, (params, buffers), (coords,))

        self._forward = vmap(one, in_dims=(0, 0, None))

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def __call__(self, coords: torch.Tensor) -> torch.Tensor:
        """Every network at the shared ``coords[..., 3]``; returns ``[n, ...]``."""
        return self._forward(self.params, self.buffers, coords)

    def parameters(self) -> list[torch.Tensor]:
        """The stacked parameters (for an optimiser)."""
        return list(self.params.values())

    def state_dict(self, i: int) -> dict:
        """State dict (detached CPU copies) of network ``i``, loadable by
        :meth:`CoordinateNetwork.load_state_dict`."""
        stacked = {**self.params, **self.buffers}
        return {k: stacked[k][i].detach().cpu().clone() for k in self._keys}

    def snapshot(self, i: int) -> dict:
        """Like :meth:`state_dict` but the copies stay on the ensemble's device."""
        stacked = {**self.params, **self.buffers}
        return {k: stacked[k][i].detach().clone() for k in self._keys}

    def load_state(self, i: int, state: dict) -> None:
        """Overwrite network ``i``'s weights with ``state`` (e.g. from :meth:`snapshot`)."""
        stacked = {**self.params, **self.buffers}
        with torch.no_grad():
            for k in self._keys:
                stacked[k][i].copy_(state[k])


def ensemble_groups(slabs, size: int = 0) -> list[list]:
    """Split ``slabs`` into the groups fitted as one batched ensemble each.

    Slabs of different heights (``y1 − y0``) cannot share a batch; within one height
    the slabs keep their order and are cut into consecutive groups of at most ``size``.

    Parameters
    ----------
    slabs : list of (index, y0, y1)
    size : int
        Maximum slabs per group (bounds memory); 0 = no limit.

    Returns
    -------
    list of lists of (index, y0, y1)
    """
    if isinstance(size, bool) or int(size) != size or size < 0:
        raise ValueError(f"cn ensemble_size must be an integer >= 0, got {size!r}")
    by_height: dict[int, list] = {}
    for slab in slabs:
        by_height.setdefault(slab[2] - slab[1], []).append(slab)
    step = int(size) or max(len(slabs), 1)
    return [group[i:i + step] for group in by_height.values()
            for i in range(0, len(group), step)]
