"""Command line: ``invsolve list``, ``invsolve show NAME``,
``invsolve run NAME [--quick] [--out DIR] [--seed N] [--set NAME=VALUE] [--force]``,
``invsolve reproduce [--quick] [--out DIR] [--only NAME ...]`` and
``invsolve train MODEL --out FILE [--checkpoint FILE]``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time

from ._cache import cache_dir, use_compilation_cache


def _runtime(seconds) -> str:
    if seconds is None:
        return "not timed"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _cmd_list(args) -> int:
    from .experiments import REGISTRY, RUNTIME_S, extras

    width = max(len(n) for n in REGISTRY)
    print(f"{'experiment':<{width}}  {'quick':>6}  {'full':>9}  {'extras':<7}  description")
    for name in sorted(REGISTRY):
        quick, full = RUNTIME_S.get(name, (None, None))
        print(f"{name:<{width}}  {_runtime(quick):>6}  {_runtime(full):>9}  {','.join(extras(name)) or '-':<7}  "
              f"{REGISTRY[name].description}")
    print("(wall time on 2 CPU cores, cold cache; extras: pip install -e \".[brain]\" from a checkout)")
    return 0


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")


def _cmd_show(args) -> int:
    import typing

    from . import experiments

    try:
        exp = experiments.get(args.name)
    except KeyError as e:
        print(f"invsolve: {e.args[0]}", file=sys.stderr)
        return 2
    quick, full = experiments.RUNTIME_S.get(exp.name, (None, None))
    ex = experiments.extras(exp.name)
    print(f"{exp.name}: {exp.description}")
    print(f"  runtime on 2 CPU cores: quick {_runtime(quick)}, full {_runtime(full)}")
    hint = 'pip install -e ".[' + ",".join(ex) + ']" from a checkout'
    print(f"  extras: {', '.join(ex) + ' (' + hint + ')' if ex else 'none'}")
    print(f"  precision: {'float64' if exp.x64 else 'float32'}")
    hints = typing.get_type_hints(type(exp.quick))
    print(f"  configuration ({type(exp.quick).__name__}; change a field with --set NAME=VALUE):")
    width = max(len(f.name) for f in dataclasses.fields(exp.quick))
    for f in dataclasses.fields(exp.quick):
        q, full_v = getattr(exp.quick, f.name), getattr(exp.full, f.name)
        print(f"    {f.name:<{width}}  {_type_name(hints[f.name])}: quick {q!r}"
              + (f", full {full_v!r}" if full_v != q else " (full: same)"))
    print("  pass criteria (quick | full):")
    for c in exp.criteria:
        q = c.rule(True) if c.quick is not None else "-"
        f = c.rule(False) if c.full is not None else "-"
        print(f"    {q} | {f}   [{c.source}]")
    return 0


class _Misuse(Exception):
    """A command-line mistake: reported in one line, exit status 2, nothing created."""


def _cmd_run(args) -> int:
    from . import experiments

    try:
        exp = experiments.get(args.name)
        cfg = _override(exp.quick if args.quick else exp.full, args.set, typed=True)
        _check_out(args.out or os.path.join("runs", exp.name))
    except KeyError as e:
        print(f"invsolve: {e.args[0]}", file=sys.stderr)
        return 2
    except (_Misuse, ValueError) as e:
        print(f"invsolve: {e}", file=sys.stderr)
        return 2
    import jax

    with jax.enable_x64(exp.x64):  # the experiment's precision, the caller's setting kept
        try:
            return 0 if _run(exp, args, cfg) is not None else 2
        except _Misuse as e:  # a configuration the experiment refuses (--set ...), an --out it cannot make
            print(f"invsolve: {exp.name}: {e}", file=sys.stderr)
            return 2
        except Exception as e:  # noqa: BLE001 - a failed run: one line; the checkpoints in --out are kept
            if os.environ.get("INVSOLVE_TRACEBACK"):
                raise
            print(f"invsolve: {exp.name} failed: {type(e).__name__}: {e} (INVSOLVE_TRACEBACK=1 shows where; "
                  "rerunning the same command resumes from its checkpoints)", file=sys.stderr)
            return 1


def _check_out(out: str) -> None:
    """``out`` is, or can be made, a writable folder (nothing is created here)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise _Misuse(f"--out {out}: exists and is not a folder; give a folder path (it is created if missing).")
    parent = os.path.abspath(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise _Misuse(f"--out {out}: cannot be created, because {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _Misuse(f"--out {out}: cannot be created or written, because {parent} is not writable.")


_OUR_FILES = ("metrics.json", "solution.npz", "fields.png", "history.png", "run.json")


def _identity(exp, args, cfg) -> dict:
    from . import __version__

    return {"experiment": exp.name, "quick": bool(args.quick), "seed": args.seed, "config": dataclasses.asdict(cfg),
            "invsolve": __version__}


def _read_json(path):
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _same(a, b) -> bool:
    """Equal as JSON (a run.json read back has lists where the configuration has tuples)."""
    import json

    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _choose_out(out: str, identity: dict, force: bool) -> tuple[str, bool]:
    """The folder a run writes to, and whether it resumes there. A finished run (its
    ``metrics.json``) or another run's checkpoints are never overwritten without ``force``:
    the run goes to ``out-2``, ``out-3``, ... instead; an unfinished run of the same
    experiment, setting, seed and configuration is resumed."""
    import shutil

    def state(folder):
        if not os.path.isdir(folder):
            return "free"
        if os.path.exists(os.path.join(folder, "metrics.json")):
            return "finished"
        started = _read_json(os.path.join(folder, "run.json"))
        if started is None:
            return "free"
        return "resume" if _same(started, identity) else "other"

    if force:
        for name in _OUR_FILES:
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
        shutil.rmtree(os.path.join(out, "checkpoints"), ignore_errors=True)
        return out, False
    for i in range(1, 1000):
        folder = out if i == 1 else f"{out.rstrip(os.sep)}-{i}"
        st = state(folder)
        if st in ("free", "resume"):
            if folder != out:
                print(f"invsolve: {out} holds another run (kept); writing to {folder} (--force overwrites {out})",
                      file=sys.stderr)
            return folder, st == "resume"
    raise _Misuse(f"--out {out}: {out}-2 ... {out}-999 are all taken; pass --force or another --out.")


def _run(exp, args, cfg) -> dict:
    """Run one experiment in ``args.out`` (checkpointed, resumable), write its files, return
    its metrics record."""
    import shutil

    import jax
    import jaxlib

    from . import __version__, experiments
    from ._driver import compile_timer
    from ._hostrun import checkpoint_scope
    from .io import save_solution, write_json
    from .plot import save_figures

    identity = _identity(exp, args, cfg)
    out = args.out or os.path.join("runs", exp.name)
    out, resuming = _choose_out(out, identity, bool(getattr(args, "force", False)))
    created = not os.path.exists(out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise _Misuse(f"--out {out}: cannot be created ({e.strerror}); give a writable folder.") from None
    write_json(os.path.join(out, "run.json"), identity)
    print(f"invsolve: {'resuming' if resuming else 'running'} {exp.name} ({'quick' if args.quick else 'full'}, "
          f"seed {args.seed}) -> {out}", flush=True)
    scope = checkpoint_scope(os.path.join(out, "checkpoints"))
    t0 = time.perf_counter()
    try:
        with scope, compile_timer() as ct:
            outcome = exp.run(cfg, args.seed)
    except (ValueError, TypeError) as e:  # a configuration the library refuses: this run is void
        if os.environ.get("INVSOLVE_TRACEBACK"):
            raise
        scope.clear()
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            os.remove(os.path.join(out, "run.json"))
        raise _Misuse(f"{type(e).__name__}: {e}") from None
    wall = time.perf_counter() - t0
    sol = outcome.solution
    summary = save_solution(sol, out, extra={f"field/{k}": v for k, v in outcome.fields.items()})
    metrics = {**summary["metrics"], **outcome.extra_metrics}
    record = {
        **identity,
        "result": summary["result"],
        "metrics": metrics,
        "paper": outcome.paper,
        "wall_time_s": wall,
        "compile_time_s": ct.seconds,
        "stats": summary["stats"],
        "versions": {"invsolve": __version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                     "python": platform.python_version()},
        "device": {"platform": jax.devices()[0].platform, "kind": jax.devices()[0].device_kind,
                   "count": jax.device_count()},
    }
    record["verdict"] = experiments.verdict(exp, metrics, bool(args.quick))
    save_figures(out, exp, outcome, sol, record)
    write_json(os.path.join(out, "metrics.json"), record)  # last: it marks the run finished
    scope.clear()
    os.remove(os.path.join(out, "run.json"))
    print(summary_text(record))
    print(f"wrote {out}/metrics.json, solution.npz and figures")
    return record


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def summary_text(record: dict) -> str:
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
    steps = "a one-shot method (no iterations)" if steps == 0 else f"{steps} steps"
    lines = [f"{record['experiment']}: solver {res}, {steps}; {record['wall_time_s']:.1f} s in all "
             f"(compiling {record.get('compile_time_s', 0.0):.1f} s)", f"  metrics: {shown}",
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
        cfg = exp.quick if args.quick else exp.full
        started = _read_json(os.path.join(out, "run.json"))
        one = argparse.Namespace(quick=args.quick, out=out, seed=args.seed, set=None)
        one.force = not _same(started, _identity(exp, one, cfg))  # resume this experiment's own unfinished run only
        try:
            with jax.enable_x64(exp.x64):
                records[exp.name] = _run(exp, one, cfg)
        except Exception as err:  # noqa: BLE001 - one broken experiment must not stop the report
            records[exp.name] = {"experiment": exp.name, "error": f"{type(err).__name__}: {err}"}
            failed.append(exp.name)
            print(f"invsolve: {exp.name} failed: {type(err).__name__}: {err}", file=sys.stderr)
        write_report(os.path.join(args.out, "REPORT.md"), exps, records, quick=args.quick)
    write_report(os.path.join(args.out, "REPORT.md"), exps, records, quick=args.quick)  # also when all were kept
    print(f"invsolve: wrote {os.path.join(args.out, 'REPORT.md')} ({len(records) - len(failed)} of "
          f"{len(exps)} experiments ran{'; failed: ' + ', '.join(failed) if failed else ''})", file=sys.stderr)
    return 1 if failed else 0


def _conforms(value, hint) -> bool:
    """Whether ``value`` (a parsed Python literal) fits the type annotation ``hint``."""
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return not args or (len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args)))
    return isinstance(value, hint) if isinstance(hint, type) else True


def _override(cfg, assignments, typed: bool = False):
    """``cfg`` with ``name=value`` assignments applied (values parsed as Python literals,
    else kept as strings), e.g. ``--set noise=0.02 --set seeds=1``. With ``typed``, each
    value must fit the field's annotation (`ValueError` naming the field, the expected
    type and an example)."""
    import ast
    import typing

    fields = {f.name for f in dataclasses.fields(cfg)}
    hints = typing.get_type_hints(type(cfg)) if typed else {}
    changes = {}
    for item in assignments or ():
        name, sep, text = item.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"--set expects NAME=VALUE with NAME one of {', '.join(sorted(fields))}; got {item!r}.")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        if isinstance(value, list):  # configurations are frozen: sequences are tuples
            value = tuple(value)
        if name in hints and not _conforms(value, hints[name]):
            raise ValueError(f"--set {item}: {name} must be {_type_name(hints[name])}, e.g. "
                                 f"{name}={getattr(cfg, name)!r}; got {value!r} ({type(value).__name__}).")
        changes[name] = value
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
    sub.add_parser("list", help="list the named experiments with their runtime and extras").set_defaults(
        func=_cmd_list)
    show = sub.add_parser("show", help="describe an experiment: configuration fields, runtime, extras, criteria")
    show.add_argument("name", help="experiment name (see `invsolve list`)")
    show.set_defaults(func=_cmd_show)
    no_cache = argparse.ArgumentParser(add_help=False)
    no_cache.add_argument("--no-cache", action="store_true",
                          help=f"do not use JAX's persistent compilation cache ({cache_dir()}; also "
                               "INVSOLVE_NO_CACHE=1)")
    run = sub.add_parser("run", parents=[no_cache], help="run a named experiment and save metrics, solution and "
                         "figures", epilog="Ctrl-C stops a run; the same command resumes it from its checkpoints "
                         "in --out. INVSOLVE_TRACEBACK=1 shows where an error was raised.")
    run.add_argument("name", help="experiment name (see `invsolve list`)")
    run.add_argument("--quick", action="store_true", help="CPU-scale settings (about a minute)")
    run.add_argument("--out", default=None, help="output folder (default runs/NAME); a finished run there is kept "
                     "and this one goes to OUT-2, OUT-3, ...")
    run.add_argument("--force", action="store_true", help="overwrite a finished run in --out")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--set", action="append", metavar="NAME=VALUE",
                     help="override a configuration field, e.g. --set noise=0.02 (repeatable; "
                     "`invsolve show NAME` lists the fields)")
    run.set_defaults(func=_cmd_run)
    rep = sub.add_parser("reproduce", parents=[no_cache],
                         help="run every paper experiment and write REPORT.md (paper vs ours)")
    rep.add_argument("--quick", action="store_true", help="CPU-scale settings")
    rep.add_argument("--out", default="reproduce", help="output folder (default ./reproduce)")
    rep.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    rep.add_argument("--only", nargs="+", metavar="NAME", help="run only these experiments")
    rep.set_defaults(func=_cmd_reproduce)
    train = sub.add_parser("train", parents=[no_cache],
                           help="train a shipped model from its recipe (see invsolve/weights/MANIFEST.md)")
    train.add_argument("name", help="a recipe of invsolve.recipes.RECIPES: dcdm-poisson2d-64, dcdm-poisson3d-32, "
                       "lpn-ellipses-64, lpn-mni-64, score-ellipses-64, score-mni-64, score-mni-64-edm or "
                       "score-darcy-32")
    train.add_argument("--out", required=True, help="where to write the weights (.npz)")
    train.add_argument("--checkpoint", default=None, help="checkpoint file (.npz): written as it trains, resumed from")
    train.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a recipe field (repeatable)")
    train.set_defaults(func=_cmd_train)
    args = parser.parse_args(argv)
    if args.command in ("run", "reproduce", "train"):
        _compile_cache(args.no_cache)
    try:
        return args.func(args)
    except BrokenPipeError:  # `invsolve list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as e:  # Ctrl-C: one line, no traceback; the checkpoints stay
        from ._driver import Interrupted

        where = f" at step {e.step} of {e.name}" if isinstance(e, Interrupted) else ""
        again = "; rerun the same command to resume" if args.command != "train" or args.checkpoint else ""
        print(f"\ninvsolve: interrupted{where}{again}", file=sys.stderr)
        return 130


def _compile_cache(disabled: bool) -> None:
    """Compile once per machine: JAX's persistent compilation cache (`invsolve.use_compilation_cache`),
    unless ``--no-cache`` or ``INVSOLVE_NO_CACHE=1``, so a second run loads its programs instead
    of compiling them."""
    if disabled or os.environ.get("INVSOLVE_NO_CACHE", "") not in ("", "0"):
        return
    use_compilation_cache(cache_dir())


if __name__ == "__main__":
    sys.exit(main())
