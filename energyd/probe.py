"""`energyd probe`: try every energy source here and say which work, why the others don't, the fix."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from energyd.config import Roots
from energyd.sources.base import Inventoried, SourceError
from energyd.sources.select import ORDER, open_one

WIDTH = 100
INDENT = " " * 18


@dataclass(frozen=True)
class ProbeResult:
    source: str
    works: bool
    measured: bool
    reason: str  # why it does not work; "" when it works
    fix: str
    zones: tuple[str, ...] = ()  # every zone read, labelled as exported
    node_total: tuple[str, ...] = ()  # the zones that add up to the node without double counting
    read_from: tuple[tuple[str, str], ...] = ()  # (zone, the file or event it is read from)
    skipped: tuple[tuple[str, str], ...] = ()  # (directory or file, why it is not read)


def probe(
    roots: Roots,
    perf_command: Sequence[str] = ("perf",),
    *,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> list[ProbeResult]:
    """Opens and reads each source once, in the order `--source auto` walks them."""
    results = []
    for name in ORDER:
        try:
            source = open_one(name, roots, interval_s=interval_s, clock=clock, perf_command=perf_command)
        except SourceError as err:
            results.append(ProbeResult(name, False, name != "estimate", err.reason, err.fix))
            continue
        try:
            readings = source.read_uj()
            read_from: tuple[tuple[str, str], ...] = ()
            skipped: tuple[tuple[str, str], ...] = ()
            if isinstance(source, Inventoried):
                read_from = tuple(sorted(source.read_from().items()))
                skipped = tuple((s.where, s.why) for s in source.skipped())
        except SourceError as err:
            results.append(ProbeResult(name, False, source.measured, err.reason, err.fix))
            continue
        finally:
            source.close()
        results.append(
            ProbeResult(
                name,
                True,
                source.measured,
                "",
                "",
                tuple(sorted(z.name for z in readings)),
                tuple(sorted(z.name for z in readings if z.in_node_total)),
                read_from,
                skipped,
            )
        )
    return results


def format_probe(results: Sequence[ProbeResult]) -> str:
    """The probe's findings as text for a terminal."""
    lines = ["energy sources, in the order `energyd run --source auto` tries them:", ""]
    for r in results:
        head = f"  {r.source:<10} {'yes' if r.works else 'no':<4} "
        if r.works:
            kind = "measured" if r.measured else "estimated from CPU utilisation, not measured"
            body = f"{kind}; zones: {', '.join(r.zones)}; node total = {' + '.join(r.node_total)}"
            lines.append(_wrap(head, body))
            lines += [_wrap(INDENT, f"read {zone} from {where}") for zone, where in r.read_from]
            lines += [_wrap(INDENT, f"skipped {why}") for _, why in r.skipped]
        else:
            lines.append(_wrap(head, r.reason))
            if r.fix:
                lines.append(_wrap(INDENT, f"fix: {r.fix}"))
    lines.append("")
    chosen = next((r for r in results if r.works), None)
    if chosen is None:
        lines.append("`--source auto` has no source that works here: energyd run would exit.")
    elif chosen.measured:
        lines.append(f"`--source auto` will use: {chosen.source}")
    else:
        lines.append(
            f'`--source auto` will use: {chosen.source} (energyd_source_info says measured="false"; '
            "its joules are a model, not a meter)"
        )
    return "\n".join(lines)


def _wrap(head: str, text: str) -> str:
    return textwrap.fill(
        text,
        WIDTH,
        initial_indent=head,
        subsequent_indent=INDENT,
        break_on_hyphens=False,
        break_long_words=False,
    )
