"""Tables and target checks printed at the end of a benchmark run."""


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def layer_table(records):
    lines = [f"{'layer':<22} {'input':<14} {'compiler':<8} {'pass':<17} {'ms':>9} "
             f"{'vs baseline':>11}"]
    for r in records:
        shape = "x".join(map(str, r["shape"]))
        if "error" in r:
            lines.append(f"{r['layer']:<22} {shape:<14} {r['compiler']:<8} {r['pass']:<17} "
                         f"ERROR {r['error']}")
            continue
        lines.append(f"{r['layer']:<22} {shape:<14} {r['compiler']:<8} {r['pass']:<17} "
                     f"{r['seconds'] * 1e3:9.2f} {_fmt(r.get('ratio'), '10.2f')}x")
    return "\n".join(lines)


def model_table(records):
    lines = [f"{'model':<24} {'mode':<9} {'compiler':<8} {'train img/s':>11} {'infer img/s':>11} "
             f"{'GMAC/img':>9} {'MAC x':>6} {'train x':>7} {'infer x':>7} {'train x/MAC x':>13} "
             f"{'infer x/MAC x':>13} {'train MiB':>9}"]
    for r in records:
        head = f"{r['model']:<24} {r['mode']:<9} {r['compiler']:<8}"
        if "error" in r:
            lines.append(f"{head} ERROR {r['error']}")
            continue
        lines.append(
            f"{head} {r['train_images_per_s']:11.1f} {r['infer_images_per_s']:11.1f} "
            f"{r['macs'] / 1e9:9.3f} {_fmt(r.get('mac_ratio'), '6.2f')} "
            f"{_fmt(r.get('train_time_ratio'), '7.2f')} {_fmt(r.get('infer_time_ratio'), '7.2f')} "
            f"{_fmt(r.get('train_overhead'), '13.2f')} {_fmt(r.get('infer_overhead'), '13.2f')} "
            f"{_fmt(r.get('train_peak_mib'), '9.0f')}")
    return "\n".join(lines)


def check_targets(layer_records, model_records, train_uses_xla):
    """Evaluates the four performance targets; returns a list of dicts (name, met, detail).

    A target whose cases were not run is reported with `met=None` (not measured).
    """
    targets = []

    # 1. APS inference within 1.5x of the strided slice at every shape, under each compiler.
    aps = _inference(layer_records, "aps")
    detail = _ratios(aps)
    met = None if not aps else all(r.get("ratio") is not None and r["ratio"] <= 1.5 for r in aps)
    floor = _inference(layer_records, "input_sum")
    if floor:
        detail += "; reading the input once (input_sum) costs " + _ratios(floor)
    targets.append({"name": "APS inference <= 1.5x strided slice", "met": met, "detail": detail})

    # 2. resnet18 (CIFAR) aps/lps: time ratio <= 1.15x MAC ratio, training and inference.
    rows = [r for r in model_records
            if r["model"] == "resnet18_cifar" and r["mode"] in ("aps", "lps")]
    parts, met = [], None if not rows else True
    for r in rows:
        for kind in ("train", "infer"):
            value = r.get(f"{kind}_overhead")
            parts.append(f"{r['mode']} {r['compiler']} {kind}: {_fmt(value, '.2f')}")
            met = met and value is not None and value <= 1.15
    targets.append({"name": "resnet18 CIFAR aps/lps time ratio <= 1.15x MAC ratio",
                    "met": met, "detail": ", ".join(parts)})

    # 3. Everything runs under XLA, and train.py's default compiler is the faster one.
    xla = [r for r in layer_records + model_records if r["compiler"] == "xla"]
    failed = [r for r in xla if "error" in r]
    faster = _xla_train_speedups(model_records)
    xla_wins = sum(1 for v in faster.values() if v > 1.0)
    if faster:
        speed = (f"XLA training faster than graph in {xla_wins}/{len(faster)} model cases "
                 f"(median speed-up {_median(list(faster.values())):.2f}x)")
    else:
        speed = "no model case ran under both compilers"
    detail = (f"{len(xla) - len(failed)}/{len(xla)} XLA cases ran; {speed}; train.py "
              f"default: {'XLA' if train_uses_xla else 'graph'}")
    if not xla:
        met = None
    else:
        prefers_xla = xla_wins * 2 > len(faster) if faster else train_uses_xla
        met = not failed and prefers_xla == train_uses_xla
    targets.append({"name": "every case runs under XLA; train.py uses the faster compiler",
                    "met": met, "detail": detail})

    # 4. LPS resnet18 (default scorer widths) at most 1.6x the MACs of strided resnet18.
    lps = [r for r in model_records if r["model"] == "resnet18_cifar" and r["mode"] == "lps"
           and r.get("mac_ratio") is not None]
    met = None if not lps else lps[0]["mac_ratio"] <= 1.6
    detail = "not measured" if not lps else f"MAC ratio {lps[0]['mac_ratio']:.3f}"
    targets.append({"name": "lps resnet18 (default widths) <= 1.6x MACs of strided",
                    "met": met, "detail": detail})
    return targets


def _inference(layer_records, layer):
    return [r for r in layer_records if r["layer"] == layer and r["pass"] == "inference"]


def _ratios(layer_records):
    """`"64x32x32x64 xla: 1.71x, ..."`: each record's ratio to its baseline."""
    return ", ".join(f"{'x'.join(map(str, r['shape']))} {r['compiler']}: "
                     f"{_fmt(r.get('ratio'), '.2f')}x" for r in layer_records)


def _xla_train_speedups(model_records):
    """(model, mode) -> graph training seconds / XLA training seconds."""
    by_key = {(r["model"], r["mode"], r["compiler"]): r for r in model_records}
    out = {}
    for (model, mode, compiler), r in by_key.items():
        graph = by_key.get((model, mode, "graph"))
        if compiler == "xla" and graph and "train_seconds" in r and "train_seconds" in graph:
            out[(model, mode)] = graph["train_seconds"] / r["train_seconds"]
    return out


def _median(values):
    values = sorted(values)
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def targets_table(targets):
    words = {True: "MET", False: "NOT MET", None: "NOT RUN"}
    return "\n".join(f"[{words[t['met']]:>7}] {t['name']}: {t['detail']}" for t in targets)
