"""``python -m mlops_provider.templates validate DIR`` (CI / pre-commit) and ``reference`` (README table)."""

from __future__ import annotations

import argparse
import sys

from mlops_provider.templates.loader import deep_check, load_configs
from mlops_provider.templates.schema import reference_rows


def reference_table() -> str:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, type_name, default, description in reference_rows():
        cell = type_name.replace("|", "\\|")
        lines.append(f"| `{key}` | {cell} | `{default}` | {description.replace('|', '/')} |")
    return "\n".join(lines)


def validate(config_dir: str, deep: bool = True) -> int:
    items = load_configs(config_dir)
    if not items:
        print(f"{config_dir}: (folder): no *.yaml model config found", file=sys.stderr)
        return 2
    problems = [p for item in items for p in item.problems]
    if deep:
        problems += [p for item in items if item.ok for p in deep_check(item)]
    for problem in problems:
        print(problem)
    problems = [p for p in problems if not p.warning]
    print(
        f"{len(items)} config(s), {len(problems)} problem(s)" + ("" if problems else ": all valid"),
        file=sys.stderr,
    )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_provider.templates")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="check every model config in a folder; exit 1 on any problem")
    check.add_argument("config_dir")
    check.add_argument(
        "--light", action="store_true", help="parse-time checks only (no imports of libraries)"
    )
    sub.add_parser("reference", help="print the config key reference as a Markdown table")
    args = parser.parse_args(argv)
    if args.command == "validate":
        return validate(args.config_dir, deep=not args.light)
    print(reference_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
