"""The users job's PNGs: users on the first two principal components coloured by cluster, the elbow curve
with the chosen k, the silhouette per k, and the cluster profiles as a heat map. They read only the run's
folder (``assignments/``, ``sweep.json``, ``profile.json``), so they need no Spark."""

from __future__ import annotations

from dataclasses import dataclass

from ssp.charts import pyplot, save_figure
from ssp.users.store import Workdir, filesystem

PLOTS = ("clusters.png", "elbow.png", "silhouette.png", "profiles.png")


@dataclass
class Plotted:
    paths: tuple[str, ...]

    def line(self) -> str:
        return f"wrote {len(self.paths)} plots: " + ", ".join(self.paths)


def _save(fig, work: Workdir, name: str) -> str:
    fs, path = filesystem(work.path("plots", name))
    fs.makedirs(fs._parent(path), exist_ok=True)
    with fs.open(path, "wb") as out:
        save_figure(fig, out, format="png", dpi=110)
    return work.path("plots", name)


def visualise(work: Workdir, max_points: int = 20_000, seed: int = 0) -> Plotted:
    """Write :data:`PLOTS` into ``plots/`` of the run's folder."""
    import numpy as np

    plt = pyplot()
    assigned = work.read_frame("assignments", step="train")
    sweep = work.read_json("sweep.json", step="train")
    profile = work.read_json("profile.json", step="analyse")
    names = {int(c["cluster"]): c["name"] for c in profile["clusters"]}
    if len(assigned) > max_points:
        assigned = assigned.sample(max_points, random_state=seed)
    paths = []

    fig, ax = plt.subplots(figsize=(7, 5.5))
    for cluster in sorted(assigned["cluster"].unique()):
        part = assigned[assigned["cluster"] == cluster]
        ax.scatter(part["pc1"], part["pc2"], s=4, alpha=0.5, label=f"{cluster}: {names.get(int(cluster), '')}")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"users by cluster (k = {sweep['k']}), first two principal components")
    ax.legend(fontsize=7, markerscale=3, loc="best")
    paths.append(_save(fig, work, "clusters.png"))

    for name, key, label in (("elbow.png", "wcss", "WCSS (within-cluster sum of squares)"),
                             ("silhouette.png", "silhouette", "silhouette")):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(sweep["ks"], sweep[key], marker="o")
        chosen = sweep["ks"].index(sweep["k"])
        ax.scatter([sweep["k"]], [sweep[key][chosen]], s=120, facecolors="none", edgecolors="red",
                   label=f"chosen k = {sweep['k']}")
        ax.set_xlabel("k")
        ax.set_ylabel(label)
        ax.set_title(f"{label} per k")
        ax.legend()
        paths.append(_save(fig, work, name))

    zscores = profile["zscores"]
    clusters = sorted(zscores, key=int)
    features = list(zscores[clusters[0]])
    grid = np.array([[zscores[c][f] for f in features] for c in clusters])
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(features), 1.5 + 0.5 * len(clusters)))
    limit = max(float(np.abs(grid).max()), 1e-9)
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(features)), features, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(clusters)), [f"{c}: {names.get(int(c), '')}" for c in clusters], fontsize=8)
    for (row, column), value in np.ndenumerate(grid):
        ax.text(column, row, f"{value:.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="cluster mean - overall mean\n(standard deviations)")
    ax.set_title("cluster profiles")
    paths.append(_save(fig, work, "profiles.png"))
    return Plotted(tuple(paths))
