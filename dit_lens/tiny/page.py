"""The demo's report page: one Markdown file with the headline numbers and the figures, all from the run.

    write_page(out, report) -> Path      writes out/report.md
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_page"]


def _ci(m: dict) -> str:
    return f"{m['mean']:.3g} [{m['lo']:.3g}, {m['hi']:.3g}]"


def write_page(out, report: dict) -> Path:
    out = Path(out)
    s = report["scores"]
    r = report.get("recipes", {})
    lines = [
        "# dit-lens demo report",
        "",
        f"Model `{report['model']}`, {report['steps']} Euler steps, CFG {report['guidance_scale']}; every number "
        "below was measured in this run.",
        "",
        "## Generation",
        "",
        f"{s['n']} held-out prompts in {report['seconds']} s: subject colour {s['colour']:.0%}, background "
        f"{s['background']:.0%}, shape {s['shape']:.0%}, subject-mask IoU {s['iou']:.2f}.",
        "",
        "![grid](grid.png)",
        "",
        "![profile](profile.png)",
        "",
    ]
    if r:
        det = r["detect"]
        lines += ["## Detect (offline, from the recorded store)", "",
                  "| name | top-k channels | top-1 / median | max abs | Sun channels | Jaccard prompts "
                  "| Jaccard steps |",
                  "|---|---|---|---|---|---|---|"]
        for name, v in det["per_name"].items():
            lines.append(f"| {name} | {v['top']} | {v['ratio']:.2f} | {v['max_abs']:.3g} | {v['sun'] or '-'} | "
                         f"{v['jaccard_prompts']:.2f} | {v['jaccard_steps']:.2f} |")
        lines += ["", f"Top-k sets of consecutive layers: mean Jaccard {det['jaccard_layers']}.", "",
                  "![magnitudes](detect_magnitudes.png)", "", "![heat map](detect_heatmap.png)", "",
                  "## Disrupt (k channels in every image-stream block output, every step)", "",
                  "| ablation / set | PSNR dB | SSIM | MSE | HF energy ratio | shape acc | colour acc |",
                  "|---|---|---|---|---|---|---|"]
        for key, m in r["disrupt"]["metrics"].items():
            lines.append(f"| {key} | {_ci(m['psnr'])} | {_ci(m['ssim'])} | {_ci(m['mse'])} | {_ci(m['hf_ratio'])} "
                         f"| {_ci(m['shape_acc']) if 'shape_acc' in m else '-'} | "
                         f"{_ci(m['colour_acc']) if 'colour_acc' in m else '-'} |")
        base = next(iter(r["disrupt"]["metrics"].values()))
        if "baseline_shape_acc" in base:
            lines += ["", f"Unperturbed: shape acc {base['baseline_shape_acc']['mean']:.2f}, colour acc "
                          f"{base['baseline_colour_acc']['mean']:.2f}. Means with 95% t-intervals over samples."]
        clu = r["cluster"]["summary"]
        lines += ["", "![disrupt](disrupt_grid.png)", "", "## Cluster (K=2, offline from the store)", "",
                  "| channels | mean best-assignment IoU |", "|---|---|"]
        lines += [f"| {c} | {clu[c]:.3f} |" for c in ("massive", "all", "random", "low")]
        lines += ["", f"Best layer with massive channels: {clu['best_layer_massive']['name']} "
                      f"(IoU {clu['best_layer_massive']['iou']:.3f}).", "", "![masks](cluster_masks.png)", "",
                  "## Transport (text-conditioned, same seed)", "",
                  "A source prompt's activations patched into a target's at every step and image-stream block "
                  "output; transported = the subject takes the source colour with the target's background and "
                  "position.", "",
                  "| patched | alpha | transported | pixel blending |", "|---|---|---|---|"]
        variants = {"massive 4": r["transport"], **r.get("transport_controls", {})}
        for label, t in variants.items():
            for a, v in t["success"].items():
                lines.append(f"| {label} | {a} | {v:.0%} | {t['pixel_blend_success'][a]:.0%} |")
        lines += ["", "![transport](transport_sweep.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
