"""`hashlab engines [--json]`: every engine, whether it runs here (and why not), and what it
declares."""
from __future__ import annotations

import json

NAME = "engines"
HELP = "list engines, availability and capabilities"


def setup(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    import engines
    from engines.registry import BUILT_IN
    infos, rejected = engines.available(), engines.rejected()
    if args.json:
        listed = [{"name": i.name, "available": i.available, "reason": i.reason,
                   "origin": i.origin, "broken": i.broken,
                   "capabilities": i.capabilities.as_dict() if i.capabilities else None}
                  for i in infos]
        listed += [{"name": r.name, "available": False, "reason": r.reason, "origin": r.origin,
                    "broken": True, "rejected": True, "capabilities": None} for r in rejected]
        print(json.dumps(listed, indent=2))
        return 0
    for info in infos:
        status = ("available" if info.available else
                  f"{'BROKEN' if info.broken else 'unavailable'}: {info.reason}")
        print(f"{info.name:12s} {status}")
        if info.origin != BUILT_IN:
            print(f"{'':12s} {info.origin}")
        if info.capabilities is not None:
            caps = info.capabilities.as_dict()
            flags = [k for k, v in caps.items() if v is True]
            print(f"{'':12s} ops: {', '.join(caps['ops'])}")
            print(f"{'':12s} optimizers: {', '.join(caps['optimizers'])}")
            print(f"{'':12s} filters: {', '.join(caps['filters']) or '-'}; "
                  f"features: {', '.join(flags) or '-'}")
    for r in rejected:
        print(f"{r.name:12s} REJECTED plug-in: {r.reason}\n{'':12s} {r.origin}")
    return 0
