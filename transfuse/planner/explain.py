"""Text form of a plan."""

from __future__ import annotations

import numpy as np

__all__ = ["explain"]


def _chunks_text(chunks) -> str:
    parts = []
    for c in chunks:
        if len(set(c)) == 1:
            parts.append(f"{c[0]}x{len(c)}")
        else:
            parts.append(f"{max(c)}..{min(c)} ({len(c)} blocks)")
    return "(" + ", ".join(parts) + ")"


def _step_text(step) -> str:
    o = step.options
    label = step.label or repr(step.transform)
    return f"{label}  [order={o.order}, mode={o.mode}, cval={o.cval:g}, prefilter={o.prefilter}]"


def explain(plan) -> str:
    src = plan.source
    lines = [
        f"source: shape={src.shape} dtype={np.dtype(src.dtype)} chunks={_chunks_text(src.chunks)}",
        f"chain as written ({len(plan.steps)} steps):",
    ]
    for i, step in enumerate(plan.steps, 1):
        lines.append(f"  {i}. {_step_text(step)}")
    lines.append(f"after fusion: {len(plan.passes)} resampling pass(es)")
    with np.printoptions(precision=6, suppress=True, linewidth=100):
        for k, p in enumerate(plan.passes, 1):
            nsteps = len(p.fused.steps)
            lines.append(f"  pass {k}: {nsteps} step(s) fused -> one resample")
            lines.append(f"    transform: {p.fused.transform!r}")
            form = p.coordinate_map.form
            matrix = p.coordinate_map.matrix
            if matrix is None:
                lines.append(f"    fused map: {p.coordinate_map!r}")
            else:
                lines.append(f"    fused matrix ({form}):")
                for row in str(matrix).splitlines():
                    lines.append("      " + row)
            lines.append(
                f"    output: shape={p.output_shape} dtype={p.dtype} "
                f"chunks={_chunks_text(p.output_chunks)}"
            )
            if p.batch_axes:
                lines.append(f"    slice by slice along axes {p.batch_axes} (no spline there)")
            o = p.options
            lines.append(
                f"    interpolation: order={o.order} mode={o.mode} cval={o.cval:g} "
                f"prefilter={o.prefilter}"
            )
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
    return "\n".join(lines)
