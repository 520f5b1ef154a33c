"""Split one labelled data set into per-client shards: IID or non-IID (Dirichlet).

``dirichlet:ALPHA`` follows the usual recipe (Hsu et al. 2019, as in Flower Datasets'
``DirichletPartitioner``): for each class, the share each client gets is drawn from
Dirichlet(ALPHA · 1); small ALPHA gives each client few classes. Every shard is non-empty
(redrawn until it is) and the shards cover the data exactly once; the split depends only
on the labels, the client count and the seed.
"""

from __future__ import annotations

import numpy as np

from .errors import FederatedError


def parse(spec: str) -> tuple[str, float | None]:
    """``"iid"`` → ("iid", None); ``"dirichlet:0.5"`` → ("dirichlet", 0.5)."""
    kind, _, arg = spec.partition(":")
    if kind == "iid" and not arg:
        return "iid", None
    if kind == "dirichlet":
        try:
            alpha = float(arg)
        except ValueError:
            alpha = -1.0
        if alpha > 0 and np.isfinite(alpha):
            return "dirichlet", alpha
    raise FederatedError(f"partition: expected 'iid' or 'dirichlet:ALPHA' with ALPHA > 0, "
                         f"got {spec!r}")


def iid(n: int, clients: int, seed: int = 0) -> list[np.ndarray]:
    """``clients`` shards of a random permutation of ``range(n)``, sizes within one."""
    _check(n, clients)
    return [np.sort(s) for s in np.array_split(np.random.default_rng(seed).permutation(n),
                                               clients)]


def dirichlet(labels: np.ndarray, clients: int, alpha: float, seed: int = 0,
              tries: int = 100) -> list[np.ndarray]:
    """Per-client index arrays with Dirichlet(alpha) class proportions (see above)."""
    labels = np.asarray(labels).reshape(-1)
    _check(len(labels), clients)
    if alpha <= 0:
        raise FederatedError(f"partition: Dirichlet alpha must be > 0, got {alpha}")
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    for _ in range(tries):
        shards: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for idx in by_class:
            shares = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, part in enumerate(np.split(idx, cuts)):
                shards[k].append(part)
        out = [np.sort(np.concatenate(s)) for s in shards]
        if min(len(s) for s in out) > 0:
            return out
    raise FederatedError(f"partition: could not give each of {clients} clients at least one "
                         f"of {len(labels)} examples with Dirichlet alpha {alpha} in {tries} "
                         "draws; use fewer clients or a larger alpha")


def split(spec: str, labels: np.ndarray, clients: int, seed: int = 0) -> list[np.ndarray]:
    """Shards for a partition spec string (``iid`` or ``dirichlet:ALPHA``)."""
    kind, alpha = parse(spec)
    if kind == "iid":
        return iid(len(labels), clients, seed)
    return dirichlet(labels, clients, float(alpha), seed)


def _check(n: int, clients: int) -> None:
    if clients < 1 or clients > n:
        raise FederatedError(f"partition: need 1 <= clients <= {n} examples, got {clients} "
                             "clients")
