"""Skeleton graphs for the GCN backbones: MMAction2 1.x's ``Graph`` (``mmaction/models/utils/graph.py``).

A :class:`Graph` holds the joints of a skeleton layout and their edges, and computes the
adjacency matrices ``A`` of shape ``(num_subsets, V, V)`` that ST-GCN, ST-GCN++ and 2s-AGCN
multiply features with. The matrices are computed exactly as MMAction2 does (same edge lists,
same normalisation, float64), so a model built here from a config has the same ``A`` buffer as
one MMAction2 builds, and model-zoo checkpoints (which store ``A``) load unchanged.

Layouts: ``'coco'`` (17 joints), ``'nturgb+d'`` (25), ``'openpose'`` (18), or a dict with
``num_node``, ``inward`` (pairs of joint indices) and ``center``. Modes:
``'stgcn_spatial'`` (ST-GCN's distance partitioning: self, closer to the centre, further),
``'spatial'`` (self, inward, outward) and ``'binary_adj'`` (one undirected adjacency).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engines.errors import ModelConfigError

#: Joint count, inward edges (child, parent) and centre joint of each named layout.
LAYOUTS: dict[str, tuple[int, tuple[tuple[int, int], ...], int]] = {
    "openpose": (
        18,
        ((4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2), (5, 1), (2, 1),
         (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)),
        1,
    ),
    "nturgb+d": (
        25,
        tuple((i - 1, j - 1) for i, j in (
            (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
            (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 8),
            (23, 8), (24, 12), (25, 12),
        )),
        20,
    ),
    "coco": (
        17,
        ((15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6), (5, 0),
         (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)),
        0,
    ),
}  # fmt: skip

MODES = ("stgcn_spatial", "spatial", "binary_adj")


def edge2mat(edges: Sequence[tuple[int, int]], num_node: int) -> np.ndarray:
    """Adjacency matrix with ``A[j, i] = 1`` for every edge ``(i, j)``."""
    adj = np.zeros((num_node, num_node))
    for i, j in edges:
        adj[j, i] = 1
    return adj


def normalize_digraph(adj: np.ndarray, dim: int = 0) -> np.ndarray:
    """``adj`` with each column divided by its sum along ``dim`` (zero sums left at zero)."""
    degree = np.sum(adj, dim)
    width = adj.shape[1]
    inverse = np.zeros((width, width))
    for i in range(width):
        if degree[i] > 0:
            inverse[i, i] = degree[i] ** (-1)
    return np.dot(adj, inverse)


def hop_distance(num_node: int, edges: Sequence[tuple[int, int]], max_hop: int = 1) -> np.ndarray:
    """Hops between every pair of joints, up to ``max_hop``; ``inf`` beyond it."""
    adj = np.eye(num_node)
    for i, j in edges:
        adj[i, j] = 1
        adj[j, i] = 1
    distance = np.zeros((num_node, num_node)) + np.inf
    reach = np.stack([np.linalg.matrix_power(adj, d) for d in range(max_hop + 1)]) > 0
    for d in range(max_hop, -1, -1):
        distance[reach[d]] = d
    return distance


class Graph:
    """A skeleton layout and its adjacency matrices, as MMAction2's ``Graph``.

    Args:
        layout: ``'coco'``, ``'nturgb+d'``, ``'openpose'``, or a dict with ``num_node``,
            ``inward`` and ``center``.
        mode: ``'stgcn_spatial'``, ``'spatial'`` or ``'binary_adj'``.
        max_hop: Largest hop distance joined by an edge of the ``stgcn_spatial`` partitions.

    Attributes:
        num_node: Joints.
        inward: Edges ``(child, parent)``.
        outward: The reversed edges.
        center: The centre joint.
        hop_dis: Hop distance matrix ``(V, V)``.
        A: Adjacency matrices, float64 ``(num_subsets, V, V)``.

    Raises:
        ModelConfigError: For an unknown layout or mode, or a layout dict without its keys.
    """

    def __init__(self, layout: str | Mapping[str, Any] = "coco", mode: str = "spatial", max_hop: int = 1) -> None:
        if isinstance(layout, Mapping):
            missing = [key for key in ("num_node", "inward", "center") if key not in layout]
            if missing:
                raise ModelConfigError(f"graph_cfg.layout: a custom layout needs the key(s) {missing}")
            num_node = int(layout["num_node"])
            inward = [(int(i), int(j)) for i, j in layout["inward"]]
            center = int(layout["center"])
        elif layout in LAYOUTS:
            num_node, edges, center = LAYOUTS[layout]
            inward = list(edges)
        else:
            raise ModelConfigError(
                f"graph_cfg.layout: unknown layout {layout!r}; valid: {', '.join(LAYOUTS)} "
                "or dict(num_node=..., inward=..., center=...)"
            )
        if mode not in MODES:
            raise ModelConfigError(f"graph_cfg.mode: unknown mode {mode!r}; valid: {', '.join(MODES)}")
        self.layout = layout
        self.mode = mode
        self.max_hop = max_hop
        self.num_node = num_node
        self.inward = inward
        self.center = center
        self.self_link = [(i, i) for i in range(num_node)]
        self.outward = [(j, i) for i, j in inward]
        self.neighbor = self.inward + self.outward
        self.hop_dis = hop_distance(num_node, inward, max_hop)
        self.A: np.ndarray = getattr(self, mode)()

    def stgcn_spatial(self) -> np.ndarray:
        """ST-GCN's partitions: per hop, edges towards the centre (or level) and away from it."""
        adj = np.zeros((self.num_node, self.num_node))
        adj[self.hop_dis <= self.max_hop] = 1
        normalized = normalize_digraph(adj)
        hop_dis, center = self.hop_dis, self.center
        subsets = []
        for hop in range(self.max_hop + 1):
            close = np.zeros((self.num_node, self.num_node))
            further = np.zeros((self.num_node, self.num_node))
            for i in range(self.num_node):
                for j in range(self.num_node):
                    if hop_dis[j, i] == hop:
                        if hop_dis[j, center] >= hop_dis[i, center]:
                            close[j, i] = normalized[j, i]
                        else:
                            further[j, i] = normalized[j, i]
            subsets.append(close)
            if hop > 0:
                subsets.append(further)
        return np.stack(subsets)

    def spatial(self) -> np.ndarray:
        """Identity, normalised inward and normalised outward adjacency."""
        identity = edge2mat(self.self_link, self.num_node)
        inward = normalize_digraph(edge2mat(self.inward, self.num_node))
        outward = normalize_digraph(edge2mat(self.outward, self.num_node))
        return np.stack((identity, inward, outward))

    def binary_adj(self) -> np.ndarray:
        """One undirected adjacency matrix, ``(1, V, V)``."""
        return edge2mat(self.neighbor, self.num_node)[None]


def build_graph(cfg: Mapping[str, Any] | None, where: str = "graph_cfg") -> Graph:
    """A :class:`Graph` from a ``graph_cfg`` dict (``layout``, ``mode``, ``max_hop``).

    Raises:
        ModelConfigError: If ``cfg`` is not a dict, has unknown keys or bad values.
    """
    if not isinstance(cfg, Mapping):
        raise ModelConfigError(f"{where}: expected dict(layout=..., mode=...), got {cfg!r}")
    unknown = sorted(set(cfg) - {"layout", "mode", "max_hop"})
    if unknown:
        raise ModelConfigError(f"{where}: unknown key(s) {unknown}; valid keys: layout, max_hop, mode")
    return Graph(**cfg)
