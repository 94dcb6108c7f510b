"""Rendering of tools/report.py's results: the Markdown report and the matplotlib plots.

Pure functions of plain data (no GPU, no libraries), so the tests can feed them synthetic
results. A result is a dict:

  section   "gemm", "conv" or "nn"
  shape     the shape's label ("64x1024x1024", "16x16 C=O=1024", "alexnet"), same for every
            implementation of one shape; `size` (N=K, C=O; 0 for networks) and `batch` order them
  impl      "APNN w1a2", "CUTLASS INT1-AND", "cuBLAS FP16", ...
  family    "apnn" (rows of the speedup table) or "baseline" (its columns)
  status    "ok", "n/a" (not run here: `note` says why) or "WRONG" (differs from the oracle)
  us        microseconds (ok only); tops = ops / time, ops = 2*M*N*K or 2*MACs
  verified  how the result was checked ("full", "sampled-4096", "oracle, image 0", ...)
"""
import math

SECTION_TITLES = {
    "gemm": "GEMM",
    "conv": "CONV",
    "nn": "NN",
}
PLOT_FILES = {"gemm": "gemm_tops.png", "conv": "conv_tops.png", "nn": "nn_latency.png"}


def _time(us, section):
    if us is None:
        return "–"
    if section == "nn":
        return f"{us / 1000.0:.3f} ms"
    return f"{us:.2f} us"


def _num(v, spec=".2f"):
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def ratio(baseline, apnn_row):
    """Speedup of APNN over a baseline (baseline time / APNN time, > 1: APNN faster) or None."""
    if not baseline or not apnn_row or baseline.get("status") != "ok" or apnn_row.get("status") != "ok":
        return None
    if not baseline.get("us") or not apnn_row.get("us"):
        return None
    return baseline["us"] / apnn_row["us"]


def fmt_ratio(x):
    return "–" if x is None else (f"{x:.1f}x" if x >= 10 else f"{x:.2f}x" if x >= 0.1 else f"{x:.2g}x")


def _key(r):
    return (r.get("batch", 0), r.get("size", 0), r["shape"])


def _ordered(values):
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def _cell_status(r):
    if r is None:
        return "not run"
    if r["status"] == "ok":
        return None
    return f"{r['status']}: {r.get('note', '')}".strip()


