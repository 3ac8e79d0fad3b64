"""The report's plots (PNG, matplotlib's Agg backend): training curves, frame accuracy against
size, WER per system (`acoustic_kd.report`)."""

from __future__ import annotations

from pathlib import Path


def plot_curves(curves: dict[str, list[dict]], path: Path, title: str = "training curves",
                styles: dict[str, dict] | None = None, levels: dict[str, float] | None = None) -> Path:
    """PNG of dev frame accuracy per epoch, one line per model ({name: epoch records});
    styles: {name: matplotlib line options} (e.g. one colour per kind of model); levels: {name: dev
    accuracy} drawn as horizontal dotted lines (e.g. the ensemble's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, recs in curves.items():
        pts = [(r["epoch"], r["dev_acc"]) for r in recs if "epoch" in r and r.get("dev_acc") is not None]
        if pts:
            ax.plot(*zip(*pts), **{"marker": ".", **(styles or {}).get(name, {})}, label=name)
    for i, (name, acc) in enumerate((levels or {}).items()):
        ax.axhline(acc, color=f"C{2 + i}", ls=":", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev frame accuracy")
    ax.set_title(title)
    if ax.lines:
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_all(rows: list, curves: dict[str, list[dict]], sets: list[str], out_dir: Path) -> list[Path]:
    """PNG plots: training curves, frame accuracy vs parameters, WER per system (`rows`: the
    report's SystemRows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [plot_curves(curves, out_dir / "training_curves.png")]

    test = sets[-1]
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        if r.params and r.frame_acc.get(test) is not None:
            ax.scatter(r.params, r.frame_acc[test])
            ax.annotate(r.name, (r.params, r.frame_acc[test]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"frame accuracy {test} %")
    ax.set_title("frame accuracy vs size")
    written.append(_save(fig, out_dir / "frame_acc_vs_params.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    names = [r.name for r in rows]
    for i, s in enumerate(sets):
        vals = [r.wer.get(s) if r.wer.get(s) is not None else 0.0 for r in rows]
        ax.bar([j + 0.4 * i for j in range(len(rows))], vals, width=0.4, label=s)
    ax.set_xticks([j + 0.2 for j in range(len(rows))], names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("WER %")
    ax.set_title("WER per system")
    ax.legend()
    written.append(_save(fig, out_dir / "wer.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
