"""Parity reports for three readers: JSON (machines), Markdown + scatter PNG (people), JUnit (CI).

The Markdown summary puts every artifact in one table with a verdict first and the failing
metric in bold, so a reader sees at a glance which target drifted and by how much.
"""
from __future__ import annotations

import math
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from PIL import Image, ImageDraw

from .. import jsonio
from .gates import Check
from .parity import Reference, VerifyResult

COLUMNS = [("auc_drop", "ΔAUC (drop)", "+.4f"), ("flip_rate", "flips", ".2%"), ("flips_near_threshold", "near thr.", ".2f"),
           ("pearson", "Pearson", ".4f"),
           ("spearman", "Spearman", ".4f"), ("eer_increase", "ΔEER", "+.4f"), ("threshold_shift", "Δthr (EER)", "+.3f"),
           ("p99_abs_diff", "p99 abs Δp", ".3f"), ("max_abs_diff", "max abs Δp", ".3f"),
           ("feature_cosine_mean", "feat cos", ".4f"), ("nonfinite", "NaN/Inf", "d")]


def write_reports(results: list[VerifyResult], out_dir: str | Path, title: str = "Parity report") -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` (+ one scatter PNG per artifact) and ``junit.xml``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "junit": out / "junit.xml"}
    paths["json"].write_text(jsonio.dumps([r.to_dict() for r in results], indent=1) + "\n")
    for r in results:
        scatter(r, out / f"scatter-{r.name}.png")
    paths["markdown"].write_text(markdown(results, title))
    paths["junit"].write_text(junit(results))
    return paths


def fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def markdown(results: list[VerifyResult], title: str = "Parity report") -> str:
    ref = results[0].reference if results else ""
    machine = results[0].checked_on if results else {}
    cpu = (f" Checked on {machine.get('cpu_model') or machine.get('cpu_vendor')} (CPU class {machine.get('cpu_class')}: "
           f"{', '.join(machine.get('features', [])) or 'no INT8 dot-product extensions'}).") if machine else ""
    lines = [f"# {title}", "", f"Reference: `{ref}`. Each artifact ran with its own runtime on the reference's faces.{cpu}",
             "**Bold** = outside the gate (limit in brackets). " + _flip_rule(results), "",
             "| artifact | runtime | verdict | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(COLUMNS)]
    for r in results:
        checks = {c.metric: c for c in r.checks}
        cells = []
        for metric, _, spec in COLUMNS:
            text = fmt(getattr(r.metrics, metric), spec)
            check = checks.get(metric)
            if metric == "flip_rate":
                text = f"{r.metrics.flips} ({text})"
            if check and check.judged is not None:
                text += f"; bound {fmt(check.judged, spec)}"
            if check and not check.passed:
                text = f"**{text}** ({'≤' if check.kind == 'max' else '≥'}{fmt(check.limit, spec)})"
            cells.append(text)
        verdict = "✅ pass" if r.passed else "❌ DRIFT: " + ", ".join(c.metric for c in r.failures)
        lines.append(f"| {r.name} | {r.runtime} | {verdict} | " + " | ".join(cells) + " |")
    for r in results:
        m = r.metrics
        lines += ["", f"## {r.name}", "",
                  f"- artifact `{r.artifact}`; {m.n} faces ({r.inputs_identical} with pixel-identical inputs)",
                  f"- AUC {fmt(m.auc_reference, '.4f')} → {fmt(m.auc, '.4f')}; EER {fmt(m.eer_reference, '.4f')} → "
                  f"{fmt(m.eer, '.4f')}; {m.flips} decisions flipped",
                  f"- flips: {_flip_sentence(r.flip_evidence)}",
                  "", f"![scores](scatter-{r.name}.png)", "", "| worst faces | source | reference | artifact | abs Δp |",
                  "|---|---|---|---|---|"]
        lines += [f"| {w['path']} | {w['source']} | {w['reference']:.3f} | {w['artifact']:.3f} | {w['abs_diff']:.3f}"
                  f"{' (flipped)' if w['flipped'] else ''} |" for w in r.worst[:5]]
    return "\n".join(lines) + "\n"


def _flip_rule(results: list[VerifyResult]) -> str:
    ev = results[0].flip_evidence if results else {}
    if not ev.get("confidence"):
        return "Flips: the raw rate at the threshold."
    averaged = f"flips averaged over thresholds within ±{ev['band']}" if ev.get("band") else "flips at the threshold"
    return (f"Flips are judged by the one-sided Wilson {ev['confidence']:.0%} {ev['bound']} bound of their rate, "
            f"{averaged} (see docs/parity.md).")


def _flip_sentence(ev: dict) -> str:
    if not ev:
        return "–"
    return (f"{ev['flips']} of {ev['faces']} at the threshold, {fmt(ev.get('flips_near_threshold'), '.2f')} averaged near it; "
            f"judged rate {fmt(ev.get('judged_rate'), '.2%')} against {fmt(ev.get('limit'), '.2%')}, "
            f"margin {fmt(ev.get('margin'), '+.2%')}")


def junit(results: list[VerifyResult]) -> str:
    """One testsuite per artifact, one testcase per gated metric; the flip evidence as suite properties."""
    suites = []
    for r in results:
        cases = [_case(r, c) for c in r.checks]
        props = "".join(f'\n    <property name={quoteattr("flips." + k)} value={quoteattr(str(v))}/>'
                        for k, v in r.flip_evidence.items())
        suites.append(f'  <testsuite name={quoteattr("parity." + r.name)} tests="{len(cases)}" '
                      f'failures="{len(r.failures)}" errors="0">\n    <properties>{props}\n    </properties>\n'
                      + "\n".join(cases) + "\n  </testsuite>")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="deepfake-sdk parity">\n' + "\n".join(suites) + "\n</testsuites>\n"


def _case(r: VerifyResult, c: Check) -> str:
    head = f'    <testcase classname={quoteattr("parity." + r.name)} name={quoteattr(c.metric)}'
    if c.passed:
        return head + "/>"
    judged = f" (judged {c.judged:.5g})" if c.judged is not None else ""
    message = f"{c.metric} = {c.value:.5g}{judged}, limit {'<=' if c.kind == 'max' else '>='} {c.limit:g}"
    return head + f">\n      <failure message={quoteattr(message)}>{escape(message)}</failure>\n    </testcase>"


def scatter(result: VerifyResult, path: Path, size: int = 360) -> None:
    """Reference vs artifact fake probability, one dot per face; red dots changed decision."""
    ref = Reference.load(result.reference)
    worst = {w["path"] for w in result.worst}
    probs = np.asarray(result.scores, dtype=np.float64)
    pad = 36
    img = Image.new("RGB", (size + 2 * pad, size + 2 * pad), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([pad, pad, pad + size, pad + size], outline="black")
    draw.line([pad, pad + size, pad + size, pad], fill="#bbbbbb")
    threshold = ref.meta["threshold"]
    t = pad + threshold * size
    draw.line([t, pad, t, pad + size], fill="#dddddd")
    draw.line([pad, pad + size - threshold * size, pad + size, pad + size - threshold * size], fill="#dddddd")
    flips = (ref.probs >= threshold) != (probs >= threshold)
    for i in np.argsort(flips, kind="stable"):  # flipped dots drawn last, on top
        x, y, flipped = ref.probs[i], probs[i], flips[i]
        if not np.isfinite(y):
            continue
        cx, cy = pad + x * size, pad + size - y * size
        colour = "#d62728" if flipped else ("#ff7f0e" if ref.samples[i]["path"] in worst else "#1f77b4")
        draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
    draw.text((pad, 8), f"{result.name}: p(fake) artifact vs reference (Pearson {result.metrics.pearson:.4f})", fill="black")
    draw.text((pad, pad + size + 8), "x: reference p(fake)   y: artifact   red: decision flipped", fill="black")
    img.save(path)