def section_tables(section, results, baseline_names):
    """Markdown lines of one section: the APNN table (time, TOPS, speedup vs each baseline) and
    the baselines table (time, TOPS, check)."""
    rows = [r for r in results if r["section"] == section]
    apnn_rows = [r for r in rows if r["family"] == "apnn"]
    base_rows = [r for r in rows if r["family"] == "baseline"]
    first = {shape: i for i, shape in reversed(list(enumerate(r["shape"] for r in rows)))}

    def _key(r):  # batch, size, then the order the shapes were run in (AlexNet, VGG-variant, ResNet-18)
        return (r.get("batch", 0), r.get("size", 0), first[r["shape"]])
    by_shape = {}
    for r in base_rows:
        by_shape.setdefault((r.get("batch", 0), r["shape"]), {})[r["impl"]] = r
    unit = "ms" if section == "nn" else "us"
    lines = []
    extra = ["fused us"] if section == "conv" else []
    head = ["batch"] if section in ("conv", "nn") else []
    head += ["shape" if section != "nn" else "model", "APNN", f"time ({unit})"] + extra + ["TOPS"]
    head += [f"vs {b}" for b in baseline_names] + ["check"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in sorted(apnn_rows, key=lambda r: (_key(r), r["impl"])):
        cells = [str(r.get("batch", ""))] if section in ("conv", "nn") else []
        cells += [r["shape"], r["impl"].replace("APNN ", "")]
        if r["status"] == "ok":
            cells.append(_time(r["us"], section).split()[0])
            if section == "conv":
                cells.append(_num(r.get("fused_us")))
            cells.append(_num(r.get("tops"), ".3g" if (r.get("tops") or 0) < 1 else ".1f"))
        else:
            cells += ["–"] * (3 if section == "conv" else 2)
        bases = by_shape.get((r.get("batch", 0), r["shape"]), {})
        for b in baseline_names:
            x = ratio(bases.get(b), r)
            cells.append(fmt_ratio(x))
        cells.append((r.get("verified") or "") if r["status"] == "ok" else f"**{r['status']}**: {r.get('note', '')}")
        lines.append("| " + " | ".join(cells) + " |")
    if not apnn_rows:
        lines.append("| " + " | ".join(["–"] * len(head)) + " |")
    lines.append("")
    lines.append(f"Speedup = baseline time / APNN time, same run, same shape (> 1: APNN faster); – where either "
                 f"side did not run here (see the baselines table).")
    lines.append("")
    bhead = (["batch"] if section in ("conv", "nn") else []) + ["shape" if section != "nn" else "model", "baseline",
                                                                  f"time ({unit})", "TOPS", "check"]
    lines.append("| " + " | ".join(bhead) + " |")
    lines.append("|" + "---|" * len(bhead))
    order = {b: i for i, b in enumerate(baseline_names)}
    for r in sorted(base_rows, key=lambda r: (_key(r), order.get(r["impl"], 99))):
        cells = [str(r.get("batch", ""))] if section in ("conv", "nn") else []
        cells += [r["shape"], r["impl"]]
        if r["status"] == "ok":
            cells += [_time(r["us"], section).split()[0], _num(r.get("tops"), ".3g" if (r.get("tops") or 0) < 1
                                                                 else ".1f"), r.get("verified") or ""]
        else:
            cells += ["–", "–", f"**{r['status']}**: {r.get('note', '')}"]
        lines.append("| " + " | ".join(cells) + " |")
    if not base_rows:
        lines.append("| " + " | ".join(["–"] * len(bhead)) + " |")
    lines.append("")
    return lines


def _headline(impls):
    """The APNN precision the summary shows: w1a2 (the paper's headline) when present, else the first."""
    return "APNN w1a2" if "APNN w1a2" in impls else (impls[0] if impls else None)


def summary_lines(results, sections):
    """A table: per section and batch, the headline APNN precision on the largest shape (every network) with
    its speedup over each baseline that ran."""
    lines = ["| table | shape | batch | APNN | time | TOPS | speedup of APNN over (same run) |",
             "|---|---|---|---|---|---|---|"]
    for section in sections:
        rows = [r for r in results if r["section"] == section and r["status"] == "ok"]
        apnn_rows = [r for r in rows if r["family"] == "apnn"]
        impl = _headline(_ordered(r["impl"] for r in apnn_rows))
        if impl is None:
            lines.append(f"| {SECTION_TITLES[section]} | – | – | – | – | – | no APNN result here |")
            continue
        picked = []
        for batch in _ordered(sorted(r.get("batch", 0) for r in apnn_rows)):
            at_b = [r for r in apnn_rows if r.get("batch", 0) == batch and r["impl"] == impl]
            if section == "nn":
                picked += at_b
            elif at_b:
                picked.append(max(at_b, key=_key))
        for r in picked:
            bases = [b for b in rows if b["family"] == "baseline" and b["shape"] == r["shape"]
                     and b.get("batch", 0) == r.get("batch", 0)]
            parts = [f"{b['impl']} {fmt_ratio(ratio(b, r))}" for b in bases if ratio(b, r) is not None]
            tops = r.get("tops")
            lines.append(f"| {SECTION_TITLES[section]} | {r['shape']} | {r.get('batch') or '–'} | "
                         f"{r['impl'].replace('APNN ', '')} | {_time(r['us'], section)} | "
                         f"{_num(tops, '.3g' if (tops or 0) < 10 else '.1f')} | "
                         f"{', '.join(parts) if parts else 'no baseline ran here'} |")
    return lines


def markdown(meta, results, sections, baseline_names, plots, verification):
    """The whole report.md text."""
    out = ["# APNN benchmark report", ""]
    out += [f"- GPU: {meta['gpu']}", f"- APNN backend: {meta['backend']} ({meta['device']})",
            f"- Date: {meta['date']}", f"- Command: `{meta['command']}`"]
    for k in ("versions", "shapes", "timing"):
        if meta.get(k):
            out.append(f"- {k.capitalize()}: {meta[k]}")
    out += ["", "## Verification", "", verification, "", "## Summary", ""]
    out += summary_lines(results, sections)
    out.append("")
    titles = meta.get("section_titles", {})
    for section in sections:
        out += [f"## {titles.get(section, SECTION_TITLES[section])}", ""]
        out += section_tables(section, results, baseline_names.get(section, []))
        if plots.get(section):
            out += [f"![{SECTION_TITLES[section]}]({plots[section]})", ""]
    notes = _ordered(f"{r['impl']}: {r.get('note', '')}" for r in results if r["status"] == "n/a")
    if notes:
        out += ["## Not run here", ""] + [f"- {n}" for n in notes[:40]] + [""]
    return "\n".join(out) + "\n"


# ---- Plots -------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib  # noqa: PLC0415 - lazily: only the report needs it
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    return plt


def _style(impl):
    if impl.startswith("APNN"):
        return dict(linestyle="-", marker="o")
    if impl.startswith("CUTLASS") or impl.startswith("TCBNN"):
        return dict(linestyle="--", marker="s")
    return dict(linestyle=":", marker="^")


def _tops_plot(plt, path, rows, title, xlabel, batches):
    fig, axes = plt.subplots(1, len(batches), figsize=(8.5 * len(batches), 5), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        at_b = [r for r in rows if r.get("batch", 0) == batch and r["status"] == "ok" and r.get("tops")]
        colors = plt.get_cmap("tab20").colors
        for i, impl in enumerate(_ordered(r["impl"] for r in at_b)):
            pts = sorted((r["size"], r["tops"]) for r in at_b if r["impl"] == impl)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=impl, color=colors[(2 * i) % 20 + (i // 10) % 2],
                    **_style(impl))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("TOPS")
        ax.set_title(title + (f", batch {batch}" if len(batches) > 1 or batch else ""))
        if at_b:
            ax.set_yscale("log")
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        else:
            ax.text(0.5, 0.5, "no results here", ha="center", va="center", transform=ax.transAxes)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _nn_plot(plt, path, rows, batches):
    fig, axes = plt.subplots(1, max(1, len(batches)), figsize=(7 * max(1, len(batches)), 5), squeeze=False)
    for ax, batch in zip(axes[0], batches or [0]):
        at_b = [r for r in rows if r.get("batch", 0) == batch and r["status"] == "ok"]
        models = _ordered(r["shape"] for r in rows if r.get("batch", 0) == batch)
        impls = _ordered(r["impl"] for r in at_b)
        width = 0.8 / max(1, len(impls))
        for i, impl in enumerate(impls):
            xs, ys = [], []
            for j, model in enumerate(models):
                hit = [r for r in at_b if r["impl"] == impl and r["shape"] == model]
                if hit:
                    xs.append(j + (i - (len(impls) - 1) / 2) * width)
                    ys.append(hit[0]["us"] / 1000.0)
            ax.bar(xs, ys, width=width, label=impl)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models)
        ax.set_ylabel("latency (ms, log)")
        ax.set_title(f"Networks, batch {batch}")
        if at_b:
            ax.set_yscale("log")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no results here", ha="center", va="center", transform=ax.transAxes)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plots(out_dir, results, sections, titles=None):
    """Writes the PNGs of the given sections into out_dir; returns {section: file name}."""
    import os  # noqa: PLC0415
    plt = _pyplot()
    titles = titles or {}
    written = {}
    for section in sections:
        rows = [r for r in results if r["section"] == section]
        batches = sorted({r.get("batch", 0) for r in rows}) or [0]
        path = os.path.join(out_dir, PLOT_FILES[section])
        if section == "gemm":
            _tops_plot(plt, path, rows, titles.get("gemm", "GEMM"), "N = K", batches)
        elif section == "conv":
            _tops_plot(plt, path, rows, titles.get("conv", "CONV"), "C = O", batches)
        else:
            _nn_plot(plt, path, rows, batches)
        written[section] = PLOT_FILES[section]
    return written
