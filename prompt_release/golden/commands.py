"""`prompt-release golden build | list | show | diff | add-incident | label | propose` and `prompt-release mine`."""

from __future__ import annotations

import argparse
import json

from prompt_release import config
from prompt_release.errors import UserError
from prompt_release.golden import store
from prompt_release.golden.build import build_golden, diff_cases, record_incident
from prompt_release.golden.labelling import (
    accept_proposals,
    label_from_file,
    label_interactively,
    propose_labels,
    unlabelled_cases,
)
from prompt_release.golden.model import dataset_name, parse_version_ref
from prompt_release.mining.detectors import mine_failures
from prompt_release.registry import Registry


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    mine = subparsers.add_parser("mine", parents=[common], help="detect failures in the traces of a day (or all days)")
    mine.add_argument("--day", metavar="YYYY-MM-DD", help="only this day (default: every day)")
    mine.set_defaults(func=_mine, opens_warehouse="existing")

    golden = subparsers.add_parser("golden", help="versioned golden datasets mined from failures")
    sub = golden.add_subparsers(dest="golden_command", metavar="COMMAND", required=True)

    build = sub.add_parser(
        "build", parents=[common], help="build the next version of each workflow's dataset if it changed"
    )
    build.add_argument(
        "--workflow", action="append", help="workflow id (repeatable; default: every configured workflow)"
    )
    build.set_defaults(func=_build, opens_warehouse="existing")

    listing = sub.add_parser("list", parents=[common], help="list dataset versions")
    listing.add_argument("--dataset", help="only this dataset, e.g. support_router_golden")
    listing.set_defaults(func=_list)

    show = sub.add_parser("show", parents=[common], help="show one version: manifest summary and cases")
    show.add_argument("version", metavar="DATASET:vN")
    show.add_argument("--cases", type=int, default=10, metavar="N", help="cases to print (default 10)")
    show.add_argument("--json", action="store_true", help="print the manifest as JSON")
    show.set_defaults(func=_show)

    diff = sub.add_parser("diff", parents=[common], help="cases added, removed and changed between two versions")
    diff.add_argument("a", metavar="DATASET:vA")
    diff.add_argument("b", metavar="DATASET:vB")
    diff.set_defaults(func=_diff)

    incident = sub.add_parser("add-incident", parents=[common], help="turn a production span into a regression case")
    incident.add_argument("--span-id", required=True, metavar="ID")
    incident.add_argument(
        "--expected",
        metavar="JSON",
        help='expected behaviour: {"kind": ..., "value": ...}, or {"route": "billing"}, '
        'a tool call {"name": ..., "arguments": {...}}, "refuse", "clarify"',
    )
    incident.add_argument("--note", metavar="TEXT")
    incident.set_defaults(func=_add_incident, opens_warehouse="existing")

    label = sub.add_parser(
        "label",
        parents=[common],
        help="record what good means for unlabelled cases; writes the next version with the labels",
    )
    label.add_argument("dataset", metavar="DATASET", help="e.g. support_router_golden")
    source = label.add_mutually_exclusive_group()
    source.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help='bulk labels, JSONL: {"case_id": ..., "expected": ...} per line (checked whole before anything is written)',
    )
    source.add_argument(
        "--accept-proposals",
        metavar="FILE|all",
        help="make pending proposals (`golden propose`) labels: all of them, or those a JSONL file names by "
        "proposal_id (lines of datasets/proposals/DATASET.jsonl qualify)",
    )
    label.add_argument("--actor", help="who labels (default: the CI identity or the OS user, with the host)")
    label.set_defaults(func=_label, opens_warehouse="existing")

    propose = sub.add_parser(
        "propose",
        parents=[common],
        help="ask a model for the expected answer of unlabelled cases; stores proposals, not labels",
    )
    propose.add_argument("dataset", metavar="DATASET", help="e.g. support_router_golden")
    propose.add_argument("--model", help="the model that proposes (default: the prompt's own model)")
    propose.add_argument(
        "--prompt",
        metavar="ID:vX.Y.Z",
        help="the prompt version that asks (default: the workflow's production version, whose output "
        "contract every proposal must keep)",
    )
    propose.add_argument("--limit", type=int, metavar="N", help="ask about at most N cases")
    propose.set_defaults(func=_propose, opens_warehouse="existing")


def _mine(args: argparse.Namespace) -> int:
    summary = mine_failures(args.warehouse, config.registry_root(args.registry), args.day)
    print(
        f"mined {summary.calls} calls ({summary.calls_without_contract} without a known package): "
        f"{summary.failures} failures in {summary.seconds:.2f}s"
    )
    for name, count in sorted(summary.failures_by_class.items()):
        print(f"  {name:<20} {count}")
    return 0


def _build(args: argparse.Namespace) -> int:
    root = config.registry_root(args.registry)
    workflows = args.workflow or Registry(root).served_prompt_ids()
    for workflow in workflows:
        result = build_golden(args.warehouse, root, workflow)
        print(f"{result.dataset}: {result.message}")
    return 0


