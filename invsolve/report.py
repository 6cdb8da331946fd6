"""``REPORT.md`` for ``invsolve reproduce``: per experiment, the paper's number(s) beside ours,
how our setting differs, wall time and device, and the experiment's figure."""

from __future__ import annotations

import dataclasses
import datetime
import json


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (int, str)):
        return str(v)
    text = json.dumps(v, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


def _setting(exp, quick: bool, paper: dict | None) -> list[str]:
    lines = []
    if paper and "setting" in paper:
        lines.append(f"paper vs here: {paper['setting']}")
    if quick and dataclasses.is_dataclass(exp.quick):
        q, f = dataclasses.asdict(exp.quick), dataclasses.asdict(exp.full)
        diff = [f"{k} {_fmt(q[k])} (full: {_fmt(f.get(k))})" for k in q if q[k] != f.get(k)]
        lines.append("quick run: " + ("; ".join(diff) if diff else "the full configuration"))
    return lines


def write_report(path, exps, records: dict, *, quick: bool) -> None:
    """Write the report for the experiments ``exps`` (those without a record yet are listed
    as pending); ``records`` maps a name to the ``metrics.json`` record or ``{"error": ...}``."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# invsolve reproduction report ({'quick' if quick else 'full'} settings)", "",
           f"Written {now} by `invsolve reproduce{' --quick' if quick else ''}`. Each section: the verdict "
           "(PASS or MISS per pass criterion, declared in the experiment's code with its source), the paper's "
           "reported numbers, ours, how the setting differs, wall time, device and the figure.", "",
           "| experiment | verdict | criteria met | solver | headline metrics | wall time | device |",
           "|---|---|---|---|---|---|---|"]
    for exp in exps:
        rec = records.get(exp.name)
        link = f"[{exp.name}](#{exp.name})"
        if rec is None:
            out.append(f"| {link} | pending | | | | | |")
            continue
        if "error" in rec:
            out.append(f"| {link} | **failed** | | | {rec['error'][:120]} | | |")
            continue
        v = rec.get("verdict") or {"pass": False, "criteria": []}
        names = list(dict.fromkeys(c["metric"] for c in v["criteria"]))[:3]
        head = [(k, c["value"]) for k in names for c in v["criteria"] if c["metric"] == k][:3]
        head = list(dict(head).items())
        dev = rec.get("device", {})
        res = rec["result"]
        res = res if isinstance(res, str) else f"{sum(r == 'successful' for r in res)}/{len(res)} successful"
        met = f"{sum(c['pass'] for c in v['criteria'])}/{len(v['criteria'])}"
        out.append(f"| {link} | {'PASS' if v['pass'] else '**MISS**'} | {met} | {res} | "
                   f"{', '.join(f'{k} {_fmt(x)}' for k, x in head)} | {rec['wall_time_s']:.1f} s | "
                   f"{dev.get('platform', '?')} x{dev.get('count', '?')} |")
    for exp in exps:
        rec = records.get(exp.name)
        if rec is None:
            continue
        out += ["", f"## {exp.name}", "", exp.description, ""]
        if "error" in rec:
            out += [f"Failed: `{rec['error']}`"]
            continue
        v = rec.get("verdict") or {"pass": False, "criteria": []}
        out += [f"**Verdict: {'PASS' if v['pass'] else 'MISS'}** (solver: {rec['result'] if isinstance(rec['result'], str) else 'per draw, see below'})",
                "", "| | criterion | value | source |", "|---|---|---|---|"]
        out += [f"| {'PASS' if c['pass'] else 'MISS'} | `{c['rule']}` | {_fmt(c['value'])} | {c['source']} |"
                for c in v["criteria"]]
        out.append("")
        paper = rec.get("paper") or {}
        out.append("**Paper**")
        out += [f"- {k}: {_fmt(v)}" for k, v in paper.items() if k != "setting"] or ["- (no published number)"]
        out += ["", "**Ours**"]
        out += [f"- {k}: {_fmt(v)}" for k, v in rec["metrics"].items()]
        out += ["", "**Setting**"] + [f"- {line}" for line in _setting(exp, quick, paper)]
        dev = rec.get("device", {})
        stats = rec.get("stats", {})
        out += [f"- wall time {rec['wall_time_s']:.1f} s (compile {_fmt(stats.get('compile_time_s', 0.0))} s), "
                f"device {dev.get('kind', '?')} x{dev.get('count', '?')}, jax {rec.get('versions', {}).get('jax', '?')}",
                "", f"![{exp.name}]({exp.name}/fields.png)"]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
