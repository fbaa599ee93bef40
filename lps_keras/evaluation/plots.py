"""PNG figures of evaluation results (matplotlib, Agg backend)."""

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    if sizes_seen:
        ax.set_xticks(sorted(sizes_seen))
    ax.set_ylim(0, 101)
    ax.set_yticks(range(0, 101, 10))
    ax.set_xlabel("shift size in pixels, max(|dy|, |dx|)")
    ax.set_ylabel("same class as unshifted (%)")
    ax.set_title(f"Shift consistency on {result['dataset']} {result['split']} "
                 f"(N = {result['num_examples']})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
