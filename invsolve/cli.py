"""Command line: ``invsolve list``, ``invsolve run NAME [--quick] [--out DIR] [--seed N]``,
``invsolve reproduce [--quick] [--out DIR] [--only NAME ...]`` and
``invsolve train MODEL --out FILE [--checkpoint FILE]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time


def _cmd_list(args) -> int:
    from .experiments import REGISTRY

    width = max(len(n) for n in REGISTRY)
    for name in sorted(REGISTRY):
        print(f"{name:<{width}}  {REGISTRY[name].description}")
    return 0


def _cmd_run(args) -> int:
    from . import experiments

    try:
        exp = experiments.get(args.name)
    except KeyError as e:
        print(f"invsolve: {e.args[0]}", file=sys.stderr)
        return 2
    import jax

    with jax.enable_x64(exp.x64):  # the experiment's precision, the caller's setting kept
        try:
            return 0 if _run(exp, args) is not None else 2
        except (ValueError, TypeError, MemoryError) as e:  # a configuration the library refuses (--set ...)
            if os.environ.get("INVSOLVE_TRACEBACK"):
                raise
            print(f"invsolve: {exp.name}: {type(e).__name__}: {e}\n(set INVSOLVE_TRACEBACK=1 to see where it was "
                  "raised)", file=sys.stderr)
            return 2


def _run(exp, args) -> dict | None:
    """Run one experiment, write its files, return its metrics record (None: bad --set)."""
    import jax
    import jaxlib

    from . import __version__, experiments
    from .io import save_solution, write_json
    from .plot import plot_fields, plot_history

    cfg = exp.quick if args.quick else exp.full
    try:
        cfg = _override(cfg, args.set)
    except ValueError as e:
        print(f"invsolve: {e}", file=sys.stderr)
        return None
    out = args.out or os.path.join("runs", exp.name)
    os.makedirs(out, exist_ok=True)
    print(f"invsolve: running {exp.name} ({'quick' if args.quick else 'full'}, seed {args.seed}) -> {out}",
          file=sys.stderr)
    t0 = time.perf_counter()
    outcome = exp.run(cfg, args.seed)
    wall = time.perf_counter() - t0
    sol = outcome.solution
    summary = save_solution(sol, out, extra={f"field/{k}": v for k, v in outcome.fields.items()})
    metrics = {**summary["metrics"], **outcome.extra_metrics}
    record = {
        "experiment": exp.name,
        "quick": bool(args.quick),
        "seed": args.seed,
        "config": dataclasses.asdict(cfg),
        "result": summary["result"],
        "metrics": metrics,
        "paper": outcome.paper,
        "wall_time_s": wall,
        "stats": summary["stats"],
        "versions": {"invsolve": __version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                     "python": platform.python_version()},
        "device": {"platform": jax.devices()[0].platform, "kind": jax.devices()[0].device_kind,
                   "count": jax.device_count()},
    }
    record["verdict"] = experiments.verdict(exp, metrics, bool(args.quick))
    write_json(os.path.join(out, "metrics.json"), record)
    plot_fields(os.path.join(out, "fields.png"), outcome.fields, points=outcome.points, title=exp.name)
    plot_history(os.path.join(out, "history.png"), sol.history, title=exp.name)
    print(summary_text(record, sol.stats.get("compile_time_s", 0.0)))
    print(f"wrote {out}/metrics.json, solution.npz, fields.png, history.png")
    return record


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def summary_text(record: dict, compile_s: float = 0.0) -> str:
    """What ``invsolve run`` prints: the solver's status, each scalar metric once, and the
    verdict, PASS or MISS per criterion (lists and tables stay in metrics.json)."""
    shown = ", ".join(f"{k}={_num(v)}" for k, v in record["metrics"].items()
                      if isinstance(v, (int, float, str)) and not isinstance(v, bool))
    steps, res = record["stats"].get("num_steps", "?"), record["result"]
    if isinstance(res, list):  # a batch of solves
        res = f"{sum(r == 'successful' for r in res)}/{len(res)} successful"
        steps = "/".join(str(n) for n in sorted(set(steps))) if isinstance(steps, list) else steps
    v = record["verdict"]
    n_ok = sum(c["pass"] for c in v["criteria"])
    lines = [f"{record['experiment']}: solver {res}, {steps} steps, {record['wall_time_s']:.1f} s "
             f"(compile {compile_s:.1f} s)", f"  metrics: {shown}",
             f"  verdict: {'PASS' if v['pass'] else 'MISS'} ({n_ok} of {len(v['criteria'])} criteria at the "
             f"{'quick' if record['quick'] else 'full'} setting)"]
    for c in v["criteria"]:
        lines.append(f"    {'PASS' if c['pass'] else 'MISS'}  {c['metric']} = {_num(c['value'])}, needs {c['rule']}")
    return "\n".join(lines)


def _cmd_reproduce(args) -> int:
    import jax

    from . import experiments
    from .report import write_report

    names = args.only or sorted(experiments.REGISTRY)
    try:
        exps = [experiments.get(n) for n in names]
    except KeyError as e:
        print(f"invsolve: {e.args[0]}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    records, failed = {}, []
    for exp in exps:
        out = os.path.join(args.out, exp.name)
        done = os.path.join(out, "metrics.json")
        if os.path.exists(done):  # a finished experiment from an earlier (interrupted) run is kept
            import json

            with open(done) as f:
                rec = json.load(f)
            if rec.get("quick") == bool(args.quick) and rec.get("seed") == args.seed:
                print(f"invsolve: kept {exp.name} from {done}", file=sys.stderr)
                records[exp.name] = rec
                continue
        one = argparse.Namespace(quick=args.quick, out=out, seed=args.seed, set=None)
        try:
            with jax.enable_x64(exp.x64):
                records[exp.name] = _run(exp, one)
        except Exception as err:  # noqa: BLE001 - one broken experiment must not stop the report
            records[exp.name] = {"experiment": exp.name, "error": f"{type(err).__name__}: {err}"}
            failed.append(exp.name)
            print(f"invsolve: {exp.name} failed: {type(err).__name__}: {err}", file=sys.stderr)
        write_report(os.path.join(args.out, "REPORT.md"), exps, records, quick=args.quick)
    write_report(os.path.join(args.out, "REPORT.md"), exps, records, quick=args.quick)  # also when all were kept
    print(f"invsolve: wrote {os.path.join(args.out, 'REPORT.md')} ({len(records) - len(failed)} of "
          f"{len(exps)} experiments ran{'; failed: ' + ', '.join(failed) if failed else ''})", file=sys.stderr)
    return 1 if failed else 0


def _override(cfg, assignments):
    """``cfg`` with ``name=value`` assignments applied (values parsed as Python literals,
    else kept as strings), e.g. ``--set noise=0 --set seeds=1``."""
    import ast

    fields = {f.name for f in dataclasses.fields(cfg)}
    changes = {}
    for item in assignments or ():
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--set expects NAME=VALUE with NAME one of {', '.join(sorted(fields))}; got {item!r}.")
        try:
            changes[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            changes[name] = text
    return dataclasses.replace(cfg, **changes)


def _cmd_train(args) -> int:
    from . import recipes

    if args.name not in recipes.RECIPES:
        print(f"invsolve train: unknown model {args.name!r}; known: {', '.join(sorted(recipes.RECIPES))}",
              file=sys.stderr)
        return 2
    try:
        recipe = _override(recipes.RECIPES[args.name], args.set)
    except ValueError as e:
        print(f"invsolve train: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    model = recipes.train(args.name, checkpoint=args.checkpoint, progress=True, **dataclasses.asdict(recipe))
    model.save(args.out)
    print(f"wrote {args.out} ({model.n_params} parameters) in {time.perf_counter() - t0:.0f} s: {dict(model.info)}")
    return 0


def main(argv=None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="invsolve", description="Scientific inverse problems in JAX.")
    parser.add_argument("--version", action="version", version=f"invsolve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the named experiments").set_defaults(func=_cmd_list)
    run = sub.add_parser("run", help="run a named experiment and save metrics, solution and figures")
    run.add_argument("name", help="experiment name (see `invsolve list`)")
    run.add_argument("--quick", action="store_true", help="CPU-scale settings (about a minute)")
    run.add_argument("--out", default=None, help="output folder (default runs/NAME)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--set", action="append", metavar="NAME=VALUE",
                     help="override a configuration field, e.g. --set noise=0 (repeatable)")
    run.set_defaults(func=_cmd_run)
    rep = sub.add_parser("reproduce", help="run every paper experiment and write REPORT.md (paper vs ours)")
    rep.add_argument("--quick", action="store_true", help="CPU-scale settings")
    rep.add_argument("--out", default="reproduce", help="output folder (default ./reproduce)")
    rep.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    rep.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    rep.set_defaults(func=_cmd_reproduce)
    train = sub.add_parser("train", help="train a shipped model from its recipe (see invsolve/weights/MANIFEST.md)")
    train.add_argument("name", help="a recipe of invsolve.recipes.RECIPES: dcdm-poisson2d-64, dcdm-poisson3d-32, "
                       "lpn-ellipses-64, lpn-mni-64, score-ellipses-64, score-mni-64, score-mni-64-edm or "
                       "score-darcy-32")
    train.add_argument("--out", required=True, help="where to write the weights (.npz)")
    train.add_argument("--checkpoint", default=None, help="checkpoint file (.npz): written as it trains, resumed from")
    train.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a recipe field (repeatable)")
    train.set_defaults(func=_cmd_train)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
