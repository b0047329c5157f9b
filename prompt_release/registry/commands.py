"""`prompt-release prompts ...`: the registry from the command line.

list | show | new | register | render | diff | verify | label | history |
rollback | approve | status | bundle, on the registry at `--registry PATH`
(env PROMPT_RELEASE_REGISTRY, default the current directory). Each prints a
human summary, or one JSON document with `--json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.registry import Registry
from prompt_release.registry.diff import diff
from prompt_release.registry.ids import PROMPT_ID, parse_version_id
from prompt_release.registry.store import atomic_write


def _registry(args: argparse.Namespace) -> Registry:
    root = config.registry_root(args.registry)
    if not root.is_dir():
        raise UserError(f"registry root {str(root)!r} is not a folder", field="--registry")
    return Registry(root)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def _labels_by_version(registry, prompt_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for label, entry in sorted(registry.labels(prompt_id).items()):
        text = label + (f"@{entry.percent:g}%" if entry.percent is not None else "")
        found.setdefault(entry.version_id, []).append(text)
    return found


def _summary(package, labels: list[str], verified: bool | None) -> dict[str, Any]:
    return {
        "version_id": package.version_id,
        "status": package.status,
        "registered": package.registered,
        "verifies": verified,
        "package_hash": package.package_hash,
        "model": package.model,
        "labels": labels,
        "owner": package.owner,
        "change_reason": package.change_reason,
    }


def cmd_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    packages = registry.list_versions(args.prompt_id)
    checks = {r.version_id: r.ok for r in registry.verify(args.prompt_id)}
    labels = {pid: _labels_by_version(registry, pid) for pid in {p.prompt_id for p in packages}}
    rows = [_summary(p, labels[p.prompt_id].get(p.version_id, []), checks.get(p.version_id)) for p in packages]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"no prompt versions under {registry.root}/prompts")
        return 0
    width = max(len("VERSION"), *(len(r["version_id"]) for r in rows))
    print(f"{'VERSION':<{width}}  {'STATUS':<9}  {'PACKAGE HASH':<19}  {'INTEGRITY':<12}  LABELS")
    for r in rows:
        state = "unregistered" if not r["registered"] else ("ok" if r["verifies"] else "EDITED IN PLACE")
        print(
            f"{r['version_id']:<{width}}  {r['status']:<9}  {r['package_hash'][:19]}  "
            f"{state:<12}  {', '.join(r['labels'])}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if PROMPT_ID.match(args.version):
        # A bare prompt id: show its labels and versions.
        args.prompt_id = args.version
        labels = registry.labels(args.version)
        if args.json:
            _print_json(
                {
                    "prompt_id": args.version,
                    "labels": {name: entry.model_dump(mode="json") for name, entry in labels.items()},
                    "versions": [p.version_id for p in registry.list_versions(args.version)],
                }
            )
            return 0
        for label, entry in sorted(labels.items()):
            extra = f" at {entry.percent:g}%" if entry.percent is not None else ""
            print(f"{label}: {entry.version_id}{extra}")
        return cmd_list(args)
    package = registry.load_package(args.version)
    check = registry.verify_version(package.version_id) if package.registered else None
    data = package.model_dump(mode="json")
    data["labels"] = _labels_by_version(registry, package.prompt_id).get(package.version_id, [])
    data["verifies"] = check.ok if check else None
    data["verify_problem"] = check.problem if check else None
    if args.json:
        _print_json(data)
        return 0
    print(f"{package.version_id}  [{package.status}]  {package.package_hash}")
    for key in (
        "owner",
        "reviewer",
        "model",
        "output_format",
        "schema_path",
        "template_path",
        "golden_set",
        "rollback_to",
    ):
        if data.get(key) is not None:
            print(f"  {key}: {data[key]}")
    print(f"  parameters: {json.dumps(package.parameters, sort_keys=True)}")
    print(f"  required variables: {', '.join(package.required_variables) or '-'}")
    if package.tools:
        print("  tools: " + ", ".join(f"{t.name} ({t.risk} risk)" for t in package.tools))
    if package.tool_policy:
        print(f"  tool policy: {json.dumps(data['tool_policy'], sort_keys=True)}")
    print(f"  labels: {', '.join(data['labels']) or '-'}")
    print(f"  change reason: {package.change_reason}")
    if package.expected_behaviour_change:
        print(f"  expected behaviour change: {package.expected_behaviour_change}")
    policy = package.release_policy
    print(
        f"  release policy: canary {policy.canary_percent:g}%"
        + (f" of {json.dumps(policy.segments)}" if policy.segments else "")
        + f", min traffic {policy.min_traffic}, min duration {policy.min_duration}"
        + (f", reviewer {policy.required_reviewer}" if policy.required_reviewer else "")
    )
    if not package.registered:
        print("  not registered")
    elif check and not check.ok:
        print(f"  DOES NOT VERIFY: {check.problem}")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    vid = _registry(args).new_version(
        args.prompt_id, version=args.version, bump=args.bump, from_version=args.from_version
    )
    if args.json:
        _print_json({"version_id": vid})
    else:
        print(f"created draft {vid}: edit prompts/{args.prompt_id}/, then `prompt-release prompts register {vid}`")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    registry = _registry(args)
    targets = list(args.versions)
    if args.all:
        targets += [v for v in registry.unregistered() if v not in targets]
    if not targets:
        raise UserError("name versions to register (<id>:v<semver>) or pass --all")
    # Register in semver order so each version is checked against its predecessor.
    targets.sort(key=lambda v: (parse_version_id(v)[0], parse_version_id(v)[1]))
    results = []
    for vid in targets:
        result = registry.register(vid, actor=args.actor)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        results.append(
            {
                "version_id": result.package.version_id,
                "package_hash": result.package.package_hash,
                "previous": result.previous,
                "changes": [{"field": f, "needs": n} for f, n in result.changes],
                "already_registered": result.already_registered,
                "warnings": result.warnings,
            }
        )
        if not args.json:
            if result.already_registered:
                print(f"{result.package.version_id} already registered ({result.package.package_hash})")
            else:
                changes = ", ".join(f for f, _ in result.changes) or "first version"
                against = f" vs {result.previous}" if result.previous else ""
                print(f"registered {result.package.version_id} {result.package.package_hash} ({changes}{against})")
    if args.json:
        _print_json(results)
    return 0


def _parse_vars(args: argparse.Namespace) -> dict[str, Any] | None:
    variables: dict[str, Any] | None = None
    if args.vars_json:
        try:
            variables = json.loads(args.vars_json)
        except json.JSONDecodeError as exc:
            raise UserError(f"--vars-json is not JSON: {exc.msg}", field="--vars-json") from None
        if not isinstance(variables, dict):
            raise UserError("--vars-json must be a JSON object", field="--vars-json")
    for item in args.var or []:
        if "=" not in item:
            raise UserError(f"--var expects NAME=VALUE, got {item!r}", field="--var")
        name, value = item.split("=", 1)
        variables = {**(variables or {}), name: value}
    return variables


def cmd_render(args: argparse.Namespace) -> int:
    package = _registry(args).load_package(args.version)
    given = _parse_vars(args)
    variables = (
        {**package.variables, **given}
        if given is not None and args.merge
        else (given if given is not None else package.variables)
    )
    messages = package.render(variables)
    unused = package.unused_variables(variables)
    for name in unused:
        print(f"warning: variable {name!r} is not used by {package.version_id}'s template", file=sys.stderr)
    if args.json:
        _print_json(
            {
                "version_id": package.version_id,
                "package_hash": package.package_hash,
                "messages": messages,
                "unused_variables": unused,
            }
        )
    else:
        for message in messages:
            print(message["content"])
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    registry = _registry(args)
    result = diff(registry.load_package(args.a), registry.load_package(args.b))
    if args.json:
        _print_json(result)
        return 0
    print(f"--- {result['from']} {result['from_hash']}\n+++ {result['to']} {result['to_hash']}")
    print(result["template_diff"] or "(templates identical)")
    for change in result["fields"]:
        print(
            f"{change['field']}: {json.dumps(change['from'], sort_keys=True)} -> {json.dumps(change['to'], sort_keys=True)}"
        )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    registry = _registry(args)
    results = registry.verify(args.prompt_id)
    pending = [v for v in registry.unregistered() if not args.prompt_id or v.startswith(args.prompt_id + ":v")]
    failed = [r for r in results if not r.ok]
    if args.json:
        _print_json(
            {
                "ok": not failed,
                "verified": [r.version_id for r in results if r.ok],
                "failed": [
                    {"version_id": r.version_id, "problem": r.problem, "changed_fields": r.changed_fields}
                    for r in failed
                ],
                "unregistered": pending,
            }
        )
    else:
        for r in failed:
            print(f"FAIL {r.problem}")
        for vid in pending:
            print(f"note: {vid} has a manifest but is not registered")
        print(f"{len(results) - len(failed)} of {len(results)} registered versions (and judging rubrics) verify")
    return 1 if failed else 0


def _parse_segments(items: list[str] | None) -> dict[str, list[str]] | None:
    if not items:
        return None
    segments: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--segment expects KEY=V1,V2, got {item!r}", field="--segment")
        key, values = item.split("=", 1)
        segments[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return segments


def _event_line(event) -> str:
    what = {
        "move": f"{event.label}: {event.from_version or '-'} -> {event.to_version}",
        "rollback": f"{event.label}: ROLLBACK {event.from_version} -> {event.to_version}",
        "remove": f"{event.label}: removed (was {event.from_version})",
        "approve": f"approved {event.to_version} by {event.reviewer}",
        "status": f"{event.to_version} status -> {event.status}",
        "gate": f"gate verdict {event.status} for {event.to_version}",
    }[event.action]
    if event.forced:
        what = "FORCED " + what
    if event.percent is not None:
        what += f" at {event.percent:g}%"
    if event.segments:
        what += f" segments {json.dumps(event.segments, sort_keys=True)}"
    gate = f" [gate report {event.gate_report_id}]" if event.gate_report_id else ""
    return f"{event.ts}  {event.actor}  {what}  reason: {event.reason}{gate}"


def cmd_label(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.remove:
        event = registry.remove_label(
            args.prompt_id, args.label, reason=args.reason, actor=args.actor, gate_report_id=args.gate_report
        )
    else:
        if not args.version:
            raise UserError("name the version to point the label at (or --remove)", field="version")
        event = registry.move_label(
            args.prompt_id,
            args.label,
            args.version,
            percent=args.percent,
            segments=_parse_segments(args.segment),
            reason=args.reason,
            actor=args.actor,
            gate_report_id=args.gate_report,
            force=args.force,
        )
    if args.json:
        _print_json({"changed": event is not None, "event": event.to_json() if event else None})
    else:
        print(_event_line(event) if event else "label unchanged (already there)")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    events = _registry(args).history(args.prompt_id)
    if args.label:
        events = [e for e in events if e.label == args.label]
    if args.json:
        _print_json([e.to_json() for e in events])
    else:
        for event in events:
            print(_event_line(event))
        if not events:
            print(f"no audit events for {args.prompt_id}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    event = _registry(args).rollback(
        args.prompt_id, reason=args.reason, actor=args.actor, to=args.to, gate_report_id=args.gate_report
    )
    if args.json:
        _print_json(event.to_json())
    else:
        print(_event_line(event))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    event = _registry(args).approve(args.version, reviewer=args.reviewer, reason=args.reason, actor=args.actor)
    if args.json:
        _print_json(event.to_json())
    else:
        print(_event_line(event))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    event = _registry(args).set_status(
        args.version, args.status, reason=args.reason, actor=args.actor, gate_report_id=args.gate_report
    )
    if args.json:
        _print_json(event.to_json())
    else:
        print(_event_line(event))
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    registry = _registry(args)
    package = registry.load_package(args.version)
    check = registry.verify_version(package.version_id)
    if not check.ok:
        raise UserError(f"refusing to bundle: {check.problem}")
    text = json.dumps(package.to_bundle(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args.out:
        atomic_write(Path(args.out), text)
    else:
        sys.stdout.write(text)
    if args.out and not args.json:
        print(f"wrote {package.version_id} ({package.package_hash}) to {args.out}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    prompts = subparsers.add_parser("prompts", help="the prompt registry: versions, labels, audit trail")
    sub = prompts.add_subparsers(dest="prompts_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=[common], help=help, description=help)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(func=func)
        return parser

    def who(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--actor", help="who does this (default env PROMPT_RELEASE_ACTOR, else USER)")

    p = add("list", cmd_list, "list prompt versions with status, hash and labels")
    p.add_argument("prompt_id", nargs="?")
    p = add("show", cmd_show, "show one version (<id>:v<semver>) or one prompt's labels and versions")
    p.add_argument("version", metavar="VERSION_OR_PROMPT")
    p = add("new", cmd_new, "write a draft manifest and template for a new version")
    p.add_argument("prompt_id")
    p.add_argument("--version", help="explicit semver (default: bump the highest version)")
    p.add_argument("--bump", choices=["patch", "minor", "major"], default="patch")
    p.add_argument(
        "--from",
        dest="from_version",
        metavar="VERSION",
        help="copy this version (default: the production version, else the highest)",
    )
    p = add("register", cmd_register, "render, check the version bump and record the package hash in the lock file")
    p.add_argument("versions", nargs="*", metavar="VERSION_ID")
    p.add_argument("--all", action="store_true", help="register every version not yet registered, in order")
    who(p)
    p = add("render", cmd_render, "render a version's template (default: its representative variables)")
    p.add_argument("version", metavar="VERSION_ID")
    p.add_argument("--var", action="append", metavar="NAME=VALUE")
    p.add_argument("--vars-json", metavar="JSON")
    p.add_argument("--merge", action="store_true", help="overlay the given variables on the representative ones")
    p = add("diff", cmd_diff, "template text diff and field-level package diff of two versions")
    p.add_argument("a", metavar="VERSION_A")
    p.add_argument("b", metavar="VERSION_B")
    p = add("verify", cmd_verify, "check every registered version still matches its recorded hash (exit 1 if not)")
    p.add_argument("prompt_id", nargs="?")
    p = add("label", cmd_label, "point a label at a version (audited)")
    p.add_argument("prompt_id")
    p.add_argument("label")
    p.add_argument("version", nargs="?")
    p.add_argument("--percent", type=float, help="canary traffic share, 0 < P <= 100")
    p.add_argument("--segment", action="append", metavar="KEY=V1,V2", help="canary segment filter (repeatable)")
    p.add_argument("--reason", required=True)
    p.add_argument("--gate-report", metavar="ID", help="the gate report that justified this move")
    p.add_argument("--remove", action="store_true", help="remove the label instead")
    p.add_argument(
        "--force",
        action="store_true",
        help="break glass: move a protected label (production, canary) without a promoting gate "
        "report; recorded as forced, with --reason",
    )
    who(p)
    p = add("history", cmd_history, "the audit trail of one prompt: label moves, approvals, status changes")
    p.add_argument("prompt_id")
    p.add_argument("--label")
    p = add("rollback", cmd_rollback, "point production back at the previous production version")
    p.add_argument("prompt_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--to", metavar="VERSION", help="roll back to this version instead")
    p.add_argument("--gate-report", metavar="ID")
    who(p)
    p = add("approve", cmd_approve, "record a reviewer's approval of a version")
    p.add_argument("version", metavar="VERSION_ID")
    p.add_argument("--reviewer", required=True)
    p.add_argument("--reason", default="approved")
    who(p)
    p = add("status", cmd_status, "record a status change (e.g. rejected, retired)")
    p.add_argument("version", metavar="VERSION_ID")
    p.add_argument("status", choices=["draft", "candidate", "approved", "released", "rejected", "retired"])
    p.add_argument("--reason", required=True)
    p.add_argument("--gate-report", metavar="ID")
    who(p)
    p = add("bundle", cmd_bundle, "write a self-contained package JSON (PromptClient(fallback=...) ships it)")
    p.add_argument("version", metavar="VERSION_ID")
    p.add_argument("--out", metavar="FILE")
    # `prompts sync` is the warehouse's (warehouse.commands): the registry never imports the warehouse.
    prompts.subcommands = sub
