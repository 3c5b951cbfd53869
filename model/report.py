"""How model.train shows its evaluation: the text table it prints and metrics.png.

model/evaluate.py computes the figures (metrics.json's content); this module only lays
them out, so that the evaluator does not load matplotlib and the layout can change
without touching the metrics.
"""
from model.evaluate import GROUPS, METRIC_NAMES, scored


def format_table(metrics):
    """Text table of metrics_json(): one row per recommender, then one per (group, recommender)."""
    rows = [("model", metrics["model"])] + list(metrics["baselines"].items())
    width = max(len(name) for name, _ in rows) + 8
    lines = ["".ljust(width) + "".join(m.rjust(11) for m in METRIC_NAMES)]
    skipped = dict(metrics.get("skipped_baselines", {}))
    for name, values in rows:
        if "skipped" in values:  # run_baselines() output not laid out by metrics_json()
            skipped[name] = values["skipped"]
            continue
        lines.append(name.ljust(width) + "".join(f"{values[m]:11.4f}" for m in METRIC_NAMES))
    for name, reason in skipped.items():
        lines.append(name.ljust(width) + f"  skipped: {reason}")
    for label, _ in GROUPS:
        for name, _ in rows:
            group = metrics.get("groups", {}).get(name, {}).get(label)
            if group:
                lines.append(f"{label:>5} {name}".ljust(width)
                             + "".join(f"{group[m]:11.4f}" for m in METRIC_NAMES)
                             + f"  ({group['users']} users)")
    lines.append(f"eval interactions: {metrics['eval_interactions']}, "
                 f"eval users: {metrics['eval_users']}"
                 + (f" of {metrics['eval_users_total']} ({metrics['eval_users_chosen_by']})"
                    if "eval_users_total" in metrics else ""))
    return "\n".join(lines)


def plot_history(history, baselines, path_png_writer):
    """metrics.png: each metric per epoch, the baselines as dashed reference lines; the PNG's
    bytes go to `path_png_writer`."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    epochs = [h["epoch"] for h in history]
    colours = {"popularity": "tab:grey", "item_cosine": "tab:orange", "ease": "tab:green"}
    baselines = scored(baselines)
    for ax, metric in zip(axes.ravel(), METRIC_NAMES):
        ax.plot(epochs, [h[metric] for h in history], marker="o", label="model")
        for name, values in baselines.items():
            ax.axhline(values[metric], linestyle="--", color=colours.get(name),
                       label=name)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
    from matplotlib.ticker import MaxNLocator
    for ax in axes.ravel():
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Two-tower retrieval on the eval split vs baselines")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    path_png_writer(buffer.getvalue())
