"""PNG figures of evaluation results (matplotlib, Agg backend)."""

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_curves(plt, fig, ax, sizes_seen, path, result, what, xlabel, ylabel, legend_loc):
    """Integer shift-size ticks, labels, a title naming the data, grid and legend; writes
    the PNG and returns `path`."""
    if sizes_seen:
        ax.set_xticks(sorted(sizes_seen))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{what} on {result['dataset']} {result['split']} "
                 f"(N = {result['num_examples']})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc=legend_loc)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_consistency(result, path):
    """PNG of consistency against shift size; returns `path`.

    One colour per model, one line style per shift mode (solid circular, dashed standard);
    the legend gives each model's accuracy and the number of images. Shift sizes are
    integer ticks; the y axis is fixed to 0-100 % so small drops look small.

    Args:
        result: a `shift_consistency` result of `evaluate` (with curves).
        path: where to write the PNG.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"circular": ("-", "o"), "standard": ("--", "s")}
    sizes_seen = set()
    for index, (name, entry) in enumerate(result["models"].items()):
        colour = colours[index % len(colours)]
        accuracy = entry.get("accuracy")
        label = name + (f", accuracy {accuracy:.1f}%" if accuracy is not None else "")
        for mode, (line, marker) in styles.items():
            curve = entry.get(f"{mode}_vs_shift")
            if not curve:
                continue
            sizes = [int(k) for k in curve]
            sizes_seen.update(sizes)
            ax.plot(sizes, list(curve.values()), linestyle=line, marker=marker, color=colour,
                    label=f"{label} ({mode})")
    ax.set_ylim(0, 101)
    ax.set_yticks(range(0, 101, 10))
    return _save_curves(plt, fig, ax, sizes_seen, path, result, "Shift consistency",
                        "shift size in pixels, max(|dy|, |dx|)", "same class as unshifted (%)",
                        "lower left")


def plot_segmentation_examples(model, images, masks, path, *, num_classes, ignore_index=None,
                               class_names=None):
    """PNG of a few inputs with their predicted and true masks; returns `path`.

    Args:
        model: a `LoadedModel` (called on raw images).
        images: raw images `[N, H, W, 3]` on the 0-255 scale (a handful).
        masks: true masks `[N, H, W]`.
        path: where to write the PNG.
        num_classes: number of classes (fixes the colour map).
        ignore_index: mask value drawn in white (ignored pixels).
        class_names: names for the legend.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    preds = model.predict_classes(np.asarray(images, np.float32))
    cmap = plt.get_cmap("tab20", max(num_classes, 2))
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n + 0.6), squeeze=False)

    def colour(mask):
        rgb = cmap(np.clip(mask, 0, num_classes - 1) / max(num_classes - 1, 1))[..., :3]
        if ignore_index is not None:
            rgb[mask == ignore_index] = 1.0
        return rgb

    for row in range(n):
        panels = (np.clip(images[row], 0, 255).astype(np.uint8), colour(preds[row]),
                  colour(np.asarray(masks[row])))
        for col, (panel, title) in enumerate(zip(panels, ("input", "predicted", "true"),
                                                 strict=True)):
            axes[row, col].imshow(panel, interpolation="nearest")
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
    names = class_names or [str(k) for k in range(num_classes)]
    fig.legend(handles=[Patch(color=cmap(k / max(num_classes - 1, 1)), label=names[k])
                        for k in range(num_classes)],
               loc="lower center", ncol=min(num_classes, 6), fontsize=7)
    fig.suptitle(f"{model.name}: predictions on {n} images")
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_equivariance(result, path):
    """PNG of the equivariance NMSE against shift size, one line per model; returns `path`.

    `nmse(shift(f(x)), f(shift(x)))` averaged over the images, for circular shifts of
    Chebyshev size `s` (0 for an exactly shift-equivariant model). The legend gives each
    model's PSNR.

    Args:
        result: a `reconstruction` result of `evaluate` (with curves).
        path: where to write the PNG.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sizes_seen = set()
    for name, entry in result["models"].items():
        curve = entry.get("equivariance_nmse_vs_shift")
        if not curve:
            continue
        sizes = [int(k) for k in curve]
        sizes_seen.update(sizes)
        psnr = entry.get("psnr")
        label = name + (f", PSNR {psnr:.2f} dB" if psnr is not None else "")
        ax.plot(sizes, list(curve.values()), marker="o", label=label)
    ax.set_ylim(bottom=0)
    return _save_curves(plt, fig, ax, sizes_seen, path, result, "Shift equivariance",
                        "circular shift size in pixels, max(|dy|, |dx|)",
                        "NMSE(shift(f(x)), f(shift(x)))", "upper left")


def plot_reconstruction_examples(model, inputs, targets, path):
    """PNG grid of a few images: input | output | target | |output - target|; returns
    `path`.

    Input, output and target share one grey scale per row (the target's range), the
    error its own (0 to its maximum), so a row compares like with like. Shows the first
    channel.

    Args:
        model: a `LoadedModel` (called on the inputs as they are, regression data).
        inputs: inputs `[N, H, W, C]` (a handful).
        targets: targets `[N, H, W, C_out]`.
        path: where to write the PNG.
    """
    plt = _pyplot()
    inputs = np.asarray(inputs, np.float32)
    outputs = np.asarray(model(inputs))
    targets = np.asarray(targets, np.float32)
    n = len(inputs)
    fig, axes = plt.subplots(n, 4, figsize=(9, 2.4 * n + 0.4), squeeze=False)
    for row in range(n):
        x, y, t = inputs[row, ..., 0], outputs[row, ..., 0], targets[row, ..., 0]
        low, high = float(t.min()), float(t.max())
        error = np.abs(y - t)
        panels = ((x, "input", low, high), (y, "output", low, high), (t, "target", low, high),
                  (error, "|output - target|", 0.0, float(error.max()) or 1.0))
        for col, (panel, title, vmin, vmax) in enumerate(panels):
            axes[row, col].imshow(panel, cmap="gray", vmin=vmin, vmax=vmax,
                                  interpolation="nearest")
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
    fig.suptitle(f"{model.name}: reconstructions of {n} images")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