def _list(args: argparse.Namespace) -> int:
    root = config.registry_root(args.registry)
    datasets = [args.dataset] if args.dataset else store.list_datasets(root)
    if not datasets:
        print("no golden datasets yet (run `prompt-release golden build`)")
    for dataset in datasets:
        for version in store.versions(root, dataset):
            m = store.read_manifest(root, dataset, version)
            print(
                f"{m.version_id:<32} {m.case_count:>4} cases  {m.labelled_count:>4} with expected  "
                f"parent={m.parent_version or '-'}  {m.content_hash[:19]}  {m.created_at}"
            )
    return 0


def _show(args: argparse.Namespace) -> int:
    root = config.registry_root(args.registry)
    dataset, version = parse_version_ref(args.version)
    manifest, cases = store.read_version(root, dataset, version)
    if args.json:
        print(json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True))
        return 0
    print(f"{manifest.version_id}  ({manifest.case_count} cases, parent {manifest.parent_version or '-'})")
    print(f"content hash {manifest.content_hash}")
    print("failure classes: " + ", ".join(f"{k}={v}" for k, v in manifest.counts_by_failure_class.items()))
    for key in ("added", "removed", "changed"):
        print(f"{key}: {len(manifest.changes.get(key, []))}")
    for case in cases[: max(0, args.cases)]:
        last = case.input.messages[-1].get("content") if case.input.messages else ""
        expected = (
            f"{case.expected.kind}={json.dumps(case.expected.value)} ({case.expected.source})" if case.expected else "-"
        )
        print(
            f"  {case.case_id}  [{', '.join(case.tags.failure_classes) or '-'}]  expected {expected}  "
            f"{str(last)[:70]!r}"
        )
    return 0


def _diff(args: argparse.Namespace) -> int:
    root = config.registry_root(args.registry)
    (da, va), (db, vb) = parse_version_ref(args.a), parse_version_ref(args.b)
    if da != db:
        raise UserError(f"cannot diff versions of different datasets: {da} vs {db}")
    _, a = store.read_version(root, da, va)
    _, b = store.read_version(root, db, vb)
    added, removed, changed = diff_cases(a, b)
    print(f"{args.a} -> {args.b}: +{len(added)} -{len(removed)} ~{len(changed)}")
    for sign, ids in (("+", added), ("-", removed), ("~", changed)):
        for case_id in ids:
            print(f"{sign} {case_id}")
    return 0


def _add_incident(args: argparse.Namespace) -> int:
    root = config.registry_root(args.registry)
    workflow, path = record_incident(args.warehouse, root, args.span_id, args.expected, args.note)
    print(
        f"recorded incident {args.span_id} for {dataset_name(workflow)} in {path}; "
        f"it becomes a case at the next `prompt-release golden build`"
    )
    return 0


def _label(args: argparse.Namespace) -> int:
    root = config.registry_root(args.registry)
    actor = config.actor(args.actor)
    if args.from_file:
        outcome = label_from_file(args.warehouse, root, args.dataset, args.from_file, actor=actor)
    elif args.accept_proposals:
        outcome = accept_proposals(args.warehouse, root, args.dataset, args.accept_proposals, actor=actor)
    else:
        outcome = label_interactively(args.warehouse, root, args.dataset, actor=actor, ask=input, say=print)
    build = outcome.build
    decided = [
        f"{count} proposal(s) {what}"
        for count, what in ((outcome.accepted, "accepted"), (outcome.edited, "edited"), (outcome.rejected, "rejected"))
        if count
    ]
    print(
        f"{args.dataset}: {outcome.recorded} label(s) recorded"
        + "".join(f", {d}" for d in decided)
        + (f", {outcome.skipped} skipped" if outcome.skipped else "")
        + f"; {build.message if build else ''}; {outcome.labelled}/{outcome.cases} cases labelled, "
        f"{len(unlabelled_cases(root, args.dataset))} still without an expectation"
    )
    return 0


def _propose(args: argparse.Namespace) -> int:
    # lazy: the endpoint module starts the embedded simulator's server stack; the CLI parser must not load it
    from prompt_release.llm.endpoint import model_endpoint

    root = config.registry_root(args.registry)
    with model_endpoint() as llm_settings:
        outcome = propose_labels(
            args.warehouse, root, args.dataset, llm_settings=llm_settings, model=args.model, prompt=args.prompt,
            limit=args.limit,
        )  # fmt: skip
    print(
        f"{args.dataset}: asked {outcome.model} with {outcome.prompt_version} about {outcome.asked} case(s) "
        f"({outcome.cached} answered from the cache); {len(outcome.proposed)} proposal(s) stored, "
        f"{len(outcome.not_proposed)} case(s) got none"
        + (f", {outcome.kept} case(s) already had its proposal" if outcome.kept else "")
    )
    for case_id, why in outcome.not_proposed[:20]:
        print(f"  {case_id}: {why}")
    print(
        f"{outcome.pending} proposal(s) pending; none is a label until a person accepts it: "
        f"prompt-release golden label {args.dataset} (a/r per case) or --accept-proposals all|FILE"
    )
    return 0
