"""Reports as HTML: a recipe's report.json as tables and figures, a demo's report.md as a page.

    report_html(report, markdown=None, figure_url=...)  the body of a report page (HTML fragment); figures link to
                                                         ``figure_url(name)``
    standalone_html(folder)                              a whole page for a demo folder, its figures embedded (no
                                                         files beside it needed): what ``dit-lens demo`` writes as
                                                         report.html
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

__all__ = ["report_html", "standalone_html"]

_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:2px 7px;text-align:left;
vertical-align:top;font-size:13px}th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}
.ci{white-space:nowrap}"""


def _interval(v: dict) -> str:
    return f'<span class="ci">{v["mean"]:.4g} [{v["lo"]:.4g}, {v["hi"]:.4g}] (n={v["n"]})</span>'


def _value(v, depth: int = 0) -> str:
    if isinstance(v, dict) and {"mean", "lo", "hi", "n"} <= set(v):
        return _interval(v)
    if isinstance(v, dict):
        if not v:
            return "-"
        if depth > 4:
            return html.escape(str(v))
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value(x, depth + 1)}</td></tr>" for k, x in v.items())
        return f"<table>{rows}</table>"
    if isinstance(v, list):
        if all(isinstance(x, (int, float, str, bool)) or x is None for x in v):
            text = ", ".join("-" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x) for x in v[:64])
            return html.escape(text + (f", ... ({len(v)} in all)" if len(v) > 64 else ""))
        return "".join(f"<div>{_value(x, depth + 1)}</div>" for x in v[:32])
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def report_html(report: dict, markdown: str | None = None, figure_url=lambda name: f"figure/{name}") -> str:
    if markdown is not None:  # a demo: its report.md is the page
        import markdown as md

        body = md.markdown(markdown, extensions=["tables"])
        return re.sub(r'<img alt="([^"]*)" src="([^"]+)"', lambda m: f'<img alt="{m[1]}" src="{figure_url(m[2])}"',
                      body)
    parts = [f"<h1>{html.escape(str(report.get('recipe', 'report')))} report</h1>"]
    for key in ("file", "source", "dit_lens_version", "seconds"):
        if key in report:
            parts.append(f"<p><b>{key}</b>: {_value(report[key])}</p>")
    parts += ["<h2>Parameters</h2>", _value(report.get("parameters", {}))]
    runs = report.get("runs") or [dict(parameters={}, summary=report.get("summary", ""),
                                       figures=report.get("figures", []), result=report.get("result", {}))]
    for run in runs:
        label = ", ".join(f"{k}={v}" for k, v in run["parameters"].items()) or "result"
        parts += [f"<h2>{html.escape(label)}</h2>", f"<p>{html.escape(run.get('summary') or '')}</p>"]
        for fig in run.get("figures", []):
            name = Path(fig).name if not run["parameters"] else "/".join(Path(fig).parts[-2:])
            parts.append(f'<p><img alt="{html.escape(name)}" src="{figure_url(name)}"></p>')
        parts.append(_value(run.get("result", {})))
    return "\n".join(parts)


def standalone_html(folder) -> Path:
    folder = Path(folder)
    md = (folder / "report.md").read_text()

    def embed(name: str) -> str:
        path = folder / name
        if not path.is_file():
            return name
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    body = report_html({}, md, figure_url=embed)
    out = folder / "report.html"
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>dit-lens demo report</title>"
                   f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")
    return out
