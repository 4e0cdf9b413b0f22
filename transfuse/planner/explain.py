"""Text form of a plan, per planner stage (``logical``, ``fused``, ``physical``)."""

from __future__ import annotations

import numpy as np

__all__ = ["chunks_text", "explain"]


def chunks_text(chunks) -> str:
    """Chunks in a few characters: ``64x3`` for three chunks of 64, ``64..10 (3 blocks)``
    for uneven ones.

    Examples
    --------
    >>> chunks_text(((64, 64, 64), (30, 30, 10)))
    '(64x3, 30..10 (3 blocks))'
    """
    parts = []
    for c in chunks:
        if len(c) == 0:
            parts.append("0")
        elif len(set(c)) == 1:
            parts.append(f"{c[0]}x{len(c)}")
        else:
            parts.append(f"{max(c)}..{min(c)} ({len(c)} blocks)")
    return "(" + ", ".join(parts) + ")"


def _options_text(o) -> str:
    return f"order={o.order}, mode={o.mode}, cval={o.cval:g}, prefilter={o.prefilter}"


def _step_text(step) -> str:
    text = f"{step.label or step.operation}: {step.transform!r}"
    if step.view is not None:
        text += f" -> {step.view.describe()}"
    cast = f", output={np.dtype(step.dtype)}" if step.dtype is not None else ""
    return f"{text}  [{_options_text(step.options)}{cast}]"


def _logical(plan) -> list[str]:
    src = plan.source
    lines = [
        f"source: shape={src.shape} dtype={np.dtype(src.dtype)} chunks={chunks_text(src.chunks)}",
        f"chain as written ({len(plan.steps)} steps):",
    ]
    for i, step in enumerate(plan.steps, 1):
        lines.append(f"  {i}. {_step_text(step)}")
    return lines


def _fused(plan) -> list[str]:
    lines = [f"after fusion: {len(plan.runs)} resampling pass(es)"]
    for k, run in enumerate(plan.runs, 1):
        lines.append(f"  pass {k}: {len(run.steps)} step(s) fused -> one resample")
        lines.append(f"    transform: {run.transform!r}")
    return lines


def _physical(plan) -> list[str]:
    lines = [f"physical plan: {len(plan.passes)} resampling pass(es)"]
    with np.printoptions(precision=6, suppress=True, linewidth=100):
        for k, p in enumerate(plan.passes, 1):
            lines.append(f"  pass {k}:")
            affine = p.affine
            if affine is None:
                lines.append(f"    fused map: {p.describe_map()}")
            else:
                lines.append(f"    fused matrix ({affine.form}):")
                for row in str(affine.matrix).splitlines():
                    lines.append("      " + row)
                if affine.view is not None:
                    lines.append(f"    of the selection {affine.view.describe()}")
            out = p.output
            lines.append(
                f"    output: shape={out.shape} dtype={out.dtype} chunks={chunks_text(out.chunks)}"
            )
            if p.batch_axes:
                lines.append(f"    slice by slice along axes {p.batch_axes} (no spline there)")
            lines.append(f"    interpolation: {_options_text(p.options).replace(', ', ' ')}")
            nprefilter = int(np.prod([len(c) for c in p.coefficient_chunks]))
            empty = sum(1 for f in p.footprints.values() if f.axes is None)
            deps = [len(f.dependencies) for f in p.footprints.values()]
            layers = "prefilter + resample" if p.needs_prefilter else "resample"
            lines.append(
                f"    layers: {layers}; tasks: "
                f"{nprefilter if p.needs_prefilter else 0} prefilter + "
                f"{p.ntasks} resample ({empty} all-cval)"
            )
            if deps:
                lines.append(
                    f"    input chunks per output chunk: max {max(deps)}, mean {np.mean(deps):.1f}"
                )
    lines.append(f"total: {len(plan.passes)} resampling pass(es), {plan.ntasks} tasks")
    return lines


_STAGES = {"logical": _logical, "fused": _fused, "physical": _physical}


def explain(plan, stage: str = "all") -> str:
    """The plan as text: one planner stage, or ``"all"`` of them in order."""
    if stage == "all":
        names = list(_STAGES)
    elif stage in _STAGES:
        names = [stage]
    else:
        raise ValueError(f"stage={stage!r} is not one of {['all', *_STAGES]}")
    lines: list[str] = []
    for name in names:
        lines.extend(_STAGES[name](plan))
    return "\n".join(lines)
