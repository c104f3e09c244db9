# A check of prci's dashboards against grafana-foundation-sdk's generated Grafana models (run by .ci/test).
"""Decode every dashboard with the SDK's models, walk the result against their type hints, and round-trip it.

    python3 -m venv /tmp/gfs-venv && /tmp/gfs-venv/bin/pip install 'grafana-foundation-sdk==1769699379!11.6.0'
    /tmp/gfs-venv/bin/python dashboards/validate_with_sdk.py dashboards

Pin the version: the SDK's versions carry an epoch (N!GRAFANA_VERSION) that makes pip's "latest" the Grafana 10.1
models (schemaVersion 36), which know nothing of Grafana 11's fields. Exit 1 on any PROBLEM (a value that fits no
type the model declares, an enum value it does not list, a required field missing, a value a round trip changes, a
query not decoded as a Prometheus query); keys the model does not know are printed as notes.
"""
import enum
import glob
import json
import os
import sys
import types
import typing

from grafana_foundation_sdk.cog import plugins, runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus

plugins.register_default_plugins()
problems = []
notes = []


def resolve(hint, owner):
    if isinstance(hint, str):
        mod = sys.modules[owner.__module__]
        return eval(hint, vars(mod))
    if isinstance(hint, typing.ForwardRef):
        return resolve(hint.__forward_arg__, owner)
    return hint


def check_value(value, hint, owner, path):
    """True when value fits the type hint (recursing into model objects)."""
    hint = resolve(hint, owner)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any or hint is object:
        return True
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True
        for a in args:
            if a is type(None):
                continue
            if check_value_quiet(value, a, owner, path):
                return True
        problems.append(f"{path}: {value!r} fits none of {hint}")
        return False
    if origin is typing.Literal:
        if value in args:
            return True
        problems.append(f"{path}: {value!r} not in {args}")
        return False
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r}")
            return False
        return all([check_value(v, args[0], owner, f"{path}[{i}]") for i, v in enumerate(value)]) if args else True
    if origin is dict:
        return isinstance(value, dict) or problems.append(f"{path}: expected an object") or False
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            hint(value)
            return True
        except ValueError:
            problems.append(f"{path}: {value!r} is not a {hint.__name__} ({[e.value for e in hint]})")
            return False
    if hint is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)) or problems.append(
            f"{path}: expected a number, got {value!r}") or False
    if hint is int:
        return (isinstance(value, int) and not isinstance(value, bool)) or problems.append(
            f"{path}: expected an integer, got {value!r}") or False
    if hint in (str, bool):
        return isinstance(value, hint) or problems.append(f"{path}: expected {hint.__name__}, got {value!r}") or False
    if isinstance(hint, type):
        if not isinstance(value, hint):
            problems.append(f"{path}: expected {hint.__name__}, got {type(value).__name__} {value!r:.80}")
            return False
        walk(value, path)
        return True
    return True


def check_value_quiet(value, hint, owner, path):
    n = len(problems)
    ok = check_value(value, hint, owner, path)
    if not ok:
        del problems[n:]
    return ok


CHECKED_CLASSES = set()


def walk(obj, path):
    cls = type(obj)
    if cls is runtime.UnknownDataquery:
        problems.append(f"{path}: query not recognised as any datasource's dataquery: {obj.data}")
        return
    hints = typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))
    CHECKED_CLASSES.add(f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}")
    for name, hint in hints.items():
        if name.startswith("_"):
            continue
        value = getattr(obj, name, None)
        if value is None:
            if type(None) not in typing.get_args(resolve(hint, cls)) and resolve(hint, cls) is not typing.Any:
                problems.append(f"{path}.{name}: required by the model, missing")
            continue
        check_value(value, hint, cls, f"{path}.{name}")


def diff(orig, back, path, dropped, changed, added):
    if isinstance(orig, dict) and isinstance(back, dict):
        for k in orig:
            if k not in back:
                dropped.append(f"{path}.{k}")
            else:
                diff(orig[k], back[k], f"{path}.{k}", dropped, changed, added)
        for k in back:
            if k not in orig:
                added.append(f"{path}.{k}={json.dumps(back[k])[:60]}")
    elif isinstance(orig, list) and isinstance(back, list) and len(orig) == len(back):
        for i, (a, b) in enumerate(zip(orig, back)):
            diff(a, b, f"{path}[{i}]", dropped, changed, added)
    elif orig != back:
        changed.append(f"{path}: {json.dumps(orig)[:60]} -> {json.dumps(back)[:60]}")


def main(folder):
    files = sorted(glob.glob(os.path.join(folder, "*.json")))
    total_panels = total_targets = 0
    for path in files:
        name = os.path.basename(path)
        data = json.load(open(path))
        d = dm.Dashboard.from_json(data)
        for p in d.panels or []:
            total_panels += 1
            if isinstance(p, dm.RowPanel):
                continue
            # The model types options and fieldConfig.defaults.custom as `object` and keeps transformations and
            # links as raw JSON: decode and walk them against the panel type's own classes.
            if p.options is not None:
                if isinstance(p.options, dict):
                    problems.append(f"{name}: panel {p.title!r}: options left undecoded")
                else:
                    walk(p.options, f"{name}: {p.title!r}.options")
            if p.field_config is not None and p.field_config.defaults.custom is not None:
                c = p.field_config.defaults.custom
                if isinstance(c, dict):
                    if c:
                        problems.append(f"{name}: panel {p.title!r}: custom field config left undecoded")
                else:
                    walk(c, f"{name}: {p.title!r}.fieldConfig.defaults.custom")
            for i, tr in enumerate(p.transformations or []):
                walk(dm.DataTransformerConfig.from_json(tr), f"{name}: {p.title!r}.transformations[{i}]")
            if p.transformations is not None:
                p.transformations = [dm.DataTransformerConfig.from_json(tr) for tr in p.transformations]
            for i, ln in enumerate(p.links or []):
                walk(dm.DashboardLink.from_json(ln), f"{name}: {p.title!r}.links[{i}]")
            opt_cls = runtime.panelcfg_config(p.type_val)
            if opt_cls is None:
                problems.append(f"{name}: panel {p.title!r}: type {p.type_val!r} unknown to the SDK")
            elif opt_cls.options_from_json_hook and p.options is not None and isinstance(p.options, dict):
                problems.append(f"{name}: panel {p.title!r}: options not decoded")
            for t in p.targets or []:
                total_targets += 1
                if not isinstance(t, prometheus.Dataquery):
                    problems.append(f"{name}: panel {p.title!r}: target decoded as {type(t).__name__}")
        walk(d, name)
        back = json.loads(json.dumps(d, cls=JSONEncoder))
        dropped, changed, added = [], [], []
        diff(data, back, name, dropped, changed, added)
        for x in dropped:
            notes.append(f"dropped by the model (unknown key): {x}")
        for x in changed:
            problems.append(f"changed by a round trip: {x}")
        added_keys = sorted({a.split("[")[-1].split("=")[0].split(".", 1)[-1] for a in added})
        notes.append(f"{name}: {len(added)} defaults the model adds on a round trip, e.g. {added_keys[:8]}")
    print(f"SDK round trip and type walk: {len(files)} dashboards, {total_panels} panels, {total_targets} targets")
    print("model classes checked:", ", ".join(sorted(CHECKED_CLASSES)))
    for n in notes:
        print("note:", n)
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
