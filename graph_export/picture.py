"""A picture (PNG) of the whole map: every book at its x, y, coloured by region, regions named.

    python -m graph_export.picture --graph GRAPH --output map.png [--size 1600]

Made from the documented artifacts `nodes.parquet` and `communities.parquet`;
dots sized by popularity, each region's name written at the centre of its books.
"""
import io
import os

import numpy as np

from graph_export import graph_files, layout
from pipeline_common import artifacts, cli, fileio
from pipeline_common.entrypoint import main


def draw(graph, size=1600, dpi=200):
    """The PNG bytes of the map in `graph` (a neighbours output)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.patheffects as effects
    import matplotlib.pyplot as plt
    nodes = artifacts.read_parquet(fileio.join(graph, artifacts.NODES))
    groups = artifacts.read_parquet(fileio.join(graph, artifacts.COMMUNITIES)).to_pandas()
    x, y = nodes.column("x").to_numpy(), nodes.column("y").to_numpy()
    regions = nodes.column("region").to_numpy()
    colours = layout.community_colours(regions)[regions] / 255.0
    popularity = graph_files.popularity(nodes)[1]
    sizes = 0.4 + 6 * np.log1p(popularity) / max(np.log1p(popularity.max()), 1e-9)
    order = np.argsort(popularity, kind="stable")        # popular books drawn last, on top
    figure = plt.figure(figsize=(size / dpi, size / dpi), dpi=dpi)
    axes = figure.add_axes([0, 0, 1, 1])
    axes.set_facecolor("#101418")
    figure.patch.set_facecolor("#101418")
    axes.scatter(x[order], y[order], s=sizes[order], c=colours[order], linewidths=0,
                 alpha=0.85)
    outline = [effects.withStroke(linewidth=2.5, foreground="#101418")]
    for row in groups[groups.level == "region"].itertuples():
        members = regions == row.id
        if not members.any():
            continue
        cx, cy = np.median(x[members]), np.median(y[members])
        axes.text(cx, cy, "\n".join(row.name.split(" · ")[:2]), color="white",
                  fontsize=6.5 if row.size > len(x) / 40 else 5, ha="center", va="center",
                  path_effects=outline, wrap=True)
    axes.set_axis_off()
    span = np.percentile(np.abs(np.r_[x, y]), 99.5) if len(x) else 1
    axes.set_xlim(-1.05 * span, 1.05 * span)
    axes.set_ylim(-1.05 * span, 1.05 * span)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor=figure.get_facecolor())
    plt.close(figure)
    return buffer.getvalue()


def build_parser():
    parser = cli.ArgumentParser(prog="python -m graph_export.picture",
                                description=__doc__.splitlines()[0])
    parser.add_argument("--graph", required=True, help="GRAPH output of graph_export.neighbors")
    parser.add_argument("--output", required=True, help="PNG file to write (local or gs://)")
    parser.add_argument("--size", type=cli.positive_int, default=1600, help="pixels a side")
    return parser


def run(argv=None):
    args = build_parser().parse_args(argv)
    png = draw(args.graph, args.size)
    with fileio.atomic_write(args.output) as handle:
        handle.write(png)
    return os.path.basename(args.output)


if __name__ == "__main__":
    main(run, "python -m graph_export.picture")
